<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_log_leaves: one leaf of a folder's transparency log.
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?int getLogIndex()
 * @method void setLogIndex(?int $logIndex)
 * @method ?string getLeafHash()
 * @method void setLeafHash(?string $leafHash)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 */
class LogLeafEntity extends Entity {
	protected ?string $folderId = null;
	protected ?int $logIndex = null;
	protected ?string $leafHash = null;
	protected ?int $createdAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('logIndex', 'integer');
		$this->addType('leafHash', 'string');
		$this->addType('createdAt', 'integer');
	}
}
