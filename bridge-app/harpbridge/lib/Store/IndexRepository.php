<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\IndexRecord;

/** The per-folder search index, one record per file id. */
interface IndexRepository {
	/**
	 * Stores each record, replacing the one of the same folder and file.
	 *
	 * @param list<IndexRecord> $records
	 */
	public function putRecords(array $records): void;

	/**
	 * Records whose name contains $needle, ignoring case, by file id. An empty
	 * needle matches every record.
	 *
	 * @return list<IndexRecord>
	 */
	public function searchNames(string $folderId, string $needle, int $limit): array;

	/**
	 * Records that carry every one of $tokens, by file id.
	 *
	 * @param list<string> $tokens
	 * @return list<IndexRecord>
	 */
	public function searchTokens(string $folderId, array $tokens, int $limit): array;

	/**
	 * The folder's records with a file id above $afterFileId ('' for the
	 * first page), by file id: a listing page by page.
	 *
	 * @return list<IndexRecord>
	 */
	public function listPage(string $folderId, string $afterFileId, int $limit): array;

	/** The record whose name is exactly $name, or null. */
	public function findByName(string $folderId, string $name): ?IndexRecord;

	public function countRecords(): int;
}
