/** The Harp page (the app's navigation entry), mounted on Nextcloud's #content. */
import { createApp } from 'vue'
import './styles.css'
import HarpPage from './components/HarpPage.vue'

createApp(HarpPage).mount('#content')
