<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * One file in a folder's search index. A plaintext folder stores the path in
 * `name`; an encrypted folder stores only keyed hashes of the name's words in
 * `tokens`, so members can search and the bridge cannot read names.
 */
final class IndexRecord {
	/** @param list<string> $tokens 64-hex keyed hashes */
	public function __construct(
		public readonly string $folderId,
		public readonly string $fileId,
		public readonly ?string $name,
		public readonly array $tokens,
		public readonly int $size,
		public readonly int $mtimeMs,
		public readonly bool $deleted,
	) {
	}

	/** @return array<string, mixed> the API form (schema IndexEntry), absent fields left out */
	public function toApi(): array {
		$out = ['file_id' => $this->fileId];
		if ($this->name !== null) {
			$out['name'] = $this->name;
		}
		if ($this->tokens !== []) {
			$out['tokens'] = $this->tokens;
		}
		$out['size'] = $this->size;
		$out['mtime_ms'] = $this->mtimeMs;
		$out['deleted'] = $this->deleted;
		return $out;
	}

	/**
	 * The form the Harp page lists files in: the name (null where the index is
	 * encrypted), never tokens.
	 *
	 * @return array{file_id: string, name: string|null, size: int, mtime_ms: int, deleted: bool}
	 */
	public function toListing(): array {
		return [
			'file_id' => $this->fileId,
			'name' => $this->name,
			'size' => $this->size,
			'mtime_ms' => $this->mtimeMs,
			'deleted' => $this->deleted,
		];
	}
}
