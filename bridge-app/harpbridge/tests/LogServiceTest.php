<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Chain\ChainEntry;
use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Log\MerkleTree;
use OCA\HarpBridge\Model\ChainLink;
use OCA\HarpBridge\Model\Outcome;
use OCA\HarpBridge\Store\DuplicateKey;
use OCA\HarpBridge\Tests\Support\Bridge;
use OCA\HarpBridge\Tests\Support\BridgeTestCase;
use OCA\HarpBridge\Tests\Support\ChainWriter;
use OCA\HarpBridge\Tests\Support\LogVerifier;
use OCA\HarpBridge\Tests\Support\TestDevice;

/** The folder's transparency log: appends, checkpoints, cosignatures and proofs. */
final class LogServiceTest extends BridgeTestCase {
	private const EMPTY_ROOT_B64 = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';

	private Bridge $bridge;
	private TestDevice $laptop;
	private string $folderId;

	protected function setUp(): void {
		$this->bridge = new Bridge();
		$this->laptop = $this->bridge->registerDevice('alice');
		$this->folderId = $this->bridge->createFolder('alice', $this->laptop);
	}

	/** @param array<string, mixed> $body */
	private function append(string $fileId, array $body, ?string $folderId = null): Outcome {
		return $this->bridge->entries->append('alice', $folderId ?? $this->folderId, $fileId, JsonObject::fromArray($body));
	}

	/**
	 * Appends $count entries, alternating between two files; answers the
	 * leaf hash each was logged as, by log index.
	 *
	 * @return list<string>
	 */
	private function appendSome(int $count, ?string $folderId = null): array {
		$folderId ??= $this->folderId;
		$writers = [];
		for ($i = 0; $i < 2; $i++) {
			$fileId = bin2hex(random_bytes(16));
			$writers[$fileId] = new ChainWriter($folderId, $fileId);
		}
		$leaves = [];
		for ($i = 0; $i < $count; $i++) {
			$fileId = array_keys($writers)[$i % 2];
			$body = $writers[$fileId]->next($this->laptop);
			$outcome = $this->append($fileId, $body, $folderId);
			$this->assertSame(201, $outcome->status);
			$leaves[$outcome->data['log_index']] = MerkleTree::chainLeaf((string)hex2bin($fileId), $outcome->data['seq'], (string)hex2bin($body['head']));
		}
		ksort($leaves);
		return array_values($leaves);
	}

	/** @return array{size: int, note: string} */
	private function checkpoint(string $userId = 'alice'): array {
		return $this->bridge->log->checkpoint($userId, $this->folderId);
	}

	private function bodyOf(string $note): string {
		$body = LogVerifier::noteBody($note, $this->bridge->capabilities->forUser('alice')['log_key']);
		$this->assertNotNull($body, 'the bridge signed the note with the key the capabilities name');
		return $body;
	}

	private function rootOf(string $note): string {
		return (string)base64_decode(explode("\n", $this->bodyOf($note))[2], true);
	}

	private function cosign(int $size, string $line, string $userId = 'alice'): void {
		$this->bridge->log->addCosignature($userId, $this->folderId, JsonObject::fromArray(['size' => $size, 'cosignature' => $line]));
	}

	/** A witness's tlog-cosignature v1 line over $body, as a C2SP witness makes it. */
	private static function witnessLine(string $body, string $name, string $secretKey, int $time): string {
		$publicKey = sodium_crypto_sign_publickey_from_secretkey($secretKey);
		$keyId = substr(hash('sha256', $name . "\n\x04" . $publicKey, true), 0, 4);
		$signature = sodium_crypto_sign_detached("cosignature/v1\ntime $time\n" . $body, $secretKey);
		return "\u{2014} $name " . base64_encode($keyId . pack('J', $time) . $signature) . "\n";
	}

	/** A line of the right shape that no witness made. */
	private static function shapedLine(string $name, ?string $keyId = null): string {
		return "\u{2014} $name " . base64_encode(($keyId ?? random_bytes(4)) . random_bytes(72)) . "\n";
	}

