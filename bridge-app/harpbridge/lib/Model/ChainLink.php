<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

use OCA\HarpBridge\Codec\Base64;

/**
 * A stored chain entry with the link before it and the link it makes:
 * head = SHA3-256(prev ‖ entry). Hashes are hex; the entry is raw bytes.
 * $logIndex is its leaf in the folder's transparency log (null until it is
 * logged, e.g. an entry stored before the log existed).
 */
final class ChainLink {
	public function __construct(
		public readonly string $folderId,
		public readonly string $fileId,
		public readonly int $seq,
		public readonly string $prev,
		public readonly string $entry,
		public readonly string $head,
		public readonly string $author,
		public readonly ?int $logIndex = null,
	) {
	}

	public function withLogIndex(int $logIndex): self {
		return new self($this->folderId, $this->fileId, $this->seq, $this->prev, $this->entry, $this->head, $this->author, $logIndex);
	}

	/** @return array<string, int|string|null> the API form (schema ChainLink) */
	public function toApi(): array {
		return [
			'seq' => $this->seq,
			'prev' => $this->prev,
			'entry' => Base64::encode($this->entry),
			'head' => $this->head,
			'log_index' => $this->logIndex,
		];
	}
}
