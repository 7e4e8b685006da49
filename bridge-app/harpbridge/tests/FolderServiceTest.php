<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Conflict;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\ChainWriter;
use OCA\HarpBridge\Tests\Support\TestDevice;

final class FolderServiceTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
	}

	/** @return array<string, mixed> */
	private function creation(string $folderId, array $change = []): array {
		return array_merge([
			'folder_id' => $folderId,
			'label' => 'Documents',
			'index_mode' => 'plaintext',
			'wrapped_key' => $this->laptop->wrapFor($folderId, $this->laptop),
		], $change);
	}

	public function testCreatingAFolderStoresItAndTheOwnersKey(): void {
		$folderId = bin2hex(random_bytes(16));
		$folder = $this->bridge->folders->create('alice', JsonObject::fromArray($this->creation($folderId)));
		$this->assertSame([
			'folder_id' => $folderId,
			'label' => 'Documents',
			'owner' => 'alice',
			'index_mode' => 'plaintext',
			'versioning' => 'crdt',
			'members' => [['user' => 'alice', 'devices' => [$this->laptop->id]]],
		], $folder);
		$this->assertSame([$folder], $this->bridge->folders->list('alice'));
		$this->assertSame($folder, $this->bridge->folders->get('alice', $folderId));
		$this->assertNotNull($this->bridge->keyStore->findKey($folderId, $this->laptop->id));
	}

	public function testVersioningDefaultsToTheServerSetting(): void {
		$this->bridge->versioningSource->app = 'server_authoritative';
		$folderId = bin2hex(random_bytes(16));
		$this->assertSame('server_authoritative', $this->bridge->folders->create('alice', JsonObject::fromArray($this->creation($folderId)))['versioning']);
		$other = bin2hex(random_bytes(16));
		$this->assertSame('crdt', $this->bridge->folders->create('alice', JsonObject::fromArray($this->creation($other, ['versioning' => 'crdt'])))['versioning']);
	}

	public function testAnExistingIdIsAConflictForAnyone(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->assertRefused(Conflict::class, 'folder_id: exists', fn () => $this->bridge->folders->create('alice', JsonObject::fromArray($this->creation($folderId))));
		$bobDevice = $this->bridge->registerDevice('bob');
		$body = ['folder_id' => $folderId, 'label' => 'Mine', 'index_mode' => 'encrypted', 'wrapped_key' => $bobDevice->wrapFor($folderId, $bobDevice)];
		$this->assertRefused(Conflict::class, 'folder_id: exists', fn () => $this->bridge->folders->create('bob', JsonObject::fromArray($body)));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->folders->get('bob', $folderId));
	}

	public function testCreationChecksFieldsAndTheWrappedKey(): void {
		$id = bin2hex(random_bytes(16));
		$create = fn (array $body) => $this->bridge->folders->create('alice', JsonObject::fromArray($body));
		$this->assertRefused(Invalid::class, 'folder_id: must be 32 lowercase hex', fn () => $create($this->creation(strtoupper($id))));
		$this->assertRefused(Invalid::class, 'label: must not be empty', fn () => $create($this->creation($id, ['label' => ''])));
		$this->assertRefused(Invalid::class, 'label: at most 128 characters', fn () => $create($this->creation($id, ['label' => str_repeat('l', 129)])));
		$this->assertRefused(Invalid::class, 'index_mode: must be one of plaintext, encrypted', fn () => $create($this->creation($id, ['index_mode' => 'secret'])));
		$this->assertRefused(Invalid::class, 'versioning: must be one of', fn () => $create($this->creation($id, ['versioning' => 'lww'])));
		$this->assertRefused(Invalid::class, 'owner: unknown field', fn () => $create($this->creation($id, ['owner' => 'bob'])));

		$key = $this->laptop->wrapFor($id, $this->laptop);
		$key['signature'] = base64_encode(random_bytes(64));
		$this->assertRefused(Invalid::class, 'wrapped_key.signature: does not verify', fn () => $create($this->creation($id, ['wrapped_key' => $key])));
		$key = $this->laptop->wrapFor($id, $this->laptop);
		$key['nonce'] = base64_encode(random_bytes(12));
		$this->assertRefused(Invalid::class, 'wrapped_key.nonce: must be 24 bytes', fn () => $create($this->creation($id, ['wrapped_key' => $key])));

		$bobDevice = $this->bridge->registerDevice('bob');
		$this->assertRefused(Invalid::class, 'wrapped_key.device_id: not a registered device of yours', fn () => $create($this->creation($id, ['wrapped_key' => $this->laptop->wrapFor($id, $bobDevice)])));
		$this->assertRefused(Invalid::class, 'wrapped_key.wrapped_by: not a registered device of yours', fn () => $create($this->creation($id, ['wrapped_key' => $bobDevice->wrapFor($id, $this->laptop)])));
		$this->assertSame(0, $this->bridge->folderStore->countFolders());
	}

	public function testAForeignFolderAnswersLikeAMissingOne(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$bobDevice = $this->bridge->registerDevice('bob');
		$missing = bin2hex(random_bytes(16));
		foreach ([$folderId, $missing, 'not-an-id'] as $id) {
			$foreign = $this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->folders->get('bob', $id));
			$this->assertSame(['error' => 'not_found', 'message' => 'no such folder'], $foreign->toApi());
			// Every folder endpoint answers the same way.
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->changes->read('bob', $id, QueryString::parse('')));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->entries->read('bob', $id, str_repeat('ab', 16), QueryString::parse('')));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->entries->append('bob', $id, str_repeat('ab', 16), JsonObject::fromArray(ChainWriter::body($bobDevice, str_repeat('ab', 16), str_repeat('ab', 16), 1, random_bytes(32), 1))));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->index->search('bob', $id, QueryString::parse('')));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->index->put('bob', $id, JsonObject::fromArray(['entries' => []])));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->keys->get('bob', $id, $bobDevice->id));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->keys->put('bob', $id, $bobDevice->id, JsonObject::fromArray($bobDevice->wrapFor(str_repeat('ab', 16), $bobDevice))));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->folders->addMember('bob', $id, JsonObject::fromArray(['user' => 'carol'])));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->folders->removeMember('bob', $id, 'bob'));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->changes->append('bob', $id, JsonObject::fromArray(['device' => $bobDevice->id, 'changes' => ['AA==']])));
		}
		$this->assertSame([], $this->bridge->folders->list('bob'));
	}

	public function testSharingMakesAMemberWhoSeesTheFolderAndItsDevices(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$bobDevice = $this->bridge->registerDevice('bob');
		$folder = $this->bridge->folders->addMember('alice', $folderId, JsonObject::fromArray(['user' => 'bob']));
		$this->assertSame([
			['user' => 'alice', 'devices' => [$this->laptop->id]],
			['user' => 'bob', 'devices' => [$bobDevice->id]],
		], $folder['members']);
		$this->assertSame($folder, $this->bridge->folders->get('bob', $folderId));
		$this->assertSame([$folder], $this->bridge->folders->list('bob'));
		// Sharing again changes nothing.
		$this->assertSame($folder, $this->bridge->folders->addMember('alice', $folderId, JsonObject::fromArray(['user' => 'bob'])));
		$this->assertSame($folder, $this->bridge->folders->addMember('alice', $folderId, JsonObject::fromArray(['user' => 'alice'])));
		$this->assertSame(1, $this->bridge->memberStore->countShares());
	}

	public function testOnlyTheOwnerShares(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->bridge->share('alice', $folderId, 'bob');
		$this->assertRefused(NotFound::class, 'no such folder of yours', fn () => $this->bridge->share('bob', $folderId, 'carol'));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->share('carol', $folderId, 'carol'));
	}

	public function testAnUnknownUserAnswersLikeAnUnknownFolder(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->assertRefused(NotFound::class, 'no such folder or user', fn () => $this->bridge->share('alice', $folderId, 'mallory'));
		$this->assertRefused(Invalid::class, 'user: must not be empty', fn () => $this->bridge->share('alice', $folderId, ''));
		$this->assertRefused(Invalid::class, 'role: unknown field', fn () => $this->bridge->folders->addMember('alice', $folderId, JsonObject::fromArray(['user' => 'bob', 'role' => 'x'])));
	}

	public function testAFolderHasAtMost256Members(): void {
		$users = array_map(static fn (int $i): string => "user$i", range(1, 256));
		$bridge = new Bridge(['alice', ...$users]);
		$device = $bridge->registerDevice('alice');
		$folderId = $bridge->createFolder('alice', $device);
		for ($i = 1; $i <= 255; $i++) {
			$bridge->share('alice', $folderId, "user$i");
		}
		$this->assertRefused(Invalid::class, 'user: a folder has at most 256 members', fn () => $bridge->share('alice', $folderId, 'user256'));
	}

	public function testUnsharingRemovesTheMemberAndTheirKeys(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->bridge->share('alice', $folderId, 'bob');
		$bobDevice = $this->bridge->registerDevice('bob');
		$this->bridge->keys->put('alice', $folderId, $bobDevice->id, JsonObject::fromArray($this->laptop->wrapFor($folderId, $bobDevice)));
		$otherFolder = $this->bridge->createFolder('alice', $this->laptop);
		$this->bridge->share('alice', $otherFolder, 'bob');
		$this->bridge->keys->put('alice', $otherFolder, $bobDevice->id, JsonObject::fromArray($this->laptop->wrapFor($otherFolder, $bobDevice)));

		$this->bridge->folders->removeMember('alice', $folderId, 'bob');
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->folders->get('bob', $folderId));
		$this->assertNull($this->bridge->keyStore->findKey($folderId, $bobDevice->id));
		$this->assertNotNull($this->bridge->keyStore->findKey($otherFolder, $bobDevice->id), 'only this folder\'s keys go');
		$this->assertNotNull($this->bridge->keyStore->findKey($folderId, $this->laptop->id));
		$this->assertRefused(NotFound::class, 'no such member', fn () => $this->bridge->folders->removeMember('alice', $folderId, 'bob'));
	}

	public function testAMemberLeavesButCannotRemoveOthers(): void {
		$folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->bridge->share('alice', $folderId, 'bob');
		$this->bridge->share('alice', $folderId, 'carol');
		$this->assertRefused(NotFound::class, 'no such member', fn () => $this->bridge->folders->removeMember('bob', $folderId, 'carol'));
		$this->assertRefused(NotFound::class, 'no such member', fn () => $this->bridge->folders->removeMember('bob', $folderId, 'alice'));
		$this->bridge->folders->removeMember('bob', $folderId, 'bob');
		$this->assertSame(['alice', 'carol'], array_column($this->bridge->folders->get('alice', $folderId)['members'], 'user'));
		$this->assertRefused(Invalid::class, 'user: the owner cannot leave', fn () => $this->bridge->folders->removeMember('alice', $folderId, 'alice'));
	}
}
