<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Model\IndexRecord;
use OCA\HarpBridge\Store\IndexRepository;

/**
 * The search index devices publish for their folders.
 *
 * A plaintext folder's records carry the path (`name`) and are searched by
 * substring. An encrypted folder's records must not carry a name: they carry
 * keyed hashes of the lower-cased name's words (`tokens`, the key derives from
 * the folder key), searched by exact token, so the bridge cannot read names.
 */
final class IndexService {
	public function __construct(
		private readonly IndexRepository $index,
		private readonly FolderAccess $access,
	) {
	}

	/**
	 * Replaces the records of the given file ids.
	 *
	 * @throws NotFound
	 * @throws Invalid a name in an encrypted folder, tokens in a plaintext one, or malformed
	 */
	public function put(string $userId, string $folderId, JsonObject $body): void {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$body->allowOnly('entries');
		$items = $body->list('entries', 0, Limits::MAX_INDEX_ENTRIES_PER_REQUEST);
		$records = [];
		foreach ($items as $index => $item) {
			$record = $this->parseRecord($folder, JsonObject::wrap($item, "entries[$index]"));
			$records[$record->fileId] = $record;
		}
		if ($records !== []) {
			$this->index->putRecords(array_values($records));
		}
	}

	/**
	 * Searches the index: `q` (substring of the name, ignoring case) in
	 * plaintext folders, `token` (all of them) in encrypted ones. Without
	 * either, every record. At most 500 matches, by file id.
	 *
	 * @return list<array<string, mixed>>
	 * @throws NotFound
	 * @throws Invalid
	 */
	public function search(string $userId, string $folderId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$q = $query->one('q');
		$tokens = $query->all('token');
		if ($q !== null && mb_strlen($q, 'UTF-8') > Limits::MAX_QUERY_CHARS) {
			throw new Invalid('q: at most ' . Limits::MAX_QUERY_CHARS . ' characters');
		}
		if (count($tokens) > Limits::MAX_SEARCH_TOKENS) {
			throw new Invalid('token: at most ' . Limits::MAX_SEARCH_TOKENS . ' tokens');
		}
		foreach ($tokens as $index => $token) {
			if (!Hex::isLower($token, 16)) {
				throw new Invalid("token[$index]: must be 32 lowercase hex characters");
			}
		}
		if ($folder->hasPlaintextIndex()) {
			if ($tokens !== []) {
				throw new Invalid('token: this folder has a plaintext index; search with q');
			}
			$found = $this->index->searchNames($folder->folderId, $q ?? '', Limits::MAX_SEARCH_RESULTS);
		} else {
			if ($q !== null && $q !== '') {
				throw new Invalid('q: this folder has an encrypted index; search with token');
			}
			$found = $this->index->searchTokens($folder->folderId, array_values(array_unique($tokens)), Limits::MAX_SEARCH_RESULTS);
		}
		return array_map(static fn (IndexRecord $r): array => $r->toApi(), $found);
	}

	/**
	 * The folder's files page by page, by file id, for the Harp page: the
	 * index records with their names (null in a folder whose index is
	 * encrypted: only member devices can read names there) and without
	 * tokens. `after` is the last file id of the page before; `next` is the
	 * one to ask after for the next page, or null after the last.
	 *
	 * @return array{index_mode: string, files: list<array<string, mixed>>, next: string|null}
	 * @throws NotFound
	 * @throws Invalid
	 */
	public function listFiles(string $userId, string $folderId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$after = $query->one('after') ?? '';
		if ($after !== '' && !Ids::isFileId($after)) {
			throw new Invalid('after: must be 32 lowercase hex characters');
		}
		$limit = $query->int('limit', Limits::DEFAULT_FILES_LIMIT, 1, Limits::MAX_FILES_LIMIT);
		// One more than asked tells whether more remain, without a count query.
		$found = $this->index->listPage($folder->folderId, $after, $limit + 1);
		$page = array_slice($found, 0, $limit);
		return [
			'index_mode' => $folder->indexMode,
			'files' => array_map(static fn (IndexRecord $r): array => $r->toListing(), $page),
			'next' => count($found) > $limit ? $page[count($page) - 1]->fileId : null,
		];
	}

	/** @throws Invalid */
	private function parseRecord(Folder $folder, JsonObject $item): IndexRecord {
		$item->allowOnly('file_id', 'name', 'tokens', 'size', 'mtime_ms', 'deleted');
		$fileId = $item->string('file_id');
		if (!Ids::isFileId($fileId)) {
			throw new Invalid($item->path('file_id') . ': must be 32 lowercase hex characters');
		}
		if ($folder->hasPlaintextIndex()) {
			if ($item->isPresent('tokens')) {
				throw new Invalid($item->path('tokens') . ': only in folders with an encrypted index');
			}
			$name = $item->string('name', 1, Limits::MAX_INDEX_NAME_CHARS);
			$tokens = [];
		} else {
			if ($item->isPresent('name')) {
				throw new Invalid($item->path('name') . ': a plaintext name in a folder with an encrypted index');
			}
			$name = null;
			$tokens = $item->has('tokens') ? $item->stringList('tokens', Limits::MAX_INDEX_TOKENS, 32, 32) : [];
			foreach ($tokens as $index => $token) {
				if (!Hex::isLower($token, 16)) {
					throw new Invalid($item->path('tokens') . "[$index]: must be 32 lowercase hex characters");
				}
			}
			$tokens = array_values(array_unique($tokens));
		}
		return new IndexRecord(
			$folder->folderId,
			$fileId,
			$name,
			$tokens,
			$item->int('size', 0),
			$item->int('mtime_ms'),
			$item->bool('deleted'),
		);
	}
}
