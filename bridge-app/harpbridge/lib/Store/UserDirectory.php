<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

/** The users of the server (Nextcloud's user backend). */
interface UserDirectory {
	public function userExists(string $userId): bool;
}
