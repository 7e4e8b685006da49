<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Db;

use OCP\AppFramework\Db\Entity;

/**
 * A row of harp_devices: a registered device (Model\Device).
 *
 * @method ?string getDeviceId()
 * @method void setDeviceId(?string $deviceId)
 * @method ?string getUserId()
 * @method void setUserId(?string $userId)
 * @method ?string getName()
 * @method void setName(?string $name)
 * @method ?string getX25519Public()
 * @method void setX25519Public(?string $x25519Public)
 * @method ?string getAddresses()
 * @method void setAddresses(?string $addresses)
 * @method ?int getAddressesExpire()
 * @method void setAddressesExpire(?int $addressesExpire)
 * @method ?int getCreatedAt()
 * @method void setCreatedAt(?int $createdAt)
 * @method ?int getAddressesPublished()
 * @method void setAddressesPublished(?int $addressesPublished)
 */
class DeviceEntity extends Entity {
	protected ?string $deviceId = null;
	protected ?string $userId = null;
	protected ?string $name = null;
	protected ?string $x25519Public = null;
	protected ?string $addresses = null;
	protected ?int $addressesExpire = null;
	protected ?int $createdAt = null;
	protected ?int $addressesPublished = null;

	public function __construct() {
		$this->addType('deviceId', 'string');
		$this->addType('userId', 'string');
		$this->addType('name', 'string');
		$this->addType('x25519Public', 'string');
		$this->addType('addresses', 'string');
		$this->addType('addressesExpire', 'integer');
		$this->addType('createdAt', 'integer');
		$this->addType('addressesPublished', 'integer');
	}
}
