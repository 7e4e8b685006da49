<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Codec;

/**
 * Lowercase hex, the text form of folder and file ids and of chain hashes.
 */
final class Hex {
	/** Whether $text is exactly $bytes bytes of lowercase hex. */
	public static function isLower(string $text, int $bytes): bool {
		return strlen($text) === 2 * $bytes && preg_match('/^[0-9a-f]+$/D', $text) === 1;
	}

	/** The bytes of lowercase hex of the given length, or null. */
	public static function decode(string $text, int $bytes): ?string {
		return self::isLower($text, $bytes) ? hex2bin($text) : null;
	}

	public static function encode(string $bytes): string {
		return bin2hex($bytes);
	}
}
