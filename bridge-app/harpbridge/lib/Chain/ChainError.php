<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

/**
 * A chain entry that does not decode or does not verify, with the error code of
 * docs/protocol.md ("Error codes") so results compare one to one with the Rust
 * implementation and the golden vectors.
 */
final class ChainError extends \RuntimeException {
	public function __construct(
		public readonly string $errorCode,
		public readonly string $detail = '',
		public readonly ?int $seq = null,
	) {
		parent::__construct($detail === '' ? $errorCode : $errorCode . ': ' . $detail);
	}
}
