<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Store\EntryRepository;
use OCP\AppFramework\Db\DoesNotExistException;
use OCP\AppFramework\Db\QBMapper;
use OCP\DB\QueryBuilder\IQueryBuilder;
use OCP\IDBConnection;

/**
 * Chain links in harp_entries; the entry is kept as base64 text (292
 * characters) so every database stores it the same way.
 *
 * @template-extends QBMapper<ChainEntryEntity>
 */
class ChainEntryMapper extends QBMapper implements EntryRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::ENTRIES, ChainEntryEntity::class);
	}

	public function findByHead(string $folderId, string $fileId, string $head): ?ChainLink {
		$qb = $this->fileQuery($folderId, $fileId);
		$qb->andWhere($qb->expr()->eq('head', $qb->createNamedParameter($head)));
		try {
			return $this->toModel($this->findEntity($qb));
		} catch (DoesNotExistException) {
			return null;
		}
	}

	public function findGenesis(string $folderId, string $fileId): ?string {
		$qb = $this->fileQuery($folderId, $fileId, 'prev');
		$qb->andWhere($qb->expr()->eq('seq', $qb->createNamedParameter(1, IQueryBuilder::PARAM_INT)))
			->orderBy('id', 'ASC')
			->setMaxResults(1);
		$result = $qb->executeQuery();
		$prev = $result->fetchOne();
		$result->closeCursor();
		return is_string($prev) ? $prev : null;
	}

	public function setLogIndex(string $folderId, string $fileId, string $head, int $logIndex): void {
		$qb = $this->db->getQueryBuilder();
		$qb->update($this->getTableName())
			->set('log_index', $qb->createNamedParameter($logIndex, IQueryBuilder::PARAM_INT))
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('file_id', $qb->createNamedParameter($fileId)))
			->andWhere($qb->expr()->eq('head', $qb->createNamedParameter($head)))
			->executeStatement();
	}

	public function removeLink(string $folderId, string $fileId, string $head): void {
		$qb = $this->db->getQueryBuilder();
		$qb->delete($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('file_id', $qb->createNamedParameter($fileId)))
			->andWhere($qb->expr()->eq('head', $qb->createNamedParameter($head)))
			->executeStatement();
	}

	public function findLatest(string $folderId, string $fileId): ?ChainLink {
		$qb = $this->fileQuery($folderId, $fileId);
		$qb->orderBy('seq', 'DESC')->addOrderBy('id', 'DESC')->setMaxResults(1);
		$found = $this->findEntities($qb);
		return $found === [] ? null : $this->toModel($found[0]);
	}

	public function addLink(ChainLink $link, string $slot): void {
		$entity = new ChainEntryEntity();
		$entity->setFolderId($link->folderId);
		$entity->setFileId($link->fileId);
		$entity->setSeq($link->seq);
		$entity->setPrev($link->prev);
		$entity->setHead($link->head);
		$entity->setEntry(Base64::encode($link->entry));
		$entity->setAuthor($link->author);
		$entity->setSlot($slot);
		$entity->setCreatedAt(time());
		$this->unique(fn () => $this->insert($entity));
	}

	public function listFrom(string $folderId, string $fileId, int $fromSeq, int $limit): array {
		$qb = $this->fileQuery($folderId, $fileId);
		$qb->andWhere($qb->expr()->gte('seq', $qb->createNamedParameter($fromSeq, IQueryBuilder::PARAM_INT)))
			->orderBy('seq', 'ASC')
			->addOrderBy('id', 'ASC')
			->setMaxResults($limit);
		return array_map(fn (ChainEntryEntity $e): ChainLink => $this->toModel($e), $this->findEntities($qb));
	}

	public function countLinks(): int {
		return $this->countRows();
	}

	private function fileQuery(string $folderId, string $fileId, string $columns = '*'): IQueryBuilder {
		$qb = $this->db->getQueryBuilder();
		$qb->select($columns)
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('file_id', $qb->createNamedParameter($fileId)));
		return $qb;
	}

	private function toModel(ChainEntryEntity $e): ChainLink {
		return new ChainLink(
			(string)$e->getFolderId(),
			(string)$e->getFileId(),
			(int)$e->getSeq(),
			(string)$e->getPrev(),
			(string)Base64::decode((string)$e->getEntry()),
			(string)$e->getHead(),
			(string)$e->getAuthor(),
			$e->getLogIndex(),
		);
	}
}
