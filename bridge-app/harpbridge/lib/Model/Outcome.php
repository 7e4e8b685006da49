<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * A service answer whose HTTP status is part of the rule, e.g. 201 for a new
 * device or chain entry and 200 for a replay of one already stored.
 */
final class Outcome {
	public const OK = 200;
	public const CREATED = 201;

	public function __construct(
		public readonly mixed $data,
		public readonly int $status,
	) {
	}

	public static function created(mixed $data): self {
		return new self($data, self::CREATED);
	}

	public static function ok(mixed $data): self {
		return new self($data, self::OK);
	}
}
