<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

/**
 * The hashes and the signed message of docs/protocol.md ("Hash chains").
 *
 *     h0  = H3("harp chain genesis v1" 0x00 ‖ folder id ‖ file id ‖ chain seed)
 *     sig = Ed25519-Sign(author, "harp chain entry v1" 0x00 ‖ h(n-1) ‖ entry[0..154])
 *     hn  = H3(h(n-1) ‖ entry[0..218])
 *
 * All values are raw bytes; H3 is SHA3-256.
 */
final class ChainHash {
	private const GENESIS_DOMAIN = "harp chain genesis v1\x00";
	private const SIGNATURE_DOMAIN = "harp chain entry v1\x00";

	/** h0: needs the folder's chain seed, so only members (never the bridge) can compute it. */
	public static function genesis(string $folderId, string $fileId, string $chainSeed): string {
		return hash('sha3-256', self::GENESIS_DOMAIN . $folderId . $fileId . $chainSeed, true);
	}

	/** The link after $prev: what the API calls `head`. */
	public static function link(string $prev, string $entryBytes): string {
		return hash('sha3-256', $prev . $entryBytes, true);
	}

	/** What the author signs: the entry bound to its exact place after $prev. */
	public static function signingMessage(string $prev, string $entryBytes): string {
		return self::SIGNATURE_DOMAIN . $prev . substr($entryBytes, 0, ChainEntry::SIGNED_LENGTH);
	}
}
