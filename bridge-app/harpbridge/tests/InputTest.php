<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\TooLarge;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Service\Limits;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;

final class InputTest extends BridgeTestCase {
	public function testABodyMustBeOneJsonObject(): void {
		$this->assertRefused(Invalid::class, 'body: not valid JSON', fn () => JsonObject::parse('{"a":'));
		$this->assertRefused(Invalid::class, 'body: must be a JSON object', fn () => JsonObject::parse('[]'));
		$this->assertRefused(Invalid::class, 'body: must be a JSON object', fn () => JsonObject::parse('"x"'));
		$this->assertRefused(Invalid::class, 'body: not valid JSON', fn () => JsonObject::parse(''));
		$this->assertTrue(JsonObject::parse('{"a":1}')->has('a'));
	}

	public function testABodyOverSixteenMebibytesIsTooLarge(): void {
		$body = '{"a":"' . str_repeat('x', Limits::MAX_BODY_BYTES) . '"}';
		$this->assertRefused(TooLarge::class, 'the body is over', fn () => JsonObject::parse($body));
	}

	public function testUnknownFieldsAreNamed(): void {
		$body = JsonObject::parse('{"name":"x","extra":1}');
		$this->assertRefused(Invalid::class, 'extra: unknown field', fn () => $body->allowOnly('name'));
		$nested = JsonObject::parse('{"key":{"a":1,"b":2}}')->object('key');
		$this->assertRefused(Invalid::class, 'key.b: unknown field', fn () => $nested->allowOnly('a'));
	}

	public function testTypesAreStrict(): void {
		$body = JsonObject::parse('{"n":"5","f":5.0,"b":1,"s":5,"l":{},"o":[],"big":123456789012345678901234567890}');
		$this->assertRefused(Invalid::class, 'n: must be an integer', fn () => $body->int('n'));
		$this->assertRefused(Invalid::class, 'f: must be an integer', fn () => $body->int('f'));
		$this->assertRefused(Invalid::class, 'big: must be an integer', fn () => $body->int('big'));
		$this->assertRefused(Invalid::class, 'b: must be true or false', fn () => $body->bool('b'));
		$this->assertRefused(Invalid::class, 's: must be a string', fn () => $body->string('s'));
		$this->assertRefused(Invalid::class, 'l: must be an array', fn () => $body->list('l'));
		$this->assertRefused(Invalid::class, 'o: must be an object', fn () => $body->object('o'));
		$this->assertRefused(Invalid::class, 'missing: required', fn () => $body->string('missing'));
	}

	public function testLengthsCountCharactersNotBytes(): void {
		$body = JsonObject::fromArray(['name' => str_repeat('é', 64), 'long' => str_repeat('a', 65), 'empty' => '']);
		$this->assertSame(str_repeat('é', 64), $body->string('name', 1, 64));
		$this->assertRefused(Invalid::class, 'long: at most 64 characters', fn () => $body->string('long', 1, 64));
		$this->assertRefused(Invalid::class, 'empty: must not be empty', fn () => $body->string('empty', 1, 64));
	}

	public function testNullCountsAsAbsentForOptionalFields(): void {
		$body = JsonObject::parse('{"a":null}');
		$this->assertFalse($body->has('a'));
		$this->assertTrue($body->isPresent('a'));
		$this->assertNull($body->optionalString('a'));
	}

	public function testQueryStringsKeepRepeatedKeys(): void {
		$query = QueryString::parse('token=aa&token=bb&token%5B%5D=cc&q=caf%C3%A9+menu&limit=5');
		$this->assertSame(['aa', 'bb', 'cc'], $query->all('token'));
		$this->assertSame('café menu', $query->one('q'));
		$this->assertSame(5, $query->int('limit', 200, 1, 1000));
		$this->assertSame(200, $query->int('absent', 200, 1, 1000));
		$this->assertSame([], $query->all('absent'));
	}

	public function testQueryIntegersAreStrict(): void {
		foreach (['-1', '1.5', 'x', '01', '99999999999999999999'] as $value) {
			$query = QueryString::fromArray(['after' => $value]);
			$this->assertRefused(Invalid::class, 'after: must be an integer', fn () => $query->int('after', 0, 0, PHP_INT_MAX));
		}
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 1000', fn () => QueryString::fromArray(['limit' => '0'])->int('limit', 200, 1, 1000));
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 1000', fn () => QueryString::fromArray(['limit' => '1001'])->int('limit', 200, 1, 1000));
	}
}
