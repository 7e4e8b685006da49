<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\FolderRepository;

final class InMemoryFolders implements FolderRepository {
	/** @var array<string, Folder> */
	private array $byId = [];

	public function findFolder(string $folderId): ?Folder {
		return $this->byId[$folderId] ?? null;
	}

	public function listOwnedBy(string $userId): array {
		return array_values(array_filter($this->byId, static fn (Folder $f): bool => $f->owner === $userId));
	}

	public function addFolder(Folder $folder): void {
		if (isset($this->byId[$folder->folderId])) {
			throw new DuplicateKey($folder->folderId);
		}
		$this->byId[$folder->folderId] = $folder;
	}

	public function countFolders(): int {
		return count($this->byId);
	}
}
