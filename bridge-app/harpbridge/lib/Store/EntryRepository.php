<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\ChainLink;

/**
 * Stored chain entries of every file, every branch kept.
 *
 * Unique per file: the head (an entry is stored once) and the slot (what may
 * exist once: the head itself in crdt folders, the seq in server_authoritative
 * ones, so the database settles a compare-and-swap race).
 */
interface EntryRepository {
	public function findByHead(string $folderId, string $fileId, string $head): ?ChainLink;

	/**
	 * The prev of the file's first stored seq-1 entry (the genesis link every
	 * first entry of the file must start from), or null when there is none.
	 */
	public function findGenesis(string $folderId, string $fileId): ?string;

	/** The entry with the highest seq (the latest stored of those), or null. */
	public function findLatest(string $folderId, string $fileId): ?ChainLink;

	/** @throws DuplicateKey when the head or the slot is taken */
	public function addLink(ChainLink $link, string $slot): void;

	/** Records the entry's leaf in the folder's transparency log. */
	public function setLogIndex(string $folderId, string $fileId, string $head, int $logIndex): void;

	/** Deletes the file's entry with this head (one that lost a race), if stored. */
	public function removeLink(string $folderId, string $fileId, string $head): void;

	/**
	 * Entries with seq ≥ $fromSeq, by seq, then in the order they were stored.
	 *
	 * @return list<ChainLink>
	 */
	public function listFrom(string $folderId, string $fileId, int $fromSeq, int $limit): array;

	public function countLinks(): int;
}
