<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Service;

use OCA\HarpBridge\Codec\Base64;
use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Codec\Ids;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Model\Folder;
use OCA\HarpBridge\Model\WrappedKey;
use OCA\HarpBridge\Store\WrappedKeyRepository;

/**
 * Folder keys wrapped for devices. Any member may store one for any device
 * of a member, vouching for it with the signature of one of their own
 * devices; a device's user fetches only that device's key.
 */
final class WrappedKeyService {
	public function __construct(
		private readonly WrappedKeyRepository $keys,
		private readonly FolderAccess $access,
	) {
	}

	/**
	 * The key wrapped for one of the caller's devices.
	 *
	 * @return array<string, string>
	 * @throws NotFound no such folder or device of the caller, or no key yet
	 */
	public function get(string $userId, string $folderId, string $deviceId): array {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$device = $this->access->memberDevice($folder, $deviceId);
		if ($device === null || $device->userId !== $userId) {
			throw new NotFound('no such device of yours');
		}
		$key = $this->keys->findKey($folder->folderId, $device->deviceId);
		if ($key === null) {
			throw new NotFound('no key for that device yet');
		}
		return $key->toApi();
	}

	/**
	 * Stores a key wrapped for a device of a member, vouched for by one of the
	 * caller's own devices (as in the Rust bridge: a member cannot store a
	 * voucher another user's device signed, so it cannot replay one either).
	 *
	 * @throws NotFound the folder is not visible, or the device is not a member's
	 * @throws Invalid malformed, the voucher is not a device of the caller, or its signature does not verify
	 */
	public function put(string $userId, string $folderId, string $deviceId, JsonObject $body): void {
		$folder = $this->access->visibleFolder($userId, $folderId);
		$key = $this->parse($folder, $body);
		if ($key->deviceId !== $deviceId) {
			throw new Invalid('device_id: must be the device of the path');
		}
		$this->checkWrapper($userId, $folder, $key);
		if ($this->access->memberDevice($folder, $key->deviceId) === null) {
			throw new NotFound('no such device of a member');
		}
		$this->checkSignature($folder, $key);
		$this->keys->putKey($key);
	}

	/**
	 * Reads a WrappedKey object (its formats only).
	 *
	 * @throws Invalid
	 */
	public function parse(Folder $folder, JsonObject $body): WrappedKey {
		$body->allowOnly('device_id', 'ephemeral_public', 'nonce', 'ciphertext', 'wrapped_by', 'signature');
		$deviceId = $this->deviceIdField($body, 'device_id');
		$ephemeral = $this->base64Field($body, 'ephemeral_public', 32);
		$nonce = $this->base64Field($body, 'nonce', 24);
		$ciphertext = $this->base64Field($body, 'ciphertext', 48);
		$wrappedBy = $this->deviceIdField($body, 'wrapped_by');
		$signature = $this->base64Field($body, 'signature', 64);
		return new WrappedKey($folder->folderId, $deviceId, $ephemeral, $nonce, $ciphertext, $wrappedBy, $signature);
	}

	/**
	 * Checks that one of the caller's devices vouched for the key: `wrapped_by`
	 * is a registered device of $userId (a member of the folder) and signed
	 * "harp bridge wrap v1" 0x00 ‖ folder id ‖ device id ‖ ephemeral public ‖ nonce ‖ ciphertext.
	 *
	 * @param string $field where the key sits in the body, for messages ('' at the top)
	 * @throws Invalid
	 */
	public function checkVoucher(string $userId, Folder $folder, WrappedKey $key, string $field = ''): void {
		$this->checkWrapper($userId, $folder, $key, $field);
		$this->checkSignature($folder, $key, $field);
	}

	/** @throws Invalid `wrapped_by` is not a registered device of the caller */
	private function checkWrapper(string $userId, Folder $folder, WrappedKey $key, string $field = ''): void {
		$wrapper = $this->access->memberDevice($folder, $key->wrappedBy);
		if ($wrapper === null || $wrapper->userId !== $userId) {
			throw new Invalid(($field === '' ? '' : $field . '.') . 'wrapped_by: not a registered device of yours');
		}
	}

	/** @throws Invalid the signature of `wrapped_by` does not verify (a failed proof: throttled) */
	private function checkSignature(Folder $folder, WrappedKey $key, string $field = ''): void {
		$message = Signatures::keyWrap(
			(string)Hex::decode($folder->folderId, Ids::FOLDER_ID_BYTES),
			(string)Ids::deviceKey($key->deviceId),
			(string)Base64::decode($key->ephemeralPublic),
			(string)Base64::decode($key->nonce),
			(string)Base64::decode($key->ciphertext),
		);
		$signature = (string)Base64::decode($key->signature);
		if (!Signatures::verify($signature, $message, (string)Ids::deviceKey($key->wrappedBy))) {
			throw Invalid::badSignature(($field === '' ? '' : $field . '.') . 'signature: does not verify');
		}
	}

	/** @throws Invalid */
	private function deviceIdField(JsonObject $body, string $name): string {
		$value = $body->string($name);
		if (!Ids::isDeviceId($value)) {
			throw new Invalid($body->path($name) . ': must be 52 lowercase base32 characters');
		}
		return $value;
	}

	/** The field's text, once it is checked to be $bytes bytes of base64. @throws Invalid */
	private function base64Field(JsonObject $body, string $name, int $bytes): string {
		$value = $body->string($name);
		if (Base64::decodeExact($value, $bytes) === null) {
			throw new Invalid($body->path($name) . ": must be $bytes bytes of base64");
		}
		return $value;
	}
}
