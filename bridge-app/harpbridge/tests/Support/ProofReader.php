<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Chain\ChainError;
use OCA\HarpBridge\Chain\ChainHash;
use OCA\HarpBridge\Chain\ChainVerifier;
use OCA\HarpBridge\Chain\VerifiedChain;

/**
 * Proofs v1 (docs/protocol.md, "Proofs"), read only so the vectors of
 * proofs.json, which hold broken chains, can exercise ChainVerifier. The
 * bridge itself never reads proofs.
 */
final class ProofReader {
	private const MAGIC = "HARPPRF\x01";
	private const MAX_ENTRIES = 1_000_000;
	private const MAX_SECTIONS = 16;
	private const MAX_SECTION_LEN = 65536;

	/**
	 * @param list<string>|null $trusted raw author keys
	 * @throws ChainError
	 */
	public static function verify(string $proof, ?string $chainSeed, ?array $trusted): VerifiedChain {
		$at = 0;
		$take = static function (int $n) use ($proof, &$at): string {
			if (strlen($proof) - $at < $n) {
				throw new ChainError('truncated');
			}
			$bytes = substr($proof, $at, $n);
			$at += $n;
			return $bytes;
		};
		if (strlen($proof) < 8 || substr($proof, 0, 8) !== self::MAGIC) {
			throw new ChainError('bad_magic');
		}
		$take(8);
		$folder = $take(16);
		$file = $take(16);
		$genesis = $take(32);
		$count = unpack('N', $take(4))[1];
		if ($count < 1 || $count > self::MAX_ENTRIES) {
			throw new ChainError('too_large', "$count entries");
		}
		$entries = [];
		for ($i = 0; $i < $count; $i++) {
			$entries[] = ChainEntry::decode($take(ChainEntry::LENGTH));
		}
		$sections = ord($take(1));
		if ($sections > self::MAX_SECTIONS) {
			throw new ChainError('too_large', "$sections sections");
		}
		$hasSection = false;
		for ($i = 0; $i < $sections; $i++) {
			$take(1);
			$length = unpack('N', $take(4))[1];
			if ($length > self::MAX_SECTION_LEN) {
				throw new ChainError('too_large', 'section');
			}
			$take($length);
			$hasSection = true;
		}
		if ($at !== strlen($proof)) {
			throw new ChainError('trailing_bytes');
		}
		if ($hasSection) {
			throw new ChainError('unsupported_section');
		}
		if ($chainSeed !== null && ChainHash::genesis($folder, $file, $chainSeed) !== $genesis) {
			throw new ChainError('bad_genesis');
		}
		return ChainVerifier::verifyChain($folder, $file, $genesis, $entries, $trusted);
	}
}
