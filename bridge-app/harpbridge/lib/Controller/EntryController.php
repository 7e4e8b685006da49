<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\EntryService;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** Files' hash chains. */
class EntryController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly EntryService $entries,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/files/{fileId}/entries')]
	public function read(string $folderId, string $fileId): DataResponse {
		return $this->respond(fn () => $this->entries->read($this->userId(), $folderId, $fileId, $this->query()));
	}

	/** 201 appended, 200 a replay, 409 the head moved, 422 a chain check failed. */
	#[NoAdminRequired]
	#[ApiRoute(verb: 'POST', url: '/api/v1/folders/{folderId}/files/{fileId}/entries')]
	public function append(string $folderId, string $fileId): DataResponse {
		return $this->respond(fn () => $this->entries->append($this->userId(), $folderId, $fileId, $this->body()));
	}
}
