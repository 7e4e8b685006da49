<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Sections;

use OCA\HarpBridge\AppInfo\Application;
use OCP\IL10N;
use OCP\IURLGenerator;
use OCP\Settings\IIconSection;

/** "Harp" in the administration settings' list of sections. */
class AdminSection implements IIconSection {
	public const ID = 'harpbridge';

	public function __construct(
		private readonly IL10N $l,
		private readonly IURLGenerator $urls,
	) {
	}

	public function getID(): string {
		return self::ID;
	}

	public function getName(): string {
		return $this->l->t('Harp');
	}

	public function getPriority(): int {
		return 75;
	}

	public function getIcon(): string {
		return $this->urls->imagePath(Application::APP_ID, 'app-dark.svg');
	}
}
