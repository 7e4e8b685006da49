/** How the UI writes times, sizes and ids. */
import { n, t } from './l10n.js'

const pad = (number) => String(number).padStart(2, '0')

/** Unix milliseconds as local "YYYY-MM-DD HH:MM", or "–" for none. */
export function formatTime(ms) {
	if (ms === null || ms === undefined) {
		return '–'
	}
	const date = new Date(ms)
	return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`
}

/** Unix seconds, as formatTime. */
export function formatSeconds(seconds) {
	return seconds === null || seconds === undefined ? '–' : formatTime(seconds * 1000)
}

/** Bytes in B, KB, MB, GB (of 1024), one decimal above bytes. */
export function formatSize(bytes) {
	if (bytes === null || bytes === undefined) {
		return '–'
	}
	const units = ['KB', 'MB', 'GB', 'TB']
	if (bytes < 1024) {
		return n('harpbridge', '%n byte', '%n bytes', bytes)
	}
	let value = bytes
	let unit = -1
	while (value >= 1024 && unit < units.length - 1) {
		value /= 1024
		unit++
	}
	return `${value.toFixed(1)} ${units[unit]}`
}

/** The first characters of a long id, for lists (the whole id goes in the title). */
export function shortId(id, length = 8) {
	return id.length > length ? `${id.slice(0, length)}…` : id
}

/** A versioning mode as people read it. */
export function versioningName(mode) {
	return {
		crdt: t('harpbridge', 'Concurrent (CRDT)'),
		server_authoritative: t('harpbridge', 'Server-authoritative'),
	}[mode] ?? mode
}
