//! `harp-bridge`: the standalone metadata bridge of Harp.
//!
//! It serves the same API as the `harpbridge` Nextcloud app (`docs/bridge-api.yaml`, under
//! `/ocs/v2.php/apps/harpbridge/api/v1`) from one binary and one SQLite file, with its own
//! users and app passwords: for people without Nextcloud, for the quickstart, and for CI (the
//! conformance suite in `tests/e2e/bridge_conformance.rs` runs against it).
//!
//! What it holds is metadata only: devices and their addresses, folders and members, folder
//! keys wrapped for member devices, sealed Automerge changes, chain entries, a search index.
//! No field can carry file content, and it never sees a folder key in clear.
//!
//! - [`db`]: the schema, migrated on open.
//! - [`wire`]: the JSON bodies and field checks.
//! - [`rules`]: who sees what and what is checked before anything is stored.
//! - [`http`]: paths, OCS envelopes, authentication.
//! - [`login`]: Nextcloud Login Flow v2, for `harp login`.

pub mod db;
pub mod http;
pub mod login;
pub mod rules;
pub mod wire;
