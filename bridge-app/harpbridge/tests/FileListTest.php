<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\TestDevice;

/** GET /folders/{id}/files: the Harp page's listing of a folder's index, page by page. */
final class FileListTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
	}

	/** @return array<string, mixed> */
	private function list(string $folderId, string $query = '', string $userId = 'alice'): array {
		return $this->bridge->index->listFiles($userId, $folderId, QueryString::parse($query));
	}

	/** Puts $count records with file ids 000…01, 000…02, … and answers the ids. @return list<string> */
	private function putFiles(string $folderId, int $count, bool $plaintext = true): array {
		$entries = [];
		for ($i = 1; $i <= $count; $i++) {
			$entry = ['file_id' => sprintf('%032x', $i), 'size' => $i * 10, 'mtime_ms' => 1_763_700_000_000 + $i, 'deleted' => false];
			$entry += $plaintext ? ['name' => "docs/file-$i.txt"] : ['tokens' => [bin2hex(random_bytes(16))]];
			$entries[] = $entry;
		}
		$this->bridge->index->put('alice', $folderId, JsonObject::fromArray(['entries' => $entries]));
		return array_column($entries, 'file_id');
	}

	public function testAPlaintextFolderListsNamesByFileIdPageByPage(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop);
		$ids = $this->putFiles($folder, 5);
		$first = $this->list($folder, 'limit=2');
		$this->assertSame('plaintext', $first['index_mode']);
		$this->assertSame([
			['file_id' => $ids[0], 'name' => 'docs/file-1.txt', 'size' => 10, 'mtime_ms' => 1_763_700_000_001, 'deleted' => false],
			['file_id' => $ids[1], 'name' => 'docs/file-2.txt', 'size' => 20, 'mtime_ms' => 1_763_700_000_002, 'deleted' => false],
		], $first['files']);
		$this->assertSame($ids[1], $first['next']);
		$second = $this->list($folder, 'limit=2&after=' . $first['next']);
		$this->assertSame([$ids[2], $ids[3]], array_column($second['files'], 'file_id'));
		$last = $this->list($folder, 'limit=2&after=' . $second['next']);
		$this->assertSame([$ids[4]], array_column($last['files'], 'file_id'));
		$this->assertNull($last['next'], 'no page after the last');
		// Exactly a page left: still no next page.
		$this->assertNull($this->list($folder, 'limit=3&after=' . $ids[1])['next']);
		$this->assertSame($ids, array_column($this->list($folder)['files'], 'file_id'), 'default: 100 a page');
	}

	public function testAnEncryptedFolderListsFileIdsWithoutNamesOrTokens(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'encrypted');
		$ids = $this->putFiles($folder, 3, false);
		$listed = $this->list($folder);
		$this->assertSame('encrypted', $listed['index_mode']);
		$this->assertSame($ids, array_column($listed['files'], 'file_id'));
		foreach ($listed['files'] as $file) {
			$this->assertNull($file['name']);
			$this->assertArrayNotHasKey('tokens', $file);
		}
		$this->assertNull($listed['next']);
	}

	public function testAnEmptyIndexListsNothing(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop);
		$this->assertSame(['index_mode' => 'plaintext', 'files' => [], 'next' => null], $this->list($folder));
	}

	public function testOnlyMembersListAFolder(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop);
		$this->putFiles($folder, 1);
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->list($folder, '', 'bob'));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->list(bin2hex(random_bytes(16))));
		$this->bridge->share('alice', $folder, 'bob');
		$this->assertCount(1, $this->list($folder, '', 'bob')['files']);
	}

	public function testTheQueryIsChecked(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop);
		$this->assertRefused(Invalid::class, 'after: must be 32 lowercase hex characters', fn () => $this->list($folder, 'after=' . str_repeat('A', 32)));
		$this->assertRefused(Invalid::class, 'after: must be 32 lowercase hex characters', fn () => $this->list($folder, 'after=docs'));
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 500', fn () => $this->list($folder, 'limit=0'));
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 500', fn () => $this->list($folder, 'limit=501'));
		$this->assertRefused(Invalid::class, 'limit: must be an integer', fn () => $this->list($folder, 'limit=x'));
	}
}
