<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/** The real clock. */
final class SystemClock implements Clock {
	public function now(): int {
		return time();
	}
}
