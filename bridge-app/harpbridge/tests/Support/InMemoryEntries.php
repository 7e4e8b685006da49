<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\EntryRepository;

/** Keeps the unique indexes of the real table: (folder, file, head) and (folder, file, slot). */
final class InMemoryEntries implements EntryRepository {
	/** @var list<array{link: ChainLink, slot: string}> in insertion order */
	private array $rows = [];

	/** Set by a test to add a link just before the next addLink, as a concurrent writer would. */
	public ?\Closure $beforeNextAdd = null;

	public function findByHead(string $folderId, string $fileId, string $head): ?ChainLink {
		foreach ($this->rows as $row) {
			if ($this->sameFile($row['link'], $folderId, $fileId) && $row['link']->head === $head) {
				return $row['link'];
			}
		}
		return null;
	}

	public function findGenesis(string $folderId, string $fileId): ?string {
		foreach ($this->rows as $row) {
			if ($this->sameFile($row['link'], $folderId, $fileId) && $row['link']->seq === 1) {
				return $row['link']->prev;
			}
		}
		return null;
	}

	public function setLogIndex(string $folderId, string $fileId, string $head, int $logIndex): void {
		foreach ($this->rows as $i => $row) {
			if ($this->sameFile($row['link'], $folderId, $fileId) && $row['link']->head === $head) {
				$this->rows[$i]['link'] = $row['link']->withLogIndex($logIndex);
			}
		}
	}

	public function removeLink(string $folderId, string $fileId, string $head): void {
		$this->rows = array_values(array_filter(
			$this->rows,
			fn (array $row): bool => !($this->sameFile($row['link'], $folderId, $fileId) && $row['link']->head === $head),
		));
	}

	public function findLatest(string $folderId, string $fileId): ?ChainLink {
		$latest = null;
		foreach ($this->rows as $row) {
			if ($this->sameFile($row['link'], $folderId, $fileId) && ($latest === null || $row['link']->seq >= $latest->seq)) {
				$latest = $row['link'];
			}
		}
		return $latest;
	}

	public function addLink(ChainLink $link, string $slot): void {
		if ($this->beforeNextAdd !== null) {
			$race = $this->beforeNextAdd;
			$this->beforeNextAdd = null;
			$race();
		}
		foreach ($this->rows as $row) {
			if ($this->sameFile($row['link'], $link->folderId, $link->fileId)
				&& ($row['link']->head === $link->head || $row['slot'] === $slot)) {
				throw new DuplicateKey($slot);
			}
		}
		$this->rows[] = ['link' => $link, 'slot' => $slot];
	}

	public function listFrom(string $folderId, string $fileId, int $fromSeq, int $limit): array {
		$found = [];
		foreach ($this->rows as $order => $row) {
			if ($this->sameFile($row['link'], $folderId, $fileId) && $row['link']->seq >= $fromSeq) {
				$found[] = [$row['link']->seq, $order, $row['link']];
			}
		}
		usort($found, static fn (array $a, array $b): int => [$a[0], $a[1]] <=> [$b[0], $b[1]]);
		return array_slice(array_column($found, 2), 0, $limit);
	}

	public function countLinks(): int {
		return count($this->rows);
	}

	private function sameFile(ChainLink $link, string $folderId, string $fileId): bool {
		return $link->folderId === $folderId && $link->fileId === $fileId;
	}
}
