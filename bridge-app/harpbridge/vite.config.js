/**
 * The build of the Harp page and the admin settings: `npm run build` writes
 * js/harpbridge-main.mjs and js/harpbridge-admin.mjs (their chunks beside
 * them) and css/harpbridge-main.css and css/harpbridge-admin.css, which
 * templates/main.php and templates/admin.php load with \OCP\Util::addScript
 * and addStyle. The app id and version come from appinfo/info.xml.
 */
import { createAppConfig } from '@nextcloud/vite-config'
import { resolve } from 'node:path'

export default createAppConfig({
	main: resolve('src/main.js'),
	admin: resolve('src/admin.js'),
}, {
	// One CSS file per entry, even one without styles, so every addStyle finds its file.
	createEmptyCSSEntryPoints: true,
	// js/ and css/ hold only what the build makes: emptied before each build.
	emptyOutputDirectory: { additionalDirectories: ['css'] },
	// Nothing here needs Node's modules in the browser.
	nodePolyfills: false,
})
