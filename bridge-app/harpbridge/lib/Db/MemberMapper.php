<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Store\MemberRepository;
use OCP\AppFramework\Db\QBMapper;
use OCP\IDBConnection;

/**
 * Shares in harp_members (the owner is in harp_folders).
 *
 * @template-extends QBMapper<MemberEntity>
 */
class MemberMapper extends QBMapper implements MemberRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::MEMBERS, MemberEntity::class);
	}

	public function listShares(string $folderId): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->orderBy('user_id', 'ASC');
		return array_map(static fn (MemberEntity $e): string => (string)$e->getUserId(), $this->findEntities($qb));
	}

	public function listFoldersSharedWith(string $userId): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('user_id', $qb->createNamedParameter($userId)))
			->orderBy('folder_id', 'ASC');
		return array_map(static fn (MemberEntity $e): string => (string)$e->getFolderId(), $this->findEntities($qb));
	}

	public function addShare(string $folderId, string $userId): void {
		$entity = new MemberEntity();
		$entity->setFolderId($folderId);
		$entity->setUserId($userId);
		$entity->setCreatedAt(time());
		$this->unique(fn () => $this->insert($entity));
	}

	public function removeShare(string $folderId, string $userId): void {
		$qb = $this->db->getQueryBuilder();
		$qb->delete($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('user_id', $qb->createNamedParameter($userId)))
			->executeStatement();
	}

	public function countShares(): int {
		return $this->countRows();
	}
}