	private function proofQuery(string $what, string $query): array {
		return $this->bridge->log->{$what}('alice', $this->folderId, QueryString::parse($query));
	}

	public function testEveryNewEntryIsLoggedInOrderAsItsChainLeaf(): void {
		$leaves = $this->appendSome(5);
		$stored = $this->bridge->logStore->leafHashes($this->folderId, 100);
		$this->assertSame([0, 1, 2, 3, 4], array_keys($stored));
		$this->assertSame(array_map('bin2hex', $leaves), array_values($stored));
		// Each folder has its own log.
		$other = $this->bridge->createFolder('alice', $this->laptop);
		$this->assertCount(3, $this->appendSome(3, $other));
		$this->assertSame(3, $this->bridge->logStore->logSize($other));
		$this->assertSame(5, $this->bridge->logStore->logSize($this->folderId));
	}

	public function testReadsAndReplaysCarryTheLogIndexAndAreNotLoggedAgain(): void {
		$this->appendSome(2);
		$fileId = bin2hex(random_bytes(16));
		$writer = new ChainWriter($this->folderId, $fileId);
		$first = $writer->next($this->laptop);
		$this->assertSame(2, $this->append($fileId, $first)->data['log_index']);
		$this->assertSame(3, $this->append($fileId, $writer->next($this->laptop))->data['log_index']);
		$replay = $this->append($fileId, $first);
		$this->assertSame(200, $replay->status);
		$this->assertSame(2, $replay->data['log_index']);
		$read = $this->bridge->entries->read('alice', $this->folderId, $fileId, QueryString::parse(''));
		$this->assertSame([2, 3], array_column($read, 'log_index'));
		$this->assertSame(4, $this->bridge->logStore->logSize($this->folderId));
	}

	public function testRefusedEntriesAreNotLogged(): void {
		$fileId = bin2hex(random_bytes(16));
		$writer = new ChainWriter($this->folderId, $fileId);
		$this->append($fileId, $writer->next($this->laptop));
		$this->assertRefused(Invalid::class, 'wrong_link', fn () => $this->append($fileId, ChainWriter::body($this->laptop, $this->folderId, $fileId, 2, random_bytes(32))));
		$this->assertRefused(Invalid::class, 'unknown_author', fn () => $this->append($fileId, $writer->fork()->next(TestDevice::create())));
		// A first entry from another genesis that loses the race to the database is removed, not logged.
		$otherFile = bin2hex(random_bytes(16));
		$theirs = (new ChainWriter($this->folderId, $otherFile))->next($this->laptop);
		$this->bridge->entryStore->beforeNextAdd = function () use ($otherFile, $theirs): void {
			$entry = ChainEntry::decode((string)Base64::decode($theirs['entry']));
			$this->bridge->entryStore->addLink(new ChainLink($this->folderId, $otherFile, 1, $theirs['prev'], $entry->bytes, $theirs['head'], $this->laptop->id), $theirs['head']);
		};
		$this->assertRefused(Invalid::class, 'wrong_link', fn () => $this->append($otherFile, (new ChainWriter($this->folderId, $otherFile))->next($this->laptop)));
		$this->assertSame(1, $this->bridge->logStore->logSize($this->folderId));
	}

	public function testAnAppendThatLosesTheRaceForAnIndexTakesTheNextOne(): void {
		$this->appendSome(1);
		$elsewhere = bin2hex(MerkleTree::leafHash('another request'));
		$this->bridge->logStore->beforeNextAdd = function () use ($elsewhere): void {
			$this->bridge->logStore->addLeaf($this->folderId, 1, $elsewhere);
		};
		$fileId = bin2hex(random_bytes(16));
		$outcome = $this->append($fileId, (new ChainWriter($this->folderId, $fileId))->next($this->laptop));
		$this->assertSame(201, $outcome->status);
		$this->assertSame(2, $outcome->data['log_index']);
		$this->assertSame([0, 1, 2], array_keys($this->bridge->logStore->leafHashes($this->folderId, 10)));
	}

