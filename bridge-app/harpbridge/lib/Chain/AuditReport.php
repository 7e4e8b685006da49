<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Chain;

/**
 * What auditing a file's stored chain found: its branches' tips, the links its
 * first entries start from (the genesis, which only members can check), and
 * every problem with the entry it was found at.
 */
final class AuditReport {
	/** @var list<array{seq: int, head: string, code: string, detail: string}> */
	private array $problems = [];
	/** @var array<string, int> head => seq of entries nothing follows */
	private array $tips = [];
	/** @var list<string> distinct prev links of seq-1 entries */
	private array $genesisLinks = [];

	public function __construct(public readonly int $entryCount) {
	}

	public function addProblem(int $seq, string $head, string $code, string $detail = ''): void {
		$this->problems[] = ['seq' => $seq, 'head' => $head, 'code' => $code, 'detail' => $detail];
	}

	/** @param array<string, int> $tips */
	public function setTips(array $tips): void {
		$this->tips = $tips;
	}

	/** @param list<string> $links */
	public function setGenesisLinks(array $links): void {
		$this->genesisLinks = $links;
	}

	public function holds(): bool {
		return $this->problems === [] && $this->entryCount > 0;
	}

	/** @return list<array{seq: int, head: string, code: string, detail: string}> */
	public function problems(): array {
		return $this->problems;
	}

	/** @return array<string, int> head => seq */
	public function tips(): array {
		return $this->tips;
	}

	/** @return list<string> */
	public function genesisLinks(): array {
		return $this->genesisLinks;
	}
}
