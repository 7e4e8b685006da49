<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Store\ChangeRepository;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\EntryRepository;
use OCA\HarpBridge\Store\FolderRepository;
use OCA\HarpBridge\Store\IndexRepository;
use OCA\HarpBridge\Store\MemberRepository;
use OCA\HarpBridge\Store\WrappedKeyRepository;

/** `occ harpbridge:status`: how much the bridge holds, and the versioning default. */
final class StatusService {
	public function __construct(
		private readonly DeviceRepository $devices,
		private readonly FolderRepository $folders,
		private readonly MemberRepository $members,
		private readonly WrappedKeyRepository $keys,
		private readonly ChangeRepository $changes,
		private readonly EntryRepository $entries,
		private readonly IndexRepository $index,
		private readonly VersioningPolicy $versioning,
	) {
	}

	/** @return array<string, int> row counts by what they are */
	public function counts(): array {
		return [
			'devices' => $this->devices->countDevices(),
			'folders' => $this->folders->countFolders(),
			'shares' => $this->members->countShares(),
			'wrapped keys' => $this->keys->countKeys(),
			'changes' => $this->changes->countChanges(),
			'chain entries' => $this->entries->countLinks(),
			'index entries' => $this->index->countRecords(),
		];
	}

	public function versioning(): string {
		return $this->versioning->describe();
	}
}
