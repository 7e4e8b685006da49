<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\SealedChange;
use OCA\HarpBridge\Store\ChangeRepository;
use OCA\HarpBridge\Store\DuplicateKey;
use OCP\AppFramework\Db\QBMapper;
use OCP\AppFramework\Db\TTransactional;
use OCP\DB\Exception;
use OCP\DB\QueryBuilder\IQueryBuilder;
use OCP\IDBConnection;

/**
 * Sealed changes in harp_changes. The cursor (`seq`) is the folder's last
 * one plus one, taken in a transaction; the unique index (folder, seq) turns
 * a concurrent append into a retry instead of a reused cursor (so does a
 * deadlock, which MySQL may pick instead).
 *
 * @template-extends QBMapper<ChangeEntity>
 */
class ChangeMapper extends QBMapper implements ChangeRepository {
	use MapperSupport;
	use TTransactional;

	private const ATTEMPTS = 5;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::CHANGES, ChangeEntity::class);
	}

	public function appendChanges(string $folderId, string $deviceId, array $sealed): int {
		for ($attempt = 1; ; $attempt++) {
			try {
				return $this->atomic(fn (): int => $this->appendOnce($folderId, $deviceId, $sealed), $this->db);
			} catch (DuplicateKey|Exception $e) {
				$retryable = $e instanceof DuplicateKey || $e->getReason() === Exception::REASON_DEADLOCK;
				if (!$retryable || $attempt >= self::ATTEMPTS) {
					throw $e;
				}
				usleep(random_int(1000, 20000));
			}
		}
	}

	public function listChangesAfter(string $folderId, int $after, int $limit): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->gt('seq', $qb->createNamedParameter($after, IQueryBuilder::PARAM_INT)))
			->orderBy('seq', 'ASC')
			->setMaxResults($limit);
		return array_map(static fn (ChangeEntity $e): SealedChange => new SealedChange(
			(string)$e->getFolderId(),
			(int)$e->getSeq(),
			(string)$e->getDeviceId(),
			(string)$e->getSealed(),
		), $this->findEntities($qb));
	}

	public function countChanges(): int {
		return $this->countRows();
	}

	/** @param list<string> $sealed */
	private function appendOnce(string $folderId, string $deviceId, array $sealed): int {
		$cursor = $this->lastCursor($folderId);
		$now = time();
		foreach ($sealed as $change) {
			$entity = new ChangeEntity();
			$entity->setFolderId($folderId);
			$entity->setSeq(++$cursor);
			$entity->setDeviceId($deviceId);
			$entity->setSealed($change);
			$entity->setCreatedAt($now);
			$this->unique(fn () => $this->insert($entity));
		}
		return $cursor;
	}

	private function lastCursor(string $folderId): int {
		$qb = $this->db->getQueryBuilder();
		$qb->select($qb->func()->max('seq'))
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)));
		$result = $qb->executeQuery();
		$last = $result->fetchOne();
		$result->closeCursor();
		return $last === null || $last === false ? 0 : (int)$last;
	}
}
