<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Log\MerkleTree;
use OCA\HarpBridge\Tests\Support\LogVerifier;
use PHPUnit\Framework\TestCase;

/**
 * The RFC 6962 tree against RFC 6962's reference data (the certificate
 * transparency test vectors, also in protocol/src/tlog.rs) and against an
 * RFC 9162 verifier: every proof verifies, and a tampered one does not.
 */
final class MerkleTreeTest extends TestCase {
	private const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
	private const ROOTS = [
		'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
		'6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
		'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
		'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
		'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
		'4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
		'76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
		'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
		'5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
	];
	private const PATH_0 = [
		'96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
		'5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
		'6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
	];
	private const PATH_5 = [
		'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
		'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
		'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
	];
	private const GROWN = 20;

	/** @return list<string> */
	private static function referenceLeaves(): array {
		return array_map(static fn (string $hex): string => MerkleTree::leafHash((string)hex2bin($hex)), self::LEAVES);
	}

	/** @return list<string> leaves of i as u64 big-endian, as tlog.rs's tests grow trees */
	private static function grownLeaves(int $n): array {
		return array_map(static fn (int $i): string => MerkleTree::leafHash(pack('J', $i)), $n === 0 ? [] : range(0, $n - 1));
	}

	public function testRootsMatchRfc6962ForEverySize(): void {
		$tree = new MerkleTree(self::referenceLeaves());
		foreach (self::ROOTS as $size => $root) {
			$this->assertSame($root, bin2hex($tree->root($size)), "size $size");
		}
		$this->assertSame(hash('sha256', ''), bin2hex(MerkleTree::emptyRoot()));
		$this->assertSame(self::ROOTS[0], bin2hex((new MerkleTree([]))->root(0)));
	}

	public function testInclusionPathsMatchRfc6962(): void {
		$tree = new MerkleTree(self::referenceLeaves());
		$this->assertSame(self::PATH_0, array_map('bin2hex', $tree->inclusion(0, 8)));
		$this->assertSame(self::PATH_5, array_map('bin2hex', $tree->inclusion(5, 8)));
		$root = (string)hex2bin(self::ROOTS[8]);
		$this->assertTrue(LogVerifier::inclusion(self::referenceLeaves()[0], 0, 8, array_map('hex2bin', self::PATH_0), $root));
		$this->assertTrue(LogVerifier::inclusion(self::referenceLeaves()[5], 5, 8, array_map('hex2bin', self::PATH_5), $root));
		$this->assertSame([], $tree->inclusion(0, 1), 'a tree of one leaf needs no path');
	}

	public function testNodeHashingIsRfc6962s(): void {
		$left = random_bytes(32);
		$right = random_bytes(32);
		$this->assertSame(hash('sha256', "\x01" . $left . $right, true), MerkleTree::nodeHash($left, $right));
		$this->assertSame(hash('sha256', "\x00abc", true), MerkleTree::leafHash('abc'));
		$tree = new MerkleTree([$left, $right]);
		$this->assertSame(MerkleTree::nodeHash($left, $right), $tree->root(2));
		$this->assertSame($left, $tree->root(1), 'a single leaf is its own root');
	}

	public function testAChainLeafIsFileIdSeqAndHead(): void {
		$file = random_bytes(16);
		$head = random_bytes(32);
		$data = $file . "\x00\x00\x00\x00\x00\x00\x01\x02" . $head;
		$this->assertSame(56, strlen($data));
		$this->assertSame(hash('sha256', "\x00" . $data, true), MerkleTree::chainLeaf($file, 258, $head));
		$this->expectException(\InvalidArgumentException::class);
		MerkleTree::chainLeaf(random_bytes(15), 1, $head);
	}

	public function testEveryInclusionProofVerifiesAndTamperingFails(): void {
		$leaves = self::grownLeaves(self::GROWN);
		$tree = new MerkleTree($leaves);
		$checked = 0;
		for ($size = 1; $size <= self::GROWN; $size++) {
			$root = $tree->root($size);
			for ($index = 0; $index < $size; $index++) {
				$where = "leaf $index of $size";
				$proof = $tree->inclusion($index, $size);
				$this->assertLessThanOrEqual((int)ceil(log($size, 2)), count($proof), $where);
				$this->assertTrue(LogVerifier::inclusion($leaves[$index], $index, $size, $proof, $root), $where);
				$this->assertFalse(LogVerifier::inclusion(MerkleTree::leafHash('x'), $index, $size, $proof, $root), "$where: another leaf");
				$this->assertFalse(LogVerifier::inclusion($leaves[$index], $index, $size, $proof, MerkleTree::leafHash('root')), "$where: another root");
				$this->assertFalse(LogVerifier::inclusion($leaves[$index], $index, $size, [...$proof, $root], $root), "$where: a hash too many");
				if ($size > 1) {
					$this->assertFalse(LogVerifier::inclusion($leaves[$index], ($index + 1) % $size, $size, $proof, $root), "$where: another index");
				}
				foreach (array_keys($proof) as $i) {
					$bad = $proof;
					$bad[$i] = MerkleTree::nodeHash($bad[$i], $bad[$i]);
					$this->assertFalse(LogVerifier::inclusion($leaves[$index], $index, $size, $bad, $root), "$where: hash $i changed");
					$this->assertFalse(LogVerifier::inclusion($leaves[$index], $index, $size, array_slice($proof, 0, $i), $root), "$where: cut at $i");
				}
				$checked++;
			}
		}
		$this->assertSame(self::GROWN * (self::GROWN + 1) / 2, $checked);
	}

