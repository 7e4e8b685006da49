/**
 * The Harp page against recorded answers (tests/fixtures/ui): alice's
 * folders, their files, and a file's sidebar with its "Harp" tab.
 */
import axios from '@nextcloud/axios'
import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { data, fixtureServer, requestKey } from '../testing/fixtures.js'
import HarpPage from './HarpPage.vue'

vi.mock('@nextcloud/axios', () => ({ default: { request: vi.fn() } }))

const folders = data('folders.json')
const documents = folders.find((folder) => folder.label === 'Documents')
const privateFolder = folders.find((folder) => folder.label === 'Private')
const documentFiles = data('files-documents.json').files
const fileNamed = (name) => documentFiles.find((file) => file.name === name)

let wrapper

async function mountPage() {
	wrapper = mount(HarpPage, { attachTo: document.body })
	await flushPromises()
	return wrapper
}

async function openFolder(label) {
	const item = wrapper.findAll('.harp-folder-item').find((found) => found.text() === label)
	await item.find('a').trigger('click')
	await flushPromises()
}

async function openFile(text) {
	const button = wrapper.findAll('.harp-files__file .harp-link').find((found) => found.text() === text)
	await button.trigger('click')
	await flushPromises()
}

beforeEach(() => {
	axios.request.mockImplementation(fixtureServer())
})

afterEach(() => {
	wrapper?.unmount()
	vi.clearAllMocks()
})