	public function testAnEntryIsLoggedOnceEvenWhenTwoRequestsLogIt(): void {
		$fileId = bin2hex(random_bytes(16));
		$body = (new ChainWriter($this->folderId, $fileId))->next($this->laptop);
		$entry = (string)Base64::decode($body['entry']);
		$link = new ChainLink($this->folderId, $fileId, 1, $body['prev'], $entry, $body['head'], $this->laptop->id);
		// The other request logs it between our look-up and our insert.
		$this->bridge->logStore->beforeNextAdd = function () use ($link): void {
			$this->bridge->log->append($link);
		};
		$this->assertSame(0, $this->bridge->log->append($link));
		$this->assertSame(0, $this->bridge->log->append($link));
		$this->assertSame(1, $this->bridge->logStore->countLeaves($this->folderId));
	}

	public function testAnEntryStoredButNotLoggedIsLoggedWhenItIsReplayed(): void {
		// A request that ended between storing and logging, or an entry stored before the log existed.
		$fileId = bin2hex(random_bytes(16));
		$body = (new ChainWriter($this->folderId, $fileId))->next($this->laptop);
		$entry = (string)Base64::decode($body['entry']);
		$this->bridge->entryStore->addLink(new ChainLink($this->folderId, $fileId, 1, $body['prev'], $entry, $body['head'], $this->laptop->id), $body['head']);
		$read = $this->bridge->entries->read('alice', $this->folderId, $fileId, QueryString::parse(''));
		$this->assertNull($read[0]['log_index']);
		$replay = $this->append($fileId, $body);
		$this->assertSame(200, $replay->status);
		$this->assertSame(0, $replay->data['log_index']);
		$this->assertSame(0, $this->append($fileId, $body)->data['log_index']);
		$this->assertSame(1, $this->bridge->logStore->logSize($this->folderId));
	}

	public function testTheCheckpointOfAnEmptyLog(): void {
		$checkpoint = $this->checkpoint();
		$this->assertSame(0, $checkpoint['size']);
		$body = "harp/{$this->folderId}\n0\n" . self::EMPTY_ROOT_B64 . "\n";
		$this->assertStringStartsWith($body . "\n\u{2014} cloud.example.org ", $checkpoint['note']);
		$this->assertSame($body, $this->bodyOf($checkpoint['note']));
	}

	public function testTheCheckpointIsTheBridgesSignedNoteOfTheLog(): void {
		$leaves = $this->appendSome(7);
		$checkpoint = $this->checkpoint();
		$this->assertSame(7, $checkpoint['size']);
		$root = (new MerkleTree($leaves))->root(7);
		$body = "harp/{$this->folderId}\n7\n" . base64_encode($root) . "\n";
		$this->assertSame($body, $this->bodyOf($checkpoint['note']));
		$lines = LogVerifier::signatureLines($checkpoint['note']);
		$this->assertCount(1, $lines, 'only the bridge signed it so far');
		$this->assertSame('cloud.example.org', $lines[0][0]);
		$this->assertSame(68, strlen($lines[0][1]), 'key id and Ed25519 signature');
		$this->assertSame($checkpoint, $this->checkpoint(), 'Ed25519 signatures are deterministic');
		// Another key does not verify it.
		$other = new Bridge();
		$this->assertNull(LogVerifier::noteBody($checkpoint['note'], $other->capabilities->forUser('alice')['log_key']));
		$this->assertNull(LogVerifier::noteBody(str_replace("\n7\n", "\n8\n", $checkpoint['note']), $this->bridge->capabilities->forUser('alice')['log_key']));
	}

