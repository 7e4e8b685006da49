<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\WrappedKeyService;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\BruteForceProtection;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** Folder keys wrapped for devices. */
class KeyController extends BridgeController {
	/** A wrapped key whose voucher signature fails counts as a failed proof. */
	private const THROTTLE = 'harpbridge_wrap_signature';

	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly WrappedKeyService $keys,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/keys/{deviceId}')]
	public function show(string $folderId, string $deviceId): DataResponse {
		return $this->respond(fn () => $this->keys->get($this->userId(), $folderId, $deviceId));
	}

	#[NoAdminRequired]
	#[BruteForceProtection(action: self::THROTTLE)]
	#[ApiRoute(verb: 'PUT', url: '/api/v1/folders/{folderId}/keys/{deviceId}')]
	public function store(string $folderId, string $deviceId): DataResponse {
		return $this->respond(
			fn () => $this->keys->put($this->userId(), $folderId, $deviceId, $this->body()),
			Http::STATUS_NO_CONTENT,
			self::THROTTLE,
		);
	}
}
