<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\DeviceService;
use OCA\HarpBridge\Service\LogService;
use OCA\HarpBridge\Service\SettingsService;
use OCA\HarpBridge\Settings\Admin;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\AuthorizedAdminSetting;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/**
 * What the admin settings read and change: the versioning default, the
 * witnesses seen, every registered device and its revocation. Without
 * #[NoAdminRequired] these are for admins only; #[AuthorizedAdminSetting]
 * also lets the admins the Harp settings are delegated to use them.
 */
class AdminController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly SettingsService $settings,
		private readonly LogService $log,
		private readonly DeviceService $devices,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[AuthorizedAdminSetting(settings: Admin::class)]
	#[ApiRoute(verb: 'GET', url: '/api/v1/admin/settings')]
	public function settings(): DataResponse {
		return $this->respond(fn () => $this->settings->get());
	}

	/** 200 with the settings, 422 not a mode, or config.php sets it. */
	#[AuthorizedAdminSetting(settings: Admin::class)]
	#[ApiRoute(verb: 'PUT', url: '/api/v1/admin/settings')]
	public function updateSettings(): DataResponse {
		return $this->respond(fn () => $this->settings->update($this->body()));
	}

	#[AuthorizedAdminSetting(settings: Admin::class)]
	#[ApiRoute(verb: 'GET', url: '/api/v1/admin/witnesses')]
	public function witnesses(): DataResponse {
		return $this->respond(fn () => $this->log->witnesses());
	}

	#[AuthorizedAdminSetting(settings: Admin::class)]
	#[ApiRoute(verb: 'GET', url: '/api/v1/admin/devices')]
	public function devices(): DataResponse {
		return $this->respond(fn () => $this->devices->listAllForAdmin());
	}

	/** 204 revoked (its wrapped folder keys deleted), 404 no such device. */
	#[AuthorizedAdminSetting(settings: Admin::class)]
	#[ApiRoute(verb: 'DELETE', url: '/api/v1/admin/devices/{deviceId}')]
	public function revokeDevice(string $deviceId): DataResponse {
		return $this->respond(fn () => $this->devices->revokeAsAdmin($deviceId), Http::STATUS_NO_CONTENT);
	}
}
