/**
 * The Harp administration settings against recorded answers: the versioning
 * control and its state, the log key, the witnesses and the devices, and that
 * revoking calls the admin route for that device.
 */
import axios from '@nextcloud/axios'
import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { data, fixture, fixtureServer, requestKey } from '../testing/fixtures.js'
import AdminSettings from './AdminSettings.vue'

vi.mock('@nextcloud/axios', () => ({ default: { request: vi.fn() } }))

let wrapper

afterEach(() => {
	wrapper?.unmount()
	vi.clearAllMocks()
})

async function mountSettings(answers = {}) {
	axios.request.mockImplementation(fixtureServer(answers))
	wrapper = mount(AdminSettings, { attachTo: document.body })
	await flushPromises()
	return wrapper
}

/** The radio inputs of the versioning control, by mode. */
function radios() {
	return Object.fromEntries(wrapper.findAll('input[type="radio"][name="harpbridge-versioning"]').map((input) => [input.element.value, input]))
}

const calls = () => axios.request.mock.calls.map(([config]) => requestKey(config))

describe('the versioning default', () => {
	it('shows the mode and where it comes from, and can be changed', async () => {
		const changed = fixture('admin-settings.json')
		Object.assign(changed.ocs.data.versioning, { mode: 'server_authoritative', source: 'app config', origin: 'app config versioning', app_value: 'server_authoritative' })
		await mountSettings({ 'PUT /admin/settings': changed })
		const { crdt, server_authoritative: serverAuthoritative } = radios()
		expect(crdt.element.checked).toBe(true)
		expect(serverAuthoritative.element.checked).toBe(false)
		expect(crdt.element.disabled).toBe(false)
		expect(serverAuthoritative.element.disabled).toBe(false)
		expect(wrapper.find('.harp-versioning__origin').text()).toBe('Set by: built-in default')
		expect(wrapper.find('.harp-versioning__locked').exists()).toBe(false)

		await serverAuthoritative.setValue(true)
		await flushPromises()
		const put = axios.request.mock.calls.find(([config]) => config.method === 'PUT')[0]
		expect(requestKey(put)).toBe('PUT /admin/settings')
		expect(put.data).toEqual({ versioning: 'server_authoritative' })
		expect(radios().server_authoritative.element.checked).toBe(true)
		expect(wrapper.find('.harp-versioning__origin').text()).toBe('Set by: app config versioning')
	})

	it('is disabled, and says why, when config.php sets it', async () => {
		await mountSettings({ 'GET /admin/settings': fixture('admin-settings-config-php.json') })
		const { crdt, server_authoritative: serverAuthoritative } = radios()
		expect(serverAuthoritative.element.checked).toBe(true)
		expect(crdt.element.disabled).toBe(true)
		expect(serverAuthoritative.element.disabled).toBe(true)
		expect(wrapper.find('.harp-versioning__locked').text()).toBe('config.php sets \'harp.versioning\' => \'server_authoritative\', which wins over this setting. Change it there.')
		expect(wrapper.find('.harp-versioning__origin').text()).toBe('Set by: config.php \'harp.versioning\'')
	})

	it('shows a refusal of the change', async () => {
		const refusal = () => {
			throw Object.assign(new Error('Request failed with status code 422'), {
				response: { status: 422, data: { ocs: { meta: { status: 'failure', statuscode: 422 }, data: { error: 'invalid', message: 'versioning: config.php \'harp.versioning\' sets the default; change it there' } } } },
			})
		}
		await mountSettings({ 'PUT /admin/settings': refusal })
		await radios().server_authoritative.setValue(true)
		await flushPromises()
		expect(wrapper.find('.harp-versioning__mode').element.closest('.settings-section').textContent).toContain('versioning: config.php \'harp.versioning\' sets the default')
		expect(radios().crdt.element.checked).toBe(true)
	})
})

describe('the log key', () => {
	it('is the one the capabilities name', async () => {
		await mountSettings()
		expect(wrapper.find('.harp-log-key').text()).toBe(data('capabilities.json').log_key)
		expect(wrapper.find('.harp-log-key').text()).toMatch(/^cloud\.example\.org\+[0-9a-f]{8}\+/)
		expect(calls()).toContain('GET /capabilities')
	})
})

