<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Input;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\TooLarge;
use OCA\HarpBridge\Service\Limits;

/**
 * A JSON object from a request body, read field by field with the checks of
 * the API schemas. Every refusal is a 422 whose message starts with the field
 * (as a dotted path for nested objects), e.g. "wrapped_key.nonce: must be ...".
 *
 * Bodies are decoded to objects, not PHP arrays, so `{}` and `[]` stay apart.
 */
final class JsonObject {
	private function __construct(
		private readonly \stdClass $value,
		private readonly string $path,
	) {
	}

	/**
	 * Decodes a request body that must be one JSON object.
	 *
	 * @throws TooLarge over 16 MiB
	 * @throws Invalid not JSON, or not an object
	 */
	public static function parse(string $raw): self {
		if (strlen($raw) > Limits::MAX_BODY_BYTES) {
			throw new TooLarge('the body is over ' . Limits::MAX_BODY_BYTES . ' bytes');
		}
		try {
			$value = json_decode($raw, false, 64, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
		} catch (\JsonException) {
			throw new Invalid('body: not valid JSON');
		}
		if (!$value instanceof \stdClass) {
			throw new Invalid('body: must be a JSON object');
		}
		return new self($value, '');
	}

	/** The same as parse(json_encode($fields)), for callers that build bodies in PHP. */
	public static function fromArray(array $fields): self {
		return self::parse(json_encode((object)$fields, JSON_THROW_ON_ERROR));
	}

	/** The dotted path of one of this object's fields, for messages. */
	public function path(string $name): string {
		return $this->path === '' ? $name : $this->path . '.' . $name;
	}

	/**
	 * Refuses fields the schema does not name (`additionalProperties: false`).
	 *
	 * @throws Invalid
	 */
	public function allowOnly(string ...$names): void {
		foreach (array_keys(get_object_vars($this->value)) as $name) {
			if (!in_array((string)$name, $names, true)) {
				throw new Invalid($this->path((string)$name) . ': unknown field');
			}
		}
	}

	/** Whether the field is present with a value other than null. */
	public function has(string $name): bool {
		return property_exists($this->value, $name) && $this->value->{$name} !== null;
	}

	/** Whether the field is present, even as null. */
	public function isPresent(string $name): bool {
		return property_exists($this->value, $name);
	}

	/** @throws Invalid */
	public function string(string $name, int $minChars = 0, int $maxChars = PHP_INT_MAX): string {
		$value = $this->required($name);
		if (!is_string($value)) {
			throw new Invalid($this->path($name) . ': must be a string');
		}
		$chars = mb_strlen($value, 'UTF-8');
		if ($chars < $minChars) {
			throw new Invalid($this->path($name) . ($minChars === 1 ? ': must not be empty' : ": at least $minChars characters"));
		}
		if ($chars > $maxChars) {
			throw new Invalid($this->path($name) . ": at most $maxChars characters");
		}
		return $value;
	}

	/** The string, or null when the field is absent or null. @throws Invalid */
	public function optionalString(string $name, int $minChars = 0, int $maxChars = PHP_INT_MAX): ?string {
		return $this->has($name) ? $this->string($name, $minChars, $maxChars) : null;
	}

	/**
	 * A string that must be one of $allowed.
	 *
	 * @param list<string> $allowed
	 * @throws Invalid
	 */
	public function enum(string $name, array $allowed): string {
		$value = $this->required($name);
		if (!is_string($value) || !in_array($value, $allowed, true)) {
			throw new Invalid($this->path($name) . ': must be one of ' . implode(', ', $allowed));
		}
		return $value;
	}

	/** An integer (not a float, numeric string or boolean) within bounds. @throws Invalid */
	public function int(string $name, int $min = PHP_INT_MIN, int $max = PHP_INT_MAX): int {
		$value = $this->required($name);
		if (!is_int($value)) {
			throw new Invalid($this->path($name) . ': must be an integer');
		}
		if ($value < $min || $value > $max) {
			throw new Invalid($this->path($name) . ": must be between $min and $max");
		}
		return $value;
	}

	/** @throws Invalid */
	public function bool(string $name): bool {
		$value = $this->required($name);
		if (!is_bool($value)) {
			throw new Invalid($this->path($name) . ': must be true or false');
		}
		return $value;
	}

	/**
	 * A JSON array's items, unchecked, with its length checked.
	 *
	 * @return list<mixed>
	 * @throws Invalid
	 */
	public function list(string $name, int $minItems = 0, int $maxItems = PHP_INT_MAX): array {
		$value = $this->required($name);
		if (!is_array($value)) {
			throw new Invalid($this->path($name) . ': must be an array');
		}
		if (count($value) < $minItems) {
			throw new Invalid($this->path($name) . ": at least $minItems items");
		}
		if (count($value) > $maxItems) {
			throw new Invalid($this->path($name) . ": at most $maxItems items");
		}
		return array_values($value);
	}

	/**
	 * A list of strings.
	 *
	 * @return list<string>
	 * @throws Invalid
	 */
	public function stringList(string $name, int $maxItems, int $minChars = 0, int $maxChars = PHP_INT_MAX): array {
		$items = $this->list($name, 0, $maxItems);
		foreach ($items as $index => $item) {
			$where = $this->path($name) . "[$index]";
			if (!is_string($item)) {
				throw new Invalid("$where: must be a string");
			}
			$chars = mb_strlen($item, 'UTF-8');
			if ($chars < $minChars || $chars > $maxChars) {
				throw new Invalid("$where: must be $minChars to $maxChars characters");
			}
		}
		return $items;
	}

	/** A nested object. @throws Invalid */
	public function object(string $name): self {
		return self::wrap($this->required($name), $this->path($name));
	}

	/**
	 * An item of a list as an object, e.g. `entries[3]`.
	 *
	 * @throws Invalid
	 */
	public static function wrap(mixed $value, string $path): self {
		if (!$value instanceof \stdClass) {
			throw new Invalid("$path: must be an object");
		}
		return new self($value, $path);
	}

	/** The raw value of a field (null when absent). */
	public function raw(string $name): mixed {
		return property_exists($this->value, $name) ? $this->value->{$name} : null;
	}

	private function required(string $name): mixed {
		if (!$this->has($name)) {
			throw new Invalid($this->path($name) . ': required');
		}
		return $this->value->{$name};
	}
}
