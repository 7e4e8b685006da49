<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Service\VersioningSource;

final class FixedVersioning implements VersioningSource {
	public function __construct(public mixed $system = null, public ?string $app = null) {
	}

	public function systemValue(): mixed {
		return $this->system;
	}

	public function appValue(): ?string {
		return $this->app;
	}

	public function storeAppValue(string $mode): void {
		$this->app = $mode;
	}
}
