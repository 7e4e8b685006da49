<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Service\CapabilityService;
use OCA\HarpBridge\Service\LogKeyService;
use OCA\HarpBridge\Service\VersioningPolicy;
use OCA\HarpBridge\Tests\Support\FixedLogKey;
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
		$seed = str_repeat("\x01", 32);
		$logKey = new LogKeyService(new FixedLogKey(Base64::encode($seed), 'bridge.example'));
		$capabilities = new CapabilityService(new VersioningPolicy(new FixedVersioning(null, 'server_authoritative')), $logKey);
		$limits = ['max_body_bytes' => 16777216, 'max_change_bytes' => 1048576, 'max_addresses' => 16];
		$public = sodium_crypto_sign_publickey(sodium_crypto_sign_seed_keypair($seed));
		$verifierKey = 'bridge.example+' . substr(hash('sha256', "bridge.example\n\x01" . $public), 0, 8) . '+' . base64_encode("\x01" . $public);
		$this->assertSame([
			'api_version' => 1,
			'user' => 'alice',
			'versioning' => 'server_authoritative',
			'login_flow_v2' => true,
			'limits' => $limits,
			'log_key' => $verifierKey,
		], $capabilities->forUser('alice'));
		$this->assertSame([
			'api_version' => 1,
			'versioning' => 'server_authoritative',
			'login_flow_v2' => true,
			'limits' => $limits,
			'log_key' => $verifierKey,
		], $capabilities->serverWide());
		$this->assertArrayNotHasKey('log_key', $capabilities->serverWide(false));
	}
}
