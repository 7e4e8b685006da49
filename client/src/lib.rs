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
//! - [`daemon`]: `harp daemon`: the node, chunk server, watchers, sync and the control API.
//! - [`web`]: the daemon's local web UI and REST API (loopback, behind a token).
//! - [`witness`]: `harp witness`: cosigns bridges' checkpoints that extend what it saw.
//! - [`bridge`]: the bridge client and the daemon's link to it (membership, keys, changes,
//!   chain entries, search index, the audit of each folder's transparency log).
//! - [`sync`]: the folder document (Automerge), the plan, and applying it to disk.
//! - [`early`]: a large new file moves to peers while it is scanned (offer, outbox, staging).
//! - [`direct_write`]: a large received file written past the page cache (`O_DIRECT`).
//! - [`check`]: `harp check`, the whole record checked against itself and the disk.
//! - [`metrics`]: Prometheus counters of a running daemon.
//! - [`members`], [`invite`]: who may fetch a folder's chunks; invitations.
//! - [`trust`]: a folder's trust policy (log key, witnesses, quorum) on this device.
//! - [`keyring`]: a folder's key epochs on this device (rotated when a device leaves).
//! - [`node`]: this device's identity and folders, as the commands open them.
//! - [`scan`]: walk a folder, find what changed, record it with signed chain entries.
//! - [`chunk`]: read files into keyed FastCDC chunks and seal them, on `hashing_threads`.
//! - [`store`]: the versions store: old versions kept in each folder's `.harp/versions`.
//! - [`net`]: the libp2p node (QUIC, TCP, relay, hole punching, mDNS) and the chunk protocol.
//! - [`buffers`]: blob buffers kept for the next blob (blobs are born and die on different
//!   threads; freeing them cost fresh pages for each next one).
//! - [`index`]: the SQLite index (files, chunk locations, manifest nodes, chains, versions).
//! - [`config`]: directories, `config.toml`, key files.
//!
//! `docs/architecture.md` shows where each one sits.

pub mod approval;
pub mod bridge;
pub mod buffers;
pub mod check;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod direct_write;
pub mod early;
pub mod folder_status;
pub mod index;
pub mod invite;
pub mod keyring;
pub mod members;
pub mod metrics;
pub mod net;
pub mod node;
pub mod scan;
pub mod store;
pub mod sync;
pub mod trust;
pub mod web;
pub mod witness;

#[cfg(test)]
mod testutil;
