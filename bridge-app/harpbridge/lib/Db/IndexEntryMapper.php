<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\IndexRecord;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\IndexRepository;
use OCP\AppFramework\Db\QBMapper;
use OCP\AppFramework\Db\TTransactional;
use OCP\DB\QueryBuilder\IQueryBuilder;
use OCP\IDBConnection;

/**
 * The search index in harp_index. Tokens are stored as " t1 t2 … " so a
 * token search is `LIKE '% t %'` per token, without a table of its own.
 *
 * @template-extends QBMapper<IndexEntryEntity>
 */
class IndexEntryMapper extends QBMapper implements IndexRepository {
	use MapperSupport;
	use TTransactional;

	private const ATTEMPTS = 3;
	private const CHUNK = 500;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::INDEX, IndexEntryEntity::class);
	}

	public function putRecords(array $records): void {
		for ($attempt = 1; ; $attempt++) {
			try {
				$this->atomic(fn () => $this->replace($records), $this->db);
				return;
			} catch (DuplicateKey $e) {
				// A concurrent put of the same files: do it again over theirs.
				if ($attempt >= self::ATTEMPTS) {
					throw $e;
				}
			}
		}
	}

	public function searchNames(string $folderId, string $needle, int $limit): array {
		$qb = $this->folderQuery($folderId);
		$qb->andWhere($qb->expr()->isNotNull('name'));
		if ($needle !== '') {
			$qb->andWhere($qb->expr()->iLike('name', $qb->createNamedParameter('%' . $this->db->escapeLikeParameter($needle) . '%')));
		}
		$qb->orderBy('file_id', 'ASC')->setMaxResults($limit);
		return array_map(fn (IndexEntryEntity $e): IndexRecord => $this->toModel($e), $this->findEntities($qb));
	}

	public function searchTokens(string $folderId, array $tokens, int $limit): array {
		$qb = $this->folderQuery($folderId);
		foreach ($tokens as $token) {
			$qb->andWhere($qb->expr()->like('tokens', $qb->createNamedParameter('% ' . $this->db->escapeLikeParameter($token) . ' %')));
		}
		$qb->orderBy('file_id', 'ASC')->setMaxResults($limit);
		return array_map(fn (IndexEntryEntity $e): IndexRecord => $this->toModel($e), $this->findEntities($qb));
	}

	public function listPage(string $folderId, string $afterFileId, int $limit): array {
		$qb = $this->folderQuery($folderId);
		if ($afterFileId !== '') {
			$qb->andWhere($qb->expr()->gt('file_id', $qb->createNamedParameter($afterFileId)));
		}
		$qb->orderBy('file_id', 'ASC')->setMaxResults($limit);
		return array_map(fn (IndexEntryEntity $e): IndexRecord => $this->toModel($e), $this->findEntities($qb));
	}

	public function findByName(string $folderId, string $name): ?IndexRecord {
		// `name` is a text column, which not every database compares with `=`:
		// narrow with LIKE, then compare exactly here.
		$qb = $this->folderQuery($folderId);
		$qb->andWhere($qb->expr()->like('name', $qb->createNamedParameter($this->db->escapeLikeParameter($name))))
			->orderBy('file_id', 'ASC')
			->setMaxResults(100);
		foreach ($this->findEntities($qb) as $entity) {
			if ($entity->getName() === $name) {
				return $this->toModel($entity);
			}
		}
		return null;
	}

	public function countRecords(): int {
		return $this->countRows();
	}

	/** @param list<IndexRecord> $records */
	private function replace(array $records): void {
		$byFolder = [];
		foreach ($records as $record) {
			$byFolder[$record->folderId][] = $record->fileId;
		}
		foreach ($byFolder as $folderId => $fileIds) {
			foreach (array_chunk($fileIds, self::CHUNK) as $chunk) {
				$qb = $this->db->getQueryBuilder();
				$qb->delete($this->getTableName())
					->where($qb->expr()->eq('folder_id', $qb->createNamedParameter((string)$folderId)))
					->andWhere($qb->expr()->in('file_id', $qb->createNamedParameter($chunk, IQueryBuilder::PARAM_STR_ARRAY)))
					->executeStatement();
			}
		}
		$now = time();
		foreach ($records as $record) {
			$entity = new IndexEntryEntity();
			$entity->setFolderId($record->folderId);
			$entity->setFileId($record->fileId);
			$entity->setName($record->name);
			$entity->setTokens($record->tokens === [] ? null : ' ' . implode(' ', $record->tokens) . ' ');
			$entity->setSize($record->size);
			$entity->setMtimeMs($record->mtimeMs);
			$entity->setDeleted($record->deleted);
			$entity->setUpdatedAt($now);
			$this->unique(fn () => $this->insert($entity));
		}
	}

	private function folderQuery(string $folderId): IQueryBuilder {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)));
		return $qb;
	}

	private function toModel(IndexEntryEntity $e): IndexRecord {
		$tokens = trim((string)$e->getTokens());
		return new IndexRecord(
			(string)$e->getFolderId(),
			(string)$e->getFileId(),
			$e->getName(),
			$tokens === '' ? [] : explode(' ', $tokens),
			(int)$e->getSize(),
			(int)$e->getMtimeMs(),
			(bool)$e->isDeleted(),
		);
	}
}
