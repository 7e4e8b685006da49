//! `harp`: the Harp desktop node as a library, behind the `harp` command.
//!
//! Harp keeps folders in sync between devices: files are cut into content-defined chunks,
//! encrypted, and moved directly between devices; a Nextcloud server (or the standalone
//! `harp-bridge`) keeps only metadata. The formats all live in [`harp_protocol`]; this crate
//! holds everything that does I/O.
//!
//! Modules follow the data's path (each depends only on those after it):
//!
//! - [`cli`]: the command line, one file per subcommand.
//! - [`daemon`]: `harp daemon`: the node, chunk server, watchers and the control API.
//! - [`node`]: this device's identity and folders, as the commands open them.
//! - [`scan`]: walk a folder, find what changed, record it with signed chain entries.
//! - [`chunk`]: read files into keyed FastCDC chunks and seal them, on `hashing_threads`.
//! - [`store`]: the versions store: old versions kept in each folder's `.harp/versions`.
//! - [`net`]: the libp2p node (QUIC, TCP, relay, hole punching, mDNS) and the chunk protocol.
//! - [`index`]: the SQLite index (files, chunk locations, manifest nodes, chains, versions).
//! - [`config`]: directories, `config.toml`, key files.
//!
//! The network node, the sync engine and the bridge client arrive with their issues;
//! `docs/architecture.md` shows where each one sits.

pub mod bridge;
pub mod check;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod index;
pub mod invite;
pub mod members;
pub mod metrics;
pub mod net;
pub mod node;
pub mod scan;
pub mod store;
pub mod sync;

#[cfg(test)]
mod testutil;
