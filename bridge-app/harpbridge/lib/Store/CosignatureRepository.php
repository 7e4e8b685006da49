<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\Cosignature;
use OCA\HarpBridge\Model\CosignedSize;

/**
 * Witnesses' cosignature lines per folder and checkpoint size.
 *
 * Unique per folder and size: the place (so at most as many lines as places,
 * even when witnesses post together) and the name with the key id (one line
 * per witness key).
 */
interface CosignatureRepository {
	/** @return list<Cosignature> the lines stored for that size, by place */
	public function listCosignatures(string $folderId, int $size): array;

	/** @throws DuplicateKey when the place, or the name and key id, are taken at that size */
	public function addCosignature(Cosignature $cosignature): void;

	/** Replaces the line of the stored cosignature with the same folder, size, name and key id. */
	public function replaceCosignature(Cosignature $cosignature): void;

	/**
	 * For every witness key (name and key id) and every folder log it
	 * cosigned: the largest size it cosigned there. By name, key id, folder.
	 *
	 * @return list<CosignedSize>
	 */
	public function listNewestSizes(): array;
}
