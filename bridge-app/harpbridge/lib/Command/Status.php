<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Command;

use OCA\HarpBridge\Service\StatusService;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/** `occ harpbridge:status`: the versioning default and how much the bridge holds. */
class Status extends Command {
	public function __construct(private readonly StatusService $status) {
		parent::__construct();
	}

	protected function configure(): void {
		$this->setName('harpbridge:status')
			->setDescription('Show the Harp bridge\'s versioning default and what it stores');
	}

	protected function execute(InputInterface $input, OutputInterface $output): int {
		$output->writeln('versioning: ' . $this->status->versioning());
		foreach ($this->status->counts() as $what => $count) {
			$output->writeln(sprintf('%-14s %d', $what . ':', $count));
		}
		return Command::SUCCESS;
	}
}
