<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Tests;

use OCA\HarpBridge\Migration\BridgeTables;
use PHPUnit\Framework\TestCase;

/**
 * Checks of the Nextcloud-facing files that need no Nextcloud: the routes
 * against docs/bridge-api.yaml, the attributes every route needs, the schema
 * against the entities, info.xml, and that every PHP file parses.
 */
final class AppStructureTest extends TestCase {
	private const APP = __DIR__ . '/..';
	private const API = __DIR__ . '/../../../docs/bridge-api.yaml';

	/**
	 * Routes served before docs/bridge-api.yaml documents them (none now: the
	 * pages' read routes and the admin routes are in it, marked
	 * `x-harp-served-by: [nextcloud]`). A route added here must still be served;
	 * once the yaml documents it, it counts from there and leaves this list.
	 */
	private const ROUTES_NOT_YET_IN_THE_YAML = [];

	/** The admin settings' routes: for admins and the admins the settings are delegated to. */
	private const ADMIN_ROUTES = [
		'DELETE /api/v1/admin/devices/{deviceId}',
		'GET /api/v1/admin/devices',
		'GET /api/v1/admin/settings',
		'GET /api/v1/admin/witnesses',
		'PUT /api/v1/admin/settings',
	];

	/** @return list<string> "VERB /path" with placeholders as {} */
	private static function yamlOperations(): array {
		$operations = [];
		$path = null;
		foreach (file(self::API, FILE_IGNORE_NEW_LINES) as $line) {
			if (preg_match('#^  (/\S*):\s*$#', $line, $m) === 1) {
				$path = $m[1];
			} elseif ($path !== null && preg_match('#^    (get|post|put|delete|patch):\s*$#', $line, $m) === 1) {
				$operations[] = strtoupper($m[1]) . ' ' . preg_replace('#\{[^}]+\}#', '{}', $path);
			} elseif (preg_match('#^\S#', $line) === 1) {
				$path = null;
			}
		}
		sort($operations);
		return $operations;
	}

	/** @return list<array{verb: string, url: string, attributes: string, method: string, params: string, file: string}> */
	private static function routes(): array {
		$routes = [];
		foreach (glob(self::APP . '/lib/Controller/*.php') as $file) {
			$source = (string)file_get_contents($file);
			preg_match_all('#((?:[ \t]*\#\[[^\n]*\]\s*\n)+)\s*public function (\w+)\(([^)]*)\)#', $source, $matches, PREG_SET_ORDER);
			foreach ($matches as [, $attributes, $method, $params]) {
				if (preg_match("#ApiRoute\\(verb: '(\\w+)', url: '([^']+)'#", $attributes, $route) === 1) {
					$routes[] = ['verb' => $route[1], 'url' => $route[2], 'attributes' => $attributes, 'method' => $method, 'params' => $params, 'file' => basename($file)];
				}
			}
		}
		return $routes;
	}

	public function testEveryOperationOfTheApiHasExactlyOneRoute(): void {
		$served = array_map(
			static fn (array $r): string => $r['verb'] . ' ' . preg_replace('#\{[^}]+\}#', '{}', (string)preg_replace('#^/api/v1#', '', $r['url'])),
			self::routes(),
		);
		sort($served);
		$this->assertGreaterThanOrEqual(23, count(self::yamlOperations()), 'the yaml parser found the operations');
		$expected = array_values(array_unique([...self::yamlOperations(), ...self::ROUTES_NOT_YET_IN_THE_YAML]));
		sort($expected);
		$this->assertSame($expected, $served);
	}

	public function testEveryRouteIsForUsersOrAdminsAndTakesItsPathParameters(): void {
		$admin = [];
		foreach (self::routes() as $route) {
			$where = $route['file'] . '::' . $route['method'];
			$this->assertStringStartsWith('/api/v1/', $route['url'], $where);
			if (str_starts_with($route['url'], '/api/v1/admin/')) {
				// No #[NoAdminRequired]: Nextcloud then lets only admins (and, by the
				// attribute, those the Harp settings are delegated to) through.
				$this->assertStringNotContainsString('NoAdminRequired', $route['attributes'], $where);
				$this->assertStringContainsString('#[AuthorizedAdminSetting(settings: Admin::class)]', $route['attributes'], $where);
				$admin[] = $route['verb'] . ' ' . $route['url'];
			} else {
				$this->assertStringContainsString('#[NoAdminRequired]', $route['attributes'], $where);
				$this->assertStringNotContainsString('AuthorizedAdminSetting', $route['attributes'], $where);
			}
			$this->assertStringNotContainsString('PublicPage', $route['attributes'], $where);
			preg_match_all('#\{(\w+)\}#', $route['url'], $placeholders);
			preg_match_all('#\$(\w+)#', $route['params'], $params);
			$this->assertSame($placeholders[1], $params[1], $where);
		}
		sort($admin);
		$this->assertSame(self::ADMIN_ROUTES, $admin);
		$this->assertStringContainsString('use OCA\\HarpBridge\\Settings\\Admin;', (string)file_get_contents(self::APP . '/lib/Controller/AdminController.php'));
	}

