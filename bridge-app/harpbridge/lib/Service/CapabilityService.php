<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

/**
 * What this bridge supports, for `/capabilities` and Nextcloud's capabilities
 * (key `harpbridge`), so a client can check a server before it relies on it,
 * and the key its checkpoints are signed with (`log_key`).
 */
final class CapabilityService {
	public const API_VERSION = 1;

	public function __construct(
		private readonly VersioningPolicy $versioning,
		private readonly LogKeyService $logKey,
	) {
	}

	/**
	 * The server-wide part, without a user.
	 *
	 * @return array<string, mixed>
	 * @throws \RuntimeException with the log key: the stored key is broken
	 */
	public function serverWide(bool $withLogKey = true): array {
		$all = [
			'api_version' => self::API_VERSION,
			'versioning' => $this->versioning->defaultMode(),
			'login_flow_v2' => true,
			'limits' => Limits::toApi(),
		];
		if ($withLogKey) {
			$all['log_key'] = $this->logKey->verifierKey();
		}
		return $all;
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
			'log_key' => $all['log_key'],
		];
	}
}
