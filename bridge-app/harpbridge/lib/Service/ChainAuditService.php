<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Chain\AuditReport;
use OCA\HarpBridge\Chain\ChainAudit;
use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Log\MerkleTree;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Store\EntryRepository;
use OCA\HarpBridge\Store\IndexRepository;
use OCA\HarpBridge\Store\LogRepository;

/**
 * `occ harpbridge:verify`: audits a file's stored chain as a given user sees
 * it, finding the file by a path in the plaintext index or by its file id,
 * and checks that its logged links are the leaves of the folder's
 * transparency log they were given.
 */
final class ChainAuditService {
	private const PAGE = 1000;

	public function __construct(
		private readonly EntryRepository $entries,
		private readonly IndexRepository $index,
		private readonly LogRepository $log,
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
	 * The chain's problems (ChainAudit), then not_in_log for every logged link
	 * that is not the leaf of the folder's log at its log_index.
	 *
	 * @throws NotFound the folder is not visible, or the file has no chain
	 *                  entries (a file the bridge does not know, as for the Rust bridge)
	 */
	public function audit(string $userId, string $folderId, string $fileId): AuditReport {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$fileBytes = (string)Hex::decode($fileId, Ids::FILE_ID_BYTES);
		$logged = [];
		$report = ChainAudit::audit(
			(string)Hex::decode($folder->folderId, Ids::FOLDER_ID_BYTES),
			$fileBytes,
			self::keepLogged($this->allLinks($folder->folderId, $fileId), $logged),
		);
		if ($report->entryCount === 0) {
			throw new NotFound("no chain entries for file $fileId");
		}
		$this->checkLogged($report, $folder->folderId, $fileBytes, $logged);
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
	 * Every logged link is the leaf of the folder's log it was given when
	 * stored, as the Rust bridge checks: the log has a leaf at its log_index,
	 * below the log's size (the leaves it holds), and that leaf is
	 * chain_leaf(file id, seq, head). A log rewritten under the chain, or a
	 * link moved to another place in it, is not_in_log.
	 *
	 * @param string $fileId raw 16 bytes
	 * @param list<ChainLink> $logged the file's links that have a log_index
	 */
	private function checkLogged(AuditReport $report, string $folderId, string $fileId, array $logged): void {
		if ($logged === []) {
			return;
		}
		$size = $this->log->countLeaves($folderId);
		foreach ($logged as $link) {
			$index = (int)$link->logIndex;
			$stored = $index >= 0 && $index < $size ? $this->log->leafAt($folderId, $index) : null;
			$leaf = $stored === null ? null : Hex::decode($stored, MerkleTree::HASH_BYTES);
			$head = Hex::decode($link->head, 32);
			if ($leaf === null || $head === null || $link->seq < 0 || strlen($fileId) !== Ids::FILE_ID_BYTES
				|| MerkleTree::chainLeaf($fileId, $link->seq, $head) !== $leaf) {
				$report->addProblem($link->seq, $link->head, 'not_in_log', "leaf $index of the folder's log is not this link");
			}
		}
	}

	/**
	 * Passes $links on, keeping those with a log_index in $logged, so the
	 * links are read once for both checks.
	 *
	 * @param iterable<ChainLink> $links
	 * @param list<ChainLink> $logged
	 * @return \Generator<ChainLink>
	 */
	private static function keepLogged(iterable $links, array &$logged): \Generator {
		foreach ($links as $link) {
			if ($link->logIndex !== null) {
				$logged[] = $link;
			}
			yield $link;
		}
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
