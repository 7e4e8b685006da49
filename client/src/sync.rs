//! The sync engine: keeps a folder identical on every member device.
//!
//! The data path, for one folder:
//!
//! 1. The scanner ([`crate::scan`]) records local changes in the index, each content or path
//!    change as a chain entry signed by this device.
//! 2. A sync round ([`apply::sync_once`]) reads the index and the folder document
//!    ([`doc::FolderDoc`], Automerge), asks the pure planner ([`plan::plan`]) what to do, and
//!    does it: local changes are published into the document (record and chain links);
//!    remote changes are checked (signed chain from a member device) and installed (chunks
//!    from local files first, the rest from peers; temp file, fsync, atomic rename; the old
//!    version kept in the versions store); conflicts keep both versions.
//! 3. Peers exchange the document with Automerge's sync protocol over `/harp/meta/1`
//!    ([`crate::net::meta`]); a document that changed wakes the folder's worker, which runs
//!    another round.
//!
//! One worker thread per folder runs scans and sync rounds one after the other, so the
//! scanner never sees a half-applied change and the applier never races a scan.

pub mod apply;
pub mod doc;
pub mod journal;
pub mod plan;
pub mod progress;
pub mod recover;
#[cfg(test)]
mod tests;
