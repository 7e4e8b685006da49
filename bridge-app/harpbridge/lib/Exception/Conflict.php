<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Exception;

/**
 * 409: the request clashes with what is stored (an id taken, a head that
 * moved). $details go into the error data next to `error` and `message`, e.g.
 * the current `head` and `seq` a writer must rebase on.
 */
final class Conflict extends BridgeError {
	/** @param array<string, mixed> $details */
	public function __construct(string $message, private readonly array $details = []) {
		parent::__construct($message);
	}

	/** @return array<string, mixed> */
	public function details(): array {
		return $this->details;
	}

	public function errorCode(): string {
		return 'conflict';
	}

	public function httpStatus(): int {
		return 409;
	}

	public function toApi(): array {
		return parent::toApi() + $this->details;
	}
}
