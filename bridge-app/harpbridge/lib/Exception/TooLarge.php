<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Exception;

/**
 * 413: a body over 16 MiB or a change over 1 MiB. The bridge refuses anything
 * big enough to carry file content.
 */
final class TooLarge extends BridgeError {
	public function errorCode(): string {
		return 'too_large';
	}

	public function httpStatus(): int {
		return 413;
	}
}
