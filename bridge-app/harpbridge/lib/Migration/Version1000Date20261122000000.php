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
	/**
	 * @param Closure(): ISchemaWrapper $schemaClosure
	 * @param array<string, mixed> $options
	 */
	public function changeSchema(IOutput $output, Closure $schemaClosure, array $options): ?ISchemaWrapper {
		/** @var ISchemaWrapper $schema */
		$schema = $schemaClosure();
		$changed = false;
		foreach (BridgeTables::all() as $name => $spec) {
			$created = !$schema->hasTable($name);
			$table = $created ? $schema->createTable($name) : $schema->getTable($name);
			$changed = $changed || $created;
			foreach ($spec['columns'] as $column => [$type, $columnOptions]) {
				if (!$table->hasColumn($column)) {
					$table->addColumn($column, $type, $columnOptions);
					$changed = true;
				}
			}
			if ($created) {
				$table->setPrimaryKey(['id']);
			}
			foreach ($spec['unique'] as $index => $columns) {
				if (!$table->hasIndex($index)) {
					$table->addUniqueIndex($columns, $index);
					$changed = true;
				}
			}
			foreach ($spec['index'] as $index => $columns) {
				if (!$table->hasIndex($index)) {
					$table->addIndex($columns, $index);
					$changed = true;
				}
			}
		}
		return $changed ? $schema : null;
	}
}
