<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Chain\ChainError;
use OCA\HarpBridge\Chain\ChainHash;
use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Conflict;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Model\Outcome;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\EntryRepository;

/**
 * Files' hash chains. The bridge checks everything it can without the folder
 * key (the genesis link needs it): the entry decodes, names this folder and
 * file, hashes to the head it claims, is signed by a member device over the
 * link before it, and follows a stored entry of the seq before (a first entry:
 * starts from the same link as the file's stored first entries). It stores
 * every branch.
 *
 * In server_authoritative folders an append is a compare-and-swap on the
 * file's head, so there is one history; in crdt folders forks are kept and the
 * folder document picks the winner.
 *
 * Every entry stored as new is appended to the folder's transparency log
 * (LogService), and every link it answers carries its `log_index`.
 */
final class EntryService {
	public function __construct(
		private readonly EntryRepository $entries,
		private readonly FolderAccess $access,
		private readonly LogService $log,
	) {
	}

	/**
	 * Entries of a file from a seq on, by seq.
	 *
	 * @return list<array<string, int|string|null>>
	 * @throws NotFound
	 * @throws Invalid
	 */
	public function read(string $userId, string $folderId, string $fileId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		if (!Ids::isFileId($fileId)) {
			throw new NotFound('no such file');
		}
		$fromSeq = $query->int('from_seq', 1, 1, PHP_INT_MAX);
		$limit = $query->int('limit', Limits::DEFAULT_ENTRIES_LIMIT, 1, Limits::MAX_ENTRIES_LIMIT);
		return array_map(
			static fn (ChainLink $link): array => $link->toApi(),
			$this->entries->listFrom($folder->folderId, $fileId, $fromSeq, $limit),
		);
	}

	/**
	 * Appends one entry: 201 with the link, or 200 with the stored one for a
	 * replay. The checks run in the order of the Rust bridge (bridge/src/rules.rs),
	 * so both answer a bad entry with the same code: wrong_file, seq_gap (seq 0),
	 * wrong_head, then the replay, unknown_author, bad_signature, the
	 * compare-and-swap (server_authoritative), then the link to the stored chain.
	 *
	 * @throws NotFound
	 * @throws Invalid the message is a field name or one of malformed,
	 *                 wrong_file, seq_gap, wrong_link, wrong_head, unknown_author, bad_signature
	 * @throws Conflict server_authoritative: expected_head is not the stored head
	 */
	public function append(string $userId, string $folderId, string $fileId, JsonObject $body): Outcome {
		$folder = $this->access->visibleFolder($userId, $folderId);
		if (!Ids::isFileId($fileId)) {
			throw new NotFound('no such file');
		}
		$body->allowOnly('prev', 'entry', 'head', 'expected_head');
		$prev = $this->hashField($body, 'prev');
		$head = $this->hashField($body, 'head');
		$expectedHead = $body->has('expected_head') ? $this->hashField($body, 'expected_head') : null;
		$entry = $this->decodeEntry($body->string('entry'));

		if ($entry->folderId !== Hex::decode($folder->folderId, Ids::FOLDER_ID_BYTES)
			|| $entry->fileId !== Hex::decode($fileId, Ids::FILE_ID_BYTES)) {
			throw new Invalid('wrong_file');
		}
		if ($entry->seq < 1) {
			// 0, or above 2^63 (read as negative): no chain gets there.
			throw new Invalid('seq_gap');
		}
		$prevBytes = (string)Hex::decode($prev, 32);
		if (Hex::encode(ChainHash::link($prevBytes, $entry->bytes)) !== $head) {
			throw new Invalid('wrong_head');
		}
		$replay = $this->findReplay($folder, $fileId, $prev, $entry, $head);
		if ($replay !== null) {
			return Outcome::ok($this->logged($replay)->toApi());
		}
		if ($this->access->memberDevice($folder, $entry->authorDeviceId()) === null) {
			throw new Invalid('unknown_author');
		}
		if (!Signatures::verify($entry->signature, ChainHash::signingMessage($prevBytes, $entry->bytes), $entry->author)) {
			throw new Invalid('bad_signature');
		}
		if ($folder->isServerAuthoritative()) {
			$this->checkHeadUnmoved($folder, $fileId, $entry, $expectedHead);
		}
		$this->checkLink($folder, $fileId, $entry, $prev);

		$link = new ChainLink($folder->folderId, $fileId, $entry->seq, $prev, $entry->bytes, $head, $entry->authorDeviceId());
		try {
			$this->entries->addLink($link, $this->slot($folder, $link));
		} catch (DuplicateKey) {
			return $this->settleRace($folder, $fileId, $prev, $entry, $head);
		}
		if ($entry->seq === 1 && $this->entries->findGenesis($folder->folderId, $fileId) !== $prev) {
			// A first entry from another genesis landed just before this one:
			// the earlier one stays, this one goes (what checkLink would have said).
			$this->entries->removeLink($folder->folderId, $fileId, $head);
			throw new Invalid('wrong_link');
		}
		return Outcome::created($this->logged($link)->toApi());
	}

