<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\IndexRecord;
use OCA\HarpBridge\Store\IndexRepository;

final class InMemoryIndex implements IndexRepository {
	/** @var array<string, array<string, IndexRecord>> folder => file => record */
	private array $records = [];

	public function putRecords(array $records): void {
		foreach ($records as $record) {
			$this->records[$record->folderId][$record->fileId] = $record;
		}
	}

	public function searchNames(string $folderId, string $needle, int $limit): array {
		return $this->matching($folderId, $limit, static fn (IndexRecord $r): bool => $r->name !== null
			&& ($needle === '' || mb_stripos($r->name, $needle, 0, 'UTF-8') !== false));
	}

	public function searchTokens(string $folderId, array $tokens, int $limit): array {
		return $this->matching($folderId, $limit, static fn (IndexRecord $r): bool => array_diff($tokens, $r->tokens) === []);
	}

	public function listPage(string $folderId, string $afterFileId, int $limit): array {
		return $this->matching($folderId, $limit, static fn (IndexRecord $r): bool => strcmp($r->fileId, $afterFileId) > 0);
	}

	public function findByName(string $folderId, string $name): ?IndexRecord {
		foreach ($this->records[$folderId] ?? [] as $record) {
			if ($record->name === $name) {
				return $record;
			}
		}
		return null;
	}

	public function countRecords(): int {
		return array_sum(array_map('count', $this->records));
	}

	/** @return list<IndexRecord> */
	private function matching(string $folderId, int $limit, callable $predicate): array {
		$found = array_filter($this->records[$folderId] ?? [], $predicate);
		ksort($found, SORT_STRING);
		return array_slice(array_values($found), 0, $limit);
	}
}
