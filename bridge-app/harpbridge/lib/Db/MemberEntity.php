<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_members: a folder shared with a user.
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?string getUserId()
 * @method void setUserId(?string $userId)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 */
class MemberEntity extends Entity {
	protected ?string $folderId = null;
	protected ?string $userId = null;
	protected ?int $createdAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('userId', 'string');
		$this->addType('createdAt', 'integer');
	}
}
