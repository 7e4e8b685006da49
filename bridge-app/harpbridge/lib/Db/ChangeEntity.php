<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_changes: a sealed change at its cursor (`seq`) (Model\SealedChange).
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?int getSeq()
 * @method void setSeq(?int $seq)
 * @method ?string getDeviceId()
 * @method void setDeviceId(?string $deviceId)
 * @method ?string getSealed()
 * @method void setSealed(?string $sealed)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 */
class ChangeEntity extends Entity {
	protected ?string $folderId = null;
	protected ?int $seq = null;
	protected ?string $deviceId = null;
	protected ?string $sealed = null;
	protected ?int $createdAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('seq', 'integer');
		$this->addType('deviceId', 'string');
		$this->addType('sealed', 'string');
		$this->addType('createdAt', 'integer');
	}
}
