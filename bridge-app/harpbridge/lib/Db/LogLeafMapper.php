<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Store\LogRepository;
use OCP\AppFramework\Db\QBMapper;
use OCP\DB\QueryBuilder\IQueryBuilder;
use OCP\IDBConnection;

/**
 * Folders' transparency logs in harp_log_leaves. The unique indexes
 * (folder, log_index) and (folder, leaf_hash) turn a concurrent append into a
 * DuplicateKey, which LogService settles by taking the next index.
 *
 * @template-extends QBMapper<LogLeafEntity>
 */
class LogLeafMapper extends QBMapper implements LogRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::LOG, LogLeafEntity::class);
	}

	public function logSize(string $folderId): int {
		$qb = $this->db->getQueryBuilder();
		$qb->select($qb->func()->max('log_index'))
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)));
		$result = $qb->executeQuery();
		$last = $result->fetchOne();
		$result->closeCursor();
		return $last === null || $last === false ? 0 : (int)$last + 1;
	}

	public function countLeaves(string $folderId): int {
		$qb = $this->db->getQueryBuilder();
		$qb->select($qb->func()->count('log_index'))
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)));
		$result = $qb->executeQuery();
		$count = $result->fetchOne();
		$result->closeCursor();
		return (int)$count;
	}

	public function findLeaf(string $folderId, string $leafHash): ?int {
		$qb = $this->db->getQueryBuilder();
		$qb->select('log_index')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('leaf_hash', $qb->createNamedParameter($leafHash)))
			->setMaxResults(1);
		$result = $qb->executeQuery();
		$index = $result->fetchOne();
		$result->closeCursor();
		return $index === null || $index === false ? null : (int)$index;
	}

	public function leafAt(string $folderId, int $logIndex): ?string {
		$qb = $this->db->getQueryBuilder();
		$qb->select('leaf_hash')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('log_index', $qb->createNamedParameter($logIndex, IQueryBuilder::PARAM_INT)))
			->setMaxResults(1);
		$result = $qb->executeQuery();
		$hash = $result->fetchOne();
		$result->closeCursor();
		return $hash === null || $hash === false ? null : (string)$hash;
	}

	public function addLeaf(string $folderId, int $logIndex, string $leafHash): void {
		$entity = new LogLeafEntity();
		$entity->setFolderId($folderId);
		$entity->setLogIndex($logIndex);
		$entity->setLeafHash($leafHash);
		$entity->setCreatedAt(time());
		$this->unique(fn () => $this->insert($entity));
	}

	public function leafHashes(string $folderId, int $count): array {
		if ($count <= 0) {
			return [];
		}
		// Plain rows, not entities: a proof reads every leaf up to its size.
		$qb = $this->db->getQueryBuilder();
		$qb->select('log_index', 'leaf_hash')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->lt('log_index', $qb->createNamedParameter($count, IQueryBuilder::PARAM_INT)))
			->orderBy('log_index', 'ASC');
		$result = $qb->executeQuery();
		$hashes = [];
		while (($row = $result->fetch()) !== false) {
			$hashes[(int)$row['log_index']] = (string)$row['leaf_hash'];
		}
		$result->closeCursor();
		return $hashes;
	}
}
