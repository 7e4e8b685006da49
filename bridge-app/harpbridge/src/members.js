/** How a folder's members read in lists: "alice (owner, 3 devices), bob (1 device)". */
import { n, t } from './l10n.js'

export function describeMembers(folder) {
	return folder.members.map((member) => {
		const devices = n('harpbridge', '%n device', '%n devices', member.devices.length)
		return member.user === folder.owner
			? t('harpbridge', '{user} (owner, {devices})', { user: member.user, devices })
			: t('harpbridge', '{user} ({devices})', { user: member.user, devices })
	}).join(', ')
}
