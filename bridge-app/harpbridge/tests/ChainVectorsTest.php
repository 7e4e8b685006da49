<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Chain\ChainError;
use OCA\HarpBridge\Chain\ChainHash;
use OCA\HarpBridge\Chain\ChainVerifier;
use OCA\HarpBridge\Tests\Support\ProofReader;
use PHPUnit\Framework\TestCase;

/**
 * The PHP chain codec and verifier against the golden vectors of
 * protocol/tests/vectors: they must agree with harp-protocol byte for byte and
 * fail each broken chain with the same error code.
 */
final class ChainVectorsTest extends TestCase {
	private const CHAIN = __DIR__ . '/../../../protocol/tests/vectors/chain.json';
	private const PROOFS = __DIR__ . '/../../../protocol/tests/vectors/proofs.json';

	/** @return array<string, mixed> */
	private static function load(string $path): array {
		return json_decode((string)file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
	}

	/** @return array{0: string, 1: string, 2: string, 3: list<ChainEntry>} folder, file, genesis, entries */
	private function vectorChain(): array {
		$v = self::load(self::CHAIN);
		$entries = array_map(static fn (array $e): ChainEntry => ChainEntry::decode((string)hex2bin($e['encoding'])), $v['entries']);
		return [(string)hex2bin($v['folder']), (string)hex2bin($v['file']), (string)hex2bin($v['genesis']), $entries];
	}

	private function assertChainError(string $code, callable $action): void {
		try {
			$action();
		} catch (ChainError $e) {
			$this->assertSame($code, $e->errorCode, $e->getMessage());
			return;
		}
		$this->fail("expected $code");
	}

	public function testEntriesDecodeToTheirFieldsAndEncodeBack(): void {
		$v = self::load(self::CHAIN);
		$this->assertCount(10, $v['entries']);
		foreach ($v['entries'] as $vector) {
			$bytes = (string)hex2bin($vector['encoding']);
			$this->assertSame(ChainEntry::LENGTH, strlen($bytes));
			$entry = ChainEntry::decode($bytes);
			$this->assertSame($v['folder'], bin2hex($entry->folderId));
			$this->assertSame($v['file'], bin2hex($entry->fileId));
			$this->assertSame($vector['seq'], $entry->seq);
			$this->assertSame($vector['op'], $entry->opName());
			$this->assertSame($vector['content_root'], bin2hex($entry->contentRoot));
			$this->assertSame($vector['size'], $entry->size);
			$this->assertSame($vector['path'], bin2hex($entry->pathCommitment));
			$this->assertSame($vector['author'], bin2hex($entry->author));
			$this->assertSame($vector['timestamp_ms'], $entry->timestampMs);
			$unsigned = ChainEntry::encodeUnsigned(
				$entry->folderId,
				$entry->fileId,
				$entry->seq,
				$entry->op,
				$entry->contentRoot,
				$entry->size,
				$entry->pathCommitment,
				$entry->author,
				$entry->timestampMs,
			);
			$this->assertSame($bytes, $unsigned . $entry->signature, 'encoding is canonical');
		}
	}

	public function testGenesisComesFromTheChainSeed(): void {
		$v = self::load(self::CHAIN);
		$this->assertSame($v['genesis'], bin2hex(ChainHash::genesis(
			(string)hex2bin($v['folder']),
			(string)hex2bin($v['file']),
			(string)hex2bin($v['chain_seed']),
		)));
	}

	public function testEveryLinkAndSignatureMatches(): void {
		$v = self::load(self::CHAIN);
		$prev = (string)hex2bin($v['genesis']);
		foreach ($v['entries'] as $vector) {
			$entry = ChainEntry::decode((string)hex2bin($vector['encoding']));
			ChainVerifier::verifySignature($entry, $prev);
			$prev = ChainHash::link($prev, $entry->bytes);
			$this->assertSame($vector['hash_after'], bin2hex($prev), 'seq ' . $vector['seq']);
		}
		$this->assertSame($v['head'], bin2hex($prev));
	}

	public function testTheWholeChainVerifies(): void {
		[$folder, $file, $genesis, $entries] = $this->vectorChain();
		$v = self::load(self::CHAIN);
		$verified = ChainVerifier::verifyChain($folder, $file, $genesis, $entries);
		$this->assertSame($v['head'], bin2hex($verified->head));
		$this->assertSame(10, $verified->seq);
		$this->assertTrue($verified->present);
		$authors = array_values(array_unique(array_map(static fn (ChainEntry $e): string => $e->author, $entries)));
		ChainVerifier::verifyChain($folder, $file, $genesis, $entries, $authors);
	}

	public function testAChangedByteBreaksTheSignature(): void {
		[$folder, $file, $genesis, $entries] = $this->vectorChain();
		foreach ([42, 74, 90, 150, 160] as $offset) {
			$bytes = $entries[4]->bytes;
			$bytes[$offset] = chr(ord($bytes[$offset]) ^ 1);
			$broken = $entries;
			$broken[4] = ChainEntry::decode($bytes);
			$this->assertChainError('bad_signature', fn () => ChainVerifier::verifyChain($folder, $file, $genesis, $broken));
		}
	}

	public function testDroppedReorderedAndMovedEntriesAreSeqGaps(): void {
		[$folder, $file, $genesis, $entries] = $this->vectorChain();
		$dropped = $entries;
		array_splice($dropped, 3, 1);
		$this->assertChainError('seq_gap', fn () => ChainVerifier::verifyChain($folder, $file, $genesis, $dropped));
		$reordered = $entries;
		[$reordered[4], $reordered[5]] = [$reordered[5], $reordered[4]];
		$this->assertChainError('seq_gap', fn () => ChainVerifier::verifyChain($folder, $file, $genesis, $reordered));
	}

	public function testAnotherFilesChainIsWrongFile(): void {
		[$folder, , $genesis, $entries] = $this->vectorChain();
		$this->assertChainError('wrong_file', fn () => ChainVerifier::verifyChain($folder, random_bytes(16), $genesis, $entries));
	}

	public function testAWrongGenesisBreaksTheFirstSignature(): void {
		[$folder, $file, , $entries] = $this->vectorChain();
		$this->assertChainError('bad_signature', fn () => ChainVerifier::verifyChain($folder, $file, random_bytes(32), $entries));
	}

	public function testAnUntrustedAuthorIsRefusedWhenAuthorsAreGiven(): void {
		[$folder, $file, $genesis, $entries] = $this->vectorChain();
		$this->assertChainError('untrusted_author', fn () => ChainVerifier::verifyChain($folder, $file, $genesis, $entries, [$entries[0]->author]));
	}

	public function testDecodingChecksLengthVersionAndOp(): void {
		[, , , $entries] = $this->vectorChain();
		$bytes = $entries[0]->bytes;
		$this->assertChainError('truncated', fn () => ChainEntry::decode(''));
		$this->assertChainError('truncated', fn () => ChainEntry::decode(substr($bytes, 0, 100)));
		$this->assertChainError('trailing_bytes', fn () => ChainEntry::decode($bytes . "\0"));
		$this->assertChainError('unknown_version', fn () => ChainEntry::decode("\x02" . substr($bytes, 1)));
		foreach ([0, 5, 255] as $op) {
			$bad = $bytes;
			$bad[41] = chr($op);
			$this->assertChainError('unknown_tag', fn () => ChainEntry::decode($bad));
		}
	}

	public function testOperationRulesFollowTheFileState(): void {
		[, , , $entries] = $this->vectorChain();
		$this->assertChainError('illegal_op', fn () => ChainVerifier::checkOperation($entries[1], false));
		$this->assertChainError('illegal_op', fn () => ChainVerifier::checkOperation($entries[0], true));
		ChainVerifier::checkOperation($entries[0], false);
		ChainVerifier::checkOperation($entries[1], true);
		$this->addToAssertionCount(2);
	}

	/**
	 * proofs.json carries broken copies of this chain; the chain-level ones
	 * (and the container ones, through the test's proof reader) fail with the
	 * codes the vectors name, and the valid ones prove what they expect.
	 * Vectors whose policy names a log key (proofs with a transparency-log
	 * section, checked by `harp verify`) are left out: the app stores
	 * checkpoints and cosignatures but does not verify proofs.
	 */
	public function testProofVectorsFailWithTheirCodes(): void {
		$v = self::load(self::PROOFS);
		$seed = (string)hex2bin(self::load(self::CHAIN)['chain_seed']);
		$this->assertNotEmpty($v['broken']);
		$chainLevel = static fn (array $case): bool => !isset($case['policy']['log']);
		$this->assertGreaterThanOrEqual(10, count(array_filter($v['broken'], $chainLevel)));
		foreach (array_filter($v['broken'], $chainLevel) as $case) {
			$trusted = $case['policy']['trusted'] === null ? null : array_map('hex2bin', $case['policy']['trusted']);
			try {
				ProofReader::verify((string)hex2bin($case['proof']), $case['policy']['chain_seed'] ? $seed : null, $trusted);
				$this->fail('verified: ' . $case['name']);
			} catch (ChainError $e) {
				$this->assertSame($case['error'], $e->errorCode, $case['name']);
			}
		}
		foreach (array_filter($v['valid'], $chainLevel) as $case) {
			$trusted = $case['policy']['trusted'] === null ? null : array_map('hex2bin', $case['policy']['trusted']);
			$verified = ProofReader::verify((string)hex2bin($case['proof']), $case['policy']['chain_seed'] ? $seed : null, $trusted);
			$this->assertSame($case['expect']['head'], bin2hex($verified->head));
			$this->assertSame($case['expect']['seq'], $verified->seq);
		}
	}
}
