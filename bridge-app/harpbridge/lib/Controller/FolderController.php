<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Service\FolderService;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\BruteForceProtection;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;
use OCP\IRequest;
use OCP\IUserSession;

/** Folders and their members. */
class FolderController extends BridgeController {
	/** A folder's wrapped key comes with a signature the caller's device must have made. */
	private const THROTTLE = 'harpbridge_wrap_signature';

	public function __construct(
		string $appName,
		IRequest $request,
		IUserSession $userSession,
		private readonly FolderService $folders,
	) {
		parent::__construct($appName, $request, $userSession);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders')]
	public function index(): DataResponse {
		return $this->respond(fn () => $this->folders->list($this->userId()));
	}

	#[NoAdminRequired]
	#[BruteForceProtection(action: self::THROTTLE)]
	#[ApiRoute(verb: 'POST', url: '/api/v1/folders')]
	public function create(): DataResponse {
		return $this->respond(fn () => $this->folders->create($this->userId(), $this->body()), Http::STATUS_CREATED, self::THROTTLE);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}')]
	public function show(string $folderId): DataResponse {
		return $this->respond(fn () => $this->folders->get($this->userId(), $folderId));
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'POST', url: '/api/v1/folders/{folderId}/members')]
	public function addMember(string $folderId): DataResponse {
		return $this->respond(fn () => $this->folders->addMember($this->userId(), $folderId, $this->body()), Http::STATUS_CREATED);
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'DELETE', url: '/api/v1/folders/{folderId}/members/{user}')]
	public function removeMember(string $folderId, string $user): DataResponse {
		return $this->respond(fn () => $this->folders->removeMember($this->userId(), $folderId, $user), Http::STATUS_NO_CONTENT);
	}
}
