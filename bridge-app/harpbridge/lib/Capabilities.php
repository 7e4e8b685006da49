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

	/** @return array{harpbridge: array<string, mixed>} */
	public function getCapabilities(): array {
		return ['harpbridge' => $this->capabilities->serverWide()];
	}
}
