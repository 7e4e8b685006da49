<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCA\HarpBridge\Store\DuplicateKey;
use OCP\DB\Exception;

/**
 * What the mappers share: unique-index violations become DuplicateKey (the
 * services settle races with it) and counting rows.
 */
trait MapperSupport {
	/**
	 * Runs a write; a unique-index violation becomes DuplicateKey.
	 *
	 * @template T
	 * @param callable(): T $write
	 * @return T
	 * @throws DuplicateKey
	 * @throws Exception any other database error
	 */
	private function unique(callable $write): mixed {
		try {
			return $write();
		} catch (Exception $e) {
			if ($e->getReason() === Exception::REASON_UNIQUE_CONSTRAINT_VIOLATION) {
				throw new DuplicateKey($e->getMessage(), 0, $e);
			}
			throw $e;
		}
	}

	private function countRows(): int {
		$qb = $this->db->getQueryBuilder();
		$qb->select($qb->func()->count('*', 'n'))->from($this->getTableName());
		$result = $qb->executeQuery();
		$count = (int)$result->fetchOne();
		$result->closeCursor();
		return $count;
	}
}
