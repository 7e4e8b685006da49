<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Log;

use OCA\HarpBridge\Codec\Base64;

/**
 * A witness's C2SP tlog-cosignature v1 line as the bridge can check it without
 * the witness's key: `— <name> <base64 of key id (4) ‖ timestamp (8) ‖
 * Ed25519 signature (64)>`. Only clients, which know the witnesses' keys,
 * can check the signature.
 */
final class CosignatureLine {
	public const PAYLOAD_BYTES = NoteKey::KEY_ID_BYTES + 8 + SODIUM_CRYPTO_SIGN_BYTES;
	private const DASH = "\u{2014} ";

	private function __construct(
		public readonly string $name,
		/** raw 4 bytes */
		public readonly string $keyId,
		/** the base64 text of key id ‖ timestamp ‖ signature */
		public readonly string $payload,
	) {
	}

	/**
	 * Reads a line (one trailing newline allowed).
	 *
	 * @throws \InvalidArgumentException the reason, for a 422 message
	 */
	public static function parse(string $text): self {
		if (str_ends_with($text, "\n")) {
			$text = substr($text, 0, -1);
		}
		if (!str_starts_with($text, self::DASH)) {
			throw new \InvalidArgumentException("must start with '\u{2014} ' (U+2014 and a space)");
		}
		$fields = explode(' ', substr($text, strlen(self::DASH)));
		if (count($fields) !== 2) {
			throw new \InvalidArgumentException("must be '\u{2014} <name> <base64>', separated by single spaces");
		}
		[$name, $payload] = $fields;
		if (!NoteKey::isValidName($name)) {
			throw new \InvalidArgumentException('the name must be non-empty UTF-8 without +, spaces or control characters');
		}
		$bytes = Base64::decodeExact($payload, self::PAYLOAD_BYTES);
		if ($bytes === null) {
			throw new \InvalidArgumentException('the signature must be base64 of ' . self::PAYLOAD_BYTES . ' bytes (key id, timestamp, signature)');
		}
		return new self($name, substr($bytes, 0, NoteKey::KEY_ID_BYTES), $payload);
	}

	/** The line as the note carries it, newline-terminated. */
	public function text(): string {
		return self::DASH . $this->name . ' ' . $this->payload . "\n";
	}
}
