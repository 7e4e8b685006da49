<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Command;

use OCA\HarpBridge\Exception\BridgeError;
use OCA\HarpBridge\Service\ChainAuditService;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputArgument;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/**
 * `occ harpbridge:verify USER FOLDER PATH`: checks a file's chain as stored on
 * this server (links, seqs, heads, operations, signatures), every branch, and
 * shows where its entries are in the folder's transparency log, checking each
 * logged entry is the leaf at its place there (not_in_log otherwise). The
 * genesis link needs the folder's secret, so it is shown, not checked: a
 * member proves it with `harp verify --folder-key`.
 */
class Verify extends Command {
	public function __construct(private readonly ChainAuditService $audit) {
		parent::__construct();
	}

	protected function configure(): void {
		$this->setName('harpbridge:verify')
			->setDescription('Check a file\'s hash chain as stored on this server')
			->addArgument('user', InputArgument::REQUIRED, 'a member of the folder (the folder is looked up as this user sees it)')
			->addArgument('folder', InputArgument::REQUIRED, 'the folder id (32 hex)')
			->addArgument('path', InputArgument::REQUIRED, 'the file\'s path in a plaintext index, or its file id (32 hex)');
	}

	protected function execute(InputInterface $input, OutputInterface $output): int {
		$user = (string)$input->getArgument('user');
		$folder = (string)$input->getArgument('folder');
		try {
			$fileId = $this->audit->resolveFile($user, $folder, (string)$input->getArgument('path'));
			$report = $this->audit->audit($user, $folder, $fileId);
		} catch (BridgeError $error) {
			$output->writeln('<error>' . $error->getMessage() . '</error>');
			return Command::INVALID;
		}
		$output->writeln("file $fileId: {$report->entryCount} entries");
		foreach ($report->genesisLinks() as $link) {
			$output->writeln("starts from $link (the genesis: checked only with the folder key)");
		}
		foreach ($report->tips() as $head => $seq) {
			$output->writeln("branch ends at seq $seq, head $head");
		}
		$this->writeLogIndexes($output, $this->audit->logIndexes($user, $folder, $fileId));
		foreach ($report->problems() as $problem) {
			$output->writeln(sprintf(
				'<error>seq %d %s: %s%s</error>',
				$problem['seq'],
				$problem['head'] === '' ? '' : substr($problem['head'], 0, 16),
				$problem['code'],
				$problem['detail'] === '' ? '' : ' (' . $problem['detail'] . ')',
			));
		}
		if (!$report->holds()) {
			$output->writeln('does not hold');
			return Command::FAILURE;
		}
		$output->writeln('holds');
		return Command::SUCCESS;
	}

	/** @param list<int|null> $indexes the entries' places in the folder's log, by seq */
	private function writeLogIndexes(OutputInterface $output, array $indexes): void {
		$logged = array_values(array_filter($indexes, static fn (?int $index): bool => $index !== null));
		if ($logged !== []) {
			$output->writeln('in the folder\'s log at ' . implode(', ', $logged) . ' (by seq)');
		}
		$unlogged = count($indexes) - count($logged);
		if ($unlogged > 0) {
			$output->writeln("$unlogged entries not in the log (stored before it existed)");
		}
	}
}
