<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Service\Clock;

final class FixedClock implements Clock {
	public function __construct(public int $now = 1_763_700_000) {
	}

	public function now(): int {
		return $this->now;
	}
}
