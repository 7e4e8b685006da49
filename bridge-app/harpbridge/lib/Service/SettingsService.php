<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Model\Folder;

/**
 * The admin settings' versioning default for new folders. The page changes
 * the app config, as `occ config:app:set harpbridge versioning` does; when
 * config.php sets 'harp.versioning' (validly) that value wins, so the page
 * shows it and a change is refused rather than stored without effect.
 */
final class SettingsService {
	public function __construct(
		private readonly VersioningPolicy $versioning,
		private readonly VersioningSource $source,
	) {
	}

	/**
	 * @return array{versioning: array<string, mixed>, versioning_modes: list<string>, system_key: string}
	 */
	public function get(): array {
		return [
			'versioning' => $this->versioning->state(),
			'versioning_modes' => Folder::VERSIONING_MODES,
			'system_key' => VersioningPolicy::SYSTEM_KEY,
		];
	}

	/**
	 * Sets the app config's default (body `{"versioning": MODE}`).
	 *
	 * @return array<string, mixed> the settings afterwards, as get()
	 * @throws Invalid not a mode, an unknown field, or config.php decides
	 */
	public function update(JsonObject $body): array {
		$body->allowOnly('versioning');
		$mode = $body->enum('versioning', Folder::VERSIONING_MODES);
		if ($this->versioning->isSetInConfigPhp()) {
			throw new Invalid("versioning: config.php '" . VersioningPolicy::SYSTEM_KEY . "' sets the default; change it there");
		}
		$this->source->storeAppValue($mode);
		return $this->get();
	}
}
