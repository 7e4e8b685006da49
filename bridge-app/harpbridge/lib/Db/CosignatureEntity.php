<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_cosignatures: a witness's line for one checkpoint size
 * (Model\Cosignature).
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?int getSize()
 * @method void setSize(?int $size)
 * @method ?int getPlace()
 * @method void setPlace(?int $place)
 * @method ?string getName()
 * @method void setName(?string $name)
 * @method ?string getKeyId()
 * @method void setKeyId(?string $keyId)
 * @method ?string getLine()
 * @method void setLine(?string $line)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 */
class CosignatureEntity extends Entity {
	protected ?string $folderId = null;
	protected ?int $size = null;
	protected ?int $place = null;
	protected ?string $name = null;
	protected ?string $keyId = null;
	protected ?string $line = null;
	protected ?int $createdAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('size', 'integer');
		$this->addType('place', 'integer');
		$this->addType('name', 'string');
		$this->addType('keyId', 'string');
		$this->addType('line', 'string');
		$this->addType('createdAt', 'integer');
	}
}
