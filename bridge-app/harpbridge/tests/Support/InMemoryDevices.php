<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\DuplicateKey;

final class InMemoryDevices implements DeviceRepository {
	/** @var array<string, Device> */
	private array $byId = [];

	public function findDevice(string $deviceId): ?Device {
		return $this->byId[$deviceId] ?? null;
	}

	public function listByUser(string $userId): array {
		$found = array_filter($this->byId, static fn (Device $d): bool => $d->userId === $userId);
		ksort($found, SORT_STRING);
		return array_values($found);
	}

	public function listAll(): array {
		$all = array_values($this->byId);
		usort($all, static fn (Device $a, Device $b): int => [$a->userId, $a->deviceId] <=> [$b->userId, $b->deviceId]);
		return $all;
	}

	public function addDevice(Device $device): void {
		if (isset($this->byId[$device->deviceId])) {
			throw new DuplicateKey($device->deviceId);
		}
		$this->byId[$device->deviceId] = $device;
	}

	public function saveDevice(Device $device): void {
		$this->byId[$device->deviceId] = $device;
	}

	public function removeDevice(string $deviceId): void {
		unset($this->byId[$deviceId]);
	}

	public function countDevices(): int {
		return count($this->byId);
	}
}
