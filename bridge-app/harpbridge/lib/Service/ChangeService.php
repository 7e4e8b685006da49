<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Exception\TooLarge;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\SealedChange;
use OCA\HarpBridge\Store\ChangeRepository;
use OCA\HarpBridge\Store\DeviceRepository;

/**
 * The folder document's changes, sealed with the folder keys on the devices:
 * the bridge keeps them in order so a new or long-offline device catches up
 * without a peer online. It never reads them, it only bounds their size.
 */
final class ChangeService {
	public function __construct(
		private readonly ChangeRepository $changes,
		private readonly DeviceRepository $devices,
		private readonly FolderAccess $access,
	) {
	}

	/**
	 * Appends changes uploaded by one of the caller's devices.
	 *
	 * @return array{cursor: int} the cursor after the last one
	 * @throws NotFound
	 * @throws Invalid malformed, or the device is not the caller's
	 * @throws TooLarge a change over 1 MiB
	 */
	public function append(string $userId, string $folderId, JsonObject $body): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$body->allowOnly('device', 'changes');
		$deviceId = $body->string('device');
		$device = Ids::isDeviceId($deviceId) ? $this->devices->findDevice($deviceId) : null;
		if ($device === null || $device->userId !== $userId) {
			throw new Invalid('device: not a registered device of yours');
		}
		$items = $body->list('changes', 1, Limits::MAX_CHANGES_PER_REQUEST);
		foreach ($items as $index => $item) {
			if (!is_string($item)) {
				throw new Invalid("changes[$index]: must be a base64 string");
			}
			if (strlen($item) > Limits::MAX_CHANGE_CHARS) {
				throw new TooLarge("changes[$index]: over " . Limits::MAX_CHANGE_BYTES . ' bytes');
			}
			$bytes = Base64::decode($item);
			if ($bytes === null) {
				throw new Invalid("changes[$index]: must be base64");
			}
			if (strlen($bytes) > Limits::MAX_CHANGE_BYTES) {
				throw new TooLarge("changes[$index]: over " . Limits::MAX_CHANGE_BYTES . ' bytes');
			}
		}
		return ['cursor' => $this->changes->appendChanges($folder->folderId, $device->deviceId, $items)];
	}

	/**
	 * Changes after a cursor, oldest first; `next` is the cursor to ask after
	 * for more, or null when there is nothing more now.
	 *
	 * @return array{changes: list<array<string, int|string>>, next: int|null}
	 * @throws NotFound
	 * @throws Invalid
	 */
	public function read(string $userId, string $folderId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$after = $query->int('after', 0, 0, PHP_INT_MAX);
		$limit = $query->int('limit', Limits::DEFAULT_CHANGES_LIMIT, 1, Limits::MAX_CHANGES_LIMIT);
		// One more than asked tells whether more remain, without a count query.
		$found = $this->changes->listChangesAfter($folder->folderId, $after, $limit + 1);
		$more = count($found) > $limit;
		$page = array_slice($found, 0, $limit);
		return [
			'changes' => array_map(static fn (SealedChange $c): array => $c->toApi(), $page),
			'next' => $more ? $page[count($page) - 1]->cursor : null,
		];
	}
}