	public function testEveryConsistencyProofVerifiesAndTamperingFails(): void {
		$leaves = self::grownLeaves(self::GROWN);
		$tree = new MerkleTree($leaves);
		for ($new = 0; $new <= self::GROWN; $new++) {
			$newRoot = $tree->root($new);
			for ($old = 0; $old <= $new; $old++) {
				$where = "$old -> $new";
				$oldRoot = $tree->root($old);
				$proof = $tree->consistency($old, $new);
				$this->assertTrue(LogVerifier::consistency($old, $new, $proof, $oldRoot, $newRoot), $where);
				if ($old === 0 || $old === $new) {
					$this->assertSame([], $proof, $where);
					continue;
				}
				$this->assertLessThanOrEqual(2 * (int)ceil(log($new, 2)), count($proof), $where);
				$forged = MerkleTree::leafHash('forged');
				$this->assertFalse(LogVerifier::consistency($old, $new, $proof, $forged, $newRoot), "$where: another old root");
				$this->assertFalse(LogVerifier::consistency($old, $new, $proof, $oldRoot, $forged), "$where: another new root");
				$this->assertFalse(LogVerifier::consistency($old, $new, [...$proof, $forged], $oldRoot, $newRoot), "$where: a hash too many");
				foreach (array_keys($proof) as $i) {
					$bad = $proof;
					$bad[$i] = MerkleTree::nodeHash($bad[$i], $bad[$i]);
					$this->assertFalse(LogVerifier::consistency($old, $new, $bad, $oldRoot, $newRoot), "$where: hash $i changed");
					$this->assertFalse(LogVerifier::consistency($old, $new, array_slice($proof, 0, $i), $oldRoot, $newRoot), "$where: cut at $i");
				}
			}
		}
	}

	public function testARewrittenHistoryIsNotConsistent(): void {
		$honest = new MerkleTree(self::grownLeaves(2 * self::GROWN));
		$rewritten = self::grownLeaves(self::GROWN);
		$rewritten[self::GROWN - 1] = MerkleTree::leafHash('rewritten');
		$proof = $honest->consistency(self::GROWN, 2 * self::GROWN);
		$this->assertFalse(LogVerifier::consistency(self::GROWN, 2 * self::GROWN, $proof, (new MerkleTree($rewritten))->root(self::GROWN), $honest->root(2 * self::GROWN)));
		$forked = [...self::grownLeaves(self::GROWN), ...array_map(static fn (int $i): string => MerkleTree::leafHash(pack('J', $i + 1000)), range(self::GROWN, 2 * self::GROWN - 1))];
		$this->assertFalse(LogVerifier::consistency(self::GROWN, 2 * self::GROWN, $proof, $honest->root(self::GROWN), (new MerkleTree($forked))->root(2 * self::GROWN)));
	}

	public function testProofsStayLogarithmic(): void {
		$tree = new MerkleTree(self::grownLeaves(1024));
		$this->assertCount(10, $tree->inclusion(777, 1024));
		$this->assertLessThanOrEqual(20, count($tree->consistency(1000, 1024)));
	}

	public function testSizesOutsideTheTreeAreRefused(): void {
		$tree = new MerkleTree(self::referenceLeaves());
		foreach ([
			static fn () => $tree->root(9),
			static fn () => $tree->root(-1),
			static fn () => $tree->inclusion(8, 8),
			static fn () => $tree->inclusion(0, 9),
			static fn () => $tree->inclusion(0, 0),
			static fn () => $tree->consistency(5, 4),
			static fn () => $tree->consistency(4, 9),
		] as $i => $call) {
			try {
				$call();
				$this->fail("call $i was not refused");
			} catch (\OutOfRangeException) {
				$this->addToAssertionCount(1);
			}
		}
		$this->expectException(\InvalidArgumentException::class);
		new MerkleTree(['short']);
	}
}
