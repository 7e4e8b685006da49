/**
 * What Nextcloud's page gives the scripts and happy-dom does not: the web
 * root (empty: a server at the domain's root), the language, the
 * capabilities, the element NcContent teleports its skip links to, and the
 * app name and version the build puts in (vite.config.js).
 */
import { config } from '@vue/test-utils'

window._oc_webroot = ''
window._oc_capabilities = {}
document.documentElement.lang = 'en'
globalThis.appName = 'harpbridge'
globalThis.appVersion = 'test'

const skipActions = document.createElement('div')
skipActions.id = 'skip-actions'
document.body.appendChild(skipActions)

// happy-dom's DOMParser refuses the SVG illustrations of NcContent's skip
// links (they start with a comment); that warning is about the test DOM only.
config.global.config.warnHandler = (message, instance, trace) => {
	if (message !== 'SVG is not valid') {
		console.warn(`[Vue warn]: ${message}${trace}`)
	}
}
