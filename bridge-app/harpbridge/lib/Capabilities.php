<?php

declare(strict_types=1);

namespace OCA\HarpBridge;

use OCA\HarpBridge\Service\CapabilityService;
use OCP\Capabilities\ICapability;

/**
 * The bridge in Nextcloud's capabilities, under `harpbridge`, so a client that
 * reads /ocs/v2.php/cloud/capabilities knows the server has it.
 */
class Capabilities implements ICapability {
	public function __construct(private readonly CapabilityService $capabilities) {
	}

	/**
	 * Without `log_key` when the stored log key is broken: that is for
	 * `/capabilities` to report, not a reason to break every app's capabilities.
	 *
	 * @return array{harpbridge: array<string, mixed>}
	 */
	public function getCapabilities(): array {
		try {
			return ['harpbridge' => $this->capabilities->serverWide()];
		} catch (\RuntimeException) {
			return ['harpbridge' => $this->capabilities->serverWide(false)];
		}
	}
}
