<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/**
 * The messages devices sign for the bridge, and their verification.
 *
 * Each message starts with its own domain string so a signature made for one
 * purpose never verifies for another (a registration is not a key voucher,
 * neither is a chain entry).
 */
final class Signatures {
	private const DEVICE_DOMAIN = "harp bridge device v1\x00";
	private const WRAP_DOMAIN = "harp bridge wrap v1\x00";

	/**
	 * What a device signs to register: it holds the Ed25519 key of its id, for
	 * this user, with this X25519 key.
	 *
	 *     "harp bridge device v1" 0x00 ‖ user id (UTF-8) 0x00 ‖ device id [32] ‖ x25519 public [32]
	 */
	public static function deviceRegistration(string $userId, string $deviceKey, string $x25519Public): string {
		return self::DEVICE_DOMAIN . $userId . "\x00" . $deviceKey . $x25519Public;
	}

	/**
	 * What a member device signs when it wraps a folder key for a device.
	 *
	 *     "harp bridge wrap v1" 0x00 ‖ folder id [16] ‖ device id [32] ‖ ephemeral public [32]
	 *     ‖ nonce [24] ‖ ciphertext [48]
	 */
	public static function keyWrap(
		string $folderId,
		string $deviceKey,
		string $ephemeralPublic,
		string $nonce,
		string $ciphertext,
	): string {
		return self::WRAP_DOMAIN . $folderId . $deviceKey . $ephemeralPublic . $nonce . $ciphertext;
	}

	/** Ed25519 verification that answers false, never throws, for keys or signatures of a wrong size. */
	public static function verify(string $signature, string $message, string $publicKey): bool {
		if (strlen($signature) !== SODIUM_CRYPTO_SIGN_BYTES || strlen($publicKey) !== SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES) {
			return false;
		}
		try {
			return sodium_crypto_sign_verify_detached($signature, $message, $publicKey);
		} catch (\SodiumException) {
			return false;
		}
	}
}
