<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

/**
 * The users a folder is shared with. The owner is not stored here: a folder's
 * members are its owner plus these users.
 */
interface MemberRepository {
	/** @return list<string> user ids, sorted */
	public function listShares(string $folderId): array;

	/** @return list<string> ids of folders shared with $userId (not owned) */
	public function listFoldersSharedWith(string $userId): array;

	/** @throws DuplicateKey when already shared */
	public function addShare(string $folderId, string $userId): void;

	public function removeShare(string $folderId, string $userId): void;

	public function countShares(): int;
}
