/** The Harp administration settings, mounted where templates/admin.php leaves room. */
import { createApp } from 'vue'
import './styles.css'
import AdminSettings from './admin/AdminSettings.vue'

createApp(AdminSettings).mount('#harpbridge-admin-settings')
