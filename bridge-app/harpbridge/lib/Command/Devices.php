<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Command;

use OCA\HarpBridge\Model\Device;
use OCA\HarpBridge\Service\Clock;
use OCA\HarpBridge\Store\DeviceRepository;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Helper\Table;
use Symfony\Component\Console\Input\InputArgument;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/** `occ harpbridge:devices [USER]`: registered devices, of one user or all. */
class Devices extends Command {
	public function __construct(
		private readonly DeviceRepository $devices,
		private readonly Clock $clock,
	) {
		parent::__construct();
	}

	protected function configure(): void {
		$this->setName('harpbridge:devices')
			->setDescription('List the Harp devices registered with this server')
			->addArgument('user', InputArgument::OPTIONAL, 'only this user\'s devices');
	}

	protected function execute(InputInterface $input, OutputInterface $output): int {
		$user = $input->getArgument('user');
		$devices = is_string($user) && $user !== '' ? $this->devices->listByUser($user) : $this->devices->listAll();
		$now = $this->clock->now();
		$table = new Table($output);
		$table->setHeaders(['user', 'device id', 'name', 'addresses']);
		foreach ($devices as $device) {
			$table->addRow([$device->userId, $device->deviceId, $device->name, $this->describeAddresses($device, $now)]);
		}
		$table->render();
		$output->writeln(count($devices) . ' device(s)');
		return Command::SUCCESS;
	}

	private function describeAddresses(Device $device, int $now): string {
		$live = $device->toApi($now);
		if ($live['addresses'] === []) {
			return 'none';
		}
		return sprintf('%d, for %d s', count($live['addresses']), (int)$live['addresses_expire'] - $now);
	}
}
