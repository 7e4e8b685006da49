<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\DeviceService;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\BruteForceProtection;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** The caller's devices: registration, lookup, revocation, addresses. */
class DeviceController extends BridgeController {
	/** A registration whose signature fails is a failed proof of holding a key. */
	private const THROTTLE = 'harpbridge_device_signature';

	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly DeviceService $devices,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/devices')]
	public function index(): DataResponse {
		return $this->respond(fn () => $this->devices->listOwn($this->userId()));
	}

	#[NoAdminRequired]
	#[BruteForceProtection(action: self::THROTTLE)]
	#[ApiRoute(verb: 'POST', url: '/api/v1/devices')]
	public function register(): DataResponse {
		return $this->respond(fn () => $this->devices->register($this->userId(), $this->body()), Http::STATUS_CREATED, self::THROTTLE);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/devices/{deviceId}')]
	public function show(string $deviceId): DataResponse {
		return $this->respond(fn () => $this->devices->get($this->userId(), $deviceId));
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'DELETE', url: '/api/v1/devices/{deviceId}')]
	public function revoke(string $deviceId): DataResponse {
		return $this->respond(fn () => $this->devices->revoke($this->userId(), $deviceId), Http::STATUS_NO_CONTENT);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'PUT', url: '/api/v1/devices/{deviceId}/addresses')]
	public function publishAddresses(string $deviceId): DataResponse {
		return $this->respond(
			fn () => $this->devices->publishAddresses($this->userId(), $deviceId, $this->body()),
			Http::STATUS_NO_CONTENT,
		);
	}
}
