<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * A registered device: an Ed25519 identity (its id), the user it belongs to,
 * the X25519 key folder keys are wrapped to, and where it was last reachable.
 */
final class Device {
	/**
	 * @param list<string> $addresses multiaddrs, hints only
	 * @param int|null $addressesExpire Unix seconds after which the addresses are stale
	 * @param int|null $addressesPublished Unix seconds of the last publication (null: never,
	 *                                     or before the bridge recorded it)
	 */
	public function __construct(
		public readonly string $deviceId,
		public readonly string $userId,
		public readonly string $name,
		public readonly string $x25519Public,
		public readonly array $addresses = [],
		public readonly ?int $addressesExpire = null,
		public readonly ?int $addressesPublished = null,
	) {
	}

	public function withName(string $name): self {
		return new self($this->deviceId, $this->userId, $name, $this->x25519Public, $this->addresses, $this->addressesExpire, $this->addressesPublished);
	}

	/** @param list<string> $addresses published at $now, stale from $expire */
	public function withAddresses(array $addresses, int $now, int $expire): self {
		return new self($this->deviceId, $this->userId, $this->name, $this->x25519Public, $addresses, $expire, $now);
	}

	/**
	 * The API form (schema Device); stale addresses are left out, because a
	 * daemon that stopped republishing is not reachable there any more.
	 *
	 * @return array<string, mixed>
	 */
	public function toApi(int $now): array {
		$fresh = $this->addressesExpire !== null && $this->addressesExpire > $now;
		return [
			'device_id' => $this->deviceId,
			'user' => $this->userId,
			'name' => $this->name,
			'x25519_public' => $this->x25519Public,
			'addresses' => $fresh ? $this->addresses : [],
			'addresses_expire' => $fresh ? $this->addressesExpire : null,
		];
	}

	/**
	 * The form the admin settings list devices in: the API form without the
	 * X25519 key, with when the device last published its addresses.
	 *
	 * @return array<string, mixed>
	 */
	public function toAdminApi(int $now): array {
		$api = $this->toApi($now);
		return [
			'device_id' => $api['device_id'],
			'user' => $api['user'],
			'name' => $api['name'],
			'addresses' => $api['addresses'],
			'addresses_expire' => $api['addresses_expire'],
			'addresses_published' => $this->addressesPublished,
		];
	}
}
