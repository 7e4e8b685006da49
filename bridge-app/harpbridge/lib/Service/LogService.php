<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Log\Checkpoint;
use OCA\HarpBridge\Log\CosignatureLine;
use OCA\HarpBridge\Log\MerkleTree;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Model\Cosignature;
use OCA\HarpBridge\Store\CosignatureRepository;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Store\LogRepository;

/**
 * Each folder's transparency log (docs/protocol.md, "Transparency log"): one
 * leaf per chain entry the bridge stored as new, `file id ‖ seq ‖ head`, at
 * indexes 0, 1, 2, … in the order they were stored. The bridge signs
 * checkpoints of it (C2SP signed notes), keeps the cosignature lines witnesses
 * add, and proves inclusion and consistency (RFC 6962 PATH and PROOF), so a
 * bridge that rewrites or drops history is caught.
 */
final class LogService {
	public const MAX_COSIGNATURES = 16;
	public const MAX_COSIGNATURE_CHARS = 512;
	/** Tries to take the next index (or a cosignature place) before giving up. */
	private const ATTEMPTS = 20;

	public function __construct(
		private readonly LogRepository $log,
		private readonly CosignatureRepository $cosignatures,
		private readonly FolderAccess $access,
		private readonly LogKeyService $keys,
	) {
	}

	/**
	 * Appends a stored chain entry to its folder's log; answers its index.
	 * The next index is the log's size; when another append takes it first
	 * (the unique index refuses ours) it tries the one after. An entry already
	 * in the log keeps its index, so logging one twice is harmless.
	 *
	 * @throws DuplicateKey after ATTEMPTS lost races in a row
	 */
	public function append(ChainLink $link): int {
		$leaf = bin2hex(MerkleTree::chainLeaf((string)hex2bin($link->fileId), $link->seq, (string)hex2bin($link->head)));
		for ($attempt = 1; ; $attempt++) {
			$logged = $this->log->findLeaf($link->folderId, $leaf);
			if ($logged !== null) {
				return $logged;
			}
			$index = $this->log->logSize($link->folderId);
			try {
				$this->log->addLeaf($link->folderId, $index, $leaf);
				return $index;
			} catch (DuplicateKey $e) {
				if ($attempt >= self::ATTEMPTS) {
					throw $e;
				}
				usleep(random_int(0, 1000 * $attempt));
			}
		}
	}

