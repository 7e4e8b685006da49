<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Service\Signatures;

/** A device as a Harp client would be: an Ed25519 identity and an X25519 key. */
final class TestDevice {
	private function __construct(
		public readonly string $secretKey,
		public readonly string $publicKey,
		public readonly string $id,
		public readonly string $x25519Public,
	) {
	}

	public static function create(): self {
		$pair = sodium_crypto_sign_keypair();
		$public = sodium_crypto_sign_publickey($pair);
		$x25519 = sodium_crypto_box_publickey(sodium_crypto_box_keypair());
		return new self(sodium_crypto_sign_secretkey($pair), $public, Ids::deviceIdFromKey($public), $x25519);
	}

	public function sign(string $message): string {
		return sodium_crypto_sign_detached($message, $this->secretKey);
	}

	/** @return array<string, string> a POST /devices body */
	public function registration(string $userId, string $name = 'laptop'): array {
		return [
			'device_id' => $this->id,
			'name' => $name,
			'x25519_public' => Base64::encode($this->x25519Public),
			'signature' => Base64::encode($this->sign(
				Signatures::deviceRegistration($userId, $this->publicKey, $this->x25519Public),
			)),
		];
	}

	/**
	 * A WrappedKey body for $target, vouched for by this device. The sealed
	 * bytes are random: the bridge cannot open them and does not try.
	 *
	 * @return array<string, string>
	 */
	public function wrapFor(string $folderId, TestDevice $target): array {
		$ephemeral = random_bytes(32);
		$nonce = random_bytes(24);
		$ciphertext = random_bytes(48);
		$message = Signatures::keyWrap((string)hex2bin($folderId), $target->publicKey, $ephemeral, $nonce, $ciphertext);
		return [
			'device_id' => $target->id,
			'ephemeral_public' => Base64::encode($ephemeral),
			'nonce' => Base64::encode($nonce),
			'ciphertext' => Base64::encode($ciphertext),
			'wrapped_by' => $this->id,
			'signature' => Base64::encode($this->sign($message)),
		];
	}
}
