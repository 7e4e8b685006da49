<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\FolderRepository;
use OCA\HarpBridge\Store\MemberRepository;

/**
 * Who may see what. A folder's members are its owner plus the users it is
 * shared with; its devices are all registered devices of its members. A user
 * sees only folders they are a member of, and a folder they may not see
 * answers exactly like one that does not exist.
 */
final class FolderAccess {
	public function __construct(
		private readonly FolderRepository $folders,
		private readonly MemberRepository $members,
		private readonly DeviceRepository $devices,
	) {
	}

	/**
	 * The folder, when $userId is a member of it.
	 *
	 * @throws NotFound for a malformed id, an unknown folder and a foreign one alike
	 */
	public function visibleFolder(string $userId, string $folderId): Folder {
		$folder = Ids::isFolderId($folderId) ? $this->folders->findFolder($folderId) : null;
		if ($folder === null || !$this->isMember($folder, $userId)) {
			throw new NotFound('no such folder');
		}
		return $folder;
	}

	/** @return list<string> the owner first, then the users it is shared with, sorted */
	public function members(Folder $folder): array {
		$shares = array_values(array_filter(
			$this->members->listShares($folder->folderId),
			static fn (string $user): bool => $user !== $folder->owner,
		));
		sort($shares, SORT_STRING);
		return [$folder->owner, ...$shares];
	}

	public function isMember(Folder $folder, string $userId): bool {
		return $folder->owner === $userId || in_array($userId, $this->members->listShares($folder->folderId), true);
	}

	/** @return list<Folder> the folders $userId owns or shares, by folder id */
	public function foldersOf(string $userId): array {
		$byId = [];
		foreach ($this->folders->listOwnedBy($userId) as $folder) {
			$byId[$folder->folderId] = $folder;
		}
		foreach ($this->members->listFoldersSharedWith($userId) as $folderId) {
			$folder = $this->folders->findFolder($folderId);
			if ($folder !== null) {
				$byId[$folderId] = $folder;
			}
		}
		ksort($byId, SORT_STRING);
		return array_values($byId);
	}

	/** The registered device, when it belongs to a member of the folder. */
	public function memberDevice(Folder $folder, string $deviceId): ?Device {
		$device = Ids::isDeviceId($deviceId) ? $this->devices->findDevice($deviceId) : null;
		return $device !== null && $this->isMember($folder, $device->userId) ? $device : null;
	}

	/** Whether two users are both members of at least one folder. */
	public function shareAFolder(string $userA, string $userB): bool {
		foreach ($this->foldersOf($userA) as $folder) {
			if ($this->isMember($folder, $userB)) {
				return true;
			}
		}
		return false;
	}

	/** @return array<string, mixed> the API form (schema Folder), with members and their devices */
	public function toApi(Folder $folder): array {
		$members = [];
		foreach ($this->members($folder) as $userId) {
			$members[] = [
				'user' => $userId,
				'devices' => array_map(
					static fn (Device $device): string => $device->deviceId,
					$this->devices->listByUser($userId),
				),
			];
		}
		return [
			'folder_id' => $folder->folderId,
			'label' => $folder->label,
			'owner' => $folder->owner,
			'index_mode' => $folder->indexMode,
			'versioning' => $folder->versioning,
			'members' => $members,
		];
	}
}
