<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Store\FolderRepository;
use OCP\AppFramework\Db\DoesNotExistException;
use OCP\AppFramework\Db\QBMapper;
use OCP\IDBConnection;

/**
 * Folders in harp_folders.
 *
 * @template-extends QBMapper<FolderEntity>
 */
class FolderMapper extends QBMapper implements FolderRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::FOLDERS, FolderEntity::class);
	}

	public function findFolder(string $folderId): ?Folder {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)));
		try {
			return $this->toModel($this->findEntity($qb));
		} catch (DoesNotExistException) {
			return null;
		}
	}

	public function listOwnedBy(string $userId): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('owner', $qb->createNamedParameter($userId)))
			->orderBy('folder_id', 'ASC');
		return array_map(fn (FolderEntity $e): Folder => $this->toModel($e), $this->findEntities($qb));
	}

	public function addFolder(Folder $folder): void {
		$entity = new FolderEntity();
		$entity->setFolderId($folder->folderId);
		$entity->setOwner($folder->owner);
		$entity->setLabel($folder->label);
		$entity->setIndexMode($folder->indexMode);
		$entity->setVersioning($folder->versioning);
		$entity->setCreatedAt(time());
		$this->unique(fn () => $this->insert($entity));
	}

	public function countFolders(): int {
		return $this->countRows();
	}

	private function toModel(FolderEntity $e): Folder {
		return new Folder(
			(string)$e->getFolderId(),
			(string)$e->getOwner(),
			(string)$e->getLabel(),
			(string)$e->getIndexMode(),
			(string)$e->getVersioning(),
		);
	}
}
