<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Exception\Conflict;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Model\Outcome;
use OCA\HarpBridge\Service\Limits;
use OCA\HarpBridge\Service\Signatures;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\TestDevice;

final class DeviceServiceTest extends BridgeTestCase {
	private Bridge $bridge;

	protected function setUp(): void {
		$this->bridge = new Bridge();
	}

	private function register(string $userId, array $body): Outcome {
		return $this->bridge->devices->register($userId, JsonObject::fromArray($body));
	}

	public function testAGoodSignatureRegistersTheDevice(): void {
		$device = TestDevice::create();
		$outcome = $this->register('alice', $device->registration('alice', 'laptop'));
		$this->assertSame(201, $outcome->status);
		$this->assertSame([
			'device_id' => $device->id,
			'user' => 'alice',
			'name' => 'laptop',
			'x25519_public' => Base64::encode($device->x25519Public),
			'addresses' => [],
			'addresses_expire' => null,
		], $outcome->data);
		$this->assertSame([$outcome->data], $this->bridge->devices->listOwn('alice'));
		$this->assertSame([], $this->bridge->devices->listOwn('bob'));
	}

	public function testRegisteringAgainWithTheSameKeysIsIdempotent(): void {
		$device = TestDevice::create();
		$this->register('alice', $device->registration('alice', 'laptop'));
		$again = $this->register('alice', $device->registration('alice', 'laptop'));
		$this->assertSame(200, $again->status);
		$renamed = $this->register('alice', $device->registration('alice', 'work laptop'));
		$this->assertSame(200, $renamed->status);
		$this->assertSame('work laptop', $renamed->data['name']);
		$this->assertCount(1, $this->bridge->devices->listOwn('alice'));
	}

	public function testABadSignatureIsRefusedAndMarkedForThrottling(): void {
		$device = TestDevice::create();
		$body = $device->registration('alice');
		$body['signature'] = Base64::encode(random_bytes(64));
		$error = $this->assertRefused(Invalid::class, 'signature: does not verify', fn () => $this->register('alice', $body));
		$this->assertTrue($error instanceof Invalid && $error->isBadSignature());
		$this->assertSame([], $this->bridge->devices->listOwn('alice'));
	}

	public function testTheSignatureBindsTheUser(): void {
		$device = TestDevice::create();
		// Signed for bob, sent by alice: someone replaying bob's registration.
		$this->assertRefused(Invalid::class, 'signature: does not verify', fn () => $this->register('alice', $device->registration('bob')));
	}

	public function testTheSignatureBindsTheX25519Key(): void {
		$device = TestDevice::create();
		$body = $device->registration('alice');
		$body['x25519_public'] = Base64::encode(random_bytes(32));
		$this->assertRefused(Invalid::class, 'signature: does not verify', fn () => $this->register('alice', $body));
	}

	public function testADeviceOfAnotherUserIsAConflict(): void {
		$device = TestDevice::create();
		$this->register('alice', $device->registration('alice'));
		$this->assertRefused(Conflict::class, 'device_id: registered to another user', fn () => $this->register('bob', $device->registration('bob')));
		$this->assertSame('alice', $this->bridge->deviceStore->findDevice($device->id)?->userId);
	}

	public function testAnotherX25519KeyIsAConflict(): void {
		$device = TestDevice::create();
		$this->register('alice', $device->registration('alice'));
		// The same identity, correctly signed, with another X25519 key.
		$x25519 = random_bytes(32);
		$body = $device->registration('alice');
		$body['x25519_public'] = Base64::encode($x25519);
		$body['signature'] = Base64::encode($device->sign(Signatures::deviceRegistration('alice', $device->publicKey, $x25519)));
		$this->assertRefused(Conflict::class, 'x25519_public: the device is registered with another key', fn () => $this->register('alice', $body));
	}

	public function testMalformedFieldsAreNamed(): void {
		$device = TestDevice::create();
		$cases = [
			'device_id: must be 52 lowercase base32' => ['device_id' => strtoupper($device->id)],
			'name: must not be empty' => ['name' => ''],
			'name: at most 64 characters' => ['name' => str_repeat('n', 65)],
			'x25519_public: must be 32 bytes' => ['x25519_public' => Base64::encode(random_bytes(31))],
			'signature: must be 64 bytes' => ['signature' => 'AAAA'],
			'extra: unknown field' => ['extra' => true],
		];
		foreach ($cases as $message => $change) {
			$body = array_merge($device->registration('alice'), $change);
			$this->assertRefused(Invalid::class, $message, fn () => $this->register('alice', $body));
		}
		$body = $device->registration('alice');
		unset($body['name']);
		$this->assertRefused(Invalid::class, 'name: required', fn () => $this->register('alice', $body));
	}

	public function testAUserHasAtMostSixtyFourDevices(): void {
		for ($i = 0; $i < Limits::MAX_DEVICES_PER_USER; $i++) {
			$this->bridge->registerDevice('alice');
		}
		$this->assertRefused(Invalid::class, 'device_id: a user has at most 64 devices', fn () => $this->bridge->registerDevice('alice'));
	}

