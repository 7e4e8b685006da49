<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Log;

/**
 * An RFC 6962 / 9162 Merkle tree over SHA-256, as harp_protocol::tlog hashes
 * it: leaf hash SHA-256(0x00 ‖ data), node hash SHA-256(0x01 ‖ left ‖ right),
 * the empty tree's root SHA-256("").
 *
 * It is built from the leaf hashes of a folder's log and computes roots,
 * inclusion proofs (RFC 6962 PATH) and consistency proofs (RFC 6962 PROOF)
 * for any size up to its own, from the leaves: O(n) hashes per call, which is
 * what a bridge that keeps only the leaves pays. Hashes are raw 32 bytes.
 */
final class MerkleTree {
	public const HASH_BYTES = 32;

	/** @var list<string> */
	private readonly array $leaves;

	/** @param list<string> $leaves leaf hashes (32 raw bytes each), by index */
	public function __construct(array $leaves) {
		foreach ($leaves as $index => $leaf) {
			if (strlen($leaf) !== self::HASH_BYTES) {
				throw new \InvalidArgumentException("leaf $index is not a 32-byte hash");
			}
		}
		$this->leaves = array_values($leaves);
	}

	/** SHA-256(0x00 ‖ data). */
	public static function leafHash(string $data): string {
		return hash('sha256', "\x00" . $data, true);
	}

	/** SHA-256(0x01 ‖ left ‖ right). */
	public static function nodeHash(string $left, string $right): string {
		return hash('sha256', "\x01" . $left . $right, true);
	}

	/** The root of the empty tree, SHA-256(""). */
	public static function emptyRoot(): string {
		return hash('sha256', '', true);
	}

	/**
	 * The leaf a chain link is logged as (docs/protocol.md, "Transparency log"):
	 * the hash of file id (16) ‖ seq (u64 big-endian) ‖ head (32).
	 */
	public static function chainLeaf(string $fileId, int $seq, string $head): string {
		if (strlen($fileId) !== 16 || strlen($head) !== 32 || $seq < 0) {
			throw new \InvalidArgumentException('a chain leaf is a 16-byte file id, a seq and a 32-byte head');
		}
		return self::leafHash($fileId . pack('J', $seq) . $head);
	}

	/** Leaves in the tree. */
	public function size(): int {
		return count($this->leaves);
	}

	/**
	 * The root of the tree of the first $size leaves (MTH).
	 *
	 * @throws \OutOfRangeException $size is negative or over the tree's size
	 */
	public function root(int $size): string {
		if ($size < 0 || $size > $this->size()) {
			throw new \OutOfRangeException("size $size is outside a tree of {$this->size()}");
		}
		return $this->mth(0, $size);
	}

	/**
	 * The inclusion proof of leaf $index in the tree of the first $size leaves
	 * (RFC 6962 PATH): sibling hashes from the leaf up.
	 *
	 * @return list<string>
	 * @throws \OutOfRangeException $index is not below $size, or $size is over the tree's size
	 */
	public function inclusion(int $index, int $size): array {
		if ($index < 0 || $index >= $size || $size > $this->size()) {
			throw new \OutOfRangeException("leaf $index is not in a tree of $size (of {$this->size()})");
		}
		$proof = [];
		$this->path($index, 0, $size, $proof);
		return $proof;
	}

	/**
	 * The consistency proof from the tree of the first $old leaves to that of
	 * the first $new (RFC 6962 PROOF); empty when $old is 0 or $new.
	 *
	 * @return list<string>
	 * @throws \OutOfRangeException $old is over $new, or $new over the tree's size
	 */
	public function consistency(int $old, int $new): array {
		if ($old < 0 || $old > $new || $new > $this->size()) {
			throw new \OutOfRangeException("no consistency proof from $old to $new (of {$this->size()})");
		}
		$proof = [];
		if ($old > 0 && $old < $new) {
			$this->subproof($old, 0, $new, true, $proof);
		}
		return $proof;
	}

	/** The largest power of two below $n (n ≥ 2). */
	private static function split(int $n): int {
		$k = 1;
		while ($k * 2 < $n) {
			$k *= 2;
		}
		return $k;
	}

	/** MTH of leaves $start .. $end (exclusive). */
	private function mth(int $start, int $end): string {
		$n = $end - $start;
		if ($n === 0) {
			return self::emptyRoot();
		}
		if ($n === 1) {
			return $this->leaves[$start];
		}
		$k = self::split($n);
		return self::nodeHash($this->mth($start, $start + $k), $this->mth($start + $k, $end));
	}

	/**
	 * PATH(m, D[start:end]), appended deepest first.
	 *
	 * @param list<string> $out
	 */
	private function path(int $m, int $start, int $end, array &$out): void {
		$n = $end - $start;
		if ($n <= 1) {
			return;
		}
		$k = self::split($n);
		if ($m < $k) {
			$this->path($m, $start, $start + $k, $out);
			$out[] = $this->mth($start + $k, $end);
		} else {
			$this->path($m - $k, $start + $k, $end, $out);
			$out[] = $this->mth($start, $start + $k);
		}
	}

	/**
	 * SUBPROOF(m, D[start:end], complete): $complete is true while D[start:end]
	 * still starts with the whole old tree, whose root the verifier has.
	 *
	 * @param list<string> $out
	 */
	private function subproof(int $m, int $start, int $end, bool $complete, array &$out): void {
		$n = $end - $start;
		if ($m === $n) {
			if (!$complete) {
				$out[] = $this->mth($start, $end);
			}
			return;
		}
		$k = self::split($n);
		if ($m <= $k) {
			$this->subproof($m, $start, $start + $k, $complete, $out);
			$out[] = $this->mth($start + $k, $end);
		} else {
			$this->subproof($m - $k, $start + $k, $end, false, $out);
			$out[] = $this->mth($start, $start + $k);
		}
	}
}