	public function testForeignFoldersAnswerNotFoundEverywhere(): void {
		$this->appendSome(2);
		$calls = [
			'checkpoint' => fn (string $user, string $folder) => $this->bridge->log->checkpoint($user, $folder),
			'cosignature' => fn (string $user, string $folder) => $this->bridge->log->addCosignature($user, $folder, JsonObject::fromArray(['size' => 1, 'cosignature' => self::shapedLine('w')])),
			'inclusion' => fn (string $user, string $folder) => $this->bridge->log->inclusion($user, $folder, QueryString::parse('index=0&size=1')),
			'consistency' => fn (string $user, string $folder) => $this->bridge->log->consistency($user, $folder, QueryString::parse('old=1&new=2')),
		];
		foreach ($calls as $what => $call) {
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $call('bob', $this->folderId));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $call('alice', bin2hex(random_bytes(16))));
			$this->assertRefused(NotFound::class, 'no such folder', fn () => $call('alice', strtoupper($this->folderId)));
		}
		$this->assertSame(0, $this->bridge->cosignatureStore->count());
		// Once shared, bob sees the same log.
		$this->bridge->share('alice', $this->folderId, 'bob');
		$this->assertSame($this->checkpoint(), $this->checkpoint('bob'));
	}

	public function testInclusionProofsProveEveryEntryInEveryCheckpoint(): void {
		$leaves = $this->appendSome(9);
		for ($size = 1; $size <= 9; $size++) {
			$root = (new MerkleTree($leaves))->root($size);
			for ($index = 0; $index < $size; $index++) {
				$answer = $this->proofQuery('inclusion', "index=$index&size=$size");
				$this->assertSame(['index', 'size', 'proof'], array_keys($answer));
				$this->assertSame([$index, $size], [$answer['index'], $answer['size']]);
				foreach ($answer['proof'] as $hash) {
					$this->assertMatchesRegularExpression('/^[0-9a-f]{64}$/D', $hash);
				}
				$this->assertTrue(LogVerifier::inclusion($leaves[$index], $index, $size, array_map('hex2bin', $answer['proof']), $root), "$index of $size");
			}
		}
		// Against the signed checkpoint.
		$root = $this->rootOf($this->checkpoint()['note']);
		$proof = array_map('hex2bin', $this->proofQuery('inclusion', 'index=4&size=9')['proof']);
		$this->assertTrue(LogVerifier::inclusion($leaves[4], 4, 9, $proof, $root));
	}

	public function testConsistencyProofsLinkEarlierCheckpointsToLaterOnes(): void {
		$this->appendSome(3);
		$before = $this->checkpoint();
		$this->appendSome(5);
		$after = $this->checkpoint();
		$this->assertSame(8, $after['size']);
		$answer = $this->proofQuery('consistency', 'old=3&new=8');
		$this->assertSame(['old' => 3, 'new' => 8], ['old' => $answer['old'], 'new' => $answer['new']]);
		$proof = array_map('hex2bin', $answer['proof']);
		$this->assertTrue(LogVerifier::consistency(3, 8, $proof, $this->rootOf($before['note']), $this->rootOf($after['note'])));
		$this->assertFalse(LogVerifier::consistency(3, 8, $proof, MerkleTree::leafHash('x'), $this->rootOf($after['note'])));
		$this->assertSame([], $this->proofQuery('consistency', 'old=0&new=8')['proof']);
		$this->assertSame([], $this->proofQuery('consistency', 'old=8&new=8')['proof']);
		$this->assertSame([], $this->proofQuery('consistency', 'old=0&new=0')['proof']);
	}

	public function testProofQueriesAreChecked(): void {
		$this->appendSome(4);
		$refusals = [
			['inclusion', 'index=4&size=4', 'index: must be below size'],
			['inclusion', 'index=0&size=5', 'size: the log has 4 entries'],
			['inclusion', 'index=0&size=0', 'size: must be between 1'],
			['inclusion', 'index=1.5&size=4', 'index: must be an integer'],
			['inclusion', 'index=-1&size=4', 'index: must be an integer'],
			['inclusion', 'index=0&size=x', 'size: must be an integer'],
			['inclusion', 'index=0&size=99999999999999999999', 'size: must be an integer'],
			['inclusion', 'size=4', 'index: required'],
			['inclusion', 'index=0&size=', 'size: required'],
			['consistency', 'old=3&new=2', 'old: must not be above new'],
			['consistency', 'old=2&new=5', 'new: the log has 4 entries'],
			['consistency', 'old=a&new=2', 'old: must be an integer'],
			['consistency', 'old=1', 'new: required'],
		];
		foreach ($refusals as [$what, $query, $message]) {
			$this->assertRefused(Invalid::class, $message, fn () => $this->proofQuery($what, $query));
		}
	}

	public function testAWitnessCosignatureIsServedWithTheCheckpointOfItsSize(): void {
		$this->appendSome(2);
		$body = $this->bodyOf($this->checkpoint()['note']);
		$witness = sodium_crypto_sign_secretkey(sodium_crypto_sign_keypair());
		$line = self::witnessLine($body, 'witness.example/w1', $witness, 1_763_700_000);
		$this->cosign(2, rtrim($line, "\n"));
		$note = $this->checkpoint()['note'];
		$this->assertStringEndsWith("\n" . $line, $note, 'stored with its newline, after the bridge\'s own line');
		$this->assertSame(['cloud.example.org', 'witness.example/w1'], array_column(LogVerifier::signatureLines($note), 0));
		$this->assertSame($body, $this->bodyOf($note), 'the bridge\'s signature still verifies');
		// A line for an earlier size stays with that size.
		$this->cosign(1, self::shapedLine('witness.example/w2'));
		$this->assertSame($note, $this->checkpoint()['note']);
		// The log grows: the newest checkpoint has no cosignature yet.
		$this->appendSome(1);
		$this->assertCount(1, LogVerifier::signatureLines($this->checkpoint()['note']));
		$this->assertSame(2, $this->bridge->cosignatureStore->count());
		// Size 0 (the empty log) and the current size are sizes the log had.
		$this->cosign(0, self::shapedLine('w'));
		$this->cosign(3, self::shapedLine('w'));
		$this->assertCount(2, LogVerifier::signatureLines($this->checkpoint()['note']));
	}

	public function testALineFromTheSameWitnessKeyReplacesItsOlderLine(): void {
		$this->appendSome(1);
		$keyId = random_bytes(4);
		$this->cosign(1, self::shapedLine('first'));
		$this->cosign(1, self::shapedLine('w', $keyId));
		$this->cosign(1, self::shapedLine('last'));
		$newer = self::shapedLine('w', $keyId);
		$this->cosign(1, $newer);
		$lines = LogVerifier::signatureLines($this->checkpoint()['note']);
		$this->assertSame(['cloud.example.org', 'first', 'w', 'last'], array_column($lines, 0), 'it keeps its place');
		$this->assertStringContainsString("\n" . $newer, $this->checkpoint()['note']);
		// The same name with another key id, or another name with the same key id, is another witness.
		$this->cosign(1, self::shapedLine('w', random_bytes(4)));
		$this->cosign(1, self::shapedLine('w2', $keyId));
		$this->assertSame(5, $this->bridge->cosignatureStore->count());
	}

	public function testACheckpointHasAtMostSixteenCosignatures(): void {
		$this->appendSome(1);
		$keyIds = [];
		for ($i = 0; $i < 16; $i++) {
			$keyIds[$i] = random_bytes(4);
			$this->cosign(1, self::shapedLine("w$i", $keyIds[$i]));
		}
		$this->assertRefused(Invalid::class, 'cosignature: this checkpoint has 16 already', fn () => $this->cosign(1, self::shapedLine('w16')));
		// A witness already there may still replace its line; other sizes have their own 16.
		$this->cosign(1, self::shapedLine('w7', $keyIds[7]));
		$this->cosign(0, self::shapedLine('w16'));
		$this->assertCount(17, LogVerifier::signatureLines($this->checkpoint()['note']));
		$this->assertSame(17, $this->bridge->cosignatureStore->count());
	}

	public function testConcurrentCosignaturesKeepTheirRules(): void {
		$this->appendSome(1);
		// Another witness takes the free place between our look and our insert: we take the next.
		$this->bridge->cosignatureStore->beforeNextAdd = function (): void {
			$this->cosign(1, self::shapedLine('other'));
		};
		$this->cosign(1, self::shapedLine('mine'));
		$this->assertSame(['cloud.example.org', 'other', 'mine'], array_column(LogVerifier::signatureLines($this->checkpoint()['note']), 0));
		// The same witness posts twice at once: one line, the later one.
		$keyId = random_bytes(4);
		$first = self::shapedLine('twice', $keyId);
		$second = self::shapedLine('twice', $keyId);
		$this->bridge->cosignatureStore->beforeNextAdd = function () use ($first): void {
			$this->cosign(1, $first);
		};
		$this->cosign(1, $second);
		$note = $this->checkpoint()['note'];
		$this->assertStringEndsWith("\n" . $second, $note);
		$this->assertStringNotContainsString($first, $note);
		$this->assertSame(3, $this->bridge->cosignatureStore->count());
	}

	public function testMalformedCosignaturesAreRefused(): void {
		$this->appendSome(2);
		$payload = base64_encode(random_bytes(76));
		$lines = [
			"- w $payload" => 'cosignature: must start with',
			"\u{2014}w $payload" => 'cosignature: must start with',
			"\u{2014} w $payload\n\n" => 'cosignature: the signature must be base64',
			"\u{2014} w  $payload" => 'cosignature: must be',
			"\u{2014} my witness $payload" => 'cosignature: must be',
			"\u{2014} w $payload extra" => 'cosignature: must be',
			"\u{2014} $payload" => 'cosignature: must be',
			"\u{2014} w+1 $payload" => 'cosignature: the name',
			"\u{2014} w\u{0085} $payload" => 'cosignature: the name',
			"\u{2014} w\t $payload" => 'cosignature: the name',
			"\u{2014} w " . base64_encode(random_bytes(75)) => 'cosignature: the signature must be base64 of 76 bytes',
			"\u{2014} w " . base64_encode(random_bytes(77)) => 'cosignature: the signature must be base64 of 76 bytes',
			"\u{2014} w " . rtrim($payload, '=') => 'cosignature: the signature must be base64',
			"\u{2014} w " . strtr($payload, '+/', '-_') . 'A' => 'cosignature: the signature must be base64',
			'' => 'cosignature: must not be empty',
			"\u{2014} " . str_repeat('w', 406) . " $payload" => 'cosignature: at most 512 characters',
		];
		foreach ($lines as $line => $message) {
			$this->assertRefused(Invalid::class, $message, fn () => $this->cosign(2, (string)$line));
		}
		$valid = "\u{2014} w $payload";
		$this->assertRefused(Invalid::class, 'size: the log has 2 entries', fn () => $this->cosign(3, $valid));
		$this->assertRefused(Invalid::class, 'size: must be between 0', fn () => $this->cosign(-1, $valid));
		$body = fn (array $fields) => $this->bridge->log->addCosignature('alice', $this->folderId, JsonObject::fromArray($fields));
		$this->assertRefused(Invalid::class, 'size: must be an integer', fn () => $body(['size' => '2', 'cosignature' => $valid]));
		$this->assertRefused(Invalid::class, 'size: required', fn () => $body(['cosignature' => $valid]));
		$this->assertRefused(Invalid::class, 'cosignature: must be a string', fn () => $body(['size' => 2, 'cosignature' => 5]));
		$this->assertRefused(Invalid::class, 'timestamp: unknown field', fn () => $body(['size' => 2, 'cosignature' => $valid, 'timestamp' => 1]));
		$this->assertSame(0, $this->bridge->cosignatureStore->count());
		// The longest name that fits: 405 characters.
		$this->cosign(2, "\u{2014} " . str_repeat('w', 405) . " $payload");
		$this->assertSame(1, $this->bridge->cosignatureStore->count());
	}

	public function testLoggingGivesUpAfterLosingEveryRace(): void {
		$fileId = bin2hex(random_bytes(16));
		$body = (new ChainWriter($this->folderId, $fileId))->next($this->laptop);
		$link = new ChainLink($this->folderId, $fileId, 1, $body['prev'], (string)Base64::decode($body['entry']), $body['head'], $this->laptop->id);
		$n = 0;
		$race = null;
		$race = function () use (&$race, &$n): void {
			$this->bridge->logStore->addLeaf($this->folderId, $n, bin2hex(MerkleTree::leafHash("other $n")));
			$n++;
			$this->bridge->logStore->beforeNextAdd = $race;
		};
		$this->bridge->logStore->beforeNextAdd = $race;
		$this->expectException(DuplicateKey::class);
		$this->bridge->log->append($link);
	}
}
