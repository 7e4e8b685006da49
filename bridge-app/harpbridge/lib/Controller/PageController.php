<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\AppInfo\Application;
use OCP\AppFramework\Controller;
use OCP\AppFramework\Http\Attribute\FrontpageRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\Attribute\NoCSRFRequired;
use OCP\AppFramework\Http\TemplateResponse;

/**
 * The Harp page (the app's navigation entry): the caller's Harp folders, their
 * files and each file's versions. Harp files are not in the Files app (their
 * bytes never reach this server), so the page reads the bridge's own API; the
 * script is built from src/ by `npm ci && npm run build`.
 */
class PageController extends Controller {
	#[NoAdminRequired]
	#[NoCSRFRequired]
	#[FrontpageRoute(verb: 'GET', url: '/')]
	public function index(): TemplateResponse {
		return new TemplateResponse(Application::APP_ID, 'main');
	}
}
