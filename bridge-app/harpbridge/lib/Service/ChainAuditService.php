<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Chain\AuditReport;
use OCA\HarpBridge\Chain\ChainAudit;
use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Store\EntryRepository;
use OCA\HarpBridge\Store\IndexRepository;

/**
 * `occ harpbridge:verify`: audits a file's stored chain as a given user sees
 * it, finding the file by a path in the plaintext index or by its file id.
 */
final class ChainAuditService {
	private const PAGE = 1000;

	public function __construct(
		private readonly EntryRepository $entries,
		private readonly IndexRepository $index,
		private readonly FolderAccess $access,
	) {
	}

	/**
	 * The file id a path names: a 32-hex file id as it is, else the record of
	 * that path in the folder's plaintext index.
	 *
	 * @throws NotFound
	 * @throws Invalid a path in a folder whose index is encrypted
	 */
	public function resolveFile(string $userId, string $folderId, string $pathOrFileId): string {
		$folder = $this->access->visibleFolder($userId, $folderId);
		if (Ids::isFileId($pathOrFileId)) {
			return $pathOrFileId;
		}
		if (!$folder->hasPlaintextIndex()) {
			throw new Invalid('the folder has an encrypted index: give the file id (32 hex)');
		}
		$record = $this->index->findByName($folder->folderId, $pathOrFileId)
			?? $this->index->findByName($folder->folderId, ltrim($pathOrFileId, '/'));
		if ($record === null) {
			throw new NotFound('no file at that path in the index');
		}
		return $record->fileId;
	}

	/**
	 * @throws NotFound the folder is not visible, or the file has no chain
	 *                  entries (a file the bridge does not know, as for the Rust bridge)
	 */
	public function audit(string $userId, string $folderId, string $fileId): AuditReport {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$report = ChainAudit::audit(
			(string)Hex::decode($folder->folderId, Ids::FOLDER_ID_BYTES),
			(string)Hex::decode($fileId, Ids::FILE_ID_BYTES),
			$this->allLinks($folder->folderId, $fileId),
		);
		if ($report->entryCount === 0) {
			throw new NotFound("no chain entries for file $fileId");
		}
		return $report;
	}

	/**
	 * Where the file's entries are in the folder's transparency log, by seq
	 * (null: not logged, e.g. stored before the log existed).
	 *
	 * @return list<int|null>
	 * @throws NotFound the folder is not visible
	 */
	public function logIndexes(string $userId, string $folderId, string $fileId): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$indexes = [];
		foreach ($this->allLinks($folder->folderId, $fileId) as $link) {
			$indexes[] = $link->logIndex;
		}
		return $indexes;
	}

	/**
	 * Every link of the file by seq, read in pages. Pages restart at the last
	 * seq read, since forks put several links at one seq, and skip what was
	 * already seen.
	 *
	 * @return \Generator<ChainLink>
	 */
	private function allLinks(string $folderId, string $fileId): \Generator {
		$seen = [];
		$fromSeq = 1;
		while (true) {
			$page = $this->entries->listFrom($folderId, $fileId, $fromSeq, self::PAGE);
			$new = 0;
			foreach ($page as $link) {
				if (!isset($seen[$link->head])) {
					$seen[$link->head] = true;
					$new++;
					yield $link;
				}
			}
			if (count($page) < self::PAGE) {
				return;
			}
			$lastSeq = $page[count($page) - 1]->seq;
			// A page of one seq only (a thousand forks) cannot be paged by seq: move on.
			$fromSeq = ($new === 0 || $lastSeq === $fromSeq) ? $lastSeq + 1 : $lastSeq;
		}
	}
}
