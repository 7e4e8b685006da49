<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * One encrypted Automerge change of a folder document, opaque to the bridge,
 * at its place (cursor) in the folder's append-only list.
 */
final class SealedChange {
	public function __construct(
		public readonly string $folderId,
		public readonly int $cursor,
		public readonly string $deviceId,
		public readonly string $sealed,
	) {
	}

	/** @return array<string, int|string> */
	public function toApi(): array {
		return ['cursor' => $this->cursor, 'device' => $this->deviceId, 'change' => $this->sealed];
	}
}