	public function testDevicesAreVisibleToTheirUserAndToUsersWhoShareAFolder(): void {
		$alice = $this->bridge->registerDevice('alice');
		$bob = $this->bridge->registerDevice('bob');
		$this->assertSame($alice->id, $this->bridge->devices->get('alice', $alice->id)['device_id']);
		$this->assertRefused(NotFound::class, 'no such device', fn () => $this->bridge->devices->get('bob', $alice->id));
		$this->assertRefused(NotFound::class, 'no such device', fn () => $this->bridge->devices->get('bob', TestDevice::create()->id));
		$this->assertRefused(NotFound::class, 'no such device', fn () => $this->bridge->devices->get('bob', 'not-an-id'));

		$folder = $this->bridge->createFolder('alice', $alice);
		$this->bridge->share('alice', $folder, 'bob');
		$this->assertSame('alice', $this->bridge->devices->get('bob', $alice->id)['user']);
		$this->assertSame('bob', $this->bridge->devices->get('alice', $bob->id)['user']);
		$this->assertRefused(NotFound::class, 'no such device', fn () => $this->bridge->devices->get('carol', $alice->id));
	}

	public function testRevokingDeletesTheDeviceAndItsWrappedKeys(): void {
		$laptop = $this->bridge->registerDevice('alice');
		$phone = $this->bridge->registerDevice('alice', 'phone');
		$folder = $this->bridge->createFolder('alice', $laptop);
		$this->bridge->keys->put('alice', $folder, $phone->id, JsonObject::fromArray($laptop->wrapFor($folder, $phone)));
		$this->assertSame(2, $this->bridge->keyStore->countKeys());

		$this->assertRefused(NotFound::class, 'no such device of yours', fn () => $this->bridge->devices->revoke('bob', $phone->id));
		$this->bridge->devices->revoke('alice', $phone->id);
		$this->assertNull($this->bridge->deviceStore->findDevice($phone->id));
		$this->assertSame(1, $this->bridge->keyStore->countKeys());
		$this->assertNull($this->bridge->keyStore->findKey($folder, $phone->id));
		$this->assertRefused(NotFound::class, 'no such device of yours', fn () => $this->bridge->devices->revoke('alice', $phone->id));
	}

	public function testAddressesArePublishedAndExpire(): void {
		$device = $this->bridge->registerDevice('alice');
		$addresses = ['/ip4/192.0.2.1/udp/4001/quic-v1/p2p/12D3KooWExample', '/ip6/2001:db8::1/tcp/4001/p2p/12D3KooWExample'];
		$this->bridge->devices->publishAddresses('alice', $device->id, JsonObject::fromArray(['addresses' => $addresses, 'ttl_seconds' => 60]));
		$now = $this->bridge->clock->now;
		$seen = $this->bridge->devices->get('alice', $device->id);
		$this->assertSame($addresses, $seen['addresses']);
		$this->assertSame($now + 60, $seen['addresses_expire']);

		$this->bridge->clock->now = $now + 60;
		$seen = $this->bridge->devices->get('alice', $device->id);
		$this->assertSame([], $seen['addresses']);
		$this->assertNull($seen['addresses_expire']);

		// Republishing replaces them.
		$this->bridge->devices->publishAddresses('alice', $device->id, JsonObject::fromArray(['addresses' => [$addresses[1]], 'ttl_seconds' => 3600]));
		$this->assertSame([$addresses[1]], $this->bridge->devices->get('alice', $device->id)['addresses']);
	}

	public function testAddressesAreCheckedForShapeAndCount(): void {
		$device = $this->bridge->registerDevice('alice');
		$publish = fn (array $body) => $this->bridge->devices->publishAddresses('alice', $device->id, JsonObject::fromArray($body));
		$ok = '/ip4/192.0.2.1/tcp/1/p2p/12D3KooWExample';
		$this->assertRefused(Invalid::class, 'addresses: at most 16 items', fn () => $publish(['addresses' => array_fill(0, 17, $ok), 'ttl_seconds' => 60]));
		$this->assertRefused(Invalid::class, 'addresses[0]: must be 4 to 256', fn () => $publish(['addresses' => ['/ip'], 'ttl_seconds' => 60]));
		$this->assertRefused(Invalid::class, 'addresses[0]: must be 4 to 256', fn () => $publish(['addresses' => ['/' . str_repeat('a', 256)], 'ttl_seconds' => 60]));
		$this->assertRefused(Invalid::class, 'addresses[1]: must be a multiaddr', fn () => $publish(['addresses' => [$ok, 'ip4 1.2.3.4'], 'ttl_seconds' => 60]));
		$this->assertRefused(Invalid::class, 'ttl_seconds: must be between 30 and 3600', fn () => $publish(['addresses' => [$ok], 'ttl_seconds' => 3601]));
		$this->assertRefused(Invalid::class, 'ttl_seconds: must be between 30 and 3600', fn () => $publish(['addresses' => [$ok], 'ttl_seconds' => 29]));
		$this->assertRefused(Invalid::class, 'port: unknown field', fn () => $publish(['addresses' => [$ok], 'ttl_seconds' => 60, 'port' => 1]));
		$publish(['addresses' => array_fill(0, 16, $ok), 'ttl_seconds' => 30]);
		$this->assertCount(16, $this->bridge->devices->get('alice', $device->id)['addresses']);
	}

	public function testOnlyTheOwnerPublishesADevicesAddresses(): void {
		$device = $this->bridge->registerDevice('alice');
		$body = JsonObject::fromArray(['addresses' => ['/ip4/192.0.2.1/tcp/1'], 'ttl_seconds' => 60]);
		$this->assertRefused(NotFound::class, 'no such device of yours', fn () => $this->bridge->devices->publishAddresses('bob', $device->id, $body));
	}
}
