<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Model\Folder;

/**
 * The server-wide default for new folders' versioning: config.php wins over the
 * app config, which wins over `crdt`. An unknown value (a typo) is skipped and
 * the next source decides; `harpbridge:status` shows which one did and what
 * was skipped, so a typo does not go unnoticed.
 */
final class VersioningPolicy {
	public const SYSTEM_KEY = 'harp.versioning';
	public const APP_KEY = 'versioning';
	public const BUILT_IN = Folder::VERSIONING_CRDT;

	public function __construct(private readonly VersioningSource $source) {
	}

	/** Where the default came from (`source` of state()). */
	public const FROM_SYSTEM = 'config.php';
	public const FROM_APP = 'app config';
	public const FROM_BUILT_IN = 'built-in';

	public function defaultMode(): string {
		return $this->decide()[0];
	}

	/** A line for admins: the mode and where it comes from. */
	public function describe(): string {
		[$mode, $origin] = $this->decide();
		return "$mode ($origin)";
	}

	/**
	 * The default for the admin settings: the mode, which source decided it
	 * (config.php wins, so the app config cannot change it then), the line
	 * describe() gives, and both configured values as they are.
	 *
	 * @return array{mode: string, source: string, origin: string, system_value: string|null, app_value: string|null}
	 */
	public function state(): array {
		[$mode, $origin, $source] = $this->decide();
		$system = $this->source->systemValue();
		return [
			'mode' => $mode,
			'source' => $source,
			'origin' => $origin,
			'system_value' => match (true) {
				$system === null => null,
				is_string($system) => $system,
				default => (string)json_encode($system),
			},
			'app_value' => $this->source->appValue(),
		];
	}

	/** Whether config.php decides the default, so the app config does not. */
	public function isSetInConfigPhp(): bool {
		return $this->decide()[2] === self::FROM_SYSTEM;
	}

	/** @return array{0: string, 1: string, 2: string} the mode, its origin and its source */
	private function decide(): array {
		$notes = [];
		$system = $this->source->systemValue();
		if ($system !== null && $system !== '') {
			if (is_string($system) && in_array($system, Folder::VERSIONING_MODES, true)) {
				return [$system, "config.php '" . self::SYSTEM_KEY . "'", self::FROM_SYSTEM];
			}
			$notes[] = "config.php '" . self::SYSTEM_KEY . "' ignored: not crdt or server_authoritative";
		}
		$app = $this->source->appValue();
		if ($app !== null && $app !== '') {
			if (in_array($app, Folder::VERSIONING_MODES, true)) {
				return [$app, implode('; ', [...$notes, 'app config ' . self::APP_KEY]), self::FROM_APP];
			}
			$notes[] = 'app config ' . self::APP_KEY . ' ignored: not crdt or server_authoritative';
		}
		return [self::BUILT_IN, implode('; ', [...$notes, 'built-in default']), self::FROM_BUILT_IN];
	}
}
