<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Nextcloud;

use OCA\HarpBridge\Store\UserDirectory;
use OCP\IUserManager;

/** The users of the Nextcloud server. */
class NextcloudUserDirectory implements UserDirectory {
	public function __construct(private readonly IUserManager $users) {
	}

	public function userExists(string $userId): bool {
		return $this->users->userExists($userId);
	}
}
