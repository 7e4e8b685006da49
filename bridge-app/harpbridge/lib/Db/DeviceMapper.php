<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Migration\BridgeTables;
use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Store\DeviceRepository;
use OCP\AppFramework\Db\DoesNotExistException;
use OCP\AppFramework\Db\QBMapper;
use OCP\IDBConnection;

/**
 * Devices in harp_devices.
 *
 * @template-extends QBMapper<DeviceEntity>
 */
class DeviceMapper extends QBMapper implements DeviceRepository {
	use MapperSupport;

	public function __construct(IDBConnection $db) {
		parent::__construct($db, BridgeTables::DEVICES, DeviceEntity::class);
	}

	public function findDevice(string $deviceId): ?Device {
		$entity = $this->findEntityByDeviceId($deviceId);
		return $entity === null ? null : $this->toModel($entity);
	}

	public function listByUser(string $userId): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('user_id', $qb->createNamedParameter($userId)))
			->orderBy('device_id', 'ASC');
		return array_map(fn (DeviceEntity $e): Device => $this->toModel($e), $this->findEntities($qb));
	}

	public function listAll(): array {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->orderBy('user_id', 'ASC')
			->addOrderBy('device_id', 'ASC');
		return array_map(fn (DeviceEntity $e): Device => $this->toModel($e), $this->findEntities($qb));
	}

	public function addDevice(Device $device): void {
		$entity = new DeviceEntity();
		$entity->setDeviceId($device->deviceId);
		$entity->setUserId($device->userId);
		$entity->setName($device->name);
		$entity->setX25519Public($device->x25519Public);
		$entity->setAddresses(json_encode($device->addresses, JSON_THROW_ON_ERROR));
		$entity->setAddressesExpire($device->addressesExpire);
		$entity->setAddressesPublished($device->addressesPublished);
		$entity->setCreatedAt(time());
		$this->unique(fn () => $this->insert($entity));
	}

	public function saveDevice(Device $device): void {
		$entity = $this->findEntityByDeviceId($device->deviceId);
		if ($entity === null) {
			return;
		}
		$entity->setName($device->name);
		$entity->setAddresses(json_encode($device->addresses, JSON_THROW_ON_ERROR));
		$entity->setAddressesExpire($device->addressesExpire);
		$entity->setAddressesPublished($device->addressesPublished);
		$this->update($entity);
	}

	public function removeDevice(string $deviceId): void {
		$qb = $this->db->getQueryBuilder();
		$qb->delete($this->getTableName())
			->where($qb->expr()->eq('device_id', $qb->createNamedParameter($deviceId)))
			->executeStatement();
	}

	public function countDevices(): int {
		return $this->countRows();
	}

	private function findEntityByDeviceId(string $deviceId): ?DeviceEntity {
		$qb = $this->db->getQueryBuilder();
		$qb->select('*')
			->from($this->getTableName())
			->where($qb->expr()->eq('device_id', $qb->createNamedParameter($deviceId)));
		try {
			return $this->findEntity($qb);
		} catch (DoesNotExistException) {
			return null;
		}
	}

	private function toModel(DeviceEntity $e): Device {
		$addresses = json_decode((string)$e->getAddresses(), true);
		return new Device(
			(string)$e->getDeviceId(),
			(string)$e->getUserId(),
			(string)$e->getName(),
			(string)$e->getX25519Public(),
			is_array($addresses) ? array_values(array_filter($addresses, 'is_string')) : [],
			$e->getAddressesExpire(),
			$e->getAddressesPublished(),
		);
	}
}
