<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

/**
 * What a valid chain establishes: its last link, last seq, and whether the file
 * exists after the last entry.
 */
final class VerifiedChain {
	public function __construct(
		public readonly string $head,
		public readonly int $seq,
		public readonly bool $present,
	) {
	}
}
