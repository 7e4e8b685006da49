<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\Cosignature;
use OCA\HarpBridge\Model\CosignedSize;
use OCA\HarpBridge\Store\CosignatureRepository;
use OCA\HarpBridge\Store\DuplicateKey;

/** Keeps the unique indexes of the real table: (folder, size, place) and (folder, size, key id, name). */
final class InMemoryCosignatures implements CosignatureRepository {
	/** @var list<Cosignature> */
	private array $rows = [];

	/** Set by a test to run just before the next addCosignature, as a concurrent request would. */
	public ?\Closure $beforeNextAdd = null;

	public function listCosignatures(string $folderId, int $size): array {
		$found = array_values(array_filter($this->rows, static fn (Cosignature $c): bool => $c->folderId === $folderId && $c->size === $size));
		usort($found, static fn (Cosignature $a, Cosignature $b): int => $a->place <=> $b->place);
		return $found;
	}

	public function addCosignature(Cosignature $cosignature): void {
		if ($this->beforeNextAdd !== null) {
			$race = $this->beforeNextAdd;
			$this->beforeNextAdd = null;
			$race();
		}
		foreach ($this->listCosignatures($cosignature->folderId, $cosignature->size) as $stored) {
			if ($stored->place === $cosignature->place || $stored->sameSigner($cosignature)) {
				throw new DuplicateKey("{$cosignature->folderId}/{$cosignature->size}/{$cosignature->place}");
			}
		}
		$this->rows[] = $cosignature;
	}

	public function replaceCosignature(Cosignature $cosignature): void {
		foreach ($this->rows as $i => $stored) {
			if ($stored->folderId === $cosignature->folderId && $stored->size === $cosignature->size && $stored->sameSigner($cosignature)) {
				$this->rows[$i] = $cosignature->atPlace($stored->place);
			}
		}
	}

	public function listNewestSizes(): array {
		$newest = [];
		foreach ($this->rows as $row) {
			$key = $row->name . "\n" . $row->keyId . "\n" . $row->folderId;
			if (!isset($newest[$key]) || $newest[$key]->size < $row->size) {
				$newest[$key] = new CosignedSize($row->folderId, $row->name, $row->keyId, $row->size);
			}
		}
		ksort($newest, SORT_STRING);
		return array_values($newest);
	}

	public function count(): int {
		return count($this->rows);
	}
}
