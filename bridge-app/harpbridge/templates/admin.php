<?php

declare(strict_types=1);

/*
 * The Harp section of the administration settings. The script
 * (js/harpbridge-admin.mjs, built from src/ by `npm ci && npm run build`)
 * mounts the form on #harpbridge-admin-settings.
 */

\OCP\Util::addScript('harpbridge', 'harpbridge-admin');
\OCP\Util::addStyle('harpbridge', 'harpbridge-admin');
?>
<div id="harpbridge-admin-settings"></div>
