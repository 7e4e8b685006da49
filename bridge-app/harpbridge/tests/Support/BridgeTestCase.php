<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Exception\BridgeError;
use PHPUnit\Framework\TestCase;

abstract class BridgeTestCase extends TestCase {
	/**
	 * Runs $action and checks that it is refused with $class, whose message
	 * starts with $message (messages start with the field or the chain code).
	 *
	 * @param class-string<BridgeError> $class
	 */
	protected function assertRefused(string $class, string $message, callable $action): BridgeError {
		try {
			$action();
		} catch (BridgeError $error) {
			$this->assertInstanceOf($class, $error, $error->getMessage());
			$this->assertStringStartsWith($message, $error->getMessage());
			return $error;
		}
		$this->fail("expected $class ($message), nothing was refused");
	}
}
