<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/** The time in Unix seconds, an interface so tests can move it. */
interface Clock {
	public function now(): int;
}
