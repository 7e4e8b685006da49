<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

/**
 * The verification rules of docs/protocol.md ("Hash chains"), with the same
 * error codes and the same order of checks as `harp_protocol::chain`.
 */
final class ChainVerifier {
	/**
	 * Checks that $entry's author signed it as the successor of $prev.
	 *
	 * @throws ChainError bad_author_key when the author is not a usable Ed25519
	 *                    key, bad_signature when the signature does not verify
	 */
	public static function verifySignature(ChainEntry $entry, string $prev): void {
		try {
			// Rejects keys that are not points of the curve (or of small order).
			sodium_crypto_sign_ed25519_pk_to_curve25519($entry->author);
		} catch (\SodiumException) {
			throw new ChainError('bad_author_key', 'seq ' . $entry->seq, $entry->seq);
		}
		$message = ChainHash::signingMessage($prev, $entry->bytes);
		if (!sodium_crypto_sign_verify_detached($entry->signature, $message, $entry->author)) {
			throw new ChainError('bad_signature', 'seq ' . $entry->seq, $entry->seq);
		}
	}

	/**
	 * Checks whether $op is allowed when the file is present or absent:
	 * create needs absent, everything else needs present.
	 *
	 * @throws ChainError illegal_op or delete_with_content
	 */
	public static function checkOperation(ChainEntry $entry, bool $present): void {
		$allowed = $entry->op === ChainEntry::OP_CREATE ? !$present : $present;
		if (!$allowed) {
			throw new ChainError(
				'illegal_op',
				sprintf('seq %d: %s while %s', $entry->seq, $entry->opName(), $present ? 'present' : 'absent'),
				$entry->seq,
			);
		}
		if ($entry->op === ChainEntry::OP_DELETE
			&& ($entry->contentRoot !== str_repeat("\0", 32) || $entry->size !== 0)) {
			throw new ChainError('delete_with_content', 'seq ' . $entry->seq, $entry->seq);
		}
	}

	/**
	 * Verifies entries 1..n of one file from its genesis link $h0.
	 *
	 * @param list<ChainEntry> $entries
	 * @param list<string>|null $trustedAuthors raw 32-byte keys allowed to author, or null for any
	 * @throws ChainError
	 */
	public static function verifyChain(
		string $folderId,
		string $fileId,
		string $h0,
		array $entries,
		?array $trustedAuthors = null,
	): VerifiedChain {
		if ($entries === []) {
			throw new ChainError('empty', 'no entries');
		}
		$head = $h0;
		$present = false;
		foreach ($entries as $index => $entry) {
			$expected = $index + 1;
			if ($entry->folderId !== $folderId || $entry->fileId !== $fileId) {
				throw new ChainError('wrong_file', 'seq ' . $entry->seq, $entry->seq);
			}
			if ($entry->seq !== $expected) {
				throw new ChainError('seq_gap', sprintf('expected %d, found %d', $expected, $entry->seq), $entry->seq);
			}
			self::checkOperation($entry, $present);
			self::verifySignature($entry, $head);
			if ($trustedAuthors !== null && !in_array($entry->author, $trustedAuthors, true)) {
				throw new ChainError('untrusted_author', 'seq ' . $entry->seq, $entry->seq);
			}
			$head = ChainHash::link($head, $entry->bytes);
			$present = $entry->op !== ChainEntry::OP_DELETE;
		}
		return new VerifiedChain($head, count($entries), $present);
	}
}
