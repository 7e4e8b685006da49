<?php

declare(strict_types=1);

/*
 * Loads the app's classes without Nextcloud: the rules under test (lib/Chain,
 * lib/Codec, lib/Input, lib/Model, lib/Service, lib/Store) use no OCP class.
 * The Nextcloud adapters (controllers, mappers, commands) are only linted.
 */

spl_autoload_register(static function (string $class): void {
	$roots = [
		'OCA\\HarpBridge\\Tests\\' => __DIR__ . '/',
		'OCA\\HarpBridge\\' => __DIR__ . '/../lib/',
	];
	foreach ($roots as $prefix => $dir) {
		if (str_starts_with($class, $prefix)) {
			$file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
			if (is_file($file)) {
				require $file;
			}
			return;
		}
	}
});
