<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\ChainWriter;
use OCA\HarpBridge\Tests\Support\TestDevice;

/** GET /folders/{id}/files/{id}/versions: a file's chain entries decoded, their proof status and devices. */
final class VersionServiceTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;
	private TestDevice $phone;
	private string $folderId;
	private string $fileId;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice', 'laptop');
		$this->phone = $this->bridge->registerDevice('alice', 'phone');
		$this->folderId = $this->bridge->createFolder('alice', $this->laptop);
		$this->fileId = bin2hex(random_bytes(16));
	}

	/** @param array{prev: string, entry: string, head: string} $body */
	private function append(array $body, string $userId = 'alice'): void {
		$this->bridge->entries->append($userId, $this->folderId, $this->fileId, JsonObject::fromArray($body));
	}

	/** @return array<string, mixed> */
	private function versions(string $query = '', string $userId = 'alice', ?string $fileId = null): array {
		return $this->bridge->versions->versions($userId, $this->folderId, $fileId ?? $this->fileId, QueryString::parse($query));
	}

	/** @param array<string, mixed> $answer @return array<string, array<string, mixed>> devices by id */
	private static function devicesById(array $answer): array {
		return array_column($answer['devices'], null, 'device_id');
	}

	public function testVersionsAreTheChainEntriesDecodedIntoFields(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$bodies = [
			$writer->next($this->laptop),
			$writer->next($this->phone),
			$writer->next($this->laptop, ChainEntry::OP_DELETE),
		];
		foreach ($bodies as $body) {
			$this->append($body);
		}
		$answer = $this->versions();
		$this->assertSame($this->fileId, $answer['file_id']);
		$this->assertSame(['size' => 3, 'cosignatures' => 0, 'witnesses' => []], $answer['checkpoint']);
		$this->assertNull($answer['next_seq']);
		$this->assertCount(3, $answer['versions']);
		foreach ($answer['versions'] as $i => $version) {
			$entry = ChainEntry::decode((string)Base64::decode($bodies[$i]['entry']));
			$this->assertSame([
				'seq' => $i + 1,
				'op' => ['create', 'modify', 'delete'][$i],
				'author' => [$this->laptop->id, $this->phone->id, $this->laptop->id][$i],
				'timestamp_ms' => 1_763_700_000_000 + $i + 1,
				'size' => [100, 200, 0][$i],
				'content_root' => bin2hex($entry->contentRoot),
				'prev' => $bodies[$i]['prev'],
				'head' => $bodies[$i]['head'],
				'log_index' => $i,
				'logged' => true,
			], $version);
		}
		$this->assertSame(str_repeat('0', 64), $answer['versions'][2]['content_root'], 'a delete has no content');
	}

	public function testAnEntryWithoutALogIndexIsNotLoggedYet(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		// Stored before the log existed (or by a request that ended before logging it).
		$body = $writer->next($this->laptop);
		$this->bridge->entryStore->addLink(new ChainLink(
			$this->folderId,
			$this->fileId,
			2,
			$body['prev'],
			(string)Base64::decode($body['entry']),
			$body['head'],
			$this->laptop->id,
		), $body['head']);
		$versions = $this->versions()['versions'];
		$this->assertSame([0, null], array_column($versions, 'log_index'));
		$this->assertSame([true, false], array_column($versions, 'logged'));
		$this->assertSame(1, $this->versions()['checkpoint']['size']);
	}

	public function testTheCheckpointCountsTheCosignaturesOfTheNewestSizeOnly(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->cosign(1, 'witness.example/w1');
		$this->append($writer->next($this->laptop));
		$this->assertSame(['size' => 2, 'cosignatures' => 0, 'witnesses' => []], $this->versions()['checkpoint'], 'the log grew past the cosigned size');
		$this->cosign(2, 'witness.example/w1', "\x01\x02\x03\x04");
		$this->cosign(2, 'witness.example/w2', "\xa0\xb0\xc0\xd0");
		$this->assertSame([
			'size' => 2,
			'cosignatures' => 2,
			'witnesses' => [
				['name' => 'witness.example/w1', 'key_id' => '01020304'],
				['name' => 'witness.example/w2', 'key_id' => 'a0b0c0d0'],
			],
		], $this->versions()['checkpoint']);
		$this->assertSame([true, true], array_column($this->versions()['versions'], 'logged'));
	}

	private function cosign(int $size, string $name, ?string $keyId = null): void {
		$line = "\u{2014} $name " . base64_encode(($keyId ?? random_bytes(4)) . random_bytes(72));
		$this->bridge->log->addCosignature('alice', $this->folderId, JsonObject::fromArray(['size' => $size, 'cosignature' => $line]));
	}

	public function testDevicesAreTheAuthorsThenTheFoldersOtherMemberDevices(): void {
		$tablet = $this->bridge->registerDevice('alice', 'tablet');
		$this->bridge->share('alice', $this->folderId, 'bob');
		$desktop = $this->bridge->registerDevice('bob', 'desktop');
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->append($writer->next($desktop), 'bob');
		$this->append($writer->next($this->laptop));

		$answer = $this->versions();
		$ids = array_column($answer['devices'], 'device_id');
		$this->assertSame([$this->laptop->id, $desktop->id], array_slice($ids, 0, 2), 'the most recent writer first');
		$others = [$this->phone->id, $tablet->id];
		sort($others);
		$this->assertSame($others, array_slice($ids, 2), 'then the member devices that wrote none, by user and id');
		$byId = self::devicesById($answer);
		$this->assertSame(['device_id' => $this->laptop->id, 'name' => 'laptop', 'user' => 'alice', 'member' => true, 'authored' => 2, 'last_seq' => 3], $byId[$this->laptop->id]);
		$this->assertSame(['device_id' => $desktop->id, 'name' => 'desktop', 'user' => 'bob', 'member' => true, 'authored' => 1, 'last_seq' => 2], $byId[$desktop->id]);
		$this->assertSame(['device_id' => $tablet->id, 'name' => 'tablet', 'user' => 'alice', 'member' => true, 'authored' => 0, 'last_seq' => null], $byId[$tablet->id]);
		// Bob sees the same, names included.
		$this->assertSame($answer, $this->versions('', 'bob'));
	}

	public function testARevokedAuthorAndAFormerMembersDeviceAreNotMembers(): void {
		$this->bridge->share('alice', $this->folderId, 'bob');
		$desktop = $this->bridge->registerDevice('bob', 'desktop');
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->phone));
		$this->append($writer->next($desktop), 'bob');
		$this->bridge->devices->revoke('alice', $this->phone->id);
		$this->bridge->folders->removeMember('bob', $this->folderId, 'bob');

		$byId = self::devicesById($this->versions());
		$this->assertSame(['device_id' => $this->phone->id, 'name' => null, 'user' => null, 'member' => false, 'authored' => 1, 'last_seq' => 1], $byId[$this->phone->id], 'revoked: only the id the entry carries');
		$this->assertSame(['device_id' => $desktop->id, 'name' => null, 'user' => null, 'member' => false, 'authored' => 1, 'last_seq' => 2], $byId[$desktop->id], 'alice and bob share no folder now: bob\'s device is not hers to see');
		$this->assertTrue($byId[$this->laptop->id]['member']);
		$this->assertSame(0, $byId[$this->laptop->id]['authored']);

		// Sharing another folder makes bob's devices visible to alice again (as GET /devices/{id}).
		$other = $this->bridge->createFolder('alice', $this->laptop);
		$this->bridge->share('alice', $other, 'bob');
		$desktopSeen = self::devicesById($this->versions())[$desktop->id];
		$this->assertSame(['desktop', 'bob', false], [$desktopSeen['name'], $desktopSeen['user'], $desktopSeen['member']]);
	}

	public function testPagesEndAtASeqSoForksAreNotSplit(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$fork = $writer->fork();
		$this->append($writer->next($this->laptop));
		$this->append($fork->next($this->phone));
		$this->append($writer->next($this->laptop));

		$this->assertSame([1, 2, 2, 3], array_column($this->versions()['versions'], 'seq'));
		$first = $this->versions('limit=2');
		$this->assertSame([1], array_column($first['versions'], 'seq'), 'seq 2 has two entries: the page ends before it');
		$this->assertSame(2, $first['next_seq']);
		$second = $this->versions('limit=2&from_seq=2');
		$this->assertSame([2, 2], array_column($second['versions'], 'seq'));
		$this->assertSame([$this->laptop->id, $this->phone->id], array_column($second['versions'], 'author'), 'forks in the order they were stored');
		$this->assertSame(3, $second['next_seq']);
		$third = $this->versions('limit=2&from_seq=3');
		$this->assertSame([3], array_column($third['versions'], 'seq'));
		$this->assertNull($third['next_seq']);
		// A seq with more forks than a page: the page is the first of them, then the next seq.
		$narrow = $this->versions('limit=1&from_seq=2');
		$this->assertSame([2], array_column($narrow['versions'], 'seq'));
		$this->assertSame(3, $narrow['next_seq']);
		// A page that ends between seqs.
		$this->assertSame([[1, 2, 2], 3], [array_column($this->versions('limit=3')['versions'], 'seq'), $this->versions('limit=3')['next_seq']]);
	}

	public function testAFileWithoutEntriesHasNoVersions(): void {
		$answer = $this->versions();
		$this->assertSame([], $answer['versions']);
		$this->assertNull($answer['next_seq']);
		$members = [$this->laptop->id, $this->phone->id];
		sort($members);
		$this->assertSame($members, array_column($answer['devices'], 'device_id'), 'the member devices, by id');
		$this->assertSame([true, true], array_column($answer['devices'], 'member'));
		$this->assertSame([0, 0], array_column($answer['devices'], 'authored'));
	}

	public function testOnlyMembersSeeVersionsAndTheQueryIsChecked(): void {
		$this->append((new ChainWriter($this->folderId, $this->fileId))->next($this->laptop));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->versions('', 'bob'));
		$this->assertRefused(NotFound::class, 'no such file', fn () => $this->versions('', 'alice', strtoupper($this->fileId)));
		$this->assertRefused(NotFound::class, 'no such file', fn () => $this->versions('', 'alice', 'report.pdf'));
		$this->assertRefused(Invalid::class, 'from_seq: must be between 1 and', fn () => $this->versions('from_seq=0'));
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 1000', fn () => $this->versions('limit=1001'));
		$this->bridge->share('alice', $this->folderId, 'bob');
		$this->assertCount(1, $this->versions('', 'bob')['versions']);
	}
}
