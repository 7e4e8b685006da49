<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Codec;

/**
 * The identifiers of docs/protocol.md ("Identifiers") in their API text forms.
 *
 * The API is strict where the protocol's parsers are lenient: folder and file
 * ids are 32 lowercase hex, chain hashes 64 lowercase hex, device ids 52
 * lowercase base32. One spelling per id keeps database lookups exact.
 */
final class Ids {
	public const FOLDER_ID_BYTES = 16;
	public const FILE_ID_BYTES = 16;
	public const DEVICE_ID_BYTES = 32;
	public const CHAIN_HASH_BYTES = 32;
	public const DEVICE_ID_CHARS = 52;

	public static function isFolderId(string $text): bool {
		return Hex::isLower($text, self::FOLDER_ID_BYTES);
	}

	public static function isFileId(string $text): bool {
		return Hex::isLower($text, self::FILE_ID_BYTES);
	}

	public static function isChainHash(string $text): bool {
		return Hex::isLower($text, self::CHAIN_HASH_BYTES);
	}

	public static function isDeviceId(string $text): bool {
		return preg_match('/^[a-z2-7]{52}$/D', $text) === 1 && Base32::decode($text) !== null;
	}

	/** The 32-byte Ed25519 public key a device id names, or null when it is not one. */
	public static function deviceKey(string $deviceId): ?string {
		if (preg_match('/^[a-z2-7]{52}$/D', $deviceId) !== 1) {
			return null;
		}
		$bytes = Base32::decode($deviceId);
		return $bytes !== null && strlen($bytes) === self::DEVICE_ID_BYTES ? $bytes : null;
	}

	public static function deviceIdFromKey(string $publicKey): string {
		return Base32::encode($publicKey);
	}
}
