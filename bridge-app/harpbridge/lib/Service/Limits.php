<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/**
 * The size limits of docs/bridge-api.yaml in one place. They keep file content
 * out of the bridge: nothing in the API is big enough to carry it.
 */
final class Limits {
	public const MAX_BODY_BYTES = 16 * 1024 * 1024;
	public const MAX_CHANGE_BYTES = 1024 * 1024;
	/** base64 text of MAX_CHANGE_BYTES */
	public const MAX_CHANGE_CHARS = 1398104;
	public const MAX_CHANGES_PER_REQUEST = 256;
	public const MAX_ADDRESSES = 16;
	public const MIN_ADDRESS_CHARS = 4;
	public const MAX_ADDRESS_CHARS = 256;
	public const MIN_TTL_SECONDS = 30;
	public const MAX_TTL_SECONDS = 3600;
	/** Folder.members[].devices maxItems: a member's devices must fit in a folder answer. */
	public const MAX_DEVICES_PER_USER = 64;
	public const MAX_MEMBERS = 256;
	public const MAX_NAME_CHARS = 64;
	public const MAX_USER_CHARS = 64;
	public const MAX_LABEL_CHARS = 128;
	public const MAX_INDEX_ENTRIES_PER_REQUEST = 5000;
	public const MAX_INDEX_NAME_CHARS = 4096;
	public const MAX_INDEX_TOKENS = 64;
	public const MAX_SEARCH_TOKENS = 16;
	public const MAX_QUERY_CHARS = 256;
	public const MAX_SEARCH_RESULTS = 500;
	public const DEFAULT_CHANGES_LIMIT = 200;
	public const MAX_CHANGES_LIMIT = 1000;
	public const DEFAULT_ENTRIES_LIMIT = 1000;
	public const MAX_ENTRIES_LIMIT = 1000;
	/** GET /folders/{id}/files: index records per page */
	public const DEFAULT_FILES_LIMIT = 100;
	public const MAX_FILES_LIMIT = 500;
	/** GET /folders/{id}/files/{id}/versions: chain entries per page */
	public const DEFAULT_VERSIONS_LIMIT = 200;
	public const MAX_VERSIONS_LIMIT = 1000;

	/** @return array<string, int> the `limits` of the capabilities */
	public static function toApi(): array {
		return [
			'max_body_bytes' => self::MAX_BODY_BYTES,
			'max_change_bytes' => self::MAX_CHANGE_BYTES,
			'max_addresses' => self::MAX_ADDRESSES,
		];
	}
}
