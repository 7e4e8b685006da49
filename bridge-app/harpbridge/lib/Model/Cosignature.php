<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * A witness's cosignature line stored for one checkpoint size of a folder's
 * log, at its place (0 to 15) among that size's lines. The bridge keeps one
 * line per name and key id per size; it cannot check the signature.
 */
final class Cosignature {
	public function __construct(
		public readonly string $folderId,
		public readonly int $size,
		public readonly int $place,
		public readonly string $name,
		/** hex of the 4-byte key id */
		public readonly string $keyId,
		/** the line, "— <name> <base64>\n" */
		public readonly string $line,
	) {
	}

	public function atPlace(int $place): self {
		return new self($this->folderId, $this->size, $place, $this->name, $this->keyId, $this->line);
	}

	/** Whether $other is by the same witness key (same name and key id). */
	public function sameSigner(self $other): bool {
		return $this->name === $other->name && $this->keyId === $other->keyId;
	}
}
