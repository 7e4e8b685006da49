<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\MemberRepository;

final class InMemoryMembers implements MemberRepository {
	/** @var array<string, array<string, true>> folder id => user ids */
	private array $shares = [];

	public function listShares(string $folderId): array {
		$users = array_map('strval', array_keys($this->shares[$folderId] ?? []));
		sort($users, SORT_STRING);
		return $users;
	}

	public function listFoldersSharedWith(string $userId): array {
		$folders = [];
		foreach ($this->shares as $folderId => $users) {
			if (isset($users[$userId])) {
				$folders[] = (string)$folderId;
			}
		}
		return $folders;
	}

	public function addShare(string $folderId, string $userId): void {
		if (isset($this->shares[$folderId][$userId])) {
			throw new DuplicateKey("$folderId/$userId");
		}
		$this->shares[$folderId][$userId] = true;
	}

	public function removeShare(string $folderId, string $userId): void {
		unset($this->shares[$folderId][$userId]);
	}

	public function countShares(): int {
		return array_sum(array_map('count', $this->shares));
	}
}
