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
 * this server (links, seqs, heads, operations, signatures), every branch. The
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
}