	/**
	 * The newest checkpoint: the body signed by the bridge's log key, then the
	 * cosignature lines stored for this size.
	 *
	 * @return array{size: int, note: string}
	 * @throws NotFound
	 */
	public function checkpoint(string $userId, string $folderId): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$size = $this->log->logSize($folder->folderId);
		$tree = $this->tree($folder->folderId, $size);
		$note = $this->keys->key()->sign(Checkpoint::body($folder->folderId, $size, $tree->root($size)));
		foreach ($this->cosignatures->listCosignatures($folder->folderId, $size) as $cosignature) {
			$note .= $cosignature->line;
		}
		return ['size' => $size, 'note' => $note];
	}

	/**
	 * Stores a witness's cosignature line for the checkpoint of `size` (the
	 * current size or an earlier one). The bridge checks the line's shape, not
	 * its signature (it does not know the witnesses' keys). A line by the same
	 * name and key id replaces the stored one; at most 16 lines per size.
	 *
	 * @throws NotFound
	 * @throws Invalid malformed, a size over the log's, or a 17th line
	 */
	public function addCosignature(string $userId, string $folderId, JsonObject $body): void {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$body->allowOnly('size', 'cosignature');
		$size = $body->int('size', 0);
		try {
			$line = CosignatureLine::parse($body->string('cosignature', 1, self::MAX_COSIGNATURE_CHARS));
		} catch (\InvalidArgumentException $e) {
			throw new Invalid('cosignature: ' . $e->getMessage());
		}
		$logSize = $this->log->logSize($folder->folderId);
		if ($size > $logSize) {
			throw new Invalid("size: the log has $logSize entries");
		}
		for ($attempt = 1; ; $attempt++) {
			$stored = $this->cosignatures->listCosignatures($folder->folderId, $size);
			$new = new Cosignature($folder->folderId, $size, $this->freePlace($stored), $line->name, bin2hex($line->keyId), $line->text());
			foreach ($stored as $cosignature) {
				if ($cosignature->sameSigner($new)) {
					// The witness's newer line takes the place of its older one.
					$this->cosignatures->replaceCosignature($new->atPlace($cosignature->place));
					return;
				}
			}
			if (count($stored) >= self::MAX_COSIGNATURES) {
				throw new Invalid('cosignature: this checkpoint has ' . self::MAX_COSIGNATURES . ' already');
			}
			try {
				$this->cosignatures->addCosignature($new);
				return;
			} catch (DuplicateKey $e) {
				// Another line took the place, or the same witness posted at the same time: look again.
				if ($attempt >= self::ATTEMPTS) {
					throw $e;
				}
				usleep(random_int(0, 1000 * $attempt));
			}
		}
	}

	/**
	 * The witnesses the bridge has seen, for the admin settings: every key
	 * (name and key id) whose cosignatures it stores, with the largest size
	 * it cosigned of each folder's log beside that log's size now (a witness
	 * behind the log has not seen its newest checkpoint), and the largest of
	 * those sizes. By name, then key id; logs by folder id.
	 *
	 * @return list<array{name: string, key_id: string, newest_size: int, logs: list<array{folder_id: string, size: int, log_size: int}>}>
	 */
	public function witnesses(): array {
		$byKey = [];
		$logSizes = [];
		foreach ($this->cosignatures->listNewestSizes() as $cosigned) {
			$key = $cosigned->name . "\n" . $cosigned->keyId;
			$byKey[$key] ??= ['name' => $cosigned->name, 'key_id' => $cosigned->keyId, 'newest_size' => 0, 'logs' => []];
			$logSizes[$cosigned->folderId] ??= $this->log->logSize($cosigned->folderId);
			$byKey[$key]['logs'][] = [
				'folder_id' => $cosigned->folderId,
				'size' => $cosigned->size,
				'log_size' => $logSizes[$cosigned->folderId],
			];
			$byKey[$key]['newest_size'] = max($byKey[$key]['newest_size'], $cosigned->size);
		}
		return array_values($byKey);
	}

	/**
	 * The inclusion proof of leaf `index` in the log of `size` leaves.
	 *
	 * @return array{index: int, size: int, proof: list<string>}
	 * @throws NotFound
	 * @throws Invalid not integers, index ≥ size, or size over the log's
	 */
	public function inclusion(string $userId, string $folderId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$index = $query->requiredInt('index', 0, PHP_INT_MAX);
		$size = $query->requiredInt('size', 1, PHP_INT_MAX);
		if ($index >= $size) {
			throw new Invalid('index: must be below size');
		}
		$this->checkSize('size', $folder->folderId, $size);
		$proof = $this->tree($folder->folderId, $size)->inclusion($index, $size);
		return ['index' => $index, 'size' => $size, 'proof' => array_map('bin2hex', $proof)];
	}

	/**
	 * The consistency proof from the log of `old` leaves to that of `new`.
	 *
	 * @return array{old: int, new: int, proof: list<string>}
	 * @throws NotFound
	 * @throws Invalid not integers, old > new, or new over the log's size
	 */
	public function consistency(string $userId, string $folderId, QueryString $query): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$old = $query->requiredInt('old', 0, PHP_INT_MAX);
		$new = $query->requiredInt('new', 0, PHP_INT_MAX);
		if ($old > $new) {
			throw new Invalid('old: must not be above new');
		}
		$this->checkSize('new', $folder->folderId, $new);
		$proof = $this->tree($folder->folderId, $new)->consistency($old, $new);
		return ['old' => $old, 'new' => $new, 'proof' => array_map('bin2hex', $proof)];
	}

	/** @throws Invalid $size is over the log's */
	private function checkSize(string $field, string $folderId, int $size): void {
		$logSize = $this->log->logSize($folderId);
		if ($size > $logSize) {
			throw new Invalid("$field: the log has $logSize entries");
		}
	}

	/**
	 * The tree of the log's first $size leaves.
	 *
	 * @throws \RuntimeException the stored log has a gap
	 */
	private function tree(string $folderId, int $size): MerkleTree {
		$leaves = [];
		foreach ($this->log->leafHashes($folderId, $size) as $index => $hash) {
			if ($index !== count($leaves)) {
				break;
			}
			$leaves[] = (string)hex2bin($hash);
		}
		if (count($leaves) !== $size) {
			throw new \RuntimeException("the log of folder $folderId has no leaf " . count($leaves));
		}
		return new MerkleTree($leaves);
	}

	/** @param list<Cosignature> $stored the lowest place no stored line takes */
	private function freePlace(array $stored): int {
		$taken = array_map(static fn (Cosignature $c): int => $c->place, $stored);
		$place = 0;
		while (in_array($place, $taken, true)) {
			$place++;
		}
		return $place;
	}
}
