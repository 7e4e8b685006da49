<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_folders: a folder (Model\Folder).
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?string getOwner()
 * @method void setOwner(?string $owner)
 * @method ?string getLabel()
 * @method void setLabel(?string $label)
 * @method ?string getIndexMode()
 * @method void setIndexMode(?string $indexMode)
 * @method ?string getVersioning()
 * @method void setVersioning(?string $versioning)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 */
class FolderEntity extends Entity {
	protected ?string $folderId = null;
	protected ?string $owner = null;
	protected ?string $label = null;
	protected ?string $indexMode = null;
	protected ?string $versioning = null;
	protected ?int $createdAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('owner', 'string');
		$this->addType('label', 'string');
		$this->addType('indexMode', 'string');
		$this->addType('versioning', 'string');
		$this->addType('createdAt', 'integer');
	}
}
