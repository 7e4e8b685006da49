<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/**
 * Where the server-wide versioning default is configured: config.php
 * ('harp.versioning') and the app config (`occ config:app:set harpbridge
 * versioning --value ...`).
 */
interface VersioningSource {
	/** The config.php value, or null when not set. */
	public function systemValue(): mixed;

	/** The app config value, or null when not set. */
	public function appValue(): ?string;

	/** Stores the app config value (the admin settings; `occ config:app:set` does the same). */
	public function storeAppValue(string $mode): void;
}
