<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\TooLarge;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Service\Limits;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\TestDevice;

final class ChangeServiceTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;
	private string $folderId;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
		$this->folderId = $this->bridge->createFolder('alice', $this->laptop);
	}

	/** @param list<string> $changes */
	private function append(array $changes, ?TestDevice $device = null, string $userId = 'alice'): array {
		return $this->bridge->changes->append($userId, $this->folderId, JsonObject::fromArray([
			'device' => ($device ?? $this->laptop)->id,
			'changes' => $changes,
		]));
	}

	private function read(string $query, string $userId = 'alice'): array {
		return $this->bridge->changes->read($userId, $this->folderId, QueryString::parse($query));
	}

	public function testCursorsIncreaseAcrossAppends(): void {
		$this->assertSame(['cursor' => 2], $this->append([base64_encode('one'), base64_encode('two')]));
		$this->assertSame(['cursor' => 3], $this->append([base64_encode('three')]));
		$read = $this->read('');
		$this->assertSame([1, 2, 3], array_column($read['changes'], 'cursor'));
		$this->assertSame([base64_encode('one'), base64_encode('two'), base64_encode('three')], array_column($read['changes'], 'change'));
		$this->assertSame([$this->laptop->id], array_values(array_unique(array_column($read['changes'], 'device'))));
		$this->assertNull($read['next']);
	}

	public function testCursorsArePerFolder(): void {
		$this->append([base64_encode('a'), base64_encode('b')]);
		$other = $this->bridge->createFolder('alice', $this->laptop);
		$result = $this->bridge->changes->append('alice', $other, JsonObject::fromArray(['device' => $this->laptop->id, 'changes' => [base64_encode('x')]]));
		$this->assertSame(['cursor' => 1], $result);
	}

	public function testPagingFollowsNextUntilNull(): void {
		$all = array_map(static fn (int $i): string => base64_encode("change $i"), range(1, 7));
		$this->append($all);
		$seen = [];
		$after = 0;
		$pages = 0;
		do {
			$page = $this->read("after=$after&limit=3");
			$seen = [...$seen, ...array_column($page['changes'], 'change')];
			$pages++;
			$after = $page['next'];
		} while ($after !== null);
		$this->assertSame($all, $seen);
		$this->assertSame(3, $pages);
		$this->assertSame(['changes' => [], 'next' => null], $this->read('after=7'));
		$exact = $this->read('after=4&limit=3');
		$this->assertSame([5, 6, 7], array_column($exact['changes'], 'cursor'));
		$this->assertNull($exact['next'], 'a page that reaches the end has no next');
	}

	public function testTheDefaultPageIs200(): void {
		$this->append(array_fill(0, 256, base64_encode('x')));
		$page = $this->read('');
		$this->assertCount(Limits::DEFAULT_CHANGES_LIMIT, $page['changes']);
		$this->assertSame(200, $page['next']);
	}

	public function testMembersReadWhatOthersWrote(): void {
		$this->bridge->share('alice', $this->folderId, 'bob');
		$bobDevice = $this->bridge->registerDevice('bob');
		$this->append([base64_encode('from bob')], $bobDevice, 'bob');
		$this->assertSame($bobDevice->id, $this->read('')['changes'][0]['device']);
	}

	public function testTheDeviceMustBeTheCallers(): void {
		$this->bridge->share('alice', $this->folderId, 'bob');
		$this->bridge->registerDevice('bob');
		$this->assertRefused(Invalid::class, 'device: not a registered device of yours', fn () => $this->append([base64_encode('x')], null, 'bob'));
		$this->assertRefused(Invalid::class, 'device: not a registered device of yours', fn () => $this->append([base64_encode('x')], TestDevice::create()));
	}

	public function testSizeLimits(): void {
		$this->append([base64_encode(str_repeat("\0", Limits::MAX_CHANGE_BYTES))]);
		$this->assertRefused(TooLarge::class, 'changes[0]: over 1048576 bytes', fn () => $this->append([base64_encode(str_repeat("\0", Limits::MAX_CHANGE_BYTES + 1))]));
		$this->assertRefused(Invalid::class, 'changes: at most 256 items', fn () => $this->append(array_fill(0, 257, 'AA==')));
		$this->assertRefused(Invalid::class, 'changes: at least 1 items', fn () => $this->append([]));
		$this->assertRefused(Invalid::class, 'changes[1]: must be base64', fn () => $this->append(['AA==', 'not base64!']));
		$this->assertRefused(Invalid::class, 'changes[0]: must be a base64 string', fn () => $this->bridge->changes->append('alice', $this->folderId, JsonObject::parse('{"device":"' . $this->laptop->id . '","changes":[1]}')));
		$this->assertRefused(Invalid::class, 'cursor: unknown field', fn () => $this->bridge->changes->append('alice', $this->folderId, JsonObject::fromArray(['device' => $this->laptop->id, 'changes' => ['AA=='], 'cursor' => 1])));
		$this->assertSame(1, $this->bridge->changeStore->countChanges(), 'a refused request stores nothing');
	}

	public function testQueryParametersAreChecked(): void {
		$this->assertRefused(Invalid::class, 'after: must be an integer', fn () => $this->read('after=-1'));
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 1000', fn () => $this->read('limit=1001'));
	}
}
