<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Chain\ChainHash;
use OCA\HarpBridge\Codec\Base64;

/**
 * Writes a file's chain as a Harp device does and gives the POST .../entries
 * bodies. It starts from a random genesis: the bridge cannot tell.
 */
final class ChainWriter {
	private string $head;
	private int $seq = 0;

	public function __construct(
		private readonly string $folderId,
		private readonly string $fileId,
		?string $genesis = null,
	) {
		$this->head = $genesis ?? random_bytes(32);
	}

	/**
	 * The next entry after this writer's head, which it then moves to.
	 *
	 * @return array{prev: string, entry: string, head: string}
	 */
	public function next(TestDevice $author, ?int $op = null): array {
		$op ??= $this->seq === 0 ? ChainEntry::OP_CREATE : ChainEntry::OP_MODIFY;
		$body = self::body($author, $this->folderId, $this->fileId, $this->seq + 1, $this->head, $op);
		$this->seq++;
		$this->head = (string)hex2bin($body['head']);
		return $body;
	}

	/** A copy that goes on from the same place, for forks. */
	public function fork(): self {
		return clone $this;
	}

	public function headHex(): string {
		return bin2hex($this->head);
	}

	/**
	 * A signed entry at $seq after $prev (raw), with the given fields.
	 *
	 * @return array{prev: string, entry: string, head: string}
	 */
	public static function body(
		TestDevice $author,
		string $folderId,
		string $fileId,
		int $seq,
		string $prev,
		int $op = ChainEntry::OP_MODIFY,
		?int $size = null,
	): array {
		$delete = $op === ChainEntry::OP_DELETE;
		$unsigned = ChainEntry::encodeUnsigned(
			(string)hex2bin($folderId),
			(string)hex2bin($fileId),
			$seq,
			$op,
			$delete ? str_repeat("\0", 32) : random_bytes(32),
			$delete ? 0 : ($size ?? 100 * $seq),
			random_bytes(32),
			$author->publicKey,
			1_763_700_000_000 + $seq,
		);
		$entry = $unsigned . $author->sign(ChainHash::signingMessage($prev, $unsigned));
		return [
			'prev' => bin2hex($prev),
			'entry' => Base64::encode($entry),
			'head' => bin2hex(ChainHash::link($prev, $entry)),
		];
	}
}
