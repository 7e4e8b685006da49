<?php

declare(strict_types=1);

namespace OCA\HarpBridge\Store;

/**
 * A write that a unique index refused. Services use it to settle races: two
 * requests that both passed a check, of which the database lets one win.
 */
final class DuplicateKey extends \RuntimeException {
}
