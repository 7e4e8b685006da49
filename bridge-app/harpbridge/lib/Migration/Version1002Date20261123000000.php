<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Migration;

use Closure;
use OCP\DB\ISchemaWrapper;
use OCP\Migration\IOutput;
use OCP\Migration\SimpleMigrationStep;

/**
 * The Nextcloud UI (app version 1.2.0): harp_devices.addresses_published, so
 * the admin settings can say when each device last published its addresses.
 * Devices that published before have none until they publish again (every
 * running daemon does within its ttl).
 */
class Version1002Date20261123000000 extends SimpleMigrationStep {
	use CreatesMissingSchema;

	/**
	 * @param Closure(): ISchemaWrapper $schemaClosure
	 * @param array<string, mixed> $options
	 */
	public function changeSchema(IOutput $output, Closure $schemaClosure, array $options): ?ISchemaWrapper {
		/** @var ISchemaWrapper $schema */
		$schema = $schemaClosure();
		return $this->createMissing($schema) ? $schema : null;
	}
}
