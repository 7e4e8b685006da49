<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_entries: a stored chain link (Model\ChainLink).
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?string getFileId()
 * @method void setFileId(?string $fileId)
 * @method ?int getSeq()
 * @method void setSeq(?int $seq)
 * @method ?string getPrev()
 * @method void setPrev(?string $prev)
 * @method ?string getHead()
 * @method void setHead(?string $head)
 * @method ?string getEntry()
 * @method void setEntry(?string $entry)
 * @method ?string getAuthor()
 * @method void setAuthor(?string $author)
 * @method ?string getSlot()
 * @method void setSlot(?string $slot)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 * @method ?int getLogIndex()
 * @method void setLogIndex(?int $logIndex)
 */
class ChainEntryEntity extends Entity {
	protected ?string $folderId = null;
	protected ?string $fileId = null;
	protected ?int $seq = null;
	protected ?string $prev = null;
	protected ?string $head = null;
	protected ?string $entry = null;
	protected ?string $author = null;
	protected ?string $slot = null;
	protected ?int $createdAt = null;
	protected ?int $logIndex = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('fileId', 'string');
		$this->addType('seq', 'integer');
		$this->addType('prev', 'string');
		$this->addType('head', 'string');
		$this->addType('entry', 'string');
		$this->addType('author', 'string');
		$this->addType('slot', 'string');
		$this->addType('createdAt', 'integer');
		$this->addType('logIndex', 'integer');
	}
}
