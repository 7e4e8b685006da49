<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Log;

use OCA\HarpBridge\Codec\Base64;

/**
 * An Ed25519 key that signs notes (C2SP signed-note), as the bridge signs its
 * checkpoints: a name, a key id SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4],
 * and signature lines `— <name> base64(key id ‖ signature)`.
 */
final class NoteKey {
	/** The signature type byte of Ed25519 signed-note keys. */
	public const TYPE_ED25519 = 0x01;
	/** The signature type byte of tlog-cosignature v1 keys (witnesses). */
	public const TYPE_COSIGNATURE = 0x04;
	public const SEED_BYTES = 32;
	public const KEY_ID_BYTES = 4;

	private readonly string $secretKey;
	public readonly string $publicKey;

	/**
	 * @param string $seed the 32-byte Ed25519 seed
	 * @throws \InvalidArgumentException a name the format refuses, or a seed of another length
	 */
	public function __construct(public readonly string $name, #[\SensitiveParameter] string $seed) {
		if (!self::isValidName($name)) {
			throw new \InvalidArgumentException('a key name must be non-empty UTF-8 without spaces, + or control characters');
		}
		if (strlen($seed) !== self::SEED_BYTES) {
			throw new \InvalidArgumentException('an Ed25519 seed is 32 bytes');
		}
		$pair = sodium_crypto_sign_seed_keypair($seed);
		$this->secretKey = sodium_crypto_sign_secretkey($pair);
		$this->publicKey = sodium_crypto_sign_publickey($pair);
	}

	/** A key name of signed notes: non-empty UTF-8 without a space, '+' or a control character. */
	public static function isValidName(string $name): bool {
		return $name !== '' && mb_check_encoding($name, 'UTF-8') && preg_match('/[ +\p{Cc}]/u', $name) === 0;
	}

	/** SHA-256(name ‖ "\n" ‖ type ‖ public key)[:4], raw. */
	public static function keyIdOf(string $name, int $type, string $publicKey): string {
		return substr(hash('sha256', $name . "\n" . chr($type) . $publicKey, true), 0, self::KEY_ID_BYTES);
	}

	/** This key's id, raw 4 bytes. */
	public function keyId(): string {
		return self::keyIdOf($this->name, self::TYPE_ED25519, $this->publicKey);
	}

	/** The C2SP verifier key: name+hex(key id)+base64(0x01 ‖ public key). */
	public function verifierKey(): string {
		return $this->name . '+' . bin2hex($this->keyId()) . '+' . Base64::encode(chr(self::TYPE_ED25519) . $this->publicKey);
	}

	/**
	 * The signature line of a note body (which must end with a newline):
	 * `— <name> base64(key id ‖ Ed25519 signature of the body)` and "\n".
	 */
	public function signatureLine(string $body): string {
		if (!str_ends_with($body, "\n")) {
			throw new \InvalidArgumentException('a note body ends with a newline');
		}
		$signature = sodium_crypto_sign_detached($body, $this->secretKey);
		return "\u{2014} {$this->name} " . Base64::encode($this->keyId() . $signature) . "\n";
	}

	/** The signed note: the body, a blank line, this key's signature line. */
	public function sign(string $body): string {
		return $body . "\n" . $this->signatureLine($body);
	}
}
