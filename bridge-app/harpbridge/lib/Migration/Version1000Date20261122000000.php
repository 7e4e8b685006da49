<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Migration;

use Closure;
use OCP\DB\ISchemaWrapper;
use OCP\Migration\IOutput;
use OCP\Migration\SimpleMigrationStep;

/**
 * Creates the bridge's tables (BridgeTables). Idempotent: it adds only the
 * tables, columns and indexes that are missing, so running it on a partly
 * created schema finishes the job instead of failing.
 */
class Version1000Date20261122000000 extends SimpleMigrationStep {
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
