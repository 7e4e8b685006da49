<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_index: a search index record (Model\IndexRecord).
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?string getFileId()
 * @method void setFileId(?string $fileId)
 * @method ?string getName()
 * @method void setName(?string $name)
 * @method ?string getTokens()
 * @method void setTokens(?string $tokens)
 * @method ?int getSize()
 * @method void setSize(?int $size)
 * @method ?int getMtimeMs()
 * @method void setMtimeMs(?int $mtimeMs)
 * @method ?bool isDeleted()
 * @method void setDeleted(?bool $deleted)
 * @method ?int getUpdatedAt()
 * @method void setUpdatedAt(?int $updatedAt)
 */
class IndexEntryEntity extends Entity {
	protected ?string $folderId = null;
	protected ?string $fileId = null;
	protected ?string $name = null;
	protected ?string $tokens = null;
	protected ?int $size = null;
	protected ?int $mtimeMs = null;
	protected ?bool $deleted = null;
	protected ?int $updatedAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('fileId', 'string');
		$this->addType('name', 'string');
		$this->addType('tokens', 'string');
		$this->addType('size', 'integer');
		$this->addType('mtimeMs', 'integer');
		$this->addType('deleted', 'boolean');
		$this->addType('updatedAt', 'integer');
	}
}
