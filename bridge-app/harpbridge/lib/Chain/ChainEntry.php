<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

use OCA\HarpBridge\Codec\Ids;

/**
 * One decoded 218-byte chain entry (docs/protocol.md, "Hash chains").
 *
 *     0   1  version = 1          82  32  path commitment
 *     1  16  folder id            114 32  author device id
 *     17 16  file id              146  8  timestamp (ms)
 *     33  8  seq                  154 64  Ed25519 signature
 *     41  1  op (1..4)
 *     42 32  content root
 *     74  8  size
 *
 * Integers are big-endian. Decoding checks the format only; whether the entry
 * belongs where it is placed is ChainVerifier's job.
 */
final class ChainEntry {
	public const LENGTH = 218;
	public const SIGNED_LENGTH = 154;
	public const VERSION = 1;

	public const OP_CREATE = 1;
	public const OP_MODIFY = 2;
	public const OP_RENAME = 3;
	public const OP_DELETE = 4;

	private const OP_NAMES = [1 => 'create', 2 => 'modify', 3 => 'rename', 4 => 'delete'];
	private const OP_OFFSET = 41;

	private function __construct(
		public readonly string $bytes,
		public readonly string $folderId,
		public readonly string $fileId,
		public readonly int $seq,
		public readonly int $op,
		public readonly string $contentRoot,
		public readonly int $size,
		public readonly string $pathCommitment,
		public readonly string $author,
		public readonly int $timestampMs,
		public readonly string $signature,
	) {
	}

	/**
	 * Reads the fields in order, as the Rust decoder does, so a broken entry
	 * fails with the same code: truncated, unknown_version, unknown_tag or
	 * trailing_bytes.
	 *
	 * @throws ChainError
	 */
	public static function decode(string $bytes): self {
		$length = strlen($bytes);
		if ($length < 1) {
			throw new ChainError('truncated', 'chain entry version');
		}
		if (ord($bytes[0]) !== self::VERSION) {
			throw new ChainError('unknown_version', 'chain entry version ' . ord($bytes[0]));
		}
		if ($length <= self::OP_OFFSET) {
			throw new ChainError('truncated', 'chain entry');
		}
		$op = ord($bytes[self::OP_OFFSET]);
		if (!isset(self::OP_NAMES[$op])) {
			throw new ChainError('unknown_tag', 'op ' . $op);
		}
		if ($length < self::LENGTH) {
			throw new ChainError('truncated', 'chain entry');
		}
		if ($length > self::LENGTH) {
			throw new ChainError('trailing_bytes', 'chain entry');
		}
		return new self(
			$bytes,
			substr($bytes, 1, 16),
			substr($bytes, 17, 16),
			self::u64(substr($bytes, 33, 8)),
			$op,
			substr($bytes, 42, 32),
			self::u64(substr($bytes, 74, 8)),
			substr($bytes, 82, 32),
			substr($bytes, 114, 32),
			self::u64(substr($bytes, 146, 8)),
			substr($bytes, 154, 64),
		);
	}

	/**
	 * The first 154 bytes (everything the signature covers) from field values;
	 * append a 64-byte signature to get an entry.
	 */
	public static function encodeUnsigned(
		string $folderId,
		string $fileId,
		int $seq,
		int $op,
		string $contentRoot,
		int $size,
		string $pathCommitment,
		string $author,
		int $timestampMs,
	): string {
		foreach ([[$folderId, 16], [$fileId, 16], [$contentRoot, 32], [$pathCommitment, 32], [$author, 32]] as [$field, $width]) {
			if (strlen($field) !== $width) {
				throw new \InvalidArgumentException('a chain entry field has the wrong width');
			}
		}
		return chr(self::VERSION) . $folderId . $fileId . pack('J', $seq) . chr($op)
			. $contentRoot . pack('J', $size) . $pathCommitment . $author . pack('J', $timestampMs);
	}

	public function opName(): string {
		return self::OP_NAMES[$this->op];
	}

	/** The author as the device id text the API uses. */
	public function authorDeviceId(): string {
		return Ids::deviceIdFromKey($this->author);
	}

	public function signedPart(): string {
		return substr($this->bytes, 0, self::SIGNED_LENGTH);
	}

	/** An unsigned 64-bit field; values above PHP_INT_MAX come out negative, which no check accepts. */
	private static function u64(string $eight): int {
		return unpack('J', $eight)[1];
	}
}
