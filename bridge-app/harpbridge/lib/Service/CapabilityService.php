<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/**
 * What this bridge supports, for `/capabilities` and Nextcloud's capabilities
 * (key `harpbridge`), so a client can check a server before it relies on it.
 */
final class CapabilityService {
	public const API_VERSION = 1;

	public function __construct(private readonly VersioningPolicy $versioning) {
	}

	/** @return array<string, mixed> the server-wide part, without a user */
	public function serverWide(): array {
		return [
			'api_version' => self::API_VERSION,
			'versioning' => $this->versioning->defaultMode(),
			'login_flow_v2' => true,
			'limits' => Limits::toApi(),
		];
	}

	/**
	 * The `/capabilities` answer: with the caller's user id, which device
	 * registrations sign (it can differ from the login name).
	 *
	 * @return array<string, mixed>
	 */
	public function forUser(string $userId): array {
		$all = $this->serverWide();
		return [
			'api_version' => $all['api_version'],
			'user' => $userId,
			'versioning' => $all['versioning'],
			'login_flow_v2' => $all['login_flow_v2'],
			'limits' => $all['limits'],
		];
	}
}
