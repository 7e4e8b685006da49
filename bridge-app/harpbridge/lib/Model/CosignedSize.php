<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * The largest checkpoint size of one folder's log that one witness key
 * (name and key id) cosigned: what the admin settings list witnesses by.
 */
final class CosignedSize {
	public function __construct(
		public readonly string $folderId,
		public readonly string $name,
		/** hex of the 4-byte key id */
		public readonly string $keyId,
		public readonly int $size,
	) {
	}
}