describe('the Harp page', () => {
	it('lists the user\'s folders with their ids, versioning and members', async () => {
		await mountPage()
		expect(wrapper.findAll('.harp-folder-item').map((item) => item.text())).toEqual(['Documents', 'Private'])
		const rows = wrapper.findAll('.harp-overview__folder').map((row) => row.findAll('td').map((cell) => cell.text()))
		expect(rows).toEqual([
			['Documents', documents.folder_id, 'Concurrent (CRDT)', 'alice (owner, 3 devices), bob (1 device)'],
			['Private', privateFolder.folder_id, 'Server-authoritative', 'alice (owner, 3 devices)'],
		])
		expect(axios.request.mock.calls.map(([config]) => requestKey(config))).toEqual(['GET /folders'])
		expect(axios.request.mock.calls[0][0].headers).toMatchObject({ 'OCS-APIRequest': 'true' })
	})

	it('shows a plaintext folder\'s files by name', async () => {
		await mountPage()
		await openFolder('Documents')
		const header = wrapper.find('.harp-folder__header')
		expect(header.find('h2').text()).toBe('Documents')
		expect(header.text()).toContain(documents.folder_id)
		expect(header.text()).toContain('Names readable by the server')
		const rows = wrapper.findAll('.harp-files__file').map((row) => row.findAll('td').map((cell) => cell.text()))
		expect(rows).toEqual([
			['drafts/old-plan.txt deleted', '–', '2026-11-16 09:20'],
			['legacy/notes-2025.txt', '7.6 KB', '2026-11-10 16:39'],
			['notes/todo.md', '498 bytes', '2026-11-21 10:00'],
			['report.pdf', '49.2 KB', '2026-11-20 18:44'],
		])
		expect(wrapper.find('.harp-files__encrypted').exists()).toBe(false)
		expect(wrapper.find('.harp-files__more').exists()).toBe(false)
		expect(requestKey(axios.request.mock.calls[1][0])).toBe(`GET /folders/${documents.folder_id}/files`)
	})

	it('shows an encrypted folder\'s files by id and says names are end-to-end encrypted', async () => {
		await mountPage()
		await openFolder('Private')
		expect(wrapper.find('.harp-files__encrypted').text()).toContain('end-to-end encrypted')
		const shown = wrapper.findAll('.harp-files__file .harp-link').map((button) => button.text())
		expect(shown).toEqual(data('files-private.json').files.map((file) => file.file_id))
		expect(wrapper.find('.harp-folder__header').text()).toContain('End-to-end encrypted')
	})

	it('opens a file\'s sidebar on its "Harp" tab with its versions, proofs and devices', async () => {
		await mountPage()
		await openFolder('Documents')
		await openFile('report.pdf')
		const sidebar = wrapper.find('.app-sidebar')
		expect(sidebar.exists()).toBe(true)
		expect(sidebar.find('.app-sidebar-header__mainname').text()).toBe('report.pdf')
		expect(sidebar.text()).toContain('In Documents')
		const tab = sidebar.find('#tab-button-harp')
		expect(tab.exists()).toBe(true)
		expect(tab.text()).toBe('Harp')
		expect(tab.attributes('aria-selected')).toBe('true')

		const versions = sidebar.findAll('.harp-version')
		expect(versions.map((version) => version.find('.harp-version__title').text())).toEqual(['Version 3 Modified', 'Version 2 Modified', 'Version 1 Created'])
		expect(versions.map((version) => version.find('.harp-version__author').text().split(' ').slice(0, 3).join(' '))).toEqual(['by Phone (alice)', 'by Desktop (bob)', 'by Laptop (alice)'])
		expect(versions.map((version) => version.find('.harp-version__details').text())).toEqual(['2026-11-20 18:45 · 49.2 KB', '2026-11-17 14:03 · 48.9 KB', '2026-11-16 09:12 · 47.1 KB'])
		expect(versions.map((version) => version.find('.harp-version__proof').text())).toEqual([
			'Logged entry 5 of the log; its checkpoint of 7 has 1 witness cosignature',
			'Logged entry 2 of the log; its checkpoint of 7 has 1 witness cosignature',
			'Logged entry 0 of the log; its checkpoint of 7 has 1 witness cosignature',
		])
		expect(sidebar.find('.harp-tab__checkpoint').text()).toBe('The folder\'s log has 7 entries; its newest checkpoint is cosigned by witness.example/w1.')

		const devices = sidebar.findAll('.harp-device').map((device) => [device.find('.harp-device__name').text().replace(/\s+\S+…$/, ''), device.find('.harp-device__roles').text()])
		expect(devices).toEqual([
			['Phone (alice)', 'wrote 1 version member device'],
			['Desktop (bob)', 'wrote 1 version member device'],
			['Laptop (alice)', 'wrote 1 version member device'],
			['Tablet (alice)', 'member device'],
		])
		const fileId = fileNamed('report.pdf').file_id
		expect(requestKey(axios.request.mock.calls.at(-1)[0])).toBe(`GET /folders/${documents.folder_id}/files/${fileId}/versions`)
	})

	it('says a version is not logged yet when it has no place in the log', async () => {
		await mountPage()
		await openFolder('Documents')
		await openFile('legacy/notes-2025.txt')
		const versions = wrapper.findAll('.harp-version')
		expect(versions).toHaveLength(1)
		expect(versions[0].find('.harp-version__proof').text()).toBe('Not logged yet')
		expect(versions[0].find('.harp-version__author').text()).toContain('by Tablet (alice)')
	})

	it('goes back to the overview of all folders', async () => {
		await mountPage()
		await openFolder('Documents')
		expect(wrapper.find('.harp-overview').exists()).toBe(false)
		await wrapper.find('.harp-overview-item a').trigger('click')
		await flushPromises()
		expect(wrapper.findAll('.harp-overview__folder')).toHaveLength(2)
		// From the overview's table too.
		await wrapper.findAll('.harp-overview__folder .harp-link')[1].trigger('click')
		await flushPromises()
		expect(wrapper.find('.harp-folder__header h2').text()).toBe('Private')
	})

	it('shows a deletion without a size, and closes the sidebar', async () => {
		await mountPage()
		await openFolder('Documents')
		await openFile('drafts/old-plan.txt')
		const versions = wrapper.findAll('.harp-version')
		expect(versions.map((version) => version.find('.harp-version__title').text())).toEqual(['Version 2 Deleted', 'Version 1 Created'])
		expect(versions[0].find('.harp-version__details').text()).toBe('2026-11-19 11:11')
		await wrapper.find('.app-sidebar__close').trigger('click')
		await flushPromises()
		expect(wrapper.find('.app-sidebar').exists()).toBe(false)
	})

	it('names an encrypted folder\'s file by its id in the sidebar', async () => {
		await mountPage()
		await openFolder('Private')
		const fileId = data('versions-private.json').file_id
		await openFile(fileId)
		const sidebar = wrapper.find('.app-sidebar')
		expect(sidebar.find('.app-sidebar-header__mainname').text()).toBe(fileId)
		expect(sidebar.text()).toContain('In Private (name end-to-end encrypted)')
		expect(sidebar.findAll('.harp-version').map((version) => version.find('.harp-version__title').text())).toEqual(['Version 2 Modified', 'Version 1 Created'])
	})

	it('says so when the folders cannot be loaded', async () => {
		axios.request.mockImplementation(fixtureServer({ 'GET /folders': () => { throw Object.assign(new Error('Network Error'), { response: undefined }) } }))
		await mountPage()
		expect(wrapper.find('.harp-page__error').text()).toContain('Could not load your Harp folders')
		expect(wrapper.find('.harp-page__error').text()).toContain('Network Error')
	})
})
