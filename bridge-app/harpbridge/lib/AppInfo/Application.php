<?php

declare(strict_types=1);

namespace OCA\HarpBridge\AppInfo;

use OCA\HarpBridge\Capabilities;
use OCA\HarpBridge\Db\ChainEntryMapper;
use OCA\HarpBridge\Db\ChangeMapper;
use OCA\HarpBridge\Db\CosignatureMapper;
use OCA\HarpBridge\Db\DeviceMapper;
use OCA\HarpBridge\Db\FolderMapper;
use OCA\HarpBridge\Db\IndexEntryMapper;
use OCA\HarpBridge\Db\LogLeafMapper;
use OCA\HarpBridge\Db\MemberMapper;
use OCA\HarpBridge\Db\WrappedKeyMapper;
use OCA\HarpBridge\Nextcloud\NextcloudLogKeySource;
use OCA\HarpBridge\Nextcloud\NextcloudUserDirectory;
use OCA\HarpBridge\Nextcloud\NextcloudVersioningSource;
use OCA\HarpBridge\Service\Clock;
use OCA\HarpBridge\Service\LogKeySource;
use OCA\HarpBridge\Service\SystemClock;
use OCA\HarpBridge\Service\VersioningSource;
use OCA\HarpBridge\Store\ChangeRepository;
use OCA\HarpBridge\Store\CosignatureRepository;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\EntryRepository;
use OCA\HarpBridge\Store\FolderRepository;
use OCA\HarpBridge\Store\IndexRepository;
use OCA\HarpBridge\Store\LogRepository;
use OCA\HarpBridge\Store\MemberRepository;
use OCA\HarpBridge\Store\UserDirectory;
use OCA\HarpBridge\Store\WrappedKeyRepository;
use OCP\AppFramework\App;
use OCP\AppFramework\Bootstrap\IBootContext;
use OCP\AppFramework\Bootstrap\IBootstrap;
use OCP\AppFramework\Bootstrap\IRegistrationContext;

/**
 * The harpbridge app: the metadata plane of Harp. It wires the plain-PHP
 * services (which own the rules) to their Nextcloud implementations and adds
 * the capability. Routes come from the controllers' #[ApiRoute] attributes.
 */
class Application extends App implements IBootstrap {
	public const APP_ID = 'harpbridge';

	/** The repository interfaces and their database implementations. */
	private const IMPLEMENTATIONS = [
		DeviceRepository::class => DeviceMapper::class,
		FolderRepository::class => FolderMapper::class,
		MemberRepository::class => MemberMapper::class,
		WrappedKeyRepository::class => WrappedKeyMapper::class,
		ChangeRepository::class => ChangeMapper::class,
		EntryRepository::class => ChainEntryMapper::class,
		IndexRepository::class => IndexEntryMapper::class,
		LogRepository::class => LogLeafMapper::class,
		CosignatureRepository::class => CosignatureMapper::class,
		UserDirectory::class => NextcloudUserDirectory::class,
		VersioningSource::class => NextcloudVersioningSource::class,
		LogKeySource::class => NextcloudLogKeySource::class,
		Clock::class => SystemClock::class,
	];

	public function __construct(array $urlParams = []) {
		parent::__construct(self::APP_ID, $urlParams);
	}

	public function register(IRegistrationContext $context): void {
		foreach (self::IMPLEMENTATIONS as $interface => $implementation) {
			$context->registerServiceAlias($interface, $implementation);
		}
		$context->registerCapability(Capabilities::class);
	}

	public function boot(IBootContext $context): void {
	}
}