	public function testRoutesThatCheckSignaturesAreBruteForceProtected(): void {
		$protected = [];
		foreach (self::routes() as $route) {
			if (str_contains($route['attributes'], '#[BruteForceProtection(')) {
				$protected[] = $route['verb'] . ' ' . $route['url'];
			}
		}
		sort($protected);
		$this->assertSame([
			'POST /api/v1/devices',
			'POST /api/v1/folders',
			'PUT /api/v1/folders/{folderId}/keys/{deviceId}',
		], $protected);
	}

	public function testEveryColumnHasItsEntityProperty(): void {
		$typeOfColumn = ['bigint' => 'integer', 'string' => 'string', 'text' => 'string', 'boolean' => 'boolean'];
		foreach (BridgeTables::all() as $table => $spec) {
			$source = (string)file_get_contents(self::APP . '/lib/Db/' . $spec['entity'] . '.php');
			preg_match_all("#addType\\('(\\w+)', '(\\w+)'\\)#", $source, $types);
			$entityTypes = array_combine($types[1], $types[2]);
			preg_match_all('#protected \?\w+ \$(\w+) = null;#', $source, $properties);
			$expected = [];
			foreach ($spec['columns'] as $column => [$type]) {
				if ($column === 'id') {
					continue;
				}
				$property = lcfirst(str_replace('_', '', ucwords($column, '_')));
				$expected[] = $property;
				$this->assertSame($typeOfColumn[$type], $entityTypes[$property] ?? null, "$table.$column");
			}
			$this->assertSame($expected, $properties[1], $table);
			$this->assertSame($expected, $types[1], $table);
		}
	}

	public function testTheSchemaKeepsNextcloudsLimits(): void {
		$indexNames = [];
		foreach (BridgeTables::all() as $table => $spec) {
			$this->assertLessThan(23, strlen($table), "$table: primary key name");
			$this->assertSame(['bigint', ['autoincrement' => true, 'notnull' => true, 'unsigned' => true]], $spec['columns']['id']);
			foreach ($spec['columns'] as $column => [$type, $options]) {
				$this->assertLessThanOrEqual(30, strlen($column));
				if ($type === 'boolean') {
					$this->assertFalse($options['notnull'], "$table.$column: booleans must be nullable");
				}
				if ($type === 'string') {
					$this->assertLessThanOrEqual(4000, $options['length'], "$table.$column");
				}
				$this->assertArrayNotHasKey('default', $options, "$table.$column");
			}
			foreach ([...array_keys($spec['unique']), ...array_keys($spec['index'])] as $index) {
				$this->assertLessThanOrEqual(30, strlen($index));
				$this->assertNotContains($index, $indexNames, 'index names are unique across the schema');
				$indexNames[] = $index;
			}
			foreach ([...$spec['unique'], ...$spec['index']] as $columns) {
				foreach ($columns as $column) {
					$this->assertArrayHasKey($column, $spec['columns'], $table);
					$this->assertNotSame('text', $spec['columns'][$column][0], "$table.$column: no index on text");
				}
			}
		}
		$this->assertCount(9, BridgeTables::all());
	}

	/**
	 * Nextcloud runs each migration once, when the app is installed or its
	 * version goes up: every migration creates what is missing of the schema,
	 * so a later one brings an installed server's tables up to BridgeTables.
	 */
	public function testTheMigrationsAreNamedAsNextcloudFindsThemAndCreateWhatIsMissing(): void {
		$migrations = glob(self::APP . '/lib/Migration/Version*.php');
		$this->assertCount(3, $migrations);
		foreach ($migrations as $migration) {
			$this->assertMatchesRegularExpression('#/Version\d+Date\d{14}\.php$#', $migration);
			$source = (string)file_get_contents($migration);
			$this->assertStringContainsString('use CreatesMissingSchema;', $source, $migration);
			$this->assertStringContainsString('return $this->createMissing($schema) ? $schema : null;', $source, $migration);
		}
		$info = simplexml_load_file(self::APP . '/appinfo/info.xml');
		$this->assertSame('1.2.0', (string)$info->version, 'a new migration comes with a new app version');
	}

	public function testInfoXmlDeclaresTheAppAndItsCommands(): void {
		$info = simplexml_load_file(self::APP . '/appinfo/info.xml');
		$this->assertNotFalse($info);
		$this->assertSame('harpbridge', (string)$info->id);
		$this->assertSame('HarpBridge', (string)$info->namespace);
		$this->assertSame('32', (string)$info->dependencies->nextcloud['min-version']);
		$this->assertSame('34', (string)$info->dependencies->nextcloud['max-version']);
		$this->assertSame('8.2', (string)$info->dependencies->php['min-version']);
		$names = [];
		foreach ($info->commands->command as $command) {
			$class = (string)$command;
			$this->assertStringStartsWith('OCA\\HarpBridge\\Command\\', $class);
			$file = self::APP . '/lib/Command/' . substr($class, strlen('OCA\\HarpBridge\\Command\\')) . '.php';
			$this->assertFileExists($file);
			preg_match("#setName\\('([^']+)'\\)#", (string)file_get_contents($file), $m);
			$names[] = $m[1];
		}
		$this->assertSame(['harpbridge:status', 'harpbridge:devices', 'harpbridge:verify'], $names);
	}

