<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Codec\Base32;
use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Codec\Ids;
use PHPUnit\Framework\TestCase;

final class CodecTest extends TestCase {
	private const IDS = __DIR__ . '/../../../protocol/tests/vectors/ids.json';

	/** RFC 4648 section 10, lower case and unpadded. */
	public function testBase32MatchesTheRfcVectors(): void {
		$vectors = ['' => '', 'f' => 'my', 'fo' => 'mzxq', 'foo' => 'mzxw6', 'foob' => 'mzxw6yq', 'fooba' => 'mzxw6ytb', 'foobar' => 'mzxw6ytboi'];
		foreach ($vectors as $bytes => $text) {
			$this->assertSame($text, Base32::encode((string)$bytes));
			$this->assertSame((string)$bytes, Base32::decode($text));
			$this->assertSame((string)$bytes, Base32::decode(strtoupper($text)), 'base32 is case-insensitive');
		}
	}

	public function testBase32RefusesForeignCharactersAndNonCanonicalTails(): void {
		$this->assertNull(Base32::decode('mzxw1'), '1 is not in the alphabet');
		$this->assertNull(Base32::decode('mzxw6==='), 'no padding');
		$this->assertNull(Base32::decode('mz'), 'leftover bits must be zero');
		$this->assertNull(Base32::decode('m'), 'five bits are not a byte');
	}

	public function testBase32RoundTripsRandomKeys(): void {
		for ($i = 0; $i < 50; $i++) {
			$key = random_bytes(32);
			$text = Base32::encode($key);
			$this->assertSame(52, strlen($text));
			$this->assertSame($key, Base32::decode($text));
		}
	}

	public function testDeviceIdsMatchTheProtocolVectors(): void {
		$vectors = json_decode((string)file_get_contents(self::IDS), true, 512, JSON_THROW_ON_ERROR);
		$this->assertNotEmpty($vectors['devices']);
		foreach ($vectors['devices'] as $device) {
			$pair = sodium_crypto_sign_seed_keypair((string)hex2bin($device['ed25519_seed']));
			$public = sodium_crypto_sign_publickey($pair);
			$this->assertSame($device['device_id_hex'], bin2hex($public));
			$this->assertSame($device['device_id_base32'], Ids::deviceIdFromKey($public));
			$this->assertTrue(Ids::isDeviceId($device['device_id_base32']));
			$this->assertSame($public, Ids::deviceKey($device['device_id_base32']));
			$this->assertSame('002408011220' . $device['device_id_hex'], $device['libp2p_peer_id_bytes']);
		}
	}

	public function testDeviceIdsAreStrict(): void {
		$id = Ids::deviceIdFromKey(random_bytes(32));
		$this->assertFalse(Ids::isDeviceId(strtoupper($id)), 'the API spells ids in lower case');
		$this->assertFalse(Ids::isDeviceId(substr($id, 0, 51)));
		$this->assertFalse(Ids::isDeviceId($id . 'a'));
		$this->assertFalse(Ids::isDeviceId(substr($id, 0, 51) . 'b'), 'non-zero leftover bits');
		$this->assertNull(Ids::deviceKey(bin2hex(random_bytes(32))), 'hex is not the API form');
	}

	public function testBase64IsCanonical(): void {
		$this->assertSame('abc', Base64::decode('YWJj'));
		$this->assertSame('ab', Base64::decode('YWI='));
		$this->assertNull(Base64::decode('YWI'), 'padding is required');
		$this->assertNull(Base64::decode('YWJ='), 'leftover bits must be zero');
		$this->assertNull(Base64::decode('YW I='), 'no whitespace');
		$this->assertNull(Base64::decode('-_8='), 'standard alphabet, not URL-safe');
		$this->assertSame(str_repeat("\xff", 3), Base64::decode('////'));
	}

	public function testBase64ExactLength(): void {
		$key = random_bytes(32);
		$this->assertSame($key, Base64::decodeExact(Base64::encode($key), 32));
		$this->assertNull(Base64::decodeExact(Base64::encode($key), 31));
		$this->assertNull(Base64::decodeExact(Base64::encode(random_bytes(33)), 32));
	}

	public function testHexIsLowercaseAndSized(): void {
		$this->assertTrue(Hex::isLower(str_repeat('ab', 16), 16));
		$this->assertFalse(Hex::isLower(str_repeat('AB', 16), 16));
		$this->assertFalse(Hex::isLower(str_repeat('ab', 15), 16));
		$this->assertFalse(Hex::isLower(str_repeat('ab', 16) . "\n", 16));
		$this->assertSame("\xab\xcd", Hex::decode('abcd', 2));
		$this->assertNull(Hex::decode('abcg', 2));
		$this->assertTrue(Ids::isFolderId(str_repeat('0f', 16)));
		$this->assertTrue(Ids::isFileId(str_repeat('f1', 16)));
		$this->assertTrue(Ids::isChainHash(str_repeat('00', 32)));
		$this->assertFalse(Ids::isFolderId(str_repeat('00', 32)));
	}
}
