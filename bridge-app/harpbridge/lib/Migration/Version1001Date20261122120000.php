<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Migration;

use Closure;
use OCP\DB\ISchemaWrapper;
use OCP\Migration\IOutput;
use OCP\Migration\SimpleMigrationStep;

/**
 * The transparency log (app version 1.1.0): harp_log_leaves,
 * harp_cosignatures and harp_entries.log_index. Nextcloud runs each migration
 * once, so a server that ran the first one before these were in BridgeTables
 * gets them here; on a new server the first one created them already and this
 * one finds nothing to do. Entries stored before have no log index.
 */
class Version1001Date20261122120000 extends SimpleMigrationStep {
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
