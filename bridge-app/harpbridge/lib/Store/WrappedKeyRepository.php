<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\WrappedKey;

/** Folder keys wrapped per device: at most one per (folder, device). */
interface WrappedKeyRepository {
	public function findKey(string $folderId, string $deviceId): ?WrappedKey;

	/** Stores the key, replacing the one of the same folder and device. */
	public function putKey(WrappedKey $key): void;

	/** Forgets the keys of a revoked device, in every folder. */
	public function removeKeysOfDevice(string $deviceId): void;

	/**
	 * Forgets one folder's keys of the given devices (a member who left).
	 *
	 * @param list<string> $deviceIds
	 */
	public function removeKeysInFolder(string $folderId, array $deviceIds): void;

	public function countKeys(): int;
}