	/**
	 * The link with its place in the folder's log, appending it there first
	 * when it has none yet: a new entry, or a replay of one whose request
	 * ended between storing and logging it (logging is idempotent, so a
	 * replay racing the original request gets the same index).
	 */
	private function logged(ChainLink $link): ChainLink {
		if ($link->logIndex !== null) {
			return $link;
		}
		$logIndex = $this->log->append($link);
		$this->entries->setLogIndex($link->folderId, $link->fileId, $link->head, $logIndex);
		return $link->withLogIndex($logIndex);
	}

	/**
	 * The unique slot of a link: its head in crdt folders (every branch may be
	 * stored), its seq in server_authoritative ones (one entry per seq, so two
	 * writers that passed the compare-and-swap together cannot both land).
	 */
	private function slot(Folder $folder, ChainLink $link): string {
		return $folder->isServerAuthoritative() ? 'seq:' . $link->seq : $link->head;
	}

	/** @throws Invalid */
	private function hashField(JsonObject $body, string $name): string {
		$value = $body->string($name);
		if (!Ids::isChainHash($value)) {
			throw new Invalid("$name: must be 64 lowercase hex characters");
		}
		return $value;
	}

	/** @throws Invalid malformed */
	private function decodeEntry(string $text): ChainEntry {
		$bytes = Base64::decodeExact($text, ChainEntry::LENGTH);
		if ($bytes === null) {
			throw new Invalid('malformed');
		}
		try {
			return ChainEntry::decode($bytes);
		} catch (ChainError) {
			throw new Invalid('malformed');
		}
	}

	/** The stored link when this exact entry is already stored at this place. */
	private function findReplay(Folder $folder, string $fileId, string $prev, ChainEntry $entry, string $head): ?ChainLink {
		$stored = $this->entries->findByHead($folder->folderId, $fileId, $head);
		return $stored !== null && $stored->prev === $prev && $stored->entry === $entry->bytes ? $stored : null;
	}

	/**
	 * The compare-and-swap: the writer must have seen the stored head
	 * (null: no entry yet), else it keeps its version as a conflict copy and
	 * rebases on the head this 409 carries. The entry must then be the next
	 * seq after that head.
	 *
	 * @throws Conflict
	 * @throws Invalid seq_gap
	 */
	private function checkHeadUnmoved(Folder $folder, string $fileId, ChainEntry $entry, ?string $expectedHead): void {
		$latest = $this->entries->findLatest($folder->folderId, $fileId);
		if ($latest?->head !== $expectedHead) {
			throw $this->headMoved($latest);
		}
		if ($entry->seq !== ($latest === null ? 1 : $latest->seq + 1)) {
			throw new Invalid('seq_gap');
		}
	}

	/**
	 * The entry's place in the stored chain, in both modes: after seq 1 its
	 * prev is the head of a stored entry with the seq before (else wrong_link,
	 * also when it skips seqs); at seq 1 its prev is the one every stored first
	 * entry of the file starts from, since a file has one genesis (the bridge
	 * cannot check the genesis itself: that needs the folder key).
	 *
	 * @throws Invalid wrong_link
	 */
	private function checkLink(Folder $folder, string $fileId, ChainEntry $entry, string $prev): void {
		if ($entry->seq === 1) {
			$genesis = $this->entries->findGenesis($folder->folderId, $fileId);
			if ($genesis !== null && $genesis !== $prev) {
				throw new Invalid('wrong_link');
			}
			return;
		}
		$before = $this->entries->findByHead($folder->folderId, $fileId, $prev);
		if ($before === null || $before->seq !== $entry->seq - 1) {
			throw new Invalid('wrong_link');
		}
	}

	/**
	 * A unique index refused the insert: either the same entry landed first
	 * (a replay after all) or, in server_authoritative folders, another
	 * writer took this seq (the head moved).
	 *
	 * @throws Conflict
	 */
	private function settleRace(Folder $folder, string $fileId, string $prev, ChainEntry $entry, string $head): Outcome {
		$replay = $this->findReplay($folder, $fileId, $prev, $entry, $head);
		if ($replay !== null) {
			return Outcome::ok($this->logged($replay)->toApi());
		}
		throw $this->headMoved($this->entries->findLatest($folder->folderId, $fileId));
	}

	private function headMoved(?ChainLink $latest): Conflict {
		return new Conflict('the head moved', ['head' => $latest?->head, 'seq' => $latest?->seq]);
	}
}
