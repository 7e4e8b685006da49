<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

use OCA\HarpBridge\Model\SealedChange;

/** Each folder's append-only list of sealed document changes. */
interface ChangeRepository {
	/**
	 * Appends the changes in order with the next cursors of the folder
	 * (strictly increasing, never reused) and answers the last cursor.
	 *
	 * @param list<string> $sealed base64 changes
	 */
	public function appendChanges(string $folderId, string $deviceId, array $sealed): int;

	/**
	 * Changes with a cursor above $after, oldest first.
	 *
	 * @return list<SealedChange>
	 */
	public function listChangesAfter(string $folderId, int $after, int $limit): array;

	public function countChanges(): int;
}
