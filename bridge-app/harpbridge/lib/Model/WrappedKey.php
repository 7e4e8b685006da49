<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Model;

/**
 * A folder key sealed to one device's X25519 key, vouched for by the member
 * device that sealed it. The bridge cannot open it; it checks the voucher's
 * signature so a recipient never receives a key no member signed.
 * Binary fields stay in their base64 text form.
 */
final class WrappedKey {
	public function __construct(
		public readonly string $folderId,
		public readonly string $deviceId,
		public readonly string $ephemeralPublic,
		public readonly string $nonce,
		public readonly string $ciphertext,
		public readonly string $wrappedBy,
		public readonly string $signature,
	) {
	}

	/** @return array<string, string> the API form (schema WrappedKey) */
	public function toApi(): array {
		return [
			'device_id' => $this->deviceId,
			'ephemeral_public' => $this->ephemeralPublic,
			'nonce' => $this->nonce,
			'ciphertext' => $this->ciphertext,
			'wrapped_by' => $this->wrappedBy,
			'signature' => $this->signature,
		];
	}
}
