<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\LogRepository;

/** Keeps the unique indexes of the real table: (folder, log_index) and (folder, leaf_hash). */
final class InMemoryLog implements LogRepository {
	/** @var array<string, array<int, string>> folder => index => leaf hash (hex) */
	private array $leaves = [];

	/** Set by a test to run just before the next addLeaf, as a concurrent request would. */
	public ?\Closure $beforeNextAdd = null;

	public function logSize(string $folderId): int {
		$leaves = $this->leaves[$folderId] ?? [];
		return $leaves === [] ? 0 : max(array_keys($leaves)) + 1;
	}

	public function findLeaf(string $folderId, string $leafHash): ?int {
		$index = array_search($leafHash, $this->leaves[$folderId] ?? [], true);
		return $index === false ? null : $index;
	}

	public function leafAt(string $folderId, int $logIndex): ?string {
		return $this->leaves[$folderId][$logIndex] ?? null;
	}

	public function addLeaf(string $folderId, int $logIndex, string $leafHash): void {
		if ($this->beforeNextAdd !== null) {
			$race = $this->beforeNextAdd;
			$this->beforeNextAdd = null;
			$race();
		}
		if (isset($this->leaves[$folderId][$logIndex]) || $this->findLeaf($folderId, $leafHash) !== null) {
			throw new DuplicateKey("$folderId/$logIndex");
		}
		$this->leaves[$folderId][$logIndex] = $leafHash;
	}

	public function leafHashes(string $folderId, int $count): array {
		$found = array_filter($this->leaves[$folderId] ?? [], static fn (int $index): bool => $index < $count, ARRAY_FILTER_USE_KEY);
		ksort($found);
		return $found;
	}

	public function countLeaves(string $folderId): int {
		return count($this->leaves[$folderId] ?? []);
	}

	/** Overwrites (or, with null, drops) a leaf past the unique indexes, as a tampered database would hold it. */
	public function replaceLeaf(string $folderId, int $logIndex, ?string $leafHash): void {
		if ($leafHash === null) {
			unset($this->leaves[$folderId][$logIndex]);
		} else {
			$this->leaves[$folderId][$logIndex] = $leafHash;
		}
	}
}
