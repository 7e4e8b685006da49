<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Service\LogKeySource;

/** The app config and config.php values of the log key, in memory. */
final class FixedLogKey implements LogKeySource {
	public int $stores = 0;

	public function __construct(
		public ?string $key = null,
		public ?string $name = null,
		public ?string $url = null,
	) {
	}

	public function storedKey(): ?string {
		return $this->key;
	}

	public function storeKey(#[\SensitiveParameter] string $key): string {
		$this->stores++;
		$this->key = $key;
		return $this->key;
	}

	public function configuredName(): ?string {
		return $this->name;
	}

	public function serverUrl(): ?string {
		return $this->url;
	}
}
