<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Exception;

/**
 * A refusal the API contract names: each subclass is one error code with its
 * HTTP status, and the controllers turn it into `{"error": CODE, "message": TEXT}`.
 */
abstract class BridgeError extends \RuntimeException {
	/** The `error` code of the API (not_found, invalid, conflict, too_large). */
	abstract public function errorCode(): string;

	abstract public function httpStatus(): int;

	/** @return array<string, mixed> the error `data` of the response */
	public function toApi(): array {
		return ['error' => $this->errorCode(), 'message' => $this->getMessage()];
	}
}
