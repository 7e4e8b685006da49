<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\Folder;

/** Folders; a folder id is unique across all users. */
interface FolderRepository {
	public function findFolder(string $folderId): ?Folder;

	/** @return list<Folder> the folders $userId owns */
	public function listOwnedBy(string $userId): array;

	/** @throws DuplicateKey when the folder id is taken */
	public function addFolder(Folder $folder): void;

	public function countFolders(): int;
}
