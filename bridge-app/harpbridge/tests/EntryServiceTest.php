<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Exception\Conflict;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Model\Outcome;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\ChainWriter;
use OCA\HarpBridge\Tests\Support\TestDevice;

final class EntryServiceTest extends BridgeTestCase {
	private Bridge $bridge;
	private TestDevice $laptop;
	private string $fileId;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
		$this->fileId = bin2hex(random_bytes(16));
	}

	private function folder(string $versioning = 'crdt'): string {
		return $this->bridge->createFolder('alice', $this->laptop, 'plaintext', $versioning);
	}

	private function append(string $folderId, array $body, string $userId = 'alice', ?string $fileId = null): Outcome {
		return $this->bridge->entries->append($userId, $folderId, $fileId ?? $this->fileId, JsonObject::fromArray($body));
	}

	/** @return list<array<string, mixed>> */
	private function read(string $folderId, string $query = ''): array {
		return $this->bridge->entries->read('alice', $folderId, $this->fileId, QueryString::parse($query));
	}

	private function assertChainRefusal(string $code, callable $action): void {
		$error = $this->assertRefused(Invalid::class, $code, $action);
		$this->assertSame(['error' => 'invalid', 'message' => $code], $error->toApi());
	}

	public function testAChainIsAppendedAndReadBack(): void {
		$folder = $this->folder();
		$writer = new ChainWriter($folder, $this->fileId);
		$bodies = [];
		for ($i = 1; $i <= 5; $i++) {
			$bodies[] = $body = $writer->next($this->laptop);
			$outcome = $this->append($folder, $body);
			$this->assertSame(201, $outcome->status);
			$this->assertSame(['seq' => $i, 'prev' => $body['prev'], 'entry' => $body['entry'], 'head' => $body['head'], 'log_index' => $i - 1], $outcome->data);
		}
		$read = $this->read($folder);
		$this->assertSame([1, 2, 3, 4, 5], array_column($read, 'seq'));
		$this->assertSame(array_column($bodies, 'head'), array_column($read, 'head'));
		$this->assertSame([0, 1, 2, 3, 4], array_column($read, 'log_index'));
		$this->assertSame([3, 4], array_column($this->read($folder, 'from_seq=3&limit=2'), 'seq'));
		$this->assertSame([], $this->bridge->entries->read('alice', $folder, bin2hex(random_bytes(16)), QueryString::parse('')));
	}

	public function testAReplayAnswers200WithTheStoredLink(): void {
		$folder = $this->folder();
		$writer = new ChainWriter($folder, $this->fileId);
		$first = $writer->next($this->laptop);
		$this->append($folder, $first);
		$this->append($folder, $writer->next($this->laptop));
		$replay = $this->append($folder, $first);
		$this->assertSame(200, $replay->status);
		$this->assertSame($first['head'], $replay->data['head']);
		$this->assertSame(1, $replay->data['seq']);
		$this->assertSame(0, $replay->data['log_index']);
		$this->assertSame(2, $this->bridge->entryStore->countLinks());
	}

	public function testAForgedSignatureIsRefused(): void {
		$folder = $this->folder();
		$writer = new ChainWriter($folder, $this->fileId);
		$this->append($folder, $writer->next($this->laptop));
		$body = $writer->next($this->laptop);
		$entry = (string)Base64::decode($body['entry']);
		$entry[80] = chr(ord($entry[80]) ^ 1); // the size
		$body['entry'] = Base64::encode($entry);
		$body['head'] = bin2hex(hash('sha3-256', hex2bin($body['prev']) . $entry, true));
		$this->assertChainRefusal('bad_signature', fn () => $this->append($folder, $body));
	}

	public function testAnEntrySignedByANonMemberIsAnUnknownAuthor(): void {
		$folder = $this->folder();
		$writer = new ChainWriter($folder, $this->fileId);
		$this->assertChainRefusal('unknown_author', fn () => $this->append($folder, $writer->fork()->next(TestDevice::create())));
		$bobDevice = $this->bridge->registerDevice('bob');
		$this->assertChainRefusal('unknown_author', fn () => $this->append($folder, $writer->fork()->next($bobDevice)));
		$this->bridge->share('alice', $folder, 'bob');
		$this->assertSame(201, $this->append($folder, $writer->next($bobDevice))->status);
	}

	public function testAMemberMayUploadAnotherMembersEntry(): void {
		$folder = $this->folder();
		$this->bridge->share('alice', $folder, 'bob');
		$writer = new ChainWriter($folder, $this->fileId);
		$this->assertSame(201, $this->append($folder, $writer->next($this->laptop), 'bob')->status);
	}

	public function testAWrongHeadIsRefused(): void {
		$folder = $this->folder();
		$body = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
		$body['head'] = bin2hex(random_bytes(32));
		$this->assertChainRefusal('wrong_head', fn () => $this->append($folder, $body));
	}

	public function testAPrevThatIsNoStoredHeadIsAWrongLink(): void {
		$folder = $this->folder();
		$writer = new ChainWriter($folder, $this->fileId);
		$this->append($folder, $writer->next($this->laptop));
		$this->append($folder, $writer->next($this->laptop));
		$elsewhere = ChainWriter::body($this->laptop, $folder, $this->fileId, 3, random_bytes(32));
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, $elsewhere));
		// prev is a stored head, but of seq 1, not seq 2.
		$firstHead = (string)hex2bin($this->read($folder)[0]['head']);
		$skipping = ChainWriter::body($this->laptop, $folder, $this->fileId, 3, $firstHead);
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, $skipping));
	}

	public function testAnEntryOfAnotherFileOrFolderIsWrongFile(): void {
		$folder = $this->folder();
		$otherFile = (new ChainWriter($folder, bin2hex(random_bytes(16))))->next($this->laptop);
		$this->assertChainRefusal('wrong_file', fn () => $this->append($folder, $otherFile));
		$otherFolder = (new ChainWriter(bin2hex(random_bytes(16)), $this->fileId))->next($this->laptop);
		$this->assertChainRefusal('wrong_file', fn () => $this->append($folder, $otherFolder));
	}

	public function testSeqZeroIsASeqGapAndASkippedSeqIsAWrongLink(): void {
		$folder = $this->folder();
		$this->assertChainRefusal('seq_gap', fn () => $this->append($folder, ChainWriter::body($this->laptop, $folder, $this->fileId, 0, random_bytes(32))));
		// As in the Rust bridge: a seq with no stored entry before it is a wrong link.
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, ChainWriter::body($this->laptop, $folder, $this->fileId, 2, random_bytes(32))));
		$writer = new ChainWriter($folder, $this->fileId);
		$this->append($folder, $writer->next($this->laptop));
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, ChainWriter::body($this->laptop, $folder, $this->fileId, 3, (string)hex2bin($writer->headHex()))));
		// The conformance suite's case: the next entry is skipped, the one after it is sent.
		$writer->next($this->laptop);
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, $writer->next($this->laptop)));
		$this->assertSame(1, $this->bridge->entryStore->countLinks());
	}

	public function testEveryFirstEntryOfAFileStartsFromTheSameGenesis(): void {
		foreach (['crdt', 'server_authoritative'] as $versioning) {
			$folder = $this->folder($versioning);
			$genesis = random_bytes(32);
			$first = (new ChainWriter($folder, $this->fileId, $genesis))->next($this->laptop);
			$this->assertSame(201, $this->append($folder, $first + ['expected_head' => null])->status);
			$other = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
			if ($versioning === 'crdt') {
				$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, $other));
			} else {
				// The compare-and-swap settles it first: the file is not new, and seq 1 is not next.
				$this->assertRefused(Conflict::class, 'the head moved', fn () => $this->append($folder, $other + ['expected_head' => null]));
				$this->assertChainRefusal('seq_gap', fn () => $this->append($folder, $other + ['expected_head' => $first['head']]));
			}
			$this->assertSame(1, count($this->read($folder)), $versioning);
		}
		// Other files are not affected.
		$folder = $this->folder();
		$this->append($folder, (new ChainWriter($folder, $this->fileId))->next($this->laptop));
		$otherFile = bin2hex(random_bytes(16));
		$this->assertSame(201, $this->append($folder, (new ChainWriter($folder, $otherFile))->next($this->laptop), 'alice', $otherFile)->status);
	}

	public function testAFirstEntryFromAnotherGenesisThatWinsTheRaceToTheDatabaseIsKept(): void {
		$folder = $this->folder('crdt');
		$theirs = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
		$mine = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
		// Another request with another genesis passes the checks and lands between ours and our insert.
		$this->bridge->entryStore->beforeNextAdd = function () use ($folder, $theirs): void {
			$entry = ChainEntry::decode((string)Base64::decode($theirs['entry']));
			$this->bridge->entryStore->addLink(new ChainLink($folder, $this->fileId, 1, $theirs['prev'], $entry->bytes, $theirs['head'], $this->laptop->id), $theirs['head']);
		};
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, $mine));
		$this->assertSame([$theirs['head']], array_column($this->read($folder), 'head'));
	}

	public function testForgeriesAreRefusedBeforeTheCompareAndSwap(): void {
		// The Rust bridge's order: a bad entry is a 422 even when its expected_head is stale.
		$folder = $this->folder('server_authoritative');
		$writer = new ChainWriter($folder, $this->fileId);
		$first = $writer->next($this->laptop);
		$this->append($folder, $first);
		$body = $writer->next($this->laptop);
		$entry = (string)Base64::decode($body['entry']);
		$entry[80] = chr(ord($entry[80]) ^ 1);
		$forged = ['entry' => Base64::encode($entry), 'head' => bin2hex(hash('sha3-256', hex2bin($body['prev']) . $entry, true))] + $body;
		$this->assertChainRefusal('bad_signature', fn () => $this->append($folder, $forged + ['expected_head' => bin2hex(random_bytes(32))]));
		$this->assertChainRefusal('wrong_head', fn () => $this->append($folder, ['head' => bin2hex(random_bytes(32))] + $body));
		$this->assertChainRefusal('unknown_author', fn () => $this->append($folder, $writer->fork()->next(TestDevice::create())));
		$this->assertSame(201, $this->append($folder, $body + ['expected_head' => $first['head']])->status);
	}

	public function testMalformedEntriesAndFields(): void {
		$folder = $this->folder();
		$body = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
		$entry = (string)Base64::decode($body['entry']);
		$this->assertChainRefusal('malformed', fn () => $this->append($folder, ['entry' => Base64::encode(substr($entry, 0, 217))] + $body));
		$this->assertChainRefusal('malformed', fn () => $this->append($folder, ['entry' => 'not base64'] + $body));
		$badOp = $entry;
		$badOp[41] = "\x09";
		$this->assertChainRefusal('malformed', fn () => $this->append($folder, ['entry' => Base64::encode($badOp)] + $body));
		$badVersion = "\x02" . substr($entry, 1);
		$this->assertChainRefusal('malformed', fn () => $this->append($folder, ['entry' => Base64::encode($badVersion)] + $body));
		$this->assertRefused(Invalid::class, 'prev: must be 64 lowercase hex', fn () => $this->append($folder, ['prev' => strtoupper($body['prev'])] + $body));
		$this->assertRefused(Invalid::class, 'head: required', fn () => $this->append($folder, ['prev' => $body['prev'], 'entry' => $body['entry']]));
		$this->assertRefused(Invalid::class, 'seq: unknown field', fn () => $this->append($folder, $body + ['seq' => 1]));
		$this->assertRefused(Invalid::class, 'expected_head: must be 64 lowercase hex', fn () => $this->append($folder, $body + ['expected_head' => 'x']));
		$this->assertRefused(NotFound::class, 'no such file', fn () => $this->append($folder, $body, 'alice', 'NOTAFILE'));
		$this->assertSame(0, $this->bridge->entryStore->countLinks());
	}

	public function testCrdtFoldersKeepForksAndIgnoreExpectedHead(): void {
		$folder = $this->folder('crdt');
		$this->bridge->share('alice', $folder, 'bob');
		$bobDevice = $this->bridge->registerDevice('bob');
		$genesis = random_bytes(32);
		$writer = new ChainWriter($folder, $this->fileId, $genesis);
		$this->append($folder, $writer->next($this->laptop));
		$this->append($folder, $writer->next($this->laptop));
		$theirs = $writer->fork();
		$mine = $this->append($folder, $writer->next($this->laptop) + ['expected_head' => bin2hex(random_bytes(32))]);
		$fork = $this->append($folder, $theirs->next($bobDevice), 'bob');
		$this->assertSame(201, $mine->status);
		$this->assertSame(201, $fork->status);
		$this->assertSame(3, $fork->data['seq']);
		// Both branches go on.
		$this->assertSame(201, $this->append($folder, $theirs->next($bobDevice), 'bob')->status);
		$this->assertSame(201, $this->append($folder, $writer->next($this->laptop))->status);
		$this->assertSame([1, 2, 3, 3, 4, 4], array_column($this->read($folder), 'seq'));
		// A fork from an older entry is allowed too.
		$old = ChainWriter::body($this->laptop, $folder, $this->fileId, 2, (string)hex2bin($this->read($folder)[0]['head']));
		$this->assertSame(201, $this->append($folder, $old)->status);
		// Two first entries from the file's genesis (say, one file created on two devices) are kept.
		$again = (new ChainWriter($folder, $this->fileId, $genesis))->next($bobDevice);
		$this->assertSame(201, $this->append($folder, $again, 'bob')->status);
		$this->assertSame(2, count($this->read($folder, 'limit=2')));
		$this->assertSame([1, 1], array_column($this->read($folder, 'limit=2'), 'seq'));
		// Every branch is in the log, in the order the bridge stored them (read by seq).
		$this->assertSame([0, 7, 1, 6, 2, 3, 4, 5], array_column($this->read($folder), 'log_index'));
	}

	public function testServerAuthoritativeAppendsAreACompareAndSwap(): void {
		$folder = $this->folder('server_authoritative');
		$writer = new ChainWriter($folder, $this->fileId);
		$first = $writer->next($this->laptop);
		$this->assertSame(201, $this->append($folder, $first + ['expected_head' => null])->status);
		$second = $writer->next($this->laptop);
		$this->assertSame(201, $this->append($folder, $second + ['expected_head' => $first['head']])->status);

		// A writer that saw only the first head loses and learns the current one.
		$stale = ChainWriter::body($this->laptop, $folder, $this->fileId, 2, (string)hex2bin($first['head']));
		$error = $this->assertRefused(Conflict::class, 'the head moved', fn () => $this->append($folder, $stale + ['expected_head' => $first['head']]));
		$this->assertSame(['error' => 'conflict', 'message' => 'the head moved', 'head' => $second['head'], 'seq' => 2], $error->toApi());
		// Without expected_head a writer claims the file is new: also a conflict.
		$this->assertRefused(Conflict::class, 'the head moved', fn () => $this->append($folder, $writer->fork()->next($this->laptop)));
		// After rebasing it lands.
		$this->assertSame(201, $this->append($folder, $writer->next($this->laptop) + ['expected_head' => $second['head']])->status);
		$this->assertSame([1, 2, 3], array_column($this->read($folder), 'seq'));
	}

	public function testServerAuthoritativeConflictOnANewFileHasNullHead(): void {
		$folder = $this->folder('server_authoritative');
		$body = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
		$error = $this->assertRefused(Conflict::class, 'the head moved', fn () => $this->append($folder, $body + ['expected_head' => bin2hex(random_bytes(32))]));
		$this->assertSame(['error' => 'conflict', 'message' => 'the head moved', 'head' => null, 'seq' => null], $error->toApi());
	}

	public function testServerAuthoritativeRefusesForksAndChecksTheLink(): void {
		$folder = $this->folder('server_authoritative');
		$writer = new ChainWriter($folder, $this->fileId);
		$first = $writer->next($this->laptop);
		$this->append($folder, $first);
		$wrongPrev = ChainWriter::body($this->laptop, $folder, $this->fileId, 2, random_bytes(32));
		$this->assertChainRefusal('wrong_link', fn () => $this->append($folder, $wrongPrev + ['expected_head' => $first['head']]));
		$skip = ChainWriter::body($this->laptop, $folder, $this->fileId, 3, (string)hex2bin($first['head']));
		$this->assertChainRefusal('seq_gap', fn () => $this->append($folder, $skip + ['expected_head' => $first['head']]));
	}

	public function testAReplayInServerAuthoritativeWinsOverTheCompareAndSwap(): void {
		$folder = $this->folder('server_authoritative');
		$writer = new ChainWriter($folder, $this->fileId);
		$first = $writer->next($this->laptop);
		$this->append($folder, $first);
		// The answer was lost; the client sends the same request again.
		$this->assertSame(200, $this->append($folder, $first + ['expected_head' => null])->status);
	}

	public function testARaceLostAtTheDatabaseIsAConflict(): void {
		$folder = $this->folder('server_authoritative');
		$writer = new ChainWriter($folder, $this->fileId);
		$first = $writer->next($this->laptop);
		$this->append($folder, $first);
		$theirs = $writer->fork()->next($this->laptop);
		// Another request passes the same checks and lands between our check and our insert.
		$this->bridge->entryStore->beforeNextAdd = function () use ($folder, $theirs): void {
			$entry = ChainEntry::decode((string)Base64::decode($theirs['entry']));
			$this->bridge->entryStore->addLink(new ChainLink($folder, $this->fileId, 2, $theirs['prev'], $entry->bytes, $theirs['head'], $this->laptop->id), 'seq:2');
		};
		$error = $this->assertRefused(Conflict::class, 'the head moved', fn () => $this->append($folder, $writer->next($this->laptop) + ['expected_head' => $first['head']]));
		$this->assertSame($theirs['head'], $error->toApi()['head']);
		$this->assertSame(1, $this->bridge->logStore->logSize($folder), 'only entries the service stored as new are logged');
	}

	public function testARaceWithItselfIsAReplay(): void {
		$folder = $this->folder('crdt');
		$body = (new ChainWriter($folder, $this->fileId))->next($this->laptop);
		$this->bridge->entryStore->beforeNextAdd = function () use ($folder, $body): void {
			$this->bridge->entries->append('alice', $folder, $this->fileId, JsonObject::fromArray($body));
		};
		$this->assertSame(200, $this->append($folder, $body)->status);
		$this->assertSame(1, $this->bridge->entryStore->countLinks());
		$this->assertSame(1, $this->bridge->logStore->logSize($folder), 'logged once');
	}

	public function testReadQueryIsChecked(): void {
		$folder = $this->folder();
		$this->assertRefused(Invalid::class, 'from_seq: must be between 1', fn () => $this->read($folder, 'from_seq=0'));
		$this->assertRefused(Invalid::class, 'limit: must be between 1 and 1000', fn () => $this->read($folder, 'limit=1001'));
	}
}
