/**
 * The component tests (`npm test`): the page, the sidebar tab and the admin
 * settings rendered in happy-dom against the recorded API answers of
 * tests/fixtures/ui, with @nextcloud/axios mocked.
 */
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

export default defineConfig({
	plugins: [vue()],
	test: {
		environment: 'happy-dom',
		include: ['src/**/*.spec.js'],
		setupFiles: ['src/test-setup.js'],
		// Times are shown in the browser's zone: the tests read them in UTC.
		env: { TZ: 'UTC' },
		server: {
			// @nextcloud/vue imports its own CSS: let Vite handle it.
			deps: { inline: ['@nextcloud/vue'] },
		},
	},
})
