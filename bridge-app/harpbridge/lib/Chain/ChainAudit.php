<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

use OCA\HarpBridge\Codec\Hex;
use OCA\HarpBridge\Model\ChainLink;

/**
 * Re-checks a file's chain as stored on the server, every branch: each entry
 * decodes, names the file, hashes to its head, follows a stored entry of the
 * previous seq (its prev), is a legal operation there, and is signed by its
 * author over that prev. The genesis (prev of seq 1) needs the folder's chain
 * seed, so it is reported, not checked; seq-1 entries that start from
 * different links cannot all be genuine, so that is a problem.
 */
final class ChainAudit {
	/**
	 * @param iterable<ChainLink> $links the file's links ordered by seq
	 */
	public static function audit(string $folderId, string $fileId, iterable $links): AuditReport {
		/** @var array<string, array{seq: int, present: bool}> $valid links that passed, by head */
		$valid = [];
		/** @var array<string, int> $seqOf every stored head's seq */
		$seqOf = [];
		$followed = [];
		$genesis = [];
		$problems = [];
		$count = 0;
		foreach ($links as $link) {
			$count++;
			$seqOf[$link->head] = $link->seq;
			$followed[$link->prev] = true;
			try {
				$present = self::checkLink($folderId, $fileId, $link, $valid, $seqOf, $genesis);
				$valid[$link->head] = ['seq' => $link->seq, 'present' => $present];
			} catch (ChainError $e) {
				$problems[] = [$link->seq, $link->head, $e->errorCode, $e->detail];
			}
		}
		$report = new AuditReport($count);
		foreach ($problems as [$seq, $head, $code, $detail]) {
			$report->addProblem($seq, $head, $code, $detail);
		}
		$genesis = array_keys($genesis);
		if (count($genesis) > 1) {
			$report->addProblem(1, '', 'bad_genesis', count($genesis) . ' different links before seq 1: at most one is the genesis');
		}
		$report->setGenesisLinks(array_map('strval', $genesis));
		$tips = array_diff_key($seqOf, $followed);
		$report->setTips($tips);
		return $report;
	}

	/**
	 * @param array<string, array{seq: int, present: bool}> $valid
	 * @param array<string, int> $seqOf
	 * @param array<string, true> $genesis
	 * @return bool whether the file is present after this entry
	 * @throws ChainError
	 */
	private static function checkLink(string $folderId, string $fileId, ChainLink $link, array $valid, array $seqOf, array &$genesis): bool {
		$entry = ChainEntry::decode($link->entry);
		if ($entry->folderId !== $folderId || $entry->fileId !== $fileId) {
			throw new ChainError('wrong_file', 'the entry names another folder or file', $link->seq);
		}
		if ($entry->seq !== $link->seq) {
			throw new ChainError('seq_gap', 'stored as seq ' . $link->seq . ', the entry says ' . $entry->seq, $link->seq);
		}
		$prev = Hex::decode($link->prev, 32);
		if ($prev === null || Hex::encode(ChainHash::link($prev, $entry->bytes)) !== $link->head) {
			throw new ChainError('wrong_head', 'SHA3-256(prev ‖ entry) is not the stored head', $link->seq);
		}
		if ($entry->seq === 1) {
			$present = false;
		} elseif (isset($valid[$link->prev])) {
			if ($valid[$link->prev]['seq'] !== $entry->seq - 1) {
				throw new ChainError('seq_gap', 'prev is the head of seq ' . $valid[$link->prev]['seq'], $link->seq);
			}
			$present = $valid[$link->prev]['present'];
		} elseif (isset($seqOf[$link->prev])) {
			throw new ChainError('wrong_link', 'prev is an entry that did not verify', $link->seq);
		} else {
			throw new ChainError('wrong_link', 'prev is no stored entry', $link->seq);
		}
		ChainVerifier::checkOperation($entry, $present);
		ChainVerifier::verifySignature($entry, $prev);
		if ($entry->seq === 1) {
			// Only entries that verified count as candidates for the genesis.
			$genesis[$link->prev] = true;
		}
		return $entry->op !== ChainEntry::OP_DELETE;
	}
}
