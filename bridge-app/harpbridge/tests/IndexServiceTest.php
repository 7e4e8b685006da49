<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\TooLarge;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\TestDevice;

final class IndexServiceTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
	}

	private function put(string $folderId, array $entries): void {
		$this->bridge->index->put('alice', $folderId, JsonObject::fromArray(['entries' => $entries]));
	}

	private function search(string $folderId, string $query): array {
		return $this->bridge->index->search('alice', $folderId, QueryString::parse($query));
	}

	/** @return array<string, mixed> an IndexEntry with its keys in the order the API answers them */
	private static function record(array $fields = []): array {
		$record = array_merge(['file_id' => bin2hex(random_bytes(16)), 'size' => 10, 'mtime_ms' => 1_763_700_000_000, 'deleted' => false], $fields);
		$order = array_flip(['file_id', 'name', 'tokens', 'size', 'mtime_ms', 'deleted']);
		uksort($record, static fn (string $a, string $b): int => ($order[$a] ?? 99) <=> ($order[$b] ?? 99));
		return $record;
	}

	public function testPlaintextNamesAreSearchedBySubstringIgnoringCase(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$report = self::record(['name' => 'Reports/Annual Report 2026.odt']);
		$photo = self::record(['name' => 'Photos/Été.jpg', 'size' => 2_000_000]);
		$this->put($folder, [$report, $photo]);
		$this->assertSame([$report], $this->search($folder, 'q=annual+report'));
		$this->assertSame([$photo], $this->search($folder, 'q=%C3%89T%C3%89'));
		$this->assertSame([], $this->search($folder, 'q=missing'));
		$all = $this->search($folder, '');
		$this->assertCount(2, $all);
		$this->assertSame(min($report['file_id'], $photo['file_id']), $all[0]['file_id'], 'ordered by file id');
	}

	public function testAPutReplacesTheRecordOfAFile(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$record = self::record(['name' => 'a.txt']);
		$this->put($folder, [$record]);
		$renamed = array_merge($record, ['name' => 'b.txt', 'deleted' => true]);
		$this->put($folder, [$renamed]);
		$this->assertSame([], $this->search($folder, 'q=a.txt'));
		$this->assertSame([$renamed], $this->search($folder, 'q=b.txt'));
		$this->assertSame(1, $this->bridge->indexStore->countRecords());
	}

	public function testEncryptedFoldersRefuseNamesAndSearchByTokens(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'encrypted');
		$tokenA = bin2hex(random_bytes(16));
		$tokenB = bin2hex(random_bytes(16));
		$this->assertRefused(Invalid::class, 'entries[0].name: a plaintext name in a folder with an encrypted index', fn () => $this->put($folder, [self::record(['name' => 'secret.txt'])]));
		$both = self::record(['tokens' => [$tokenA, $tokenB]]);
		$onlyA = self::record(['tokens' => [$tokenA]]);
		$this->put($folder, [$both, $onlyA]);
		$this->assertSame([$both], $this->search($folder, "token=$tokenA&token=$tokenB"));
		$this->assertCount(2, $this->search($folder, "token[]=$tokenA"));
		$this->assertSame([], $this->search($folder, 'token=' . bin2hex(random_bytes(16))));
		$this->assertRefused(Invalid::class, 'q: this folder has an encrypted index', fn () => $this->search($folder, 'q=secret'));
		$this->assertRefused(Invalid::class, 'token[0]: must be 32 lowercase hex', fn () => $this->search($folder, 'token=' . strtoupper($tokenA)));
	}

	public function testPlaintextFoldersRefuseTokensAndNeedNames(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$this->assertRefused(Invalid::class, 'entries[0].tokens: only in folders with an encrypted index', fn () => $this->put($folder, [self::record(['name' => 'a', 'tokens' => []])]));
		$this->assertRefused(Invalid::class, 'entries[0].name: required', fn () => $this->put($folder, [self::record()]));
		$this->assertRefused(Invalid::class, 'token: this folder has a plaintext index', fn () => $this->search($folder, 'token=' . bin2hex(random_bytes(16))));
	}

	public function testRecordsAreCheckedField(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$cases = [
			'entries[0].file_id: must be 32 lowercase hex' => ['file_id' => 'abc'],
			'entries[0].size: must be between 0' => ['size' => -1],
			'entries[0].mtime_ms: must be an integer' => ['mtime_ms' => '1'],
			'entries[0].deleted: must be true or false' => ['deleted' => 0],
			'entries[0].name: at most 4096 characters' => ['name' => str_repeat('n', 4097)],
			'entries[0].path: unknown field' => ['path' => 'x'],
		];
		foreach ($cases as $message => $change) {
			$this->assertRefused(Invalid::class, $message, fn () => $this->put($folder, [self::record(array_merge(['name' => 'a'], $change))]));
		}
		$this->assertRefused(Invalid::class, 'entries[1]: must be an object', fn () => $this->put($folder, [self::record(['name' => 'a']), 'x']));
		$this->assertRefused(Invalid::class, 'entries: required', fn () => $this->bridge->index->put('alice', $folder, JsonObject::fromArray([])));
		$this->assertSame(0, $this->bridge->indexStore->countRecords(), 'a refused request stores nothing');
	}

	public function testSizeLimits(): void {
		$encrypted = $this->bridge->createFolder('alice', $this->laptop, 'encrypted');
		$tooMany = array_map(static fn (): string => bin2hex(random_bytes(16)), range(1, 65));
		$this->assertRefused(Invalid::class, 'entries[0].tokens: at most 64 items', fn () => $this->put($encrypted, [self::record(['tokens' => $tooMany])]));
		$this->assertRefused(Invalid::class, 'entries: at most 5000 items', fn () => $this->put($encrypted, array_fill(0, 5001, self::record())));
		$this->assertRefused(Invalid::class, 'token: at most 16 tokens', fn () => $this->search($encrypted, implode('&', array_map(static fn (string $t): string => "token=$t", array_slice($tooMany, 0, 17)))));
		$plaintext = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$this->assertRefused(Invalid::class, 'q: at most 256 characters', fn () => $this->search($plaintext, 'q=' . str_repeat('x', 257)));
		$this->assertRefused(TooLarge::class, 'the body is over', fn () => JsonObject::parse('{"entries":[' . str_repeat('{"name":"' . str_repeat('n', 4000) . '"},', 4200) . '{}]}'));
	}

	public function testSearchAnswersAtMost500(): void {
		$folder = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$this->put($folder, array_map(static fn (int $i): array => self::record(['name' => "file $i"]), range(1, 600)));
		$this->assertCount(500, $this->search($folder, 'q=file'));
	}
}