describe('the witnesses', () => {
	it('are listed with their key ids and the newest size each cosigned', async () => {
		await mountSettings()
		const documents = data('folders.json').find((folder) => folder.label === 'Documents').folder_id
		const rows = wrapper.findAll('.harp-witness').map((row) => row.findAll('td').map((cell) => cell.text()))
		const [w1, w2] = data('admin-witnesses.json')
		expect(rows).toEqual([
			['witness.example/w1', w1.key_id, '7', `${documents.slice(0, 8)}… 7 of 7`],
			['witness.example/w2', w2.key_id, '5', `${documents.slice(0, 8)}… 5 of 7 behind`],
		])
		expect(w1.key_id).toMatch(/^[0-9a-f]{8}$/)
	})

	it('says when there are none', async () => {
		await mountSettings({ 'GET /admin/witnesses': { ocs: { meta: { status: 'ok', statuscode: 200, message: 'OK' }, data: [] } } })
		expect(wrapper.find('.harp-witnesses__none').text()).toBe('No witness has cosigned a checkpoint yet.')
	})
})

describe('the devices', () => {
	const devices = data('admin-devices.json')

	it('are listed with user, name, id and their last address publication', async () => {
		await mountSettings()
		const rows = wrapper.findAll('.harp-admin-device').map((row) => row.findAll('td').slice(0, 4).map((cell) => cell.text()))
		const laptop = devices.find((device) => device.name === 'Laptop')
		const published = new Date(laptop.addresses_published * 1000).toISOString().slice(0, 16).replace('T', ' ')
		const until = new Date(laptop.addresses_expire * 1000).toISOString().slice(0, 16).replace('T', ' ')
		expect(rows.map((row) => row.slice(0, 2))).toEqual([['alice', 'Laptop'], ['alice', 'Phone'], ['alice', 'Tablet'], ['bob', 'Desktop']])
		const idOf = (name) => devices.find((device) => device.name === name).device_id
		expect(rows.map((row) => row[2])).toEqual(['Laptop', 'Phone', 'Tablet', 'Desktop'].map((name) => `${idOf(name).slice(0, 12)}…`))
		expect(rows[0][3]).toBe(`${published} (1 address, until ${until})`)
		expect(rows[1][3]).toBe('never')
		expect(rows[2][3]).toBe('never')
	})

	it('are not said to have never published when their live addresses came before 1.2.0 recorded the time', async () => {
		// What an upgraded server lists for a device whose daemon published under 1.1.0 and is still within its ttl.
		const answer = fixture('admin-devices.json')
		const laptop = answer.ocs.data.find((device) => device.name === 'Laptop')
		const phone = answer.ocs.data.find((device) => device.name === 'Phone')
		Object.assign(phone, { addresses: ['/ip4/192.0.2.20/udp/4001/quic-v1'], addresses_expire: laptop.addresses_expire, addresses_published: null })
		await mountSettings({ 'GET /admin/devices': answer })
		const until = new Date(laptop.addresses_expire * 1000).toISOString().slice(0, 16).replace('T', ' ')
		const cell = wrapper.find(`[data-device-id="${phone.device_id}"]`).findAll('td')[3].text()
		expect(cell).toBe(`before the update to 1.2.0 (1 address, until ${until})`)
	})

	it('are revoked through the admin route, after a confirmation', async () => {
		const phone = devices.find((device) => device.name === 'Phone')
		await mountSettings({ [`DELETE /admin/devices/${phone.device_id}`]: { ocs: { meta: { status: 'ok', statuscode: 204, message: 'OK' }, data: [] } } })
		const row = () => wrapper.find(`[data-device-id="${phone.device_id}"]`)
		await row().find('.harp-admin-device__revoke').trigger('click')
		expect(row().text()).toContain('Revoke Phone of alice?')
		expect(calls().some((call) => call.startsWith('DELETE'))).toBe(false)

		await row().find('.harp-admin-device__confirm').trigger('click')
		await flushPromises()
		const deletes = axios.request.mock.calls.filter(([config]) => config.method === 'DELETE').map(([config]) => config)
		expect(deletes).toHaveLength(1)
		expect(new URL(deletes[0].url).pathname).toBe(`/ocs/v2.php/apps/harpbridge/api/v1/admin/devices/${phone.device_id}`)
		expect(deletes[0].headers).toMatchObject({ 'OCS-APIRequest': 'true' })
		expect(row().exists()).toBe(false)
		expect(wrapper.findAll('.harp-admin-device')).toHaveLength(3)
	})

	it('stay listed when the revocation fails', async () => {
		const phone = devices.find((device) => device.name === 'Phone')
		await mountSettings()
		await wrapper.find(`[data-device-id="${phone.device_id}"] .harp-admin-device__revoke`).trigger('click')
		await wrapper.find(`[data-device-id="${phone.device_id}"] .harp-admin-device__confirm`).trigger('click')
		await flushPromises()
		expect(wrapper.findAll('.harp-admin-device')).toHaveLength(4)
		expect(wrapper.find('.harp-admin-devices').element.closest('.settings-section').textContent).toContain('Could not revoke Phone: no fixture for DELETE')
	})
})
