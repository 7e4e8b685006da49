<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\TestDevice;

final class WrappedKeyServiceTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;
	private TestDevice $bobPhone;
	private string $folderId;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
		$this->bobPhone = $this->bridge->registerDevice('bob', 'phone');
		$this->folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->bridge->share('alice', $this->folderId, 'bob');
	}

	private function put(string $userId, string $deviceId, array $body): void {
		$this->bridge->keys->put($userId, $this->folderId, $deviceId, JsonObject::fromArray($body));
	}

	public function testAMemberDeviceWrapsForAnotherMembersDevice(): void {
		$body = $this->laptop->wrapFor($this->folderId, $this->bobPhone);
		$this->put('alice', $this->bobPhone->id, $body);
		$this->assertSame($body, $this->bridge->keys->get('bob', $this->folderId, $this->bobPhone->id));
	}

	public function testAnyMemberMayStoreAKeyAndANewOneReplacesIt(): void {
		$bobLaptop = $this->bridge->registerDevice('bob', 'laptop');
		$first = $this->bobPhone->wrapFor($this->folderId, $bobLaptop);
		$this->put('bob', $bobLaptop->id, $first);
		$second = $this->laptop->wrapFor($this->folderId, $bobLaptop);
		$this->put('alice', $bobLaptop->id, $second);
		$this->assertSame($second, $this->bridge->keys->get('bob', $this->folderId, $bobLaptop->id));
	}

	public function testAMemberCannotStoreAKeyVouchedForByAnotherUsersDevice(): void {
		// Alice's laptop signed it, but Bob sends it: refused, as by the Rust bridge,
		// whatever device it is for and even though the signature verifies.
		foreach ([$this->laptop, $this->bobPhone] as $recipient) {
			$body = $this->laptop->wrapFor($this->folderId, $recipient);
			$error = $this->assertRefused(Invalid::class, 'wrapped_by: not a registered device of yours', fn () => $this->put('bob', $recipient->id, $body));
			$this->assertFalse($error instanceof Invalid && $error->isBadSignature(), 'not a failed proof');
		}
		$this->assertRefused(NotFound::class, 'no key for that device yet', fn () => $this->bridge->keys->get('bob', $this->folderId, $this->bobPhone->id));
	}

	public function testAForgedVoucherIsRefused(): void {
		$body = $this->laptop->wrapFor($this->folderId, $this->bobPhone);
		$body['ciphertext'] = base64_encode(random_bytes(48));
		$error = $this->assertRefused(Invalid::class, 'signature: does not verify', fn () => $this->put('alice', $this->bobPhone->id, $body));
		$this->assertTrue($error instanceof Invalid && $error->isBadSignature());
		$this->assertRefused(NotFound::class, 'no key for that device yet', fn () => $this->bridge->keys->get('bob', $this->folderId, $this->bobPhone->id));
	}

	public function testTheSignatureCoversTheFolder(): void {
		$body = $this->laptop->wrapFor(bin2hex(random_bytes(16)), $this->bobPhone);
		$this->assertRefused(Invalid::class, 'signature: does not verify', fn () => $this->put('alice', $this->bobPhone->id, $body));
	}

	public function testTheTargetMustBeADeviceOfAMember(): void {
		$carolDevice = $this->bridge->registerDevice('carol');
		$this->assertRefused(NotFound::class, 'no such device of a member', fn () => $this->put('alice', $carolDevice->id, $this->laptop->wrapFor($this->folderId, $carolDevice)));
		$unregistered = TestDevice::create();
		$this->assertRefused(NotFound::class, 'no such device of a member', fn () => $this->put('alice', $unregistered->id, $this->laptop->wrapFor($this->folderId, $unregistered)));
	}

	public function testTheVoucherMustBeADeviceOfTheCaller(): void {
		$carolDevice = $this->bridge->registerDevice('carol');
		$this->assertRefused(Invalid::class, 'wrapped_by: not a registered device of yours', fn () => $this->put('alice', $this->bobPhone->id, $carolDevice->wrapFor($this->folderId, $this->bobPhone)));
		$this->assertRefused(Invalid::class, 'wrapped_by: not a registered device of yours', fn () => $this->put('alice', $this->bobPhone->id, TestDevice::create()->wrapFor($this->folderId, $this->bobPhone)));
		// Checked before the recipient, as in the Rust bridge: 422, not 404.
		$this->assertRefused(Invalid::class, 'wrapped_by: not a registered device of yours', fn () => $this->put('alice', $carolDevice->id, $carolDevice->wrapFor($this->folderId, $carolDevice)));
	}

	public function testThePathAndBodyNameOneDevice(): void {
		$bobLaptop = $this->bridge->registerDevice('bob', 'laptop');
		$this->assertRefused(Invalid::class, 'device_id: must be the device of the path', fn () => $this->put('alice', $bobLaptop->id, $this->laptop->wrapFor($this->folderId, $this->bobPhone)));
	}

	public function testMalformedFields(): void {
		foreach (['ephemeral_public' => 31, 'nonce' => 23, 'ciphertext' => 32, 'signature' => 63] as $field => $bytes) {
			$body = $this->laptop->wrapFor($this->folderId, $this->bobPhone);
			$body[$field] = base64_encode(random_bytes($bytes));
			$this->assertRefused(Invalid::class, "$field: must be", fn () => $this->put('alice', $this->bobPhone->id, $body));
		}
		$body = $this->laptop->wrapFor($this->folderId, $this->bobPhone) + ['folder_id' => $this->folderId];
		$this->assertRefused(Invalid::class, 'folder_id: unknown field', fn () => $this->put('alice', $this->bobPhone->id, $body));
	}

	public function testADeviceGetsOnlyItsOwnKeys(): void {
		$this->put('alice', $this->bobPhone->id, $this->laptop->wrapFor($this->folderId, $this->bobPhone));
		$this->assertRefused(NotFound::class, 'no such device of yours', fn () => $this->bridge->keys->get('alice', $this->folderId, $this->bobPhone->id));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->keys->get('carol', $this->folderId, $this->bobPhone->id));
		$this->assertNotEmpty($this->bridge->keys->get('alice', $this->folderId, $this->laptop->id));
	}
}
