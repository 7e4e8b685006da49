<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Chain\ChainError;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Model\Cosignature;
use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Store\CosignatureRepository;
use OCA\HarpBridge\Store\DeviceRepository;
use OCA\HarpBridge\Store\EntryRepository;
use OCA\HarpBridge\Store\LogRepository;

/**
 * A file's versions as the Harp page shows them: its chain entries decoded
 * into fields (so the page does not parse 218-byte entries), where each is in
 * the folder's transparency log against its newest checkpoint, and which
 * devices wrote versions or are member devices of the folder.
 *
 * Read-only, and under the rules of the entries endpoint: the caller must be
 * a member of the folder. A device's name and user are given when the caller
 * may see the device (GET /devices/{id}: a member's device, the caller's, or
 * one of a user the caller shares a folder with); otherwise only its id, which
 * the entry itself carries.
 */
final class VersionService {
	public function __construct(
		private readonly EntryRepository $entries,
		private readonly LogRepository $log,
		private readonly CosignatureRepository $cosignatures,
		private readonly DeviceRepository $devices,
		private readonly FolderAccess $access,
	) {
	}

	/**
	 * The file's versions from `from_seq` on (by seq, forks in the order they
	 * were stored), at most `limit` of them; a page ends at a seq boundary so
	 * forks are not split, and `next_seq` is the `from_seq` of the next page
	 * (null after the last). A file the bridge has no entries for has no
	 * versions (its index record may come before its chain).
	 *
	 * @return array{
	 *     file_id: string,
	 *     checkpoint: array{size: int, cosignatures: int, witnesses: list<array{name: string, key_id: string}>},
	 *     versions: list<array<string, mixed>>,
	 *     devices: list<array<string, mixed>>,
	 *     next_seq: int|null
	 * }
	 * @throws NotFound the folder is not visible, or the file id is malformed
	 * @throws Invalid from_seq or limit out of range
	 */
	public function versions(string $userId, string $folderId, string $fileId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		if (!Ids::isFileId($fileId)) {
			throw new NotFound('no such file');
		}
		$fromSeq = $query->int('from_seq', 1, 1, PHP_INT_MAX);
		$limit = $query->int('limit', Limits::DEFAULT_VERSIONS_LIMIT, 1, Limits::MAX_VERSIONS_LIMIT);
		[$links, $nextSeq] = $this->page($folder->folderId, $fileId, $fromSeq, $limit);

		$size = $this->log->logSize($folder->folderId);
		$cosignatures = $this->cosignatures->listCosignatures($folder->folderId, $size);
		return [
			'file_id' => $fileId,
			'checkpoint' => [
				'size' => $size,
				'cosignatures' => count($cosignatures),
				'witnesses' => array_map(
					static fn (Cosignature $c): array => ['name' => $c->name, 'key_id' => $c->keyId],
					$cosignatures,
				),
			],
			'versions' => array_map(fn (ChainLink $link): array => $this->version($link, $size), $links),
			'devices' => $this->devicesOf($userId, $folder, $links),
			'next_seq' => $nextSeq,
		];
	}

	/**
	 * One page of links and the seq the next page starts at.
	 *
	 * @return array{0: list<ChainLink>, 1: int|null}
	 */
	private function page(string $folderId, string $fileId, int $fromSeq, int $limit): array {
		// One more than asked tells whether more remain, and whether the page splits a seq.
		$found = $this->entries->listFrom($folderId, $fileId, $fromSeq, $limit + 1);
		if (count($found) <= $limit) {
			return [$found, null];
		}
		$page = array_slice($found, 0, $limit);
		$lastSeq = $page[$limit - 1]->seq;
		if ($found[$limit]->seq !== $lastSeq) {
			return [$page, $lastSeq + 1];
		}
		// The page would end inside a seq (forks): end it before that seq instead.
		$whole = array_values(array_filter($page, static fn (ChainLink $l): bool => $l->seq !== $lastSeq));
		if ($whole !== []) {
			return [$whole, $lastSeq];
		}
		// One seq with more forks than a page holds: the first `limit` of them, then on.
		return [$page, $lastSeq + 1];
	}

	/**
	 * A link as a version: the entry's fields, and whether it is logged (its
	 * log_index is below the size of the newest checkpoint).
	 *
	 * @return array<string, mixed>
	 */
	private function version(ChainLink $link, int $checkpointSize): array {
		try {
			$entry = ChainEntry::decode($link->entry);
		} catch (ChainError) {
			// Stored entries were decoded when they were appended; one that no
			// longer decodes is shown without its fields rather than hiding the rest.
			$entry = null;
		}
		return [
			'seq' => $link->seq,
			'op' => $entry?->opName(),
			'author' => $link->author,
			'timestamp_ms' => $entry?->timestampMs,
			'size' => $entry?->size,
			'content_root' => $entry === null ? null : bin2hex($entry->contentRoot),
			'prev' => $link->prev,
			'head' => $link->head,
			'log_index' => $link->logIndex,
			'logged' => $link->logIndex !== null && $link->logIndex < $checkpointSize,
		];
	}

	/**
	 * The devices that wrote the page's versions (most recent writer first),
	 * then the member devices of the folder that wrote none of them (by user,
	 * then device id). `member`: a registered device of a current member, which
	 * receives the folder; `authored`: how many of the page's versions it wrote.
	 *
	 * @param list<ChainLink> $links
	 * @return list<array<string, mixed>>
	 */
	private function devicesOf(string $userId, Folder $folder, array $links): array {
		$authored = [];
		$lastSeq = [];
		foreach ($links as $link) {
			$authored[$link->author] = ($authored[$link->author] ?? 0) + 1;
			$lastSeq[$link->author] = $link->seq;
		}
		arsort($lastSeq, SORT_NUMERIC);

		$listed = [];
		foreach (array_keys($lastSeq) as $deviceId) {
			$device = $this->devices->findDevice((string)$deviceId);
			$listed[] = $this->describe($userId, $folder, (string)$deviceId, $device, $authored[$deviceId], $lastSeq[$deviceId]);
		}
		foreach ($this->access->members($folder) as $member) {
			foreach ($this->devices->listByUser($member) as $device) {
				if (!isset($authored[$device->deviceId])) {
					$listed[] = $this->describe($userId, $folder, $device->deviceId, $device, 0, null);
				}
			}
		}
		return $listed;
	}

	/** @return array<string, mixed> */
	private function describe(string $userId, Folder $folder, string $deviceId, ?Device $device, int $authored, ?int $lastSeq): array {
		$member = $device !== null && $this->access->isMember($folder, $device->userId);
		$visible = $device !== null
			&& ($member || $device->userId === $userId || $this->access->shareAFolder($userId, $device->userId));
		return [
			'device_id' => $deviceId,
			'name' => $visible ? $device->name : null,
			'user' => $visible ? $device->userId : null,
			'member' => $member,
			'authored' => $authored,
			'last_seq' => $lastSeq,
		];
	}
}
