<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Service\CapabilityService;
use OCA\HarpBridge\Service\VersioningPolicy;
use OCA\HarpBridge\Tests\Support\FixedVersioning;
use PHPUnit\Framework\TestCase;

final class SettingsTest extends TestCase {
	public function testConfigPhpWinsOverTheAppConfig(): void {
		$policy = new VersioningPolicy(new FixedVersioning('server_authoritative', 'crdt'));
		$this->assertSame('server_authoritative', $policy->defaultMode());
		$this->assertSame("server_authoritative (config.php 'harp.versioning')", $policy->describe());
	}

	public function testTheAppConfigWinsOverTheBuiltInDefault(): void {
		$policy = new VersioningPolicy(new FixedVersioning(null, 'server_authoritative'));
		$this->assertSame('server_authoritative', $policy->defaultMode());
		$this->assertSame('server_authoritative (app config versioning)', $policy->describe());
	}

	public function testTheBuiltInDefaultIsCrdt(): void {
		$policy = new VersioningPolicy(new FixedVersioning());
		$this->assertSame('crdt', $policy->defaultMode());
		$this->assertSame('crdt (built-in default)', $policy->describe());
	}

	public function testUnknownValuesAreSkippedAndReported(): void {
		$policy = new VersioningPolicy(new FixedVersioning('lww', 'server_authoritative'));
		$this->assertSame('server_authoritative', $policy->defaultMode());
		$this->assertStringContainsString("config.php 'harp.versioning' ignored", $policy->describe());
		$policy = new VersioningPolicy(new FixedVersioning(true, 'Crdt'));
		$this->assertSame('crdt', $policy->defaultMode());
		$this->assertStringContainsString('app config versioning ignored', $policy->describe());
	}

	public function testCapabilities(): void {
		$capabilities = new CapabilityService(new VersioningPolicy(new FixedVersioning(null, 'server_authoritative')));
		$limits = ['max_body_bytes' => 16777216, 'max_change_bytes' => 1048576, 'max_addresses' => 16];
		$this->assertSame([
			'api_version' => 1,
			'user' => 'alice',
			'versioning' => 'server_authoritative',
			'login_flow_v2' => true,
			'limits' => $limits,
		], $capabilities->forUser('alice'));
		$this->assertSame([
			'api_version' => 1,
			'versioning' => 'server_authoritative',
			'login_flow_v2' => true,
			'limits' => $limits,
		], $capabilities->serverWide());
	}
}
