<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Nextcloud;

use OCA\HarpBridge\AppInfo\Application;
use OCA\HarpBridge\Service\LogKeyService;
use OCA\HarpBridge\Service\LogKeySource;
use OCP\Exceptions\AppConfigTypeConflictException;
use OCP\IAppConfig;
use OCP\IConfig;

/**
 * The log key in the app config: `log_key` is lazy (read only when a
 * checkpoint is signed or the capabilities are asked for) and sensitive
 * (hidden from reports, encrypted in the database where Nextcloud does so).
 * `log_name` is what an admin sets with `occ config:app:set harpbridge
 * log_name --value NAME`.
 */
class NextcloudLogKeySource implements LogKeySource {
	public function __construct(
		private readonly IConfig $config,
		private readonly IAppConfig $appConfig,
	) {
	}

	/** @throws \RuntimeException stored with another type (e.g. `--type=integer`) */
	public function storedKey(): ?string {
		try {
			$value = $this->appConfig->getValueString(Application::APP_ID, LogKeyService::APP_KEY_SECRET, '', true);
		} catch (AppConfigTypeConflictException $e) {
			throw new \RuntimeException('app config harpbridge ' . LogKeyService::APP_KEY_SECRET . ' is not a string', 0, $e);
		}
		return $value === '' ? null : $value;
	}

	public function storeKey(#[\SensitiveParameter] string $key): string {
		$this->appConfig->setValueString(Application::APP_ID, LogKeyService::APP_KEY_SECRET, $key, true, true);
		// Read it back from the database: another request may have stored its key last.
		$this->appConfig->clearCache();
		return $this->storedKey() ?? $key;
	}

	public function configuredName(): ?string {
		try {
			// Lazy or not, as the admin set it: the lazy values are loaded for the key anyway.
			$value = $this->appConfig->getValueString(Application::APP_ID, LogKeyService::APP_KEY_NAME, '', true);
		} catch (AppConfigTypeConflictException) {
			return null;
		}
		return $value === '' ? null : $value;
	}

	public function serverUrl(): ?string {
		$url = $this->config->getSystemValueString(LogKeyService::SYSTEM_KEY_URL, '');
		return $url === '' ? null : $url;
	}
}
