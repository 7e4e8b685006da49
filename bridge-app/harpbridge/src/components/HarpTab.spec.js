/**
 * The sidebar's "Harp" tab on its own: what it shows agrees with what the
 * real bridge answered for the same file (entries and checkpoint recorded
 * from harp-bridge), and it pages through long histories.
 */
import axios from '@nextcloud/axios'
import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { data, fixture, fixtureServer, requestKey, routeOf } from '../testing/fixtures.js'
import HarpTab from './HarpTab.vue'

vi.mock('@nextcloud/axios', () => ({ default: { request: vi.fn() } }))

let wrapper

afterEach(() => {
	wrapper?.unmount()
	vi.clearAllMocks()
})

/** The folder and file ids of a versions fixture's route. */
function idsOf(name) {
	const [, folderId, fileId] = routeOf(name).match(/^GET \/folders\/(\w+)\/files\/(\w+)\/versions$/)
	return { folderId, fileId }
}

async function mountTab(name) {
	wrapper = mount(HarpTab, { props: idsOf(name) })
	await flushPromises()
	return wrapper
}

describe('the Harp tab', () => {
	it('shows the versions the real bridge stored, where its log has them', async () => {
		axios.request.mockImplementation(fixtureServer())
		await mountTab('versions-report.json')
		// The PHP services' answer is about the entries harp-bridge answered for this file…
		const entries = data('entries-report.json')
		const versions = data('versions-report.json').versions
		expect(versions.map((v) => [v.seq, v.prev, v.head, v.log_index])).toEqual(entries.map((e) => [e.seq, e.prev, e.head, e.log_index]))
		// …and its checkpoint is harp-bridge's, with the witness lines its note carries.
		const checkpoint = data('checkpoint-documents.json')
		const witnessLines = checkpoint.note.split('\n\n')[1].split('\n').filter((line) => line.startsWith('— ')).slice(1)
		expect(data('versions-report.json').checkpoint).toMatchObject({ size: checkpoint.size, cosignatures: witnessLines.length })

		// What the tab shows of them: newest first, each logged at its index.
		const shown = wrapper.findAll('.harp-version')
		expect(shown.map((v) => v.find('strong').text())).toEqual(['Version 3', 'Version 2', 'Version 1'])
		expect(shown.map((v) => v.find('.harp-version__proof').text())).toEqual(
			[...entries].reverse().map((e) => `Logged entry ${e.log_index} of the log; its checkpoint of ${checkpoint.size} has 1 witness cosignature`),
		)
		expect(shown.map((v) => v.find('.harp-version__author code').attributes('title'))).toEqual([...versions].reverse().map((v) => v.author))
		expect(wrapper.find('.harp-tab__checkpoint').text()).toContain('witness.example/w1')
	})

	it('names the author devices the folder answer lists, and marks member devices', async () => {
		axios.request.mockImplementation(fixtureServer())
		await mountTab('versions-todo.json')
		const documents = data('folders.json').find((folder) => folder.label === 'Documents')
		const memberDevices = documents.members.flatMap((member) => member.devices)
		const listed = wrapper.findAll('.harp-device')
		expect(listed.map((d) => d.find('code').attributes('title')).sort()).toEqual([...memberDevices].sort())
		expect(listed.map((d) => d.find('strong').text())).toEqual(['Laptop', 'Phone', 'Tablet', 'Desktop'])
		expect(listed.map((d) => d.find('.harp-device__roles').text())).toEqual(['wrote 1 version member device', 'wrote 1 version member device', 'member device', 'member device'])
	})

	it('shows an unknown device by its id', async () => {
		const answer = fixture('versions-report.json')
		const revoked = answer.ocs.data.devices[0]
		Object.assign(revoked, { name: null, user: null, member: false })
		axios.request.mockImplementation(fixtureServer({ [routeOf('versions-report.json')]: answer }))
		await mountTab('versions-report.json')
		const first = wrapper.findAll('.harp-device')[0]
		expect(first.find('strong').text()).toBe('Unknown device')
		expect(first.find('code').attributes('title')).toBe(revoked.device_id)
		expect(first.find('.harp-device__roles').text()).toBe('wrote 1 version not a member device now')
		expect(wrapper.findAll('.harp-version')[0].find('.harp-version__author').text()).toContain('by a device no longer known here')
	})

	it('loads later versions page by page', async () => {
		const whole = data('versions-report.json')
		const page = (versions, next) => ({ ocs: { meta: { status: 'ok', statuscode: 200, message: 'OK' }, data: { ...whole, versions, next_seq: next } } })
		const route = routeOf('versions-report.json')
		axios.request.mockImplementation(fixtureServer({
			[route]: page(whole.versions.slice(0, 2), 3),
			[`${route}?from_seq=3`]: page(whole.versions.slice(2), null),
		}))
		await mountTab('versions-report.json')
		expect(wrapper.findAll('.harp-version')).toHaveLength(2)
		const more = wrapper.findAll('button').find((button) => button.text() === 'Show later versions')
		await more.trigger('click')
		await flushPromises()
		expect(axios.request.mock.calls.map(([config]) => requestKey(config))).toEqual([route, `${route}?from_seq=3`])
		expect(wrapper.findAll('.harp-version').map((v) => v.find('strong').text())).toEqual(['Version 3', 'Version 2', 'Version 1'])
		expect(wrapper.findAll('button').some((button) => button.text() === 'Show later versions')).toBe(false)
		// Devices counted over both pages.
		expect(wrapper.findAll('.harp-device .harp-device__roles').map((roles) => roles.text()).filter((text) => text.startsWith('wrote'))).toEqual(['wrote 2 versions member device', 'wrote 2 versions member device', 'wrote 2 versions member device'])
	})

	it('says when a checkpoint has no cosignature and a file has no versions yet', async () => {
		const answer = fixture('versions-report.json')
		Object.assign(answer.ocs.data, { versions: [], checkpoint: { size: 7, cosignatures: 0, witnesses: [] } })
		axios.request.mockImplementation(fixtureServer({ [routeOf('versions-report.json')]: answer }))
		await mountTab('versions-report.json')
		expect(wrapper.find('.harp-tab__checkpoint').text()).toBe('The folder\'s log has 7 entries; no witness has cosigned its newest checkpoint yet.')
		expect(wrapper.find('.harp-tab__empty').text()).toBe('The bridge has no versions of this file yet.')
	})

	it('shows the bridge\'s refusal', async () => {
		axios.request.mockImplementation(fixtureServer())
		wrapper = mount(HarpTab, { props: { folderId: 'f'.repeat(32), fileId: 'e'.repeat(32) } })
		await flushPromises()
		expect(wrapper.text()).toContain('no fixture for GET /folders/')
	})
})
