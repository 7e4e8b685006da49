<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests\Support;

/**
 * What a client checks, written from the specifications and independent of
 * lib/Log: RFC 9162 proof verification (section 2.1.3.2 inclusion, 2.1.4.2
 * consistency) and C2SP signed notes with a verifier key. Hashes are raw.
 */
final class LogVerifier {
	private static function node(string $left, string $right): string {
		return hash('sha256', "\x01" . $left . $right, true);
	}

	/** RFC 9162, 2.1.3.2. @param list<string> $proof */
	public static function inclusion(string $leafHash, int $index, int $size, array $proof, string $root): bool {
		if ($index >= $size) {
			return false;
		}
		$fn = $index;
		$sn = $size - 1;
		$r = $leafHash;
		foreach ($proof as $p) {
			if ($sn === 0) {
				return false;
			}
			if (($fn & 1) === 1 || $fn === $sn) {
				$r = self::node($p, $r);
				if (($fn & 1) === 0) {
					while (($fn & 1) === 0 && $fn !== 0) {
						$fn >>= 1;
						$sn >>= 1;
					}
				}
			} else {
				$r = self::node($r, $p);
			}
			$fn >>= 1;
			$sn >>= 1;
		}
		return $sn === 0 && hash_equals($root, $r);
	}

	/**
	 * RFC 9162, 2.1.4.2, with the cases it leaves out: equal sizes need an
	 * empty proof and equal roots, and from the empty tree an empty proof.
	 *
	 * @param list<string> $proof
	 */
	public static function consistency(int $old, int $new, array $proof, string $oldRoot, string $newRoot): bool {
		if ($old > $new) {
			return false;
		}
		if ($old === $new) {
			return $proof === [] && hash_equals($oldRoot, $newRoot);
		}
		if ($old === 0) {
			return $proof === [];
		}
		if ($proof === []) {
			return false;
		}
		if (($old & ($old - 1)) === 0) {
			array_unshift($proof, $oldRoot);
		}
		$fn = $old - 1;
		$sn = $new - 1;
		while (($fn & 1) === 1) {
			$fn >>= 1;
			$sn >>= 1;
		}
		$fr = $proof[0];
		$sr = $proof[0];
		foreach (array_slice($proof, 1) as $c) {
			if ($sn === 0) {
				return false;
			}
			if (($fn & 1) === 1 || $fn === $sn) {
				$fr = self::node($c, $fr);
				$sr = self::node($c, $sr);
				if (($fn & 1) === 0) {
					while (($fn & 1) === 0 && $fn !== 0) {
						$fn >>= 1;
						$sn >>= 1;
					}
				}
			} else {
				$sr = self::node($sr, $c);
			}
			$fn >>= 1;
			$sn >>= 1;
		}
		return $sn === 0 && hash_equals($oldRoot, $fr) && hash_equals($newRoot, $sr);
	}

	/**
	 * The body of a signed note when the verifier key (C2SP
	 * `name+hex(key id)+base64(0x01 ‖ Ed25519 key)`) signed it, else null.
	 */
	public static function noteBody(string $note, string $verifierKey): ?string {
		// The name and the hex key id hold no '+'; the base64 key may.
		$parts = explode('+', $verifierKey, 3);
		if (count($parts) !== 3) {
			return null;
		}
		[$name, $idHex, $keyText] = $parts;
		$key = base64_decode($keyText, true);
		if ($key === false || strlen($key) !== 33 || $key[0] !== "\x01") {
			return null;
		}
		$publicKey = substr($key, 1);
		$keyId = substr(hash('sha256', $name . "\n\x01" . $publicKey, true), 0, 4);
		if (bin2hex($keyId) !== $idHex) {
			return null;
		}
		$at = strpos($note, "\n\n");
		if ($at === false || !str_ends_with($note, "\n")) {
			return null;
		}
		$body = substr($note, 0, $at + 1);
		foreach (self::signatureLines($note) as [$lineName, $bytes]) {
			if ($lineName === $name && substr($bytes, 0, 4) === $keyId && strlen($bytes) === 68
				&& sodium_crypto_sign_verify_detached(substr($bytes, 4), $body, $publicKey)) {
				return $body;
			}
		}
		return null;
	}

	/**
	 * The signature lines of a note: name and decoded bytes each.
	 *
	 * @return list<array{0: string, 1: string}>
	 */
	public static function signatureLines(string $note): array {
		$at = strpos($note, "\n\n");
		$lines = [];
		foreach (explode("\n", rtrim(substr($note, (int)$at + 2), "\n")) as $line) {
			if (preg_match('/^\x{2014} (\S+) (\S+)$/u', $line, $m) !== 1) {
				throw new \UnexpectedValueException("not a signature line: $line");
			}
			$lines[] = [$m[1], (string)base64_decode($m[2], true)];
		}
		return $lines;
	}
}
