<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Exception\NotFound;
use OCP\AppFramework\Http\Attribute\ApiRoute;
use OCP\AppFramework\Http\Attribute\NoAdminRequired;
use OCP\AppFramework\Http\DataResponse;

/**
 * Reserved for the proofs issue (transparency-log checkpoints and witness
 * cosignatures). Until then every folder answers 404, visible or not.
 */
class CheckpointController extends BridgeController {
	#[NoAdminRequired]
	#[ApiRoute(verb: 'GET', url: '/api/v1/folders/{folderId}/checkpoint')]
	public function show(string $folderId): DataResponse {
		return $this->respond(static fn () => throw new NotFound('no checkpoint yet'));
	}

	#[NoAdminRequired]
	#[ApiRoute(verb: 'POST', url: '/api/v1/folders/{folderId}/checkpoint/cosignatures')]
	public function addCosignatures(string $folderId): DataResponse {
		return $this->respond(static fn () => throw new NotFound('no checkpoint yet'));
	}
}
