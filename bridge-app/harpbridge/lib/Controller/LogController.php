<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\LogService;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** Inclusion and consistency proofs of the folder's transparency log. */
class LogController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly LogService $log,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/log/inclusion')]
	public function inclusion(string $folderId): DataResponse {
		return $this->respond(fn () => $this->log->inclusion($this->userId(), $folderId, $this->query()));
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/log/consistency')]
	public function consistency(string $folderId): DataResponse {
		return $this->respond(fn () => $this->log->consistency($this->userId(), $folderId, $this->query()));
	}
}
