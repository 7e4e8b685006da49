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

	public function defaultMode(): string {
		return $this->decide()[0];
	}

	/** A line for admins: the mode and where it comes from. */
	public function describe(): string {
		[$mode, $origin] = $this->decide();
		return "$mode ($origin)";
	}

	/** @return array{0: string, 1: string} the mode and its origin */
	private function decide(): array {
		$notes = [];
		$system = $this->source->systemValue();
		if ($system !== null && $system !== '') {
			if (is_string($system) && in_array($system, Folder::VERSIONING_MODES, true)) {
				return [$system, "config.php '" . self::SYSTEM_KEY . "'"];
			}
			$notes[] = "config.php '" . self::SYSTEM_KEY . "' ignored: not crdt or server_authoritative";
		}
		$app = $this->source->appValue();
		if ($app !== null && $app !== '') {
			if (in_array($app, Folder::VERSIONING_MODES, true)) {
				return [$app, implode('; ', [...$notes, 'app config ' . self::APP_KEY])];
			}
			$notes[] = 'app config ' . self::APP_KEY . ' ignored: not crdt or server_authoritative';
		}
		return [self::BUILT_IN, implode('; ', [...$notes, 'built-in default'])];
	}
}
