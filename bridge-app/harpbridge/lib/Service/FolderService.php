<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Conflict;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\FolderRepository;
use OCA\HarpBridge\Store\MemberRepository;
use OCA\HarpBridge\Store\UserDirectory;
use OCA\HarpBridge\Store\WrappedKeyRepository;

/**
 * Folders and their members. Ids and keys are made on devices; the bridge
 * records who may see a folder and hands each member device its wrapped key.
 */
final class FolderService {
	public function __construct(
		private readonly FolderRepository $folders,
		private readonly MemberRepository $members,
		private readonly DeviceRepository $devices,
		private readonly WrappedKeyRepository $keys,
		private readonly FolderAccess $access,
		private readonly WrappedKeyService $wrappedKeys,
		private readonly VersioningPolicy $versioning,
		private readonly UserDirectory $users,
	) {
	}

	/** @return list<array<string, mixed>> the folders the caller owns or is a member of */
	public function list(string $userId): array {
		return array_map(fn (Folder $f): array => $this->access->toApi($f), $this->access->foldersOf($userId));
	}

	/** @return array<string, mixed> @throws NotFound */
	public function get(string $userId, string $folderId): array {
		return $this->access->toApi($this->access->visibleFolder($userId, $folderId));
	}

	/**
	 * Creates a folder owned by the caller, with its key wrapped for one of the
	 * caller's devices by one of the caller's devices.
	 *
	 * @return array<string, mixed>
	 * @throws Invalid malformed, or the wrapped key is not for and by the caller's devices
	 * @throws Conflict the id exists (whoever owns it)
	 */
	public function create(string $userId, JsonObject $body): array {
		$body->allowOnly('folder_id', 'label', 'index_mode', 'versioning', 'wrapped_key');
		$folderId = $body->string('folder_id');
		if (!Ids::isFolderId($folderId)) {
			throw new Invalid('folder_id: must be 32 lowercase hex characters');
		}
		$folder = new Folder(
			$folderId,
			$userId,
			$body->string('label', 1, Limits::MAX_LABEL_CHARS),
			$body->enum('index_mode', Folder::INDEX_MODES),
			$body->has('versioning') ? $body->enum('versioning', Folder::VERSIONING_MODES) : $this->versioning->defaultMode(),
		);
		$key = $this->wrappedKeys->parse($folder, $body->object('wrapped_key'));
		$target = $this->devices->findDevice($key->deviceId);
		if ($target === null || $target->userId !== $userId) {
			throw new Invalid('wrapped_key.device_id: not a registered device of yours');
		}
		if ($this->folders->findFolder($folderId) !== null) {
			throw new Conflict('folder_id: exists');
		}
		// The owner is the only member yet, so the voucher must be the caller's device.
		$this->wrappedKeys->checkVoucher($userId, $folder, $key, 'wrapped_key');
		try {
			$this->folders->addFolder($folder);
		} catch (DuplicateKey) {
			throw new Conflict('folder_id: exists');
		}
		$this->keys->putKey($key);
		return $this->access->toApi($folder);
	}

	/**
	 * Shares the folder with another user (the owner only). Sharing again is a
	 * no-op. The new member's devices get the key once a member device wraps it.
	 *
	 * @return array<string, mixed> the folder with its new member
	 * @throws NotFound no such folder owned by the caller, or no such user (one answer)
	 * @throws Invalid
	 */
	public function addMember(string $userId, string $folderId, JsonObject $body): array {
		$folder = $this->ownedFolder($userId, $folderId);
		$body->allowOnly('user');
		$member = $body->string('user', 1, Limits::MAX_USER_CHARS);
		if (!$this->users->userExists($member)) {
			throw new NotFound('no such folder or user');
		}
		if (!$this->access->isMember($folder, $member)) {
			if (count($this->access->members($folder)) >= Limits::MAX_MEMBERS) {
				throw new Invalid('user: a folder has at most ' . Limits::MAX_MEMBERS . ' members');
			}
			try {
				$this->members->addShare($folder->folderId, $member);
			} catch (DuplicateKey) {
				// Shared by a concurrent request: the same result.
			}
		}
		return $this->access->toApi($folder);
	}

	/**
	 * Stops sharing with a user (the owner), or leaves (the member). The keys
	 * wrapped for that user's devices are deleted; members should rotate the
	 * folder key.
	 *
	 * @throws NotFound not visible, not a member, or neither owner nor that member
	 * @throws Invalid the owner cannot leave their own folder
	 */
	public function removeMember(string $userId, string $folderId, string $member): void {
		$folder = $this->access->visibleFolder($userId, $folderId);
		if ($member === $folder->owner) {
			if ($userId === $folder->owner) {
				throw new Invalid('user: the owner cannot leave their own folder');
			}
			throw new NotFound('no such member');
		}
		if ($userId !== $folder->owner && $userId !== $member) {
			throw new NotFound('no such member');
		}
		if (!$this->access->isMember($folder, $member)) {
			throw new NotFound('no such member');
		}
		$this->members->removeShare($folder->folderId, $member);
		$deviceIds = array_map(static fn (Device $d): string => $d->deviceId, $this->devices->listByUser($member));
		if ($deviceIds !== []) {
			$this->keys->removeKeysInFolder($folder->folderId, $deviceIds);
		}
	}

	/** @throws NotFound */
	private function ownedFolder(string $userId, string $folderId): Folder {
		$folder = $this->access->visibleFolder($userId, $folderId);
		if ($folder->owner !== $userId) {
			// A member who is not the owner may see the folder but not share it;
			// the API has no 403, and 404 tells nothing the member does not know.
			throw new NotFound('no such folder of yours');
		}
		return $folder;
	}
}
