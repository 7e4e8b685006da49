<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\WrappedKey;
use OCA\HarpBridge\Store\WrappedKeyRepository;

final class InMemoryWrappedKeys implements WrappedKeyRepository {
	/** @var array<string, WrappedKey> "folder/device" => key */
	private array $keys = [];

	public function findKey(string $folderId, string $deviceId): ?WrappedKey {
		return $this->keys["$folderId/$deviceId"] ?? null;
	}

	public function putKey(WrappedKey $key): void {
		$this->keys["{$key->folderId}/{$key->deviceId}"] = $key;
	}

	public function removeKeysOfDevice(string $deviceId): void {
		$this->keys = array_filter($this->keys, static fn (WrappedKey $k): bool => $k->deviceId !== $deviceId);
	}

	public function removeKeysInFolder(string $folderId, array $deviceIds): void {
		$this->keys = array_filter(
			$this->keys,
			static fn (WrappedKey $k): bool => $k->folderId !== $folderId || !in_array($k->deviceId, $deviceIds, true),
		);
	}

	public function countKeys(): int {
		return count($this->keys);
	}
}
