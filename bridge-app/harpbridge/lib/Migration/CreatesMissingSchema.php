<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Migration;

use OCP\DB\ISchemaWrapper;

/**
 * What every migration of the app does: create whatever part of BridgeTables
 * is missing (tables, columns, unique and plain indexes), nothing else. So
 * each migration can run on any earlier schema, or on a partly created one,
 * and finish the job.
 */
trait CreatesMissingSchema {
	/** @return bool whether anything was added */
	private function createMissing(ISchemaWrapper $schema): bool {
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
		return $changed;
	}
}
