<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Model\SealedChange;
use OCA\HarpBridge\Store\ChangeRepository;

final class InMemoryChanges implements ChangeRepository {
	/** @var array<string, list<SealedChange>> */
	private array $byFolder = [];

	public function appendChanges(string $folderId, string $deviceId, array $sealed): int {
		$cursor = count($this->byFolder[$folderId] ?? []);
		foreach ($sealed as $change) {
			$this->byFolder[$folderId][] = new SealedChange($folderId, ++$cursor, $deviceId, $change);
		}
		return $cursor;
	}

	public function listChangesAfter(string $folderId, int $after, int $limit): array {
		$found = array_filter($this->byFolder[$folderId] ?? [], static fn (SealedChange $c): bool => $c->cursor > $after);
		return array_slice(array_values($found), 0, $limit);
	}

	public function countChanges(): int {
		return array_sum(array_map('count', $this->byFolder));
	}
}
