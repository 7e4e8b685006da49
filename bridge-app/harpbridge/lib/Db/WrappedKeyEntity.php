<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_keys: a folder key wrapped for a device (Model\WrappedKey).
 *
 * @method ?string getFolderId()
 * @method void setFolderId(?string $folderId)
 * @method ?string getDeviceId()
 * @method void setDeviceId(?string $deviceId)
 * @method ?string getEphemeralPublic()
 * @method void setEphemeralPublic(?string $ephemeralPublic)
 * @method ?string getNonce()
 * @method void setNonce(?string $nonce)
 * @method ?string getCiphertext()
 * @method void setCiphertext(?string $ciphertext)
 * @method ?string getWrappedBy()
 * @method void setWrappedBy(?string $wrappedBy)
 * @method ?string getSignature()
 * @method void setSignature(?string $signature)
 * @method ?int getUpdatedAt()
 * @method void setUpdatedAt(?int $updatedAt)
 */
class WrappedKeyEntity extends Entity {
	protected ?string $folderId = null;
	protected ?string $deviceId = null;
	protected ?string $ephemeralPublic = null;
	protected ?string $nonce = null;
	protected ?string $ciphertext = null;
	protected ?string $wrappedBy = null;
	protected ?string $signature = null;
	protected ?int $updatedAt = null;

	public function __construct() {
		$this->addType('folderId', 'string');
		$this->addType('deviceId', 'string');
		$this->addType('ephemeralPublic', 'string');
		$this->addType('nonce', 'string');
		$this->addType('ciphertext', 'string');
		$this->addType('wrappedBy', 'string');
		$this->addType('signature', 'string');
		$this->addType('updatedAt', 'integer');
	}
}
