<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\IndexService;
use OCA\HarpBridge\Service\VersionService;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** What the Harp page reads of a folder: its files page by page, and a file's versions decoded. */
class FileController extends BridgeController {
	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly IndexService $index,
		private readonly VersionService $versions,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/files')]
	public function index(string $folderId): DataResponse {
		return $this->respond(fn () => $this->index->listFiles($this->userId(), $folderId, $this->query()));
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/files/{fileId}/versions')]
	public function versions(string $folderId, string $fileId): DataResponse {
		return $this->respond(fn () => $this->versions->versions($this->userId(), $folderId, $fileId, $this->query()));
	}
}
