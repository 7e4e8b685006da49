<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * A synced folder as the bridge knows it: ids and settings, never content.
 * Its members are the owner plus the users it is shared with (MemberRepository).
 */
final class Folder {
	public const INDEX_PLAINTEXT = 'plaintext';
	public const INDEX_ENCRYPTED = 'encrypted';
	public const INDEX_MODES = [self::INDEX_PLAINTEXT, self::INDEX_ENCRYPTED];

	public const VERSIONING_CRDT = 'crdt';
	public const VERSIONING_SERVER_AUTHORITATIVE = 'server_authoritative';
	public const VERSIONING_MODES = [self::VERSIONING_CRDT, self::VERSIONING_SERVER_AUTHORITATIVE];

	public function __construct(
		public readonly string $folderId,
		public readonly string $owner,
		public readonly string $label,
		public readonly string $indexMode,
		public readonly string $versioning,
	) {
	}

	public function isServerAuthoritative(): bool {
		return $this->versioning === self::VERSIONING_SERVER_AUTHORITATIVE;
	}

	public function hasPlaintextIndex(): bool {
		return $this->indexMode === self::INDEX_PLAINTEXT;
	}
}
