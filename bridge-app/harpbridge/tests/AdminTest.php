<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\ChainWriter;
use OCA\HarpBridge\Tests\Support\TestDevice;

/**
 * What the admin settings read and change (AdminController; that only admins
 * reach it is its attributes' job, checked in AppStructureTest): the
 * versioning default, the witnesses seen, every device and its revocation.
 */
final class AdminTest extends BridgeTestCase {
	private Bridge $bridge;

	protected function setUp(): void {
		$this->bridge = new Bridge();
	}

	public function testTheSettingsShowTheVersioningDefaultAndWhereItComesFrom(): void {
		$this->assertSame([
			'versioning' => [
				'mode' => 'crdt',
				'source' => 'built-in',
				'origin' => 'built-in default',
				'system_value' => null,
				'app_value' => null,
			],
			'versioning_modes' => ['crdt', 'server_authoritative'],
			'system_key' => 'harp.versioning',
		], $this->bridge->settings->get());
	}

	public function testTheAdminSetsTheDefaultInTheAppConfig(): void {
		$after = $this->bridge->settings->update(JsonObject::fromArray(['versioning' => 'server_authoritative']));
		$this->assertSame('server_authoritative', $this->bridge->versioningSource->app);
		$this->assertSame(['mode' => 'server_authoritative', 'source' => 'app config', 'origin' => 'app config versioning', 'system_value' => null, 'app_value' => 'server_authoritative'], $after['versioning']);
		$this->assertSame($after, $this->bridge->settings->get());
		// New folders get it.
		$laptop = $this->bridge->registerDevice('alice');
		$folder = $this->bridge->createFolder('alice', $laptop);
		$this->assertSame('server_authoritative', $this->bridge->folders->get('alice', $folder)['versioning']);
		$this->assertSame('server_authoritative', $this->bridge->capabilities->forUser('alice')['versioning']);
		$this->bridge->settings->update(JsonObject::fromArray(['versioning' => 'crdt']));
		$this->assertSame('crdt', $this->bridge->versioning->defaultMode());
	}

	public function testConfigPhpWinsAndTheAdminSettingsCannotChangeIt(): void {
		$this->bridge->versioningSource->system = 'server_authoritative';
		$this->bridge->versioningSource->app = 'crdt';
		$state = $this->bridge->settings->get()['versioning'];
		$this->assertSame(['mode' => 'server_authoritative', 'source' => 'config.php', 'origin' => "config.php 'harp.versioning'", 'system_value' => 'server_authoritative', 'app_value' => 'crdt'], $state);
		$this->assertRefused(Invalid::class, "versioning: config.php 'harp.versioning' sets the default", fn () => $this->bridge->settings->update(JsonObject::fromArray(['versioning' => 'crdt'])));
		$this->assertSame('crdt', $this->bridge->versioningSource->app, 'nothing stored');
	}

	public function testAnUnknownConfigPhpValueIsSkippedSoTheAdminSettingsDecide(): void {
		$this->bridge->versioningSource->system = ['lww'];
		$state = $this->bridge->settings->get()['versioning'];
		$this->assertSame('built-in', $state['source']);
		$this->assertSame('["lww"]', $state['system_value']);
		$this->assertStringContainsString("config.php 'harp.versioning' ignored", $state['origin']);
		$after = $this->bridge->settings->update(JsonObject::fromArray(['versioning' => 'server_authoritative']));
		$this->assertSame('app config', $after['versioning']['source']);
	}

	public function testTheSettingsBodyIsChecked(): void {
		$this->assertRefused(Invalid::class, 'versioning: must be one of', fn () => $this->bridge->settings->update(JsonObject::fromArray(['versioning' => 'lww'])));
		$this->assertRefused(Invalid::class, 'versioning: required', fn () => $this->bridge->settings->update(JsonObject::fromArray([])));
		$this->assertRefused(Invalid::class, 'log_name', fn () => $this->bridge->settings->update(JsonObject::fromArray(['versioning' => 'crdt', 'log_name' => 'x'])));
		$this->assertNull($this->bridge->versioningSource->app);
	}

