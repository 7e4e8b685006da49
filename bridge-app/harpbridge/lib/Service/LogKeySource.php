<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/**
 * Where the bridge keeps its log key and finds its name: the app config
 * (`log_key`, made on first use; `log_name`, set by an admin) and config.php
 * (`overwrite.cli.url`).
 */
interface LogKeySource {
	/** The stored key, base64 of the 32-byte Ed25519 seed, or null when none is stored yet. */
	public function storedKey(): ?string;

	/**
	 * Stores a key made on first use and answers the key stored afterwards
	 * (the last of two requests that made one at the same time wins, and both
	 * go on with it).
	 */
	public function storeKey(#[\SensitiveParameter] string $key): string;

	/** The app config `log_name`, or null when not set. */
	public function configuredName(): ?string;

	/** config.php 'overwrite.cli.url', or null when not set. */
	public function serverUrl(): ?string;
}
