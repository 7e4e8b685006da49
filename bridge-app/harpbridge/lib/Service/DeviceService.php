<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Conflict;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Model\Outcome;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\WrappedKeyRepository;

/**
 * Devices: registration with proof of key possession, visibility, revocation
 * and the rendezvous addresses.
 */
final class DeviceService {
	public function __construct(
		private readonly DeviceRepository $devices,
		private readonly WrappedKeyRepository $keys,
		private readonly FolderAccess $access,
		private readonly Clock $clock,
	) {
	}

	/** @return list<array<string, mixed>> the caller's devices */
	public function listOwn(string $userId): array {
		$now = $this->clock->now();
		return array_map(static fn (Device $d): array => $d->toApi($now), $this->devices->listByUser($userId));
	}

	/**
	 * Registers a device of the caller. The signature proves the device holds
	 * the key of its id and binds the id to this user and this X25519 key.
	 * Registering again with the same keys is a no-op (200) that may rename.
	 *
	 * @throws Invalid malformed, or the signature does not verify (throttled)
	 * @throws Conflict the id belongs to another user, or has another X25519 key
	 */
	public function register(string $userId, JsonObject $body): Outcome {
		$body->allowOnly('device_id', 'name', 'x25519_public', 'signature');
		$deviceId = $body->string('device_id');
		$deviceKey = Ids::deviceKey($deviceId);
		if ($deviceKey === null) {
			throw new Invalid('device_id: must be 52 lowercase base32 characters');
		}
		$name = $body->string('name', 1, Limits::MAX_NAME_CHARS);
		$x25519Text = $body->string('x25519_public');
		$x25519 = Base64::decodeExact($x25519Text, 32);
		if ($x25519 === null) {
			throw new Invalid('x25519_public: must be 32 bytes of base64');
		}
		$signature = Base64::decodeExact($body->string('signature'), 64);
		if ($signature === null) {
			throw new Invalid('signature: must be 64 bytes of base64');
		}
		if (!Signatures::verify($signature, Signatures::deviceRegistration($userId, $deviceKey, $x25519), $deviceKey)) {
			throw Invalid::badSignature('signature: does not verify');
		}

		$now = $this->clock->now();
		$existing = $this->devices->findDevice($deviceId);
		if ($existing !== null) {
			return Outcome::ok($this->reRegister($existing, $userId, $x25519Text, $name)->toApi($now));
		}
		if (count($this->devices->listByUser($userId)) >= Limits::MAX_DEVICES_PER_USER) {
			throw new Invalid('device_id: a user has at most ' . Limits::MAX_DEVICES_PER_USER . ' devices');
		}
		$device = new Device($deviceId, $userId, $name, $x25519Text);
		try {
			$this->devices->addDevice($device);
		} catch (DuplicateKey) {
			// Registered by a concurrent request: answer as if it came first.
			$existing = $this->devices->findDevice($deviceId);
			if ($existing === null) {
				throw new Conflict('device_id: registered concurrently');
			}
			return Outcome::ok($this->reRegister($existing, $userId, $x25519Text, $name)->toApi($now));
		}
		return Outcome::created($device->toApi($now));
	}

	/**
	 * A device of the caller, or of a user who shares a folder with the caller.
	 *
	 * @return array<string, mixed>
	 * @throws NotFound
	 */
	public function get(string $userId, string $deviceId): array {
		$device = Ids::isDeviceId($deviceId) ? $this->devices->findDevice($deviceId) : null;
		if ($device === null
			|| ($device->userId !== $userId && !$this->access->shareAFolder($userId, $device->userId))) {
			throw new NotFound('no such device');
		}
		return $device->toApi($this->clock->now());
	}

	/**
	 * Revokes one of the caller's devices and deletes the folder keys wrapped
	 * for it (members should rotate those folders' keys).
	 *
	 * @throws NotFound
	 */
	public function revoke(string $userId, string $deviceId): void {
		$device = $this->ownDevice($userId, $deviceId);
		$this->keys->removeKeysOfDevice($device->deviceId);
		$this->devices->removeDevice($device->deviceId);
	}

	/**
	 * Every registered device, for the admin settings (by user, then device
	 * id), with when each last published its addresses.
	 *
	 * @return list<array<string, mixed>>
	 */
	public function listAllForAdmin(): array {
		$now = $this->clock->now();
		return array_map(static fn (Device $d): array => $d->toAdminApi($now), $this->devices->listAll());
	}

	/**
	 * Revokes any user's device (an admin's call; the controller's attribute
	 * restricts it to admins) as its user would, deleting the folder keys
	 * wrapped for it.
	 *
	 * @throws NotFound
	 */
	public function revokeAsAdmin(string $deviceId): void {
		$device = Ids::isDeviceId($deviceId) ? $this->devices->findDevice($deviceId) : null;
		if ($device === null) {
			throw new NotFound('no such device');
		}
		$this->keys->removeKeysOfDevice($device->deviceId);
		$this->devices->removeDevice($device->deviceId);
	}

	/**
	 * Replaces where the device can be reached, for ttl_seconds. Addresses are
	 * hints: peers authenticate each other by device keys, so they are only
	 * checked for shape.
	 *
	 * @throws NotFound not a device of the caller
	 * @throws Invalid
	 */
	public function publishAddresses(string $userId, string $deviceId, JsonObject $body): void {
		$device = $this->ownDevice($userId, $deviceId);
		$body->allowOnly('addresses', 'ttl_seconds');
		$addresses = $body->stringList(
			'addresses',
			Limits::MAX_ADDRESSES,
			Limits::MIN_ADDRESS_CHARS,
			Limits::MAX_ADDRESS_CHARS,
		);
		foreach ($addresses as $index => $address) {
			if (preg_match('#^/[\x21-\x7e]+$#D', $address) !== 1) {
				throw new Invalid("addresses[$index]: must be a multiaddr (printable ASCII starting with /)");
			}
		}
		$ttl = $body->int('ttl_seconds', Limits::MIN_TTL_SECONDS, Limits::MAX_TTL_SECONDS);
		$now = $this->clock->now();
		$this->devices->saveDevice($device->withAddresses($addresses, $now, $now + $ttl));
	}

	/** @throws NotFound */
	private function ownDevice(string $userId, string $deviceId): Device {
		$device = Ids::isDeviceId($deviceId) ? $this->devices->findDevice($deviceId) : null;
		if ($device === null || $device->userId !== $userId) {
			throw new NotFound('no such device of yours');
		}
		return $device;
	}

	/** @throws Conflict */
	private function reRegister(Device $existing, string $userId, string $x25519Text, string $name): Device {
		if ($existing->userId !== $userId) {
			throw new Conflict('device_id: registered to another user');
		}
		if ($existing->x25519Public !== $x25519Text) {
			throw new Conflict('x25519_public: the device is registered with another key');
		}
		if ($existing->name === $name) {
			return $existing;
		}
		$renamed = $existing->withName($name);
		$this->devices->saveDevice($renamed);
		return $renamed;
	}
}
