/**
 * The recorded API answers of tests/fixtures/ui (see its README), and an
 * axios.request stand-in that answers each request with the fixture the
 * manifest names for its method and path.
 */
import { vi } from 'vitest'
import manifest from '../../tests/fixtures/ui/manifest.json'

const files = import.meta.glob('../../tests/fixtures/ui/*.json', { eager: true, import: 'default' })

const PREFIX = '/ocs/v2.php/apps/harpbridge/api/v1'

/** A fixture's whole answer (the OCS envelope) by its file name. */
export function fixture(name) {
	const answer = files[`../../tests/fixtures/ui/${name}`]
	if (answer === undefined) {
		throw new Error(`no fixture ${name}`)
	}
	return structuredClone(answer)
}

/** A fixture's `data`. */
export function data(name) {
	return fixture(name).ocs.data
}

/** The route a fixture answers ("GET /folders/…"), by its file name. */
export function routeOf(name) {
	const route = Object.keys(manifest).find((key) => manifest[key].file === name)
	if (route === undefined) {
		throw new Error(`the manifest has no route for ${name}`)
	}
	return route
}

/** "METHOD /path?query" of an axios request config. */
export function requestKey({ method, url, params }) {
	const path = url.slice(url.indexOf(PREFIX) + PREFIX.length)
	const query = params ? `?${new URLSearchParams(params)}` : ''
	return `${method.toUpperCase()} ${path}${query}`
}

/**
 * An axios.request mock. `answers` ("METHOD /path" => envelope, or a function
 * of the request config) come before the manifest; anything else is a 404.
 */
export function fixtureServer(answers = {}) {
	return vi.fn(async (config) => {
		const key = requestKey(config)
		if (key in answers) {
			const answer = answers[key]
			return { status: 200, data: typeof answer === 'function' ? answer(config) : answer }
		}
		if (key in manifest) {
			return { status: 200, data: fixture(manifest[key].file) }
		}
		const error = new Error(`Request failed with status code 404 (${key})`)
		error.response = { status: 404, data: { ocs: { meta: { status: 'failure', statuscode: 404 }, data: { error: 'not_found', message: `no fixture for ${key}` } } } }
		throw error
	})
}
