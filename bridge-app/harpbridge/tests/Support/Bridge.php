<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Service\CapabilityService;
use OCA\HarpBridge\Service\ChainAuditService;
use OCA\HarpBridge\Service\ChangeService;
use OCA\HarpBridge\Service\DeviceService;
use OCA\HarpBridge\Service\EntryService;
use OCA\HarpBridge\Service\FolderAccess;
use OCA\HarpBridge\Service\FolderService;
use OCA\HarpBridge\Service\IndexService;
use OCA\HarpBridge\Service\LogKeyService;
use OCA\HarpBridge\Service\LogService;
use OCA\HarpBridge\Service\SettingsService;
use OCA\HarpBridge\Service\StatusService;
use OCA\HarpBridge\Service\VersioningPolicy;
use OCA\HarpBridge\Service\VersionService;
use OCA\HarpBridge\Service\WrappedKeyService;

/**
 * The whole bridge on in-memory repositories, wired as the Nextcloud container
 * wires it, with helpers for the usual set-up steps.
 */
final class Bridge {
	public readonly InMemoryDevices $deviceStore;
	public readonly InMemoryFolders $folderStore;
	public readonly InMemoryMembers $memberStore;
	public readonly InMemoryWrappedKeys $keyStore;
	public readonly InMemoryChanges $changeStore;
	public readonly InMemoryEntries $entryStore;
	public readonly InMemoryIndex $indexStore;
	public readonly InMemoryLog $logStore;
	public readonly InMemoryCosignatures $cosignatureStore;
	public readonly FixedLogKey $logKeySource;
	public readonly FixedClock $clock;
	public readonly FixedVersioning $versioningSource;
	public readonly VersioningPolicy $versioning;
	public readonly FolderAccess $access;
	public readonly LogKeyService $logKey;
	public readonly LogService $log;
	public readonly DeviceService $devices;
	public readonly WrappedKeyService $keys;
	public readonly FolderService $folders;
	public readonly ChangeService $changes;
	public readonly EntryService $entries;
	public readonly IndexService $index;
	public readonly StatusService $status;
	public readonly ChainAuditService $audit;
	public readonly CapabilityService $capabilities;
	public readonly VersionService $versions;
	public readonly SettingsService $settings;

	/** @param list<string> $users */
	public function __construct(array $users = ['alice', 'bob', 'carol']) {
		$this->deviceStore = new InMemoryDevices();
		$this->folderStore = new InMemoryFolders();
		$this->memberStore = new InMemoryMembers();
		$this->keyStore = new InMemoryWrappedKeys();
		$this->changeStore = new InMemoryChanges();
		$this->entryStore = new InMemoryEntries();
		$this->indexStore = new InMemoryIndex();
		$this->logStore = new InMemoryLog();
		$this->cosignatureStore = new InMemoryCosignatures();
		$this->logKeySource = new FixedLogKey(null, null, 'https://cloud.example.org/nextcloud');
		$this->clock = new FixedClock();
		$this->versioningSource = new FixedVersioning();
		$this->versioning = new VersioningPolicy($this->versioningSource);
		$this->access = new FolderAccess($this->folderStore, $this->memberStore, $this->deviceStore);
		$this->logKey = new LogKeyService($this->logKeySource);
		$this->log = new LogService($this->logStore, $this->cosignatureStore, $this->access, $this->logKey);
		$this->devices = new DeviceService($this->deviceStore, $this->keyStore, $this->access, $this->clock);
		$this->keys = new WrappedKeyService($this->keyStore, $this->access);
		$this->folders = new FolderService(
			$this->folderStore,
			$this->memberStore,
			$this->deviceStore,
			$this->keyStore,
			$this->access,
			$this->keys,
			$this->versioning,
			new KnownUsers($users),
		);
		$this->changes = new ChangeService($this->changeStore, $this->deviceStore, $this->access);
		$this->entries = new EntryService($this->entryStore, $this->access, $this->log);
		$this->index = new IndexService($this->indexStore, $this->access);
		$this->status = new StatusService(
			$this->deviceStore,
			$this->folderStore,
			$this->memberStore,
			$this->keyStore,
			$this->changeStore,
			$this->entryStore,
			$this->indexStore,
			$this->versioning,
		);
		$this->audit = new ChainAuditService($this->entryStore, $this->indexStore, $this->logStore, $this->access);
		$this->capabilities = new CapabilityService($this->versioning, $this->logKey);
		$this->versions = new VersionService($this->entryStore, $this->logStore, $this->cosignatureStore, $this->deviceStore, $this->access);
		$this->settings = new SettingsService($this->versioning, $this->versioningSource);
	}

	public function registerDevice(string $userId, string $name = 'laptop'): TestDevice {
		$device = TestDevice::create();
		$this->devices->register($userId, JsonObject::fromArray($device->registration($userId, $name)));
		return $device;
	}

	/** Creates a folder of $owner with its key wrapped for $device; answers the folder id. */
	public function createFolder(
		string $owner,
		TestDevice $device,
		string $indexMode = 'plaintext',
		?string $versioning = null,
	): string {
		$folderId = bin2hex(random_bytes(16));
		$body = [
			'folder_id' => $folderId,
			'label' => 'Documents',
			'index_mode' => $indexMode,
			'wrapped_key' => $device->wrapFor($folderId, $device),
		];
		if ($versioning !== null) {
			$body['versioning'] = $versioning;
		}
		$this->folders->create($owner, JsonObject::fromArray($body));
		return $folderId;
	}

	public function share(string $owner, string $folderId, string $userId): void {
		$this->folders->addMember($owner, $folderId, JsonObject::fromArray(['user' => $userId]));
	}
}
