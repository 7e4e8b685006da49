<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Input;

use OCA\HarpBridge\Exception\Invalid;

/**
 * The query parameters of a request, read from the raw query string.
 *
 * PHP's own parsing keeps only the last of repeated keys, but the API's array
 * parameters (`token`) come as `token=a&token=b` (OpenAPI's default form
 * style); `token[]=a&token[]=b` is accepted too.
 */
final class QueryString {
	/** @param array<string, list<string>> $values */
	private function __construct(private readonly array $values) {
	}

	public static function parse(string $query): self {
		$values = [];
		foreach (explode('&', $query) as $pair) {
			if ($pair === '') {
				continue;
			}
			[$key, $value] = array_pad(explode('=', $pair, 2), 2, '');
			$key = urldecode($key);
			if (str_ends_with($key, '[]')) {
				$key = substr($key, 0, -2);
			}
			$values[$key][] = urldecode($value);
		}
		return new self($values);
	}

	/** @param array<string, string|list<string>> $values for callers that have them parsed */
	public static function fromArray(array $values): self {
		$normalized = [];
		foreach ($values as $key => $value) {
			$normalized[(string)$key] = is_array($value) ? array_values(array_map('strval', $value)) : [(string)$value];
		}
		return new self($normalized);
	}

	/** The parameter's value (the last one when repeated), or null. */
	public function one(string $name): ?string {
		$all = $this->values[$name] ?? [];
		return $all === [] ? null : $all[count($all) - 1];
	}

	/** @return list<string> every value of a repeated parameter */
	public function all(string $name): array {
		return $this->values[$name] ?? [];
	}

	/**
	 * A decimal integer parameter within bounds, or $default when absent.
	 *
	 * @throws Invalid
	 */
	public function int(string $name, int $default, int $min, int $max): int {
		$value = $this->one($name);
		if ($value === null || $value === '') {
			return $default;
		}
		if (preg_match('/^(0|[1-9][0-9]{0,17})$/D', $value) !== 1) {
			throw new Invalid("$name: must be an integer");
		}
		$number = (int)$value;
		if ($number < $min || $number > $max) {
			throw new Invalid("$name: must be between $min and $max");
		}
		return $number;
	}

	/**
	 * A decimal integer parameter that must be given, within bounds.
	 *
	 * @throws Invalid
	 */
	public function requiredInt(string $name, int $min, int $max): int {
		$value = $this->one($name);
		if ($value === null || $value === '') {
			throw new Invalid("$name: required");
		}
		return $this->int($name, $min, $min, $max);
	}
}
