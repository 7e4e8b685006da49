<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\Device;

/** Registered devices; a device id is unique across all users. */
interface DeviceRepository {
	public function findDevice(string $deviceId): ?Device;

	/** @return list<Device> ordered by device id */
	public function listByUser(string $userId): array;

	/** @return list<Device> every device, ordered by user then device id */
	public function listAll(): array;

	/** @throws DuplicateKey when the device id is taken */
	public function addDevice(Device $device): void;

	/** Replaces name and addresses of an existing device. */
	public function saveDevice(Device $device): void;

	public function removeDevice(string $deviceId): void;

	public function countDevices(): int;
}
