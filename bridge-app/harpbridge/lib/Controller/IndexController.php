<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\IndexService;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** The folder's search index. */
class IndexController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly IndexService $index,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'PUT', url: '/api/v1/folders/{folderId}/index')]
	public function store(string $folderId): DataResponse {
		return $this->respond(fn () => $this->index->put($this->userId(), $folderId, $this->body()), Http::STATUS_NO_CONTENT);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/index')]
	public function search(string $folderId): DataResponse {
		return $this->respond(fn () => $this->index->search($this->userId(), $folderId, $this->query()));
	}
}
