<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Exception;

/**
 * 404: does not exist, or the caller may not see it. Both answer the same way
 * so ids cannot be probed.
 */
final class NotFound extends BridgeError {
	public function errorCode(): string {
		return 'not_found';
	}

	public function httpStatus(): int {
		return 404;
	}
}
