<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Codec;

/**
 * Standard, padded base64 as the API carries binary values.
 *
 * Decoding is canonical: the text must be exactly what encoding the decoded
 * bytes gives back, so one value has one spelling and length limits on the
 * text are limits on the bytes.
 */
final class Base64 {
	public static function encode(string $bytes): string {
		return base64_encode($bytes);
	}

	/** The decoded bytes, or null when the text is not canonical base64. */
	public static function decode(string $text): ?string {
		$bytes = base64_decode($text, true);
		if ($bytes === false || base64_encode($bytes) !== $text) {
			return null;
		}
		return $bytes;
	}

	/** The decoded bytes when they are exactly $length long, else null. */
	public static function decodeExact(string $text, int $length): ?string {
		if (strlen($text) !== 4 * intdiv($length + 2, 3)) {
			return null;
		}
		$bytes = self::decode($text);
		return $bytes !== null && strlen($bytes) === $length ? $bytes : null;
	}
}
