<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

/**
 * Each folder's transparency log: one leaf hash (hex) per logged chain entry,
 * at indexes 0, 1, 2, … in the order they were appended.
 *
 * Unique per folder: the index (two appends cannot take one place, so the
 * database settles a race) and the leaf (a chain entry is logged once).
 */
interface LogRepository {
	/** Leaves in the folder's log: its highest index plus one (0 when empty). */
	public function logSize(string $folderId): int;

	/**
	 * Leaves the folder's log holds: its size, unless the stored log has a
	 * gap (then fewer, as a tree built from the stored leaves has).
	 */
	public function countLeaves(string $folderId): int;

	/** The index of this leaf hash in the folder's log, or null. */
	public function findLeaf(string $folderId, string $leafHash): ?int;

	/** The leaf hash (hex) at this index of the folder's log, or null. */
	public function leafAt(string $folderId, int $logIndex): ?string;

	/** @throws DuplicateKey when the index or the leaf is taken */
	public function addLeaf(string $folderId, int $logIndex, string $leafHash): void;

	/**
	 * The leaf hashes with index below $count, by index.
	 *
	 * @return array<int, string> index => leaf hash (hex)
	 */
	public function leafHashes(string $folderId, int $count): array;
}
