<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Log\Checkpoint;
use OCA\HarpBridge\Log\CosignatureLine;
use OCA\HarpBridge\Log\NoteKey;
use OCA\HarpBridge\Service\LogKeyService;
use OCA\HarpBridge\Tests\Support\FixedLogKey;
use OCA\HarpBridge\Tests\Support\LogVerifier;
use PHPUnit\Framework\TestCase;

/** The bridge's log key: made once, named by the admin or the server's URL, in C2SP formats. */
final class LogKeyTest extends TestCase {
	public function testTheKeyIsMadeOnFirstUseAndKept(): void {
		$source = new FixedLogKey();
		$first = (new LogKeyService($source))->key();
		$this->assertSame(1, $source->stores);
		$this->assertSame(32, strlen((string)Base64::decodeExact((string)$source->key, 32)), 'stored as base64 of the seed');
		$again = new LogKeyService($source);
		$this->assertSame($first->publicKey, $again->key()->publicKey);
		$this->assertSame($again->key(), $again->key());
		$this->assertSame(1, $source->stores);
	}

	public function testAStoredKeyIsUsedAsItIs(): void {
		$seed = str_repeat("\x01", 32);
		$key = (new LogKeyService(new FixedLogKey(Base64::encode($seed), 'bridge.example')))->key();
		$this->assertSame(sodium_crypto_sign_publickey(sodium_crypto_sign_seed_keypair($seed)), $key->publicKey);
		$this->assertSame('bridge.example', $key->name);
	}

	public function testAMalformedStoredKeyIsAnError(): void {
		$this->expectException(\RuntimeException::class);
		(new LogKeyService(new FixedLogKey('not a key')))->key();
	}

	public function testTheNameIsLogNameThenTheServersHostThenNextcloud(): void {
		$cases = [
			['harp.example.org/log', 'https://cloud.example.org', 'harp.example.org/log'],
			[null, 'https://Cloud.Example.org:8443/nextcloud/', 'cloud.example.org'],
			[null, 'cloud.example.org/nextcloud', 'cloud.example.org'],
			[null, 'http://[::1]:8080', '[::1]'],
			['my log', 'https://cloud.example.org', 'cloud.example.org'],
			['a+b', null, 'nextcloud'],
			[null, null, 'nextcloud'],
			[null, '', 'nextcloud'],
			['', '   ', 'nextcloud'],
		];
		foreach ($cases as [$name, $url, $expected]) {
			$this->assertSame($expected, (new LogKeyService(new FixedLogKey(null, $name, $url)))->name(), var_export([$name, $url], true));
		}
	}

	public function testTheVerifierKeyAndKeyIdAreC2sps(): void {
		$key = new NoteKey('bridge.example', random_bytes(32));
		$keyId = substr(hash('sha256', "bridge.example\n\x01" . $key->publicKey, true), 0, 4);
		$this->assertSame($keyId, $key->keyId());
		$this->assertSame('bridge.example+' . bin2hex($keyId) . '+' . base64_encode("\x01" . $key->publicKey), $key->verifierKey());
		$this->assertSame($keyId, NoteKey::keyIdOf('bridge.example', NoteKey::TYPE_ED25519, $key->publicKey));
		$this->assertNotSame($keyId, NoteKey::keyIdOf('bridge.example', NoteKey::TYPE_COSIGNATURE, $key->publicKey));
	}

	public function testASignedNoteIsTheBodyABlankLineAndTheSignatureLine(): void {
		$key = new NoteKey('bridge.example', random_bytes(32));
		$body = Checkpoint::body('0123456789abcdef0123456789abcdef', 8, (string)hex2bin('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'));
		$this->assertSame("harp/0123456789abcdef0123456789abcdef\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", $body);
		$note = $key->sign($body);
		$this->assertMatchesRegularExpression('#^' . preg_quote($body, '#') . "\n\u{2014} bridge\\.example [A-Za-z0-9+/]{91}=\n\$#u", $note);
		$this->assertSame($body, LogVerifier::noteBody($note, $key->verifierKey()));
		$this->expectException(\InvalidArgumentException::class);
		$key->sign("no final newline");
	}

	public function testNamesTheFormatRefuses(): void {
		foreach (['', 'a b', 'a+b', "a\nb", "a\x7fb", "a\u{0085}b", "\xff"] as $name) {
			$this->assertFalse(NoteKey::isValidName($name), var_export($name, true));
		}
		foreach (['bridge.example', 'example.com/log/1', "caf\u{e9}", "a\u{a0}b"] as $name) {
			$this->assertTrue(NoteKey::isValidName($name), $name);
		}
		$this->expectException(\InvalidArgumentException::class);
		new NoteKey('a b', random_bytes(32));
	}

	public function testACosignatureLineIsReadAndWrittenBack(): void {
		$keyId = random_bytes(4);
		$payload = base64_encode($keyId . random_bytes(72));
		$line = CosignatureLine::parse("\u{2014} witness.example/w1 $payload");
		$this->assertSame('witness.example/w1', $line->name);
		$this->assertSame($keyId, $line->keyId);
		$this->assertSame("\u{2014} witness.example/w1 $payload\n", $line->text());
		$this->assertSame($line->text(), CosignatureLine::parse($line->text())->text());
	}
}
