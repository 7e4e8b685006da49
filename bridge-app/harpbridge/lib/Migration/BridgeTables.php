<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Migration;

/**
 * The app's tables as data: columns, primary key, unique and plain indexes.
 * The migration creates whatever of it is missing, so it can run again safely,
 * and a test checks that every column has its Entity property.
 *
 * Column types are the names of OCP\DB\Types (bigint, string, text, boolean).
 * Names follow Nextcloud's limits: tables under 23 characters (for the
 * default primary key name), indexes at most 30 and unique across the schema,
 * boolean columns nullable, strings at most 4000 characters.
 */
final class BridgeTables {
	public const DEVICES = 'harp_devices';
	public const FOLDERS = 'harp_folders';
	public const MEMBERS = 'harp_members';
	public const KEYS = 'harp_keys';
	public const CHANGES = 'harp_changes';
	public const ENTRIES = 'harp_entries';
	public const INDEX = 'harp_index';
	public const LOG = 'harp_log_leaves';
	public const COSIGNATURES = 'harp_cosignatures';

	/**
	 * @return array<string, array{
	 *     entity: string,
	 *     columns: array<string, array{0: string, 1: array<string, mixed>}>,
	 *     unique: array<string, list<string>>,
	 *     index: array<string, list<string>>
	 * }>
	 */
	public static function all(): array {
		$id = ['bigint', ['autoincrement' => true, 'notnull' => true, 'unsigned' => true]];
		$folderId = ['string', ['notnull' => true, 'length' => 32]];
		$fileId = ['string', ['notnull' => true, 'length' => 32]];
		$deviceId = ['string', ['notnull' => true, 'length' => 52]];
		$userId = ['string', ['notnull' => true, 'length' => 64]];
		$hash = ['string', ['notnull' => true, 'length' => 64]];
		$time = ['bigint', ['notnull' => true]];
		return [
			self::DEVICES => [
				'entity' => 'DeviceEntity',
				'columns' => [
					'id' => $id,
					'device_id' => $deviceId,
					'user_id' => $userId,
					'name' => ['string', ['notnull' => true, 'length' => 255]],
					'x25519_public' => ['string', ['notnull' => true, 'length' => 44]],
					// JSON list of multiaddrs
					'addresses' => ['text', ['notnull' => false]],
					'addresses_expire' => ['bigint', ['notnull' => false]],
					'created_at' => $time,
					// when the addresses were last published (null: never, or before 1.2.0)
					'addresses_published' => ['bigint', ['notnull' => false]],
				],
				'unique' => ['harp_dev_id_uniq' => ['device_id']],
				'index' => ['harp_dev_user' => ['user_id']],
			],
			self::FOLDERS => [
				'entity' => 'FolderEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					'owner' => $userId,
					'label' => ['string', ['notnull' => true, 'length' => 512]],
					'index_mode' => ['string', ['notnull' => true, 'length' => 16]],
					'versioning' => ['string', ['notnull' => true, 'length' => 32]],
					'created_at' => $time,
				],
				'unique' => ['harp_fold_id_uniq' => ['folder_id']],
				'index' => ['harp_fold_owner' => ['owner']],
			],
			self::MEMBERS => [
				'entity' => 'MemberEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					'user_id' => $userId,
					'created_at' => $time,
				],
				'unique' => ['harp_mem_uniq' => ['folder_id', 'user_id']],
				'index' => ['harp_mem_user' => ['user_id']],
			],
			self::KEYS => [
				'entity' => 'WrappedKeyEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					'device_id' => $deviceId,
					'ephemeral_public' => ['string', ['notnull' => true, 'length' => 44]],
					'nonce' => ['string', ['notnull' => true, 'length' => 32]],
					'ciphertext' => ['string', ['notnull' => true, 'length' => 64]],
					'wrapped_by' => $deviceId,
					'signature' => ['string', ['notnull' => true, 'length' => 88]],
					'updated_at' => $time,
				],
				'unique' => ['harp_keys_uniq' => ['folder_id', 'device_id']],
				'index' => ['harp_keys_device' => ['device_id']],
			],
			self::CHANGES => [
				'entity' => 'ChangeEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					// the change's cursor, increasing per folder
					'seq' => ['bigint', ['notnull' => true]],
					'device_id' => $deviceId,
					// base64, up to 1 MiB decoded (LONGTEXT on MySQL)
					'sealed' => ['text', ['notnull' => true]],
					'created_at' => $time,
				],
				'unique' => ['harp_chg_cursor_uniq' => ['folder_id', 'seq']],
				'index' => [],
			],
			self::ENTRIES => [
				'entity' => 'ChainEntryEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					'file_id' => $fileId,
					'seq' => ['bigint', ['notnull' => true]],
					'prev' => $hash,
					'head' => $hash,
					// base64 of the 218-byte entry
					'entry' => ['string', ['notnull' => true, 'length' => 292]],
					'author' => $deviceId,
					// what may exist once per file: the head (crdt) or "seq:N" (server_authoritative)
					'slot' => ['string', ['notnull' => true, 'length' => 64]],
					'created_at' => $time,
					// its leaf in the folder's log (null: not logged, e.g. stored before the log existed)
					'log_index' => ['bigint', ['notnull' => false]],
				],
				'unique' => [
					'harp_ent_head_uniq' => ['folder_id', 'file_id', 'head'],
					'harp_ent_slot_uniq' => ['folder_id', 'file_id', 'slot'],
				],
				'index' => ['harp_ent_seq' => ['folder_id', 'file_id', 'seq']],
			],
			self::INDEX => [
				'entity' => 'IndexEntryEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					'file_id' => $fileId,
					// plaintext folders only: the path (up to 4096 characters)
					'name' => ['text', ['notnull' => false]],
					// encrypted folders only: " token token " for LIKE '% token %'
					'tokens' => ['text', ['notnull' => false]],
					'size' => ['bigint', ['notnull' => true]],
					'mtime_ms' => ['bigint', ['notnull' => true]],
					'deleted' => ['boolean', ['notnull' => false]],
					'updated_at' => $time,
				],
				'unique' => ['harp_idx_file_uniq' => ['folder_id', 'file_id']],
				'index' => [],
			],
			self::LOG => [
				'entity' => 'LogLeafEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					// 0, 1, 2, … per folder, in the order the entries were stored
					'log_index' => ['bigint', ['notnull' => true]],
					// hex of SHA-256(0x00 ‖ file id ‖ seq ‖ head)
					'leaf_hash' => $hash,
					'created_at' => $time,
				],
				'unique' => [
					'harp_log_index_uniq' => ['folder_id', 'log_index'],
					'harp_log_leaf_uniq' => ['folder_id', 'leaf_hash'],
				],
				'index' => [],
			],
			self::COSIGNATURES => [
				'entity' => 'CosignatureEntity',
				'columns' => [
					'id' => $id,
					'folder_id' => $folderId,
					// the checkpoint size it cosigns
					'size' => ['bigint', ['notnull' => true]],
					// 0 to 15 among the lines of that size
					'place' => ['bigint', ['notnull' => true]],
					'name' => ['string', ['notnull' => true, 'length' => 512]],
					// hex of the 4-byte key id
					'key_id' => ['string', ['notnull' => true, 'length' => 8]],
					// "— <name> <base64>\n"
					'line' => ['string', ['notnull' => true, 'length' => 520]],
					'created_at' => $time,
				],
				'unique' => [
					'harp_cosig_place_uniq' => ['folder_id', 'size', 'place'],
					'harp_cosig_key_uniq' => ['folder_id', 'size', 'key_id', 'name'],
				],
				'index' => [],
			],
		];
	}
}
