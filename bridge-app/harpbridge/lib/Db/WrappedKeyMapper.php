<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\WrappedKey;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\WrappedKeyRepository;
use OCP\AppFramework\Db\DoesNotExistException;
use OCP\AppFramework\Db\QBMapper;
use OCP\DB\QueryBuilder\IQueryBuilder;
use OCP\IDBConnection;

/**
 * Wrapped folder keys in harp_keys, one per (folder, device).
 *
 * @template-extends QBMapper<WrappedKeyEntity>
 */
class WrappedKeyMapper extends QBMapper implements WrappedKeyRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::KEYS, WrappedKeyEntity::class);
	}

	public function findKey(string $folderId, string $deviceId): ?WrappedKey {
		$entity = $this->findEntityOf($folderId, $deviceId);
		return $entity === null ? null : $this->toModel($entity);
	}

	public function putKey(WrappedKey $key): void {
		// Update, else insert; a concurrent insert of the same key makes us update.
		for ($attempt = 0; ; $attempt++) {
			$entity = $this->findEntityOf($key->folderId, $key->deviceId);
			if ($entity !== null) {
				$this->fill($entity, $key);
				$this->update($entity);
				return;
			}
			$entity = new WrappedKeyEntity();
			$entity->setFolderId($key->folderId);
			$entity->setDeviceId($key->deviceId);
			$this->fill($entity, $key);
			try {
				$this->unique(fn () => $this->insert($entity));
				return;
			} catch (DuplicateKey $e) {
				if ($attempt >= 2) {
					throw $e;
				}
			}
		}
	}

	public function removeKeysOfDevice(string $deviceId): void {
		$qb = $this->db->getQueryBuilder();
		$qb->delete($this->getTableName())
			->where($qb->expr()->eq('device_id', $qb->createNamedParameter($deviceId)))
			->executeStatement();
	}

	public function removeKeysInFolder(string $folderId, array $deviceIds): void {
		foreach (array_chunk($deviceIds, 500) as $chunk) {
			$qb = $this->db->getQueryBuilder();
			$qb->delete($this->getTableName())
				->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
				->andWhere($qb->expr()->in('device_id', $qb->createNamedParameter($chunk, IQueryBuilder::PARAM_STR_ARRAY)))
				->executeStatement();
		}
	}

	public function countKeys(): int {
		return $this->countRows();
	}

	private function findEntityOf(string $folderId, string $deviceId): ?WrappedKeyEntity {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('folder_id', $qb->createNamedParameter($folderId)))
			->andWhere($qb->expr()->eq('device_id', $qb->createNamedParameter($deviceId)));
		try {
			return $this->findEntity($qb);
		} catch (DoesNotExistException) {
			return null;
		}
	}

	private function fill(WrappedKeyEntity $entity, WrappedKey $key): void {
		$entity->setEphemeralPublic($key->ephemeralPublic);
		$entity->setNonce($key->nonce);
		$entity->setCiphertext($key->ciphertext);
		$entity->setWrappedBy($key->wrappedBy);
		$entity->setSignature($key->signature);
		$entity->setUpdatedAt(time());
	}

	private function toModel(WrappedKeyEntity $e): WrappedKey {
		return new WrappedKey(
			(string)$e->getFolderId(),
			(string)$e->getDeviceId(),
			(string)$e->getEphemeralPublic(),
			(string)$e->getNonce(),
			(string)$e->getCiphertext(),
			(string)$e->getWrappedBy(),
			(string)$e->getSignature(),
		);
	}
}
