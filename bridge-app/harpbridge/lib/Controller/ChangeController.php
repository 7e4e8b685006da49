<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\ChangeService;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** The folder document's sealed changes. */
class ChangeController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly ChangeService $changes,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'POST', url: '/api/v1/folders/{folderId}/changes')]
	public function append(string $folderId): DataResponse {
		return $this->respond(fn () => $this->changes->append($this->userId(), $folderId, $this->body()));
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/changes')]
	public function read(string $folderId): DataResponse {
		return $this->respond(fn () => $this->changes->read($this->userId(), $folderId, $this->query()));
	}
}
