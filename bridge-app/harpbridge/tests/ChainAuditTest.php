<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\ChainWriter;
use OCA\HarpBridge\Tests\Support\TestDevice;

/** `occ harpbridge:verify` and `harpbridge:status`, through their services. */
final class ChainAuditTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;
	private string $folderId;
	private string $fileId;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
		$this->folderId = $this->bridge->createFolder('alice', $this->laptop, 'plaintext');
		$this->fileId = bin2hex(random_bytes(16));
	}

	private function append(array $body): void {
		$this->bridge->entries->append('alice', $this->folderId, $this->fileId, JsonObject::fromArray($body));
	}

	/** Stores a link as it is, past the service's checks, as a tampered database would hold it. */
	private function store(array $body, ?int $seq = null): void {
		$entry = (string)Base64::decode($body['entry']);
		$this->bridge->entryStore->addLink(new ChainLink(
			$this->folderId,
			$this->fileId,
			$seq ?? ChainEntry::decode($entry)->seq,
			$body['prev'],
			$entry,
			$body['head'],
			$this->laptop->id,
		), $body['head']);
	}

	private function codes(): array {
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		return array_column($report->problems(), 'code');
	}

	public function testAnHonestChainHolds(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$genesis = $writer->headHex();
		for ($i = 0; $i < 4; $i++) {
			$this->append($writer->next($this->laptop));
		}
		$this->append($writer->next($this->laptop, ChainEntry::OP_DELETE));
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		$this->assertTrue($report->holds());
		$this->assertSame(5, $report->entryCount);
		$this->assertSame([$writer->headHex() => 5], $report->tips());
		$this->assertSame([$genesis], $report->genesisLinks());
	}

	public function testForksAreBranchesNotProblems(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$other = $writer->fork();
		$this->append($writer->next($this->laptop));
		$this->append($other->next($this->laptop));
		$this->append($other->next($this->laptop));
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		$this->assertTrue($report->holds());
		$this->assertEquals([$writer->headHex() => 2, $other->headHex() => 3], $report->tips());
	}

	public function testTheFilesPlacesInTheLogAreShownBySeq(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$otherFile = bin2hex(random_bytes(16));
		$this->bridge->entries->append('alice', $this->folderId, $otherFile, JsonObject::fromArray((new ChainWriter($this->folderId, $otherFile))->next($this->laptop)));
		$this->append($writer->next($this->laptop));
		// One stored before the log existed has no place in it.
		$this->store($writer->next($this->laptop));
		$this->assertSame([0, 2, null], $this->bridge->audit->logIndexes('alice', $this->folderId, $this->fileId));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->audit->logIndexes('bob', $this->folderId, $this->fileId));
	}

	public function testTamperedStorageIsFound(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->append($writer->next($this->laptop));

		$forged = $writer->fork()->next($this->laptop);
		$entry = (string)Base64::decode($forged['entry']);
		$entry[80] = "\x7f";
		$forged['entry'] = Base64::encode($entry);
		$forged['head'] = bin2hex(hash('sha3-256', hex2bin($forged['prev']) . $entry, true));
		$this->store($forged);

		$wrongHead = $writer->fork()->next($this->laptop);
		$wrongHead['head'] = bin2hex(random_bytes(32));
		$this->store($wrongHead);

		$this->store(ChainWriter::body($this->laptop, $this->folderId, $this->fileId, 3, random_bytes(32)));
		$this->store(ChainWriter::body($this->laptop, $this->folderId, $this->fileId, 1, random_bytes(32), ChainEntry::OP_MODIFY));
		$this->assertEqualsCanonicalizing(['bad_signature', 'wrong_head', 'wrong_link', 'illegal_op'], $this->codes());
	}

	public function testLoggedLinksAreTheLeavesOfTheFoldersLog(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$otherFile = bin2hex(random_bytes(16));
		$this->bridge->entries->append('alice', $this->folderId, $otherFile, JsonObject::fromArray((new ChainWriter($this->folderId, $otherFile))->next($this->laptop)));
		$this->append($writer->next($this->laptop));
		$this->store($writer->next($this->laptop));
		$this->assertSame([0, 2, null], $this->bridge->audit->logIndexes('alice', $this->folderId, $this->fileId));
		// The leaf at each index is RFC 6962's hash of file id ‖ seq (u64 BE) ‖ head.
		$links = $this->bridge->entryStore->listFrom($this->folderId, $this->fileId, 1, 10);
		$this->assertSame(
			hash('sha256', "\x00" . hex2bin($this->fileId) . pack('J', 2) . hex2bin($links[1]->head)),
			$this->bridge->logStore->leafAt($this->folderId, 2),
		);
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		$this->assertTrue($report->holds());
		$this->assertSame(3, $report->entryCount);
	}

	public function testALinkWhoseLeafIsAnotherIsNotInTheLog(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->append($writer->next($this->laptop));
		$this->append($writer->next($this->laptop));
		// Leaves 0 and 1 swapped: the chain still verifies, the log does not hold it.
		$log = $this->bridge->logStore;
		[$first, $second] = [$log->leafAt($this->folderId, 0), $log->leafAt($this->folderId, 1)];
		$log->replaceLeaf($this->folderId, 0, $second);
		$log->replaceLeaf($this->folderId, 1, $first);
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		$this->assertFalse($report->holds());
		$this->assertSame([
			[1, 'not_in_log', "leaf 0 of the folder's log is not this link"],
			[2, 'not_in_log', "leaf 1 of the folder's log is not this link"],
		], array_map(static fn (array $p): array => [$p['seq'], $p['code'], $p['detail']], $report->problems()));
	}

	public function testALinkWhoseLeafIsMissingIsNotInTheLog(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->append($writer->next($this->laptop));
		$this->assertSame([], $this->codes());
		$this->bridge->logStore->replaceLeaf($this->folderId, 1, null);
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		$this->assertSame(
			[['seq' => 2, 'head' => $writer->headHex(), 'code' => 'not_in_log', 'detail' => "leaf 1 of the folder's log is not this link"]],
			$report->problems(),
		);
		// An index past the log's size names no leaf either.
		$this->bridge->entryStore->setLogIndex($this->folderId, $this->fileId, $writer->headHex(), 7);
		$this->assertSame(["leaf 7 of the folder's log is not this link"], array_column($this->bridge->audit->audit('alice', $this->folderId, $this->fileId)->problems(), 'detail'));
	}

	public function testALinkPastTheLogsSizeIsNotInTheLog(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->append($writer->next($this->laptop));
		// Leaf 0 dropped: the stored log has a gap, and holds one leaf, so leaf 1
		// is past its size although it is still stored.
		$this->bridge->logStore->replaceLeaf($this->folderId, 0, null);
		$this->assertSame(['not_in_log', 'not_in_log'], $this->codes());
	}

	public function testTwoGenesisLinksCannotBothBeGenuine(): void {
		$this->append((new ChainWriter($this->folderId, $this->fileId))->next($this->laptop));
		$other = (new ChainWriter($this->folderId, $this->fileId))->next($this->laptop);
		// The service refuses it now; a database written before that rule may hold it.
		$this->assertRefused(Invalid::class, 'wrong_link', fn () => $this->append($other));
		$this->store($other);
		$this->assertSame(['bad_genesis'], $this->codes());
	}

	public function testAnEntryOfAnotherFileStoredHereIsWrongFile(): void {
		$this->store((new ChainWriter($this->folderId, bin2hex(random_bytes(16))))->next($this->laptop));
		$this->assertSame(['wrong_file'], $this->codes());
	}

	public function testAnEntryStoredUnderAnotherSeqIsFound(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		$this->append($writer->next($this->laptop));
		$this->store($writer->next($this->laptop), 7);
		$this->assertSame(['seq_gap'], $this->codes());
	}

	public function testLongChainsAreReadInPages(): void {
		$writer = new ChainWriter($this->folderId, $this->fileId);
		for ($i = 0; $i < 1203; $i++) {
			$body = $writer->next($this->laptop);
			$this->store($body);
		}
		$report = $this->bridge->audit->audit('alice', $this->folderId, $this->fileId);
		$this->assertTrue($report->holds());
		$this->assertSame(1203, $report->entryCount);
	}

	public function testTheFileIsFoundByPathOrId(): void {
		$this->bridge->index->put('alice', $this->folderId, JsonObject::fromArray(['entries' => [
			['file_id' => $this->fileId, 'name' => 'docs/report.odt', 'size' => 1, 'mtime_ms' => 0, 'deleted' => false],
		]]));
		$this->assertSame($this->fileId, $this->bridge->audit->resolveFile('alice', $this->folderId, 'docs/report.odt'));
		$this->assertSame($this->fileId, $this->bridge->audit->resolveFile('alice', $this->folderId, '/docs/report.odt'));
		$this->assertSame($this->fileId, $this->bridge->audit->resolveFile('alice', $this->folderId, $this->fileId));
		$this->assertRefused(NotFound::class, 'no file at that path', fn () => $this->bridge->audit->resolveFile('alice', $this->folderId, 'docs/other.odt'));
		$this->assertRefused(NotFound::class, 'no such folder', fn () => $this->bridge->audit->resolveFile('bob', $this->folderId, $this->fileId));
		$encrypted = $this->bridge->createFolder('alice', $this->laptop, 'encrypted');
		$this->assertRefused(Invalid::class, 'the folder has an encrypted index', fn () => $this->bridge->audit->resolveFile('alice', $encrypted, 'docs/report.odt'));		// Found in the index, but without a chain: not found either (occ exits 2, not 1).
		$this->assertRefused(NotFound::class, 'no chain entries for file ' . $this->fileId, fn () => $this->bridge->audit->audit('alice', $this->folderId, $this->fileId));
	}

	public function testStatusCountsWhatTheBridgeHolds(): void {
		$this->bridge->share('alice', $this->folderId, 'bob');
		$this->append((new ChainWriter($this->folderId, $this->fileId))->next($this->laptop));
		$this->bridge->changes->append('alice', $this->folderId, JsonObject::fromArray(['device' => $this->laptop->id, 'changes' => ['AA==', 'AQ==']]));
		$this->assertSame([
			'devices' => 1,
			'folders' => 1,
			'shares' => 1,
			'wrapped keys' => 1,
			'changes' => 2,
			'chain entries' => 1,
			'index entries' => 0,
		], $this->bridge->status->counts());
		$this->assertSame('crdt (built-in default)', $this->bridge->status->versioning());
	}
}
