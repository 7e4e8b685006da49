<?php

declare(strict_types=1);

/*
 * The Harp page. The script (js/harpbridge-main.mjs, built from src/ by
 * `npm ci && npm run build`) mounts the page on #content.
 */

\OCP\Util::addScript('harpbridge', 'harpbridge-main');
\OCP\Util::addStyle('harpbridge', 'harpbridge-main');
