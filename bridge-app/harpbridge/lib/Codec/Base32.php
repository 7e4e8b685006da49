<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Codec;

/**
 * RFC 4648 base32 without padding, the text form of device ids.
 *
 * Harp prints device ids in lower case; decoding accepts either case because
 * the protocol says base32 ids are case-insensitive.
 */
final class Base32 {
	private const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

	public static function encode(string $bytes): string {
		$out = '';
		$buffer = 0;
		$bits = 0;
		$length = strlen($bytes);
		for ($i = 0; $i < $length; $i++) {
			$buffer = ($buffer << 8) | ord($bytes[$i]);
			$bits += 8;
			while ($bits >= 5) {
				$bits -= 5;
				$out .= self::ALPHABET[($buffer >> $bits) & 0x1f];
			}
			$buffer &= (1 << $bits) - 1;
		}
		if ($bits > 0) {
			$out .= self::ALPHABET[($buffer << (5 - $bits)) & 0x1f];
		}
		return $out;
	}

	/**
	 * Decodes unpadded base32; null when a character is outside the alphabet or
	 * the leftover bits are not zero (so every byte string has one text form).
	 */
	public static function decode(string $text): ?string {
		$text = strtolower($text);
		$out = '';
		$buffer = 0;
		$bits = 0;
		$length = strlen($text);
		for ($i = 0; $i < $length; $i++) {
			$value = strpos(self::ALPHABET, $text[$i]);
			if ($value === false) {
				return null;
			}
			$buffer = ($buffer << 5) | $value;
			$bits += 5;
			if ($bits >= 8) {
				$bits -= 8;
				$out .= chr(($buffer >> $bits) & 0xff);
			}
			$buffer &= (1 << $bits) - 1;
		}
		if ($bits >= 5 || $buffer !== 0) {
			return null;
		}
		return $out;
	}
}
