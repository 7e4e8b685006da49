<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Log;

use OCA\HarpBridge\Codec\Base64;

/**
 * A folder log's checkpoint (C2SP tlog-checkpoint): origin `harp/<folder id>`,
 * size and root, three newline-terminated lines and no extension lines.
 */
final class Checkpoint {
	public static function origin(string $folderId): string {
		return 'harp/' . $folderId;
	}

	/** The note body: origin, size and base64 root, each ending with "\n". */
	public static function body(string $folderId, int $size, string $root): string {
		return self::origin($folderId) . "\n" . $size . "\n" . Base64::encode($root) . "\n";
	}
}