	/**
	 * The Harp page and the admin settings as Nextcloud finds them: the
	 * navigation entry's route is PageController::index, the settings classes
	 * implement what info.xml registers them as, and the templates load the
	 * scripts the Vite build makes (js/harpbridge-ENTRY.mjs).
	 */
	public function testInfoXmlDeclaresThePageAndTheAdminSettings(): void {
		$info = simplexml_load_file(self::APP . '/appinfo/info.xml');
		$this->assertNotFalse($info);
		$this->assertCount(1, $info->navigations->navigation);
		$navigation = $info->navigations->navigation[0];
		$this->assertSame('Harp', (string)$navigation->name);
		$this->assertSame('harpbridge.page.index', (string)$navigation->route);
		$this->assertFileExists(self::APP . '/img/' . $navigation->icon);
		$this->assertFileExists(self::APP . '/img/app-dark.svg');
		$page = (string)file_get_contents(self::APP . '/lib/Controller/PageController.php');
		$this->assertMatchesRegularExpression("#\\#\\[NoAdminRequired\\]\\s*\\#\\[NoCSRFRequired\\]\\s*\\#\\[FrontpageRoute\\(verb: 'GET', url: '/'\\)\\]\\s*public function index\\(\\): TemplateResponse#", $page);
		$this->assertStringContainsString("new TemplateResponse(Application::APP_ID, 'main')", $page);

		$this->assertSame('OCA\\HarpBridge\\Settings\\Admin', (string)$info->settings->admin);
		$this->assertSame('OCA\\HarpBridge\\Sections\\AdminSection', (string)$info->settings->{'admin-section'});
		$this->assertStringContainsString('class Admin implements IDelegatedSettings', (string)file_get_contents(self::APP . '/lib/Settings/Admin.php'));
		$this->assertStringContainsString('class AdminSection implements IIconSection', (string)file_get_contents(self::APP . '/lib/Sections/AdminSection.php'));
		$this->assertStringContainsString("new TemplateResponse(Application::APP_ID, 'admin'", (string)file_get_contents(self::APP . '/lib/Settings/Admin.php'));

		$vite = (string)file_get_contents(self::APP . '/vite.config.js');
		foreach (['main' => 'main', 'admin' => 'admin'] as $template => $entry) {
			$source = (string)file_get_contents(self::APP . "/templates/$template.php");
			$this->assertStringContainsString("\\OCP\\Util::addScript('harpbridge', 'harpbridge-$entry');", $source, $template);
			$this->assertStringContainsString("\\OCP\\Util::addStyle('harpbridge', 'harpbridge-$entry');", $source, $template);
			$this->assertMatchesRegularExpression("#\\b$entry: resolve\\('src/$entry\\.js'\\)#", $vite, $entry);
			$this->assertFileExists(self::APP . "/src/$entry.js");
		}
	}

	public function testEveryRepositoryHasItsImplementationRegistered(): void {
		$application = (string)file_get_contents(self::APP . '/lib/AppInfo/Application.php');
		foreach ([...glob(self::APP . '/lib/Store/*Repository.php'), self::APP . '/lib/Store/UserDirectory.php', self::APP . '/lib/Service/Clock.php', self::APP . '/lib/Service/VersioningSource.php', self::APP . '/lib/Service/LogKeySource.php'] as $file) {
			$interface = basename($file, '.php');
			$this->assertMatchesRegularExpression("#\\b$interface::class => (\\w+)::class#", $application, $interface);
			preg_match("#\\b$interface::class => (\\w+)::class#", $application, $m);
			$implementations = [...glob(self::APP . "/lib/*/{$m[1]}.php")];
			$this->assertCount(1, $implementations, $m[1]);
			$this->assertStringContainsString("implements $interface", (string)file_get_contents($implementations[0]));
		}
	}

	public function testEveryPhpFileIsStrictAndParses(): void {
		// node_modules (npm ci) holds no file of the app.
		$files = new \RecursiveIteratorIterator(new \RecursiveCallbackFilterIterator(
			new \RecursiveDirectoryIterator(self::APP, \FilesystemIterator::SKIP_DOTS),
			static fn (\SplFileInfo $file): bool => $file->getFilename() !== 'node_modules',
		));
		$count = 0;
		foreach ($files as $file) {
			if ($file->getExtension() !== 'php') {
				continue;
			}
			$count++;
			$path = $file->getPathname();
			$this->assertStringStartsWith("<?php\n\ndeclare(strict_types=1);\n", (string)file_get_contents($path), $path);
			exec(escapeshellarg(PHP_BINARY) . ' -l ' . escapeshellarg($path) . ' 2>&1', $out, $code);
			$this->assertSame(0, $code, implode("\n", $out));
		}
		$this->assertGreaterThan(50, $count);
	}
}
