<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Log\NoteKey;

/**
 * The key the bridge signs its checkpoints with: Ed25519, made on first use
 * and kept in the app config. Its name is the app config `log_name`, else the
 * host of config.php's `overwrite.cli.url`, else `nextcloud`; a name the
 * signed-note format refuses (a space, '+', a control character) is skipped
 * and the next source decides.
 */
final class LogKeyService {
	public const APP_KEY_NAME = 'log_name';
	public const APP_KEY_SECRET = 'log_key';
	public const SYSTEM_KEY_URL = 'overwrite.cli.url';
	public const DEFAULT_NAME = 'nextcloud';

	private ?NoteKey $key = null;

	public function __construct(private readonly LogKeySource $source) {
	}

	/** @throws \RuntimeException the stored key is not base64 of a 32-byte seed */
	public function key(): NoteKey {
		if ($this->key === null) {
			$stored = $this->source->storedKey() ?? $this->source->storeKey(Base64::encode(random_bytes(NoteKey::SEED_BYTES)));
			$seed = Base64::decodeExact($stored, NoteKey::SEED_BYTES);
			if ($seed === null) {
				throw new \RuntimeException('app config harpbridge ' . self::APP_KEY_SECRET . ' is not base64 of a 32-byte Ed25519 seed');
			}
			$this->key = new NoteKey($this->name(), $seed);
		}
		return $this->key;
	}

	/** The C2SP verifier key of the checkpoint signatures, for the capabilities. */
	public function verifierKey(): string {
		return $this->key()->verifierKey();
	}

	public function name(): string {
		$configured = $this->source->configuredName();
		if ($configured !== null && NoteKey::isValidName($configured)) {
			return $configured;
		}
		$host = $this->hostOf($this->source->serverUrl());
		if ($host !== null && NoteKey::isValidName($host)) {
			return $host;
		}
		return self::DEFAULT_NAME;
	}

	/** The host of a URL, also of one written without a scheme ("cloud.example.org/nc"). */
	private function hostOf(?string $url): ?string {
		$url = trim((string)$url);
		if ($url === '') {
			return null;
		}
		$host = parse_url(str_contains($url, '://') ? $url : 'https://' . $url, PHP_URL_HOST);
		return is_string($host) && $host !== '' ? strtolower($host) : null;
	}
}
