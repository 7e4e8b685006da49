<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Exception;

/**
 * 422: a malformed or forbidden field (the message names it) or a chain check
 * that failed (the message is the chain error code).
 */
final class Invalid extends BridgeError {
	private bool $badSignature = false;

	/**
	 * A signature that does not verify: a failed proof of holding a key, which
	 * the controllers report to Nextcloud's brute-force throttle.
	 */
	public static function badSignature(string $message): self {
		$error = new self($message);
		$error->badSignature = true;
		return $error;
	}

	public function isBadSignature(): bool {
		return $this->badSignature;
	}

	public function errorCode(): string {
		return 'invalid';
	}

	public function httpStatus(): int {
		return 422;
	}
}
