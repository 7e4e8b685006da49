<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\LogService;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** The folder log's signed checkpoint and the witnesses' cosignatures of it. */
class CheckpointController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly LogService $log,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/checkpoint')]
	public function show(string $folderId): DataResponse {
		return $this->respond(fn () => $this->log->checkpoint($this->userId(), $folderId));
	}

	/** 204 stored, 422 a malformed line, a size the log never had, or a 17th line. */
	#[NoAdminRequired]
	#[ApiRoute(verb: 'POST', url: '/api/v1/folders/{folderId}/checkpoint/cosignatures')]
	public function addCosignature(string $folderId): DataResponse {
		return $this->respond(fn () => $this->log->addCosignature($this->userId(), $folderId, $this->body()), Http::STATUS_NO_CONTENT);
	}
}
