//! `harp`: the Harp desktop node as a library, behind the `harp` command.
//!
//! Harp keeps folders in sync between devices: files are cut into content-defined chunks,
//! encrypted, and moved directly between devices; a Nextcloud server (or the standalone
//! `harp-bridge`) keeps only metadata. The formats all live in [`harp_protocol`]; this crate
//! holds everything that does I/O.
//!
//! Modules follow the data's path. Today:
//!
//! - [`cli`]: the command line, one file per subcommand.
//!
//! The local engine (config, keys, scanner, chunker, index, versions store), the network node,
//! the sync engine and the bridge client arrive with their issues; `docs/architecture.md`
//! shows where each one sits.

pub mod cli;
