/**
 * The one place the UI talks HTTP: the bridge's OCS API under
 * /ocs/v2.php/apps/harpbridge/api/v1 (docs/bridge-api.yaml, plus the
 * Harp page's and admin settings' routes of lib/Controller). Every function
 * answers the `data` of the OCS envelope, or throws an ApiError.
 */
import axios from '@nextcloud/axios'
import { generateOcsUrl } from '@nextcloud/router'

const PREFIX = '/apps/harpbridge/api/v1'
const HEADERS = { 'OCS-APIRequest': 'true', Accept: 'application/json' }

/** A refusal of the bridge (`{error, message}`) or a failed request. */
export class ApiError extends Error {
	constructor(message, status = null, code = null) {
		super(message)
		this.name = 'ApiError'
		this.status = status
		this.code = code
	}
}

/** The URL of an API path such as `/folders/{folderId}` with its parameters filled in. */
export function apiUrl(path, params = {}) {
	return generateOcsUrl(PREFIX + path, params)
}

async function request(method, path, { params = {}, query, body } = {}) {
	try {
		const response = await axios.request({
			method,
			url: apiUrl(path, params),
			params: query,
			data: body,
			headers: HEADERS,
		})
		return response.data?.ocs?.data ?? null
	} catch (error) {
		const status = error.response?.status ?? null
		const data = error.response?.data?.ocs?.data
		throw new ApiError(data?.message ?? error.message ?? 'request failed', status, data?.error ?? null)
	}
}

/** Only the query parameters that are set. */
function query(values) {
	const set = Object.entries(values).filter(([, value]) => value !== null && value !== undefined)
	return set.length === 0 ? undefined : Object.fromEntries(set)
}

/** What the bridge supports and its log key (`log_key`). */
export function fetchCapabilities() {
	return request('GET', '/capabilities')
}

/** The caller's folders, with members and their devices. */
export function fetchFolders() {
	return request('GET', '/folders')
}

/** One page of a folder's files: `{index_mode, files, next}`; `after` is the `next` of the page before. */
export function fetchFiles(folderId, after = null) {
	return request('GET', '/folders/{folderId}/files', { params: { folderId }, query: query({ after }) })
}

/** A file's versions decoded: `{file_id, checkpoint, versions, devices, next_seq}`. */
export function fetchVersions(folderId, fileId, fromSeq = null) {
	return request('GET', '/folders/{folderId}/files/{fileId}/versions', {
		params: { folderId, fileId },
		query: query({ from_seq: fromSeq }),
	})
}

/** The admin settings: the versioning default and where it comes from. */
export function fetchAdminSettings() {
	return request('GET', '/admin/settings')
}

/** Sets the versioning default for new folders; answers the settings afterwards. */
export function saveVersioning(mode) {
	return request('PUT', '/admin/settings', { body: { versioning: mode } })
}

/** The witnesses whose cosignatures the bridge stores, with the newest size each cosigned. */
export function fetchWitnesses() {
	return request('GET', '/admin/witnesses')
}

/** Every registered device, with its last address publication. */
export function fetchAllDevices() {
	return request('GET', '/admin/devices')
}

/** Revokes any user's device (admins): its wrapped folder keys are deleted too. */
export function revokeDevice(deviceId) {
	return request('DELETE', '/admin/devices/{deviceId}', { params: { deviceId } })
}
