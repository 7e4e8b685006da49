<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Store\UserDirectory;

final class KnownUsers implements UserDirectory {
	/** @param list<string> $users */
	public function __construct(private readonly array $users) {
	}

	public function userExists(string $userId): bool {
		return in_array($userId, $this->users, true);
	}
}
