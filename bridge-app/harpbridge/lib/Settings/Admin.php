<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Settings;

use OCA\HarpBridge\AppInfo\Application;
use OCA\HarpBridge\Sections\AdminSection;
use OCP\AppFramework\Http\TemplateResponse;
use OCP\Settings\IDelegatedSettings;

/**
 * The Harp administration settings: the versioning default for new folders,
 * the bridge's log key, the witnesses seen and every registered device (with
 * revocation). The form is the built script (templates/admin.php); it reads
 * and changes everything through the admin routes of AdminController, which
 * name this class so the settings can be delegated to a group.
 */
class Admin implements IDelegatedSettings {
	public function getForm(): TemplateResponse {
		return new TemplateResponse(Application::APP_ID, 'admin', [], TemplateResponse::RENDER_AS_BLANK);
	}

	public function getSection(): string {
		return AdminSection::ID;
	}

	public function getPriority(): int {
		return 50;
	}

	/** The section's only form: no name of its own. */
	public function getName(): ?string {
		return null;
	}

	/**
	 * No app config through the provisioning API: the form changes the
	 * versioning default through PUT /api/v1/admin/settings, which checks it.
	 *
	 * @return array<string, list<string>>
	 */
	public function getAuthorizedAppConfig(): array {
		return [];
	}
}