	public function testWitnessesAreListedWithTheNewestSizeTheyCosignedOfEachLog(): void {
		$laptop = $this->bridge->registerDevice('alice');
		$first = $this->bridge->createFolder('alice', $laptop);
		$second = $this->bridge->createFolder('alice', $laptop);
		$this->appendEntries($laptop, $first, 3);
		$this->appendEntries($laptop, $second, 1);
		$w1 = "\x01\x02\x03\x04";
		$this->cosign($first, 1, 'witness.example/w1', $w1);
		$this->cosign($first, 2, 'witness.example/w1', $w1);
		$this->cosign($second, 1, 'witness.example/w1', $w1);
		$this->cosign($first, 3, 'other.example', "\xff\xee\xdd\xcc");
		// The same name with another key is another witness key.
		$this->cosign($first, 1, 'witness.example/w1', "\x09\x09\x09\x09");

		$logs = [$first, $second];
		sort($logs);
		$expectedW1 = array_map(static fn (string $folder): array => [
			'folder_id' => $folder,
			'size' => $folder === $first ? 2 : 1,
			'log_size' => $folder === $first ? 3 : 1,
		], $logs);
		$this->assertSame([
			['name' => 'other.example', 'key_id' => 'ffeeddcc', 'newest_size' => 3, 'logs' => [['folder_id' => $first, 'size' => 3, 'log_size' => 3]]],
			['name' => 'witness.example/w1', 'key_id' => '01020304', 'newest_size' => 2, 'logs' => $expectedW1],
			['name' => 'witness.example/w1', 'key_id' => '09090909', 'newest_size' => 1, 'logs' => [['folder_id' => $first, 'size' => 1, 'log_size' => 3]]],
		], $this->bridge->log->witnesses());
	}

	public function testNoWitnessesBeforeAnyCosignature(): void {
		$this->assertSame([], $this->bridge->log->witnesses());
	}

	public function testEveryDeviceIsListedWithItsLastAddressPublication(): void {
		$laptop = $this->bridge->registerDevice('alice', 'laptop');
		$desktop = $this->bridge->registerDevice('bob', 'desktop');
		$now = $this->bridge->clock->now;
		$address = '/ip4/192.0.2.7/udp/4001/quic-v1/p2p/12D3KooWExample';
		$this->bridge->devices->publishAddresses('bob', $desktop->id, JsonObject::fromArray(['addresses' => [$address], 'ttl_seconds' => 600]));
		$this->assertSame([
			['device_id' => $laptop->id, 'user' => 'alice', 'name' => 'laptop', 'addresses' => [], 'addresses_expire' => null, 'addresses_published' => null],
			['device_id' => $desktop->id, 'user' => 'bob', 'name' => 'desktop', 'addresses' => [$address], 'addresses_expire' => $now + 600, 'addresses_published' => $now],
		], $this->bridge->devices->listAllForAdmin());
		// Stale addresses go, the time of the publication stays.
		$this->bridge->clock->now = $now + 601;
		$this->assertSame(['addresses' => [], 'addresses_expire' => null, 'addresses_published' => $now], array_slice($this->bridge->devices->listAllForAdmin()[1], 3));
		// The API form of devices is unchanged.
		$this->assertArrayNotHasKey('addresses_published', $this->bridge->devices->get('bob', $desktop->id));
	}

	public function testAnAdminRevokesAnyDeviceAndItsWrappedKeys(): void {
		$laptop = $this->bridge->registerDevice('alice', 'laptop');
		$phone = $this->bridge->registerDevice('alice', 'phone');
		$folder = $this->bridge->createFolder('alice', $laptop);
		$this->bridge->keys->put('alice', $folder, $phone->id, JsonObject::fromArray($laptop->wrapFor($folder, $phone)));
		$this->assertSame(2, $this->bridge->keyStore->countKeys());

		$this->bridge->devices->revokeAsAdmin($phone->id);
		$this->assertNull($this->bridge->deviceStore->findDevice($phone->id));
		$this->assertNull($this->bridge->keyStore->findKey($folder, $phone->id));
		$this->assertSame(1, $this->bridge->keyStore->countKeys());
		$this->assertSame([$laptop->id], array_column($this->bridge->devices->listAllForAdmin(), 'device_id'));
		$this->assertRefused(NotFound::class, 'no such device', fn () => $this->bridge->devices->revokeAsAdmin($phone->id));
		$this->assertRefused(NotFound::class, 'no such device', fn () => $this->bridge->devices->revokeAsAdmin('not-a-device'));
	}

	private function appendEntries(TestDevice $device, string $folderId, int $count): void {
		$fileId = bin2hex(random_bytes(16));
		$writer = new ChainWriter($folderId, $fileId);
		for ($i = 0; $i < $count; $i++) {
			$this->bridge->entries->append('alice', $folderId, $fileId, JsonObject::fromArray($writer->next($device)));
		}
	}

	private function cosign(string $folderId, int $size, string $name, string $keyId): void {
		$line = "\u{2014} $name " . base64_encode($keyId . random_bytes(72));
		$this->bridge->log->addCosignature('alice', $folderId, JsonObject::fromArray(['size' => $size, 'cosignature' => $line]));
	}
}
