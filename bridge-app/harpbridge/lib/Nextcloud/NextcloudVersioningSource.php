<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Nextcloud;

use OCA\HarpBridge\AppInfo\Application;
use OCA\HarpBridge\Service\VersioningPolicy;
use OCA\HarpBridge\Service\VersioningSource;
use OCP\Exceptions\AppConfigTypeConflictException;
use OCP\IAppConfig;
use OCP\IConfig;

/**
 * The versioning default as an admin sets it: `'harp.versioning'` in
 * config.php, or `occ config:app:set harpbridge versioning --value ...`.
 */
class NextcloudVersioningSource implements VersioningSource {
	public function __construct(
		private readonly IConfig $config,
		private readonly IAppConfig $appConfig,
	) {
	}

	public function systemValue(): mixed {
		return $this->config->getSystemValue(VersioningPolicy::SYSTEM_KEY, null);
	}

	public function appValue(): ?string {
		try {
			$value = $this->appConfig->getValueString(Application::APP_ID, VersioningPolicy::APP_KEY, '');
		} catch (AppConfigTypeConflictException) {
			// Stored with another type (e.g. `--type=integer`): not a mode either way.
			return '(not a string)';
		}
		return $value === '' ? null : $value;
	}

	public function storeAppValue(string $mode): void {
		try {
			$this->appConfig->setValueString(Application::APP_ID, VersioningPolicy::APP_KEY, $mode);
		} catch (AppConfigTypeConflictException) {
			// Stored with another type before: the admin's choice replaces it.
			$this->appConfig->deleteKey(Application::APP_ID, VersioningPolicy::APP_KEY);
			$this->appConfig->setValueString(Application::APP_ID, VersioningPolicy::APP_KEY, $mode);
		}
	}
}
