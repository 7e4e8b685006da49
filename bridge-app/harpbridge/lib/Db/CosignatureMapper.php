<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\Cosignature;
use OCA\HarpBridge\Model\CosignedSize;
use OCA\HarpBridge\Store\CosignatureRepository;
use OCP\AppFramework\Db\QBMapper;
use OCP\DB\QueryBuilder\IQueryBuilder;
use OCP\IDBConnection;

/**
 * Witnesses' cosignature lines in harp_cosignatures. The unique indexes
 * (folder, size, place) and (folder, size, key id, name) make LogService's
 * rules (at most 16 lines, one per witness key) hold under concurrent posts.
 *
 * @template-extends QBMapper<CosignatureEntity>
 */
class CosignatureMapper extends QBMapper implements CosignatureRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::COSIGNATURES, CosignatureEntity::class);
	}

	public function listCosignatures(string $folderId, int $size): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('size', $qb->createNamedParameter($size, IQueryBuilder::PARAM_INT)))
			->orderBy('place', 'ASC');
		return array_map(static fn (CosignatureEntity $e): Cosignature => new Cosignature(
			(string)$e->getFolderId(),
			(int)$e->getSize(),
			(int)$e->getPlace(),
			(string)$e->getName(),
			(string)$e->getKeyId(),
			(string)$e->getLine(),
		), $this->findEntities($qb));
	}

	public function addCosignature(Cosignature $cosignature): void {
		$entity = new CosignatureEntity();
		$entity->setFolderId($cosignature->folderId);
		$entity->setSize($cosignature->size);
		$entity->setPlace($cosignature->place);
		$entity->setName($cosignature->name);
		$entity->setKeyId($cosignature->keyId);
		$entity->setLine($cosignature->line);
		$entity->setCreatedAt(time());
		$this->unique(fn () => $this->insert($entity));
	}

	public function replaceCosignature(Cosignature $cosignature): void {
		$qb = $this->db->getQueryBuilder();
		$qb->update($this->getTableName())
			->set('line', $qb->createNamedParameter($cosignature->line))
			->set('created_at', $qb->createNamedParameter(time(), IQueryBuilder::PARAM_INT))
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($cosignature->folderId)))
			->andWhere($qb->expr()->eq('size', $qb->createNamedParameter($cosignature->size, IQueryBuilder::PARAM_INT)))
			->andWhere($qb->expr()->eq('key_id', $qb->createNamedParameter($cosignature->keyId)))
			->andWhere($qb->expr()->eq('name', $qb->createNamedParameter($cosignature->name)))
			->executeStatement();
	}

	public function listNewestSizes(): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('name', 'key_id', 'folder_id')
			->selectAlias($qb->func()->max('size'), 'newest')
			->from($this->getTableName())
			->groupBy('name', 'key_id', 'folder_id')
			->orderBy('name', 'ASC')
			->addOrderBy('key_id', 'ASC')
			->addOrderBy('folder_id', 'ASC');
		$result = $qb->executeQuery();
		$found = [];
		while (($row = $result->fetch()) !== false) {
			$found[] = new CosignedSize((string)$row['folder_id'], (string)$row['name'], (string)$row['key_id'], (int)$row['newest']);
		}
		$result->closeCursor();
		return $found;
	}
}
