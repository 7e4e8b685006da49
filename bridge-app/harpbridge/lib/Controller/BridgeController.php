<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Controller;

use OCA\HarpBridge\Exception\BridgeError;
use OCA\HarpBridge\Exception\Invalid;
use OCA\HarpBridge\Exception\NotFound;
use OCA\HarpBridge\Exception\TooLarge;
use OCA\HarpBridge\Input\JsonObject;
use OCA\HarpBridge\Input\QueryString;
use OCA\HarpBridge\Model\Outcome;
use OCA\HarpBridge\Service\Limits;
use OCP\AppFramework\Http;
use OCP\AppFramework\Http\DataResponse;
use OCP\AppFramework\OCSController;
use OCP\IRequest;
use OCP\IUserSession;

/**
 * What every bridge endpoint does around its service call: who the caller
 * is, the JSON body (at most 16 MiB) and the query, and turning the service's
 * result or refusal into an OCS DataResponse. The rules are in the services.
 */
abstract class BridgeController extends OCSController {
	public function __construct(
		string $appName,
		IRequest $request,
		private readonly IUserSession $userSession,
	) {
		parent::__construct($appName, $request);
	}

	/**
	 * Calls the service and answers with $status, the Outcome's own status,
	 * or the refusal's. A bad signature on a $throttleAction route counts for
	 * Nextcloud's brute-force protection.
	 *
	 * @param callable(): mixed $action
	 */
	protected function respond(callable $action, int $status = Http::STATUS_OK, ?string $throttleAction = null): DataResponse {
		try {
			$result = $action();
		} catch (BridgeError $error) {
			$response = new DataResponse($error->toApi(), $error->httpStatus());
			if ($throttleAction !== null && $error instanceof Invalid && $error->isBadSignature()) {
				$response->throttle(['action' => $throttleAction]);
			}
			return $response;
		}
		if ($result instanceof Outcome) {
			return new DataResponse($result->data, $result->status);
		}
		return new DataResponse($status === Http::STATUS_NO_CONTENT ? [] : $result, $status);
	}

	/** The caller's user id (the routes need a logged-in user). */
	protected function userId(): string {
		$user = $this->userSession->getUser();
		if ($user === null) {
			throw new NotFound('no user');
		}
		return $user->getUID();
	}

	/**
	 * The request body as one JSON object.
	 *
	 * @throws TooLarge over 16 MiB, by its Content-Length or its bytes
	 * @throws Invalid
	 */
	protected function body(): JsonObject {
		$declared = $this->request->getHeader('Content-Length');
		if ($declared !== '' && ctype_digit($declared) && strlen($declared) < 19 && (int)$declared > Limits::MAX_BODY_BYTES) {
			throw new TooLarge('the body is over ' . Limits::MAX_BODY_BYTES . ' bytes');
		}
		$raw = file_get_contents('php://input', false, null, 0, Limits::MAX_BODY_BYTES + 1);
		return JsonObject::parse($raw === false ? '' : $raw);
	}

	/** The query parameters, repeated ones kept. */
	protected function query(): QueryString {
		$query = parse_url($this->request->getRequestUri(), PHP_URL_QUERY);
		return QueryString::parse(is_string($query) ? $query : '');
	}
}
