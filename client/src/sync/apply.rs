//! The applier: carries out the planner's actions on the disk, the index and the document.
//!
//! Installing a remote version, step by step:
//!
//! 1. **Check its chain**: walk the document's links back from the record's head to a link the
//!    local chain has (or the genesis); every entry must be signed by a member device over the
//!    link before it, and the last one must say what the record says. A record whose chain
//!    does not check is not installed (and is logged).
//! 2. **Fetch**: the manifest tree level by level, then the chunks: from local files first
//!    (any current file holding the same chunk, re-read and checked), the rest from peers.
//!    Each chunk is decrypted and written at its offsets into a temp file in `.harp/tmp`,
//!    which is then fsynced (small files are built a window at a time and made durable
//!    together by one `syncfs`, see `window`).
//! 3. **Check the target right before the rename**: the path must hold what the index says
//!    (a file changed since the last scan is never replaced: the next scan records the change
//!    and the planner turns it into a conflict), and every parent must be a real directory
//!    inside the folder (a symlinked parent could lead outside it).
//! 4. **Keep the old version** (overwrite or delete) in the versions store, rename the temp
//!    file into place, set mode and mtime, and record it all in one index transaction.
//!
//! A kill -9 at any step leaves either the old file or the new one under the final name,
//! never a partial one; the next round sees what is on disk and goes on.
//!
//! This module runs the round ([`sync_once`]): it gathers the views the planner needs,
//! settles what the chains already decide, plans, and carries the actions out in order. Its
//! parts, along the data's path:
//!
//! - `window`: installs in windows of bounded memory, fetched and built ahead on a second
//!   thread;
//! - `content`: a version's bytes built into a temp file, from local chunks first;
//! - `install`: a remote version's chain checked and the version put in place (steps above);
//! - `conflict`: conflict copies and their names;
//! - `moves`: moves this device signs itself (giving up a path, merges).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;

use ed25519_dalek::SigningKey;
use harp_protocol::blob::CheckedBlob;
use harp_protocol::chain::{self, Entry, Op};
use harp_protocol::ids::{ChainHash, ChunkId, DeviceId, FileId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::{Digest, Record};
use unicode_normalization::is_nfc;

use super::doc::FolderDoc;
use super::journal::InstallJournal;
use super::plan::{self, Action, Candidate, FileState, Merge};
use crate::index::{FileRow, Index};
use crate::scan::Folder;
use crate::store;

mod conflict;
mod content;
mod install;
mod moves;
mod one_way;
mod patch;
mod window;

#[cfg(test)]
pub(super) use conflict::free_conflict_name;
use conflict::keep_conflict;
pub use conflict::{ConflictName, conflict_name, parse_conflict_name};
use install::install;
#[cfg(test)]
pub(super) use install::tests_hook;
pub(super) use moves::{GivenUp, Keeper, take_over};
use moves::{move_signed, yield_path};
use one_way::{discard, override_with};
pub use patch::recover as recover_edits_in_place;
#[cfg(test)]
pub(super) use patch::tests_hook as patch_hook;
use window::{Ahead, Built, Parts, Prefetched, Windows, prepare};

/// The folder document, shared with the metadata sessions: locked only for short reads and
/// writes, never across a fetch (the sessions run on the network's threads).
pub type Doc = std::sync::Mutex<FolderDoc>;

pub(super) fn lock(doc: &Doc) -> std::sync::MutexGuard<'_, FolderDoc> {
    doc.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gets blobs from peers. Shared by the thread that installs and the one that fetches the
/// next window ahead.
pub trait Fetcher: Sync {
    /// Fetches `ids` of the folder, handing each blob to `sink` checked against its id (the
    /// type says so); returns the ids it could not get. `sink` returning an error stops the
    /// fetch.
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>>;

    /// The staging file of a new file a peer offered while scanning it ([`crate::early`]),
    /// if one was staged for `path` with `size` bytes. Taking it stops its fetch.
    fn take_staged(&self, _path: &str, _size: u64) -> Option<crate::early::Staged> {
        None
    }
}

/// A fetcher with no peers (tests, and folders with no one online).
#[derive(Debug)]
pub struct NoPeers;

impl Fetcher for NoPeers {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        _sink: &mut dyn FnMut(CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        Ok(ids)
    }
}

/// What one sync round did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Local changes put into the document.
    pub published: u64,
    /// Remote versions installed (content, renames, deletes, metadata).
    pub installed: u64,
    /// Conflict copies made.
    pub conflicts: u64,
    /// Bytes written from chunks fetched from peers.
    pub fetched_bytes: u64,
    /// Of those, bytes fetched while the sending device was still scanning the file (staged
    /// early, [`crate::early`]).
    pub early_bytes: u64,
    /// Bytes written from chunks found locally.
    pub reused_bytes: u64,
    /// Actions put off to a later round, with why.
    pub deferred: Vec<(String, String)>,
    /// Other devices' files this device cannot hold (not retried: nothing here changes it),
    /// with why.
    pub refused: Vec<(String, String)>,
    /// Paths of changes the folder's direction holds back: made here and not sent
    /// (`receive_only`), or made elsewhere and not applied here (`send_only`).
    pub held_back: Vec<String>,
}

impl Report {
    /// Whether the round changed anything.
    pub fn changed(&self) -> bool {
        self.published + self.installed + self.conflicts > 0
    }
}

/// What the bridge said to a claim on a file's next chain link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The link is the file's head now (or was already).
    Accepted,
    /// Another device's version got there first: the head is this one.
    Lost(Option<ChainHash>),
}

/// The orderer of `server_authoritative` folders: each new chain link is claimed by a
/// compare-and-swap on the file's head before the version is published. A lost claim makes
/// the local version a conflict copy once the winner's metadata is here.
pub trait Authority {
    /// Whether the folder is `server_authoritative` now (else nothing is claimed).
    fn orders(&self) -> bool;
    /// Appends the link `prev → head` (the entry) if `prev` is still the file's head.
    fn claim(
        &self,
        file: &FileId,
        prev: &ChainHash,
        entry: &harp_protocol::chain::Entry,
        head: &ChainHash,
    ) -> Result<Claim, String>;
}

/// Everything a round needs besides the index and the document.
pub struct Context<'a> {
    /// The folder.
    pub folder: &'a Folder,
    /// This device's key (signs conflict renames and yields).
    pub device: &'a SigningKey,
    /// The devices whose chain entries are accepted.
    pub members: &'a HashSet<DeviceId>,
    /// Where missing blobs come from.
    pub fetcher: &'a dyn Fetcher,
    /// The bridge, for folders it orders (`server_authoritative`); `None`: nothing to claim.
    pub authority: Option<&'a dyn Authority>,
    /// Which way changes flow in this folder here.
    pub direction: plan::Direction,
    /// A one-off round that settles a one-way folder's differences (`harp folder revert`,
    /// `harp folder override`); `None`: an ordinary round.
    pub force: Option<plan::Force>,
    /// Where the round shows how far it has got (`None`: nobody looks).
    pub progress: Option<&'a super::progress::Progress>,
}

/// Why an action could not run now.
#[derive(Debug, thiserror::Error)]
pub(super) enum Defer {
    #[error("{0}")]
    Later(String),
    #[error("another device's version of this file is the head on the bridge")]
    Lost(Option<ChainHash>),
    #[error("refused: {0}")]
    Refused(String),
    /// This device cannot hold it at all (its file system has no symbolic links): shown,
    /// not retried.
    #[error("{0}")]
    NotHere(String),
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Doc(#[from] super::doc::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn later(s: impl Into<String>) -> Defer {
    Defer::Later(s.into())
}

/// The local row as a record (what this device would publish). A tombstone carries only its
/// path, kind and chain position: what the file held before is in its chain, and two devices
/// that recorded one delete must agree on it byte for byte.
pub fn local_record(row: &FileRow) -> Record {
    if row.deleted {
        return Record {
            path: row.path.clone(),
            kind: row.kind,
            mode: 0,
            mtime_ns: 0,
            size: 0,
            content_root: harp_protocol::ids::ContentRoot::from_bytes([0; 32]),
            deleted: true,
            seq: row.seq,
            chain_head: row.chain_head,
        };
    }
    Record {
        path: row.path.clone(),
        kind: row.kind,
        mode: row.mode,
        mtime_ns: if row.kind == EntryKind::File {
            row.mtime_ns
        } else {
            0
        },
        size: row.size,
        content_root: row.content_root,
        deleted: row.deleted,
        seq: row.seq,
        chain_head: row.chain_head,
    }
}

/// Runs one round: plan, then act. Errors of single files are deferred, not fatal.
pub fn sync_once(index: &mut Index, doc: &Doc, ctx: &Context<'_>) -> Result<Report, RoundError> {
    // A folder whose root or marker is gone (an unmounted disk, a moved folder) is never
    // written into: installing would recreate it on whatever lies beneath.
    if !ctx.folder.marker().is_dir() {
        return Err(RoundError::FolderMissing(ctx.folder.root.clone()));
    }
    let me = DeviceId::of_signing_key(ctx.device);
    let round_started = std::time::Instant::now();
    let mut journal = InstallJournal::open(ctx.folder).map_err(RoundError::Journal)?;
    // What peers sent is saved before anything is installed from it: the index never records
    // a base the saved document does not hold.
    lock(doc).save_if_changed()?;
    let mut files = views(index, doc, ctx)?;
    local_tombstones(index, ctx, &mut files)?;
    forget_settled(index, ctx, &files, &mut journal)?;
    let recognised = super::recover::recognise(index, doc, ctx, journal.earlier(), &mut files)?;
    if recognised > 0 {
        tracing::info!(
            folder = %ctx.folder.id,
            "{recognised} files hold versions received before a restart: installing on top"
        );
    }
    settle_by_chains(index, doc, ctx, &mut files)?;
    let plan::Plan {
        mut actions,
        held_back,
    } = plan::plan_for(&me, &files, names_of(ctx.folder), ctx.direction, ctx.force);
    tracing::trace!(folder = %ctx.folder.id, "planned: {actions:?}");
    tracing::debug!(
        folder = %ctx.folder.id,
        "round planned: {} actions for {} files in {:.3} s",
        actions.len(),
        files.len(),
        round_started.elapsed().as_secs_f64()
    );
    // The views planned from are not needed past here: freed before the windows' blobs come
    // in (10,000 new files: ~10 MB of the receiver's peak).
    drop(files);
    order(&mut actions);
    let mut report = carry_out(index, doc, ctx, actions, journal)?;
    report.held_back.extend(held_back);
    report.held_back.sort();
    report.held_back.dedup();
    Ok(report)
}

/// Each file's local version (from the index), its values in the document (minus those
/// another value's chain went through) and its sync base: what the planner plans from.
fn views(
    index: &Index,
    doc: &Doc,
    ctx: &Context<'_>,
) -> Result<BTreeMap<FileId, FileState>, RoundError> {
    let mut files: BTreeMap<FileId, FileState> = BTreeMap::new();
    for row in index.files(&ctx.folder.id)?.values() {
        files.entry(row.file_id).or_default().local = Some(local_record(row));
    }
    let d = lock(doc);
    for (id, values) in d.files() {
        let mut remote: Vec<Candidate> = values
            .into_iter()
            .filter(|r| is_nfc(&r.path))
            .map(|record| {
                let link = d.entry(&record.chain_head);
                Candidate {
                    author: link.as_ref().map(|(_, e)| e.author),
                    timestamp_ms: link.map(|(_, e)| e.timestamp_ms).unwrap_or(0),
                    record,
                }
            })
            .collect();
        if remote.len() > 1 {
            drop_ancestors(&d, &mut remote);
        }
        files.entry(id).or_default().remote = remote;
    }
    drop(d);
    for (id, digest) in index.sync_bases(&ctx.folder.id)? {
        if let Some(f) = files.get_mut(&id) {
            f.base = Some(digest);
        }
    }
    Ok(files)
}

/// Shows, as a local tombstone, a file without a local row whose local chain ends in a delete
/// after the value this device agreed on.
///
/// A file replaced by another kind at the same path (a link became a directory) lost its
/// row to the new one, but its delete is in its chain: without the tombstone the delete would
/// never be published and peers would keep the old entry in the way. The same holds for a
/// file this device gave up to an equal one (`yield_path`), when the round was cut short
/// before the document with its delete was saved and its base recorded.
fn local_tombstones(
    index: &Index,
    ctx: &Context<'_>,
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<(), RoundError> {
    let mut chained: Option<HashSet<FileId>> = None;
    for (id, f) in files.iter_mut() {
        if f.local.is_some() || f.remote.iter().all(|c| c.record.deleted) {
            continue;
        }
        if chained.is_none() {
            chained = Some(index.chained_files(&ctx.folder.id)?.into_iter().collect());
        }
        if !chained.as_ref().is_some_and(|c| c.contains(id)) {
            continue;
        }
        let links = index.chain_links(&ctx.folder.id, id)?;
        // The value this device agreed on; without a base (lost to a kill), a value its chain
        // went through.
        let agreed = match f.base {
            Some(base) => f.remote.iter().find(|c| c.record.digest() == base),
            None => f
                .remote
                .iter()
                .find(|c| links.iter().any(|(_, head)| *head == c.record.chain_head)),
        };
        let Some(agreed) = agreed.filter(|a| !a.record.deleted) else {
            continue;
        };
        if let Some((last, head)) = links.last()
            && last.op == Op::Delete
            && last.seq > agreed.record.seq
        {
            // (local_record's tombstone form: no content fields.)
            f.local = Some(Record {
                deleted: true,
                seq: last.seq,
                chain_head: *head,
                mode: 0,
                mtime_ns: 0,
                size: 0,
                content_root: harp_protocol::ids::ContentRoot::from_bytes([0; 32]),
                ..agreed.record.clone()
            });
        }
    }
    Ok(())
}

/// Forgets the install journal's entries from earlier rounds that the index or the sync base
/// has caught up with. What stays tells versions a kill -9 left on disk unrecorded apart from
/// edits made here ([`super::recover::recognise`]).
fn forget_settled(
    index: &Index,
    ctx: &Context<'_>,
    files: &BTreeMap<FileId, FileState>,
    journal: &mut InstallJournal,
) -> Result<(), RoundError> {
    if journal.earlier().is_empty() {
        return Ok(());
    }
    let mut settled: HashSet<(FileId, ChainHash)> = HashSet::new();
    for e in journal.earlier() {
        let agreed_seq = files.get(&e.file_id).and_then(|f| {
            let base = f.base?;
            f.remote
                .iter()
                .find(|c| c.record.digest() == base)
                .map(|c| c.record.seq)
        });
        if agreed_seq.is_some_and(|seq| seq >= e.seq) || chain_holds(index, ctx, e)? {
            settled.insert((e.file_id, e.head));
        }
    }
    journal.forget(|e| settled.contains(&(e.file_id, e.head)));
    Ok(())
}

/// The order actions run in: path collisions and conflicts first, then publishes, then
/// installs, deletes and renames before new content, parents before children (deletes:
/// children first).
fn order(actions: &mut [Action]) {
    actions.sort_by_key(|a| match a {
        Action::Yield { .. } | Action::Refuse { .. } => (0, 0, 0),
        // A file goes first (its path may be the one a reverted file needs); a directory
        // last, once the installs moved out what was moved into it, children first.
        Action::Discard { local, .. } if local.kind == EntryKind::Directory => {
            (4, 0, usize::MAX - depth(&local.path))
        }
        Action::Discard { .. } => (0, 1, 0),
        Action::KeepConflict { .. } => (1, 0, 0),
        Action::Publish { .. } | Action::Adopt { .. } | Action::Override { .. } => (2, 0, 0),
        Action::Install { record, .. }
        | Action::Merge {
            winner: record,
            how: Merge::KeepLocalPath,
            ..
        } => (
            3,
            u8::from(!record.deleted),
            if record.deleted {
                usize::MAX - depth(&record.path)
            } else {
                depth(&record.path)
            },
        ),
        Action::Merge { winner, .. } => (3, 1, depth(&winner.path)),
    });
}

/// What a round's actions add to as they run.
struct Acting {
    report: Report,
    journal: InstallJournal,
    /// Bases to record once the document holding what was published is saved.
    pending: Vec<(FileId, Digest)>,
    /// The current window's files built ahead, by version.
    built: HashMap<Digest, Built>,
    /// Chain links whose signatures the current window's preparer checked.
    verified: HashSet<ChainHash>,
}

/// Runs the planned actions in order, a window of installs at a time (with more than one
/// window to fetch, the next one is fetched and built on a second index connection while the
/// current one installs), then saves the document, records the bases of what was published
/// and settles the install journal.
fn carry_out(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    actions: Vec<Action>,
    journal: InstallJournal,
) -> Result<Report, RoundError> {
    let windows = Windows::of(&actions);
    let cached = Prefetched {
        inner: ctx.fetcher,
        blobs: Default::default(),
    };
    let parts = Parts {
        folder: ctx.folder,
        device: ctx.device,
        members: ctx.members,
        fetcher: ctx.fetcher,
        doc,
        progress: ctx.progress,
    };
    let installs: u64 = actions
        .iter()
        .filter_map(|a| match a {
            Action::Install { record, .. } if !record.deleted && record.kind == EntryKind::File => {
                Some(record.size)
            }
            _ => None,
        })
        .sum();
    let _running = ctx
        .progress
        .filter(|_| !actions.is_empty())
        .map(|p| p.begin(actions.len() as u64, installs));
    let preparer = if windows.several() {
        index.reopen()?
    } else {
        None
    };
    std::thread::scope(|s| {
        let mut ahead = preparer.map(|prep_index| Ahead::start(s, prep_index, parts, &windows));
        let mut current_window = None;
        let mut window_started: Option<std::time::Instant> = None;
        let round_ctx = Context {
            fetcher: &cached,
            ..*ctx
        };
        let ctx = &round_ctx;
        let mut acting = Acting {
            report: Report::default(),
            journal,
            pending: Vec::new(),
            built: HashMap::new(),
            verified: HashSet::new(),
        };
        for action in actions {
            if let Some(w) = windows.window_of(&action)
                && current_window != Some(w)
            {
                cached.blobs().clear();
                acting.built.clear();
                let waiting = std::time::Instant::now();
                if let Some((prev, since)) = current_window.zip(window_started) {
                    tracing::debug!(
                        folder = %ctx.folder.id,
                        "window {prev} installed in {:.3} s",
                        waiting.duration_since(since).as_secs_f64()
                    );
                }
                let ready = ahead
                    .as_mut()
                    .and_then(|a| a.take(w))
                    .unwrap_or_else(|| prepare(index, &parts, w, windows.records(w)));
                window_started = Some(std::time::Instant::now());
                tracing::debug!(
                    folder = %ctx.folder.id,
                    "window {w} ready after {:.3} s waiting",
                    waiting.elapsed().as_secs_f64()
                );
                *cached.blobs() = ready.blobs;
                acting.built = ready.built;
                acting.verified = ready.verified;
                current_window = Some(w);
            }
            // Installs of files new here commit in batches (a kill -9 that loses one is
            // recovered from: see `super::recover`); anything else commits the batch first.
            if !matches!(&action, Action::Install { resolve: false, record, .. } if !record.deleted)
            {
                index.end_batch()?;
            }
            let mut what = describe(&action);
            if let Some(p) = ctx.progress {
                p.at(&what.1);
            }
            let result = act(index, doc, ctx, action, &mut what.0, &mut acting);
            if let Some(p) = ctx.progress {
                p.did_one();
            }
            let report = &mut acting.report;
            match result {
                Ok(()) => match what.0 {
                    // (A merge and a yield publish what they did, too.)
                    "publish" | "merge" | "override" => report.published += 1,
                    "yield" if ctx.direction.sends() => report.published += 1,
                    "install" | "discard" => report.installed += 1,
                    _ => {}
                },
                Err(Defer::Index(e)) => {
                    let _ = index.end_batch();
                    return Err(e.into());
                }
                Err(Defer::NotHere(why)) => {
                    tracing::info!(folder = %ctx.folder.id, "not installed: {}: {why}", what.1);
                    report.refused.push((what.1, why));
                }
                Err(e) => {
                    if matches!(e, Defer::Refused(_)) {
                        tracing::warn!(folder = %ctx.folder.id, "{}: {e}", what.1);
                    } else {
                        tracing::debug!(folder = %ctx.folder.id, "{} put off: {e}", what.1);
                    }
                    report.deferred.push((what.1, e.to_string()));
                }
            }
        }
        index.end_batch()?;
        lock(doc).save_if_changed()?;
        if !acting.pending.is_empty() {
            index.write(|w| {
                for (id, digest) in &acting.pending {
                    w.set_base(&ctx.folder.id, id, digest)?;
                }
                Ok(())
            })?;
        }
        // Every install that reached the index is committed now: the journal keeps the rest,
        // and what earlier rounds left unless this round recorded that version (a later
        // agreement is seen at the next round's start).
        let settled = acting.journal.settle(|e| Ok(!chain_holds(index, ctx, e)?));
        match settled {
            Ok(0) => {}
            Ok(kept) => tracing::debug!(
                folder = %ctx.folder.id,
                "install journal: {kept} installs not recorded yet"
            ),
            Err(e) => tracing::warn!(folder = %ctx.folder.id, "{e}: kept as it was"),
        }
        Ok(acting.report)
    })
}

/// Runs one action. `what` is what it did, for the report: a publish whose claim the bridge
/// refused becomes the keeping of a conflict copy.
fn act(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    action: Action,
    what: &mut &'static str,
    acting: &mut Acting,
) -> Result<(), Defer> {
    let Acting {
        report,
        journal,
        pending,
        built,
        verified,
    } = acting;
    match action {
        Action::Publish { id, record } => match publish(index, doc, ctx, &id, &record, pending) {
            // A send-only folder installs nothing, the winner included: its version stays
            // as it is, unpublished and held back, until an override claims it as the next.
            Err(Defer::Lost(_)) if !ctx.direction.receives() => {
                *what = "hold back";
                tracing::info!(
                    folder = %ctx.folder.id,
                    "{}: another device's version is first on the bridge; held back \
                     (send-only: `harp folder override` makes this one the next)",
                    record.path
                );
                report.held_back.push(record.path.clone());
                Ok(())
            }
            Err(Defer::Lost(head)) => {
                *what = "keep a conflict copy of";
                lost_claim(
                    index, doc, ctx, &id, &record, head, report, journal, pending,
                )
            }
            other => other,
        },
        Action::Adopt { id, digest } => index
            .write(|w| w.set_base(&ctx.folder.id, &id, &digest))
            .map_err(Defer::from),
        Action::Install {
            id,
            record,
            resolve,
        } => {
            let prebuilt = built.remove(&record.digest());
            install(
                index, doc, ctx, &id, &record, report, journal, prebuilt, verified,
            )?;
            if resolve {
                lock(doc).put_record(&id, &record)?;
            }
            Ok(())
        }
        Action::KeepConflict {
            id,
            local,
            winner,
            resolve,
        } => keep_conflict(
            index,
            doc,
            ctx,
            &id,
            (&local, &winner),
            resolve,
            report,
            journal,
        ),
        Action::Refuse { path, kept, .. } => {
            let why = format!(
                "differs from {kept} only by case, which this file system cannot hold apart: \
                 it stays on the devices that can"
            );
            tracing::info!(folder = %ctx.folder.id, "not installed: {path}: {why}");
            report.refused.push((path, why));
            Ok(())
        }
        Action::Merge {
            id,
            local,
            winner,
            how: Merge::KeepLocalPath,
        } => {
            // The winner's content first (over the local version, which goes to the versions
            // store like any replaced one), then back to this device's path.
            let prebuilt = built.remove(&winner.digest());
            install(
                index, doc, ctx, &id, &winner, report, journal, prebuilt, verified,
            )?;
            move_signed(index, doc, ctx, &id, (&winner.path, &local.path), pending)
        }
        Action::Merge {
            id,
            local,
            how: Merge::Made,
            ..
        } => publish(index, doc, ctx, &id, &local, pending),
        Action::Merge {
            id,
            local,
            winner,
            how: Merge::TakeWinnerPath,
        } => move_signed(index, doc, ctx, &id, (&local.path, &winner.path), pending),
        Action::Yield {
            id,
            local,
            same_as,
            version_of,
        } => yield_path(
            index,
            doc,
            ctx,
            (&id, &local, &version_of),
            same_as,
            pending,
        ),
        Action::Discard { id, local } => discard(index, ctx, &id, &local),
        Action::Override { id, local, winner } => {
            override_with(index, doc, ctx, &id, (local.as_ref(), &winner), pending)
        }
    }
}

/// Settles, by the chains, files whose local version and document winner both differ from
/// their base and from each other, where one of the two descends from the other: then they
/// are not rival edits, whatever the base says.
///
/// - **The local chain went through the winner's head** (the local file descends from it): a
///   base a cut-short round failed to record. A round records the bases of what it published
///   only at its end, once the document holding the records is saved; a round that stops in
///   between (a kill -9, an error) leaves this device's record in the document and the older
///   base in the index. Edited here again, the file looked changed on both sides: its newer
///   content became a conflict copy, and the round waited for good for the published
///   version, which was on no disk any more. The base becomes the winner.
/// - **The winner's chain went through the local head** (the winner descends from it): the
///   local version differs from what it was only in what the chain does not link (mode or
///   mtime: links are made for content and paths). Published, it would be a record of an old
///   link, after a peer's later one (a delete, say) that every other device had already
///   taken and would never give up for it. It is marked passed
///   ([`FileState::local_passed`]): the winner is installed over it, through the versions
///   store, as already happens when the two changes are concurrent (the document keeps the
///   descendant).
///
/// Then, of the rest, it marks files whose two versions changed different things since their
/// fork point in the chains ([`merge_of`]).
///
/// Plain local changes (the winner is the base) and plain remote ones (the local version is
/// the base, at the winner's path) are skipped before any chain is read: this runs every
/// round. A file's chain is read at most once.
fn settle_by_chains(
    index: &Index,
    doc: &Doc,
    ctx: &Context<'_>,
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<(), crate::index::Error> {
    let merges = !ctx.authority.is_some_and(|a| a.orders());
    for (id, f) in files.iter_mut() {
        let Some(local) = &f.local else { continue };
        let Some(w) = plan::winner(&f.remote) else {
            continue;
        };
        let w = &w.record;
        let (local_digest, w_digest) = (local.digest(), w.digest());
        if f.local_passed || local_digest == w_digest || local.chain_head == w.chain_head {
            continue;
        }
        let mut links = None;
        if f.base != Some(local_digest) && f.base != Some(w_digest) {
            let local_links = index.chain_links(&ctx.folder.id, id)?;
            if local_links.iter().any(|(_, head)| *head == w.chain_head) {
                tracing::debug!(
                    folder = %ctx.folder.id,
                    "{}: its version {} is an ancestor of the local one: agreed on it before",
                    local.path,
                    w.seq
                );
                f.base = Some(w_digest);
                continue;
            }
            if super::recover::goes_through(&lock(doc), local.chain_head, w) {
                tracing::debug!(
                    folder = %ctx.folder.id,
                    "{}: the document's version {} follows the local one: installed over it",
                    local.path,
                    w.seq
                );
                f.local_passed = true;
                continue;
            }
            links = Some(local_links);
        }
        if !merges || !may_merge(f.base, (local, local_digest), w) {
            continue;
        }
        let links = match links {
            Some(links) => links,
            None => index.chain_links(&ctx.folder.id, id)?,
        };
        f.merge = merge_of(&lock(doc), ctx, local, w, &links);
        if let Some(how) = f.merge {
            tracing::debug!(
                folder = %ctx.folder.id,
                "{}: a move and an edit made at once: merged ({how:?})",
                local.path
            );
        }
    }
    Ok(())
}

/// Whether a file's local version and winner could be a move and an edit to merge, before
/// any chain is read. Files only: a directory has no content to merge, and a link's target is
/// its content. A merge puts the file where one side moved it, so the paths differ, unless
/// this device made the merge and has not published it yet ([`Merge::Made`]).
fn may_merge(base: Option<Digest>, (local, local_digest): (&Record, Digest), w: &Record) -> bool {
    !local.deleted
        && !w.deleted
        && local.kind == EntryKind::File
        && w.kind == EntryKind::File
        && (local.path != w.path
            || (local.content_root != w.content_root && base != Some(local_digest)))
}

/// How the local version and the winner merge, if one of them only moved the file and the
/// other only changed its content since the last version both chains hold (their fork point):
/// compared by content root and path commitment with that version. `links` is the local chain.
/// Not in ordered folders (the caller's check), where the bridge lets only one of two changes
/// after one version through (the other is a conflict copy, as the bridge decided).
fn merge_of(
    doc: &FolderDoc,
    ctx: &Context<'_>,
    local: &Record,
    w: &Record,
    links: &[(Entry, ChainHash)],
) -> Option<Merge> {
    if links.last().map(|(_, head)| *head) != Some(local.chain_head) {
        return None;
    }
    let local_heads: HashMap<ChainHash, &Entry> =
        links.iter().map(|(e, head)| (*head, e)).collect();
    let fork = super::recover::chain_back(doc, w)
        .find_map(|head| local_heads.get(&head).copied())
        .filter(|e| e.op != Op::Delete)?;
    let commit = |path: &str| ctx.folder.keys.commit_path(path);
    let moved = |r: &Record| commit(&r.path) != fork.path;
    let edited = |r: &Record| r.content_root != fork.content_root;
    let how = match (moved(local), edited(local), moved(w), edited(w)) {
        (true, false, false, true) => Merge::KeepLocalPath,
        (false, true, true, false) => Merge::TakeWinnerPath,
        (true, true, true, false) if local.path == w.path => return Some(Merge::Made),
        _ => return None,
    };
    // Both other merges go through the winner's path (one moves the file there, the other
    // installs it there first): held here by something else, it is left to the path rules,
    // which see only the winner there, so no merge (a conflict copy, as before).
    fs::symlink_metadata(ctx.folder.root.join(&w.path))
        .is_err()
        .then_some(how)
}

/// Whether the index's chain of the journaled file goes through the journaled version.
fn chain_holds(
    index: &Index,
    ctx: &Context<'_>,
    e: &super::journal::Entry,
) -> Result<bool, crate::index::Error> {
    Ok(index
        .chain_links(&ctx.folder.id, &e.file_id)?
        .iter()
        .any(|(_, head)| *head == e.head))
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// The folder document could not be saved.
    #[error(transparent)]
    Doc(#[from] super::doc::Error),
    /// The install journal could not be read.
    #[error("the install journal: {0}")]
    Journal(std::io::Error),
    /// The folder's root or its `.harp` marker is missing.
    #[error("{} or its .harp marker is missing (unmounted or moved?): not syncing it", .0.display())]
    FolderMissing(std::path::PathBuf),
}

/// Values of one file that an other value's chain already passed through are history, not
/// rivals: a device that re-put an old winner concurrently with the author's next change must
/// not bring the old version back.
fn drop_ancestors(doc: &FolderDoc, values: &mut Vec<Candidate>) {
    let heads: HashSet<ChainHash> = values.iter().map(|c| c.record.chain_head).collect();
    let mut passed = HashSet::new();
    for c in values.iter() {
        let mut head = c.record.chain_head;
        for _ in 0..c.record.seq {
            let Some((prev, _)) = doc.entry(&head) else {
                break;
            };
            if heads.contains(&prev) {
                passed.insert(prev);
            }
            head = prev;
        }
    }
    values.retain(|c| !passed.contains(&c.record.chain_head));
}

/// Whether the folder's file system folds case (see [`Folder::file_system`]).
pub fn names_of(folder: &Folder) -> plan::Names {
    if folder.file_system().case_insensitive {
        plan::Names::CaseInsensitive
    } else {
        plan::Names::CaseSensitive
    }
}

fn depth(path: &str) -> usize {
    path.matches('/').count()
}

fn describe(a: &Action) -> (&'static str, String) {
    match a {
        Action::Publish { record, .. } => ("publish", record.path.clone()),
        Action::Adopt { id, .. } => ("adopt", id.to_string()),
        Action::Install { record, .. } => ("install", record.path.clone()),
        Action::KeepConflict { local, .. } => ("conflict", local.path.clone()),
        Action::Yield { local, .. } => ("yield", local.path.clone()),
        Action::Merge { local, .. } => ("merge", local.path.clone()),
        Action::Refuse { path, .. } => ("refuse", path.clone()),
        Action::Discard { local, .. } => ("discard", local.path.clone()),
        Action::Override { winner, local, .. } => (
            "override",
            local.as_ref().map_or(&winner.path, |l| &l.path).clone(),
        ),
    }
}

/// Puts the local chain's links and the record into the document.
fn publish(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    record: &Record,
    pending: &mut Vec<(FileId, Digest)>,
) -> Result<(), Defer> {
    if let Some(authority) = ctx.authority.filter(|a| a.orders()) {
        claim_links(index, doc, ctx, authority, id)?;
    }
    put_links(index, doc, ctx, id)?;
    lock(doc).put_record(id, record)?;
    // The base is recorded once the document holding the record is saved (end of round): a
    // base ahead of the saved document would, after a crash, read as "the peer went back".
    pending.push((*id, record.digest()));
    Ok(())
}

/// Claims, oldest first, every link of the local chain of `id` that the document does not
/// hold yet (in an ordered folder the document holds only claimed links).
fn claim_links(
    index: &Index,
    doc: &Doc,
    ctx: &Context<'_>,
    authority: &dyn Authority,
    id: &FileId,
) -> Result<(), Defer> {
    let links = index.chain_links(&ctx.folder.id, id)?;
    let mut prev = chain::genesis(&ctx.folder.id, id, &ctx.folder.keys.chain_seed);
    for (entry, head) in &links {
        if lock(doc).entry(head).is_none() {
            match authority.claim(id, &prev, entry, head) {
                Ok(Claim::Accepted) => {}
                Ok(Claim::Lost(now)) => return Err(Defer::Lost(now)),
                Err(e) => return Err(later(format!("waiting for the bridge to order it: {e}"))),
            }
        }
        prev = *head;
    }
    Ok(())
}

/// A claim was lost: the version another device got in first wins. Once its record is in the
/// document, the local version is kept as a conflict copy and the winner installed; until
/// then the local file stays as it is, unpublished.
#[allow(clippy::too_many_arguments)] // the round's state and the lost claim
fn lost_claim(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    local: &Record,
    head: Option<ChainHash>,
    report: &mut Report,
    journal: &mut InstallJournal,
    pending: &mut Vec<(FileId, Digest)>,
) -> Result<(), Defer> {
    let winner = lock(doc)
        .files()
        .remove(id)
        .unwrap_or_default()
        .into_iter()
        .find(|r| Some(r.chain_head) == head);
    match winner {
        // A directory deleted elsewhere while files still live in it: made again, on top of
        // the delete (it could not be removed here, and a deleter that never installs those
        // files, a send-only one, would never make it again).
        Some(w)
            if w.deleted
                && w.kind == EntryKind::Directory
                && local.kind == EntryKind::Directory
                && !local.deleted
                && lives_below(doc, &local.path) =>
        {
            override_with(index, doc, ctx, id, (Some(local), &w), pending)
        }
        Some(w) => {
            tracing::info!(folder = %ctx.folder.id, "{}: another device's version was first on the bridge", local.path);
            keep_conflict(index, doc, ctx, id, (local, &w), false, report, journal)
        }
        None => Err(later(format!(
            "another device's version of {} is first on the bridge; waiting for it",
            local.path
        ))),
    }
}

/// Whether the document holds a file below directory `dir` that is live in all its values.
fn lives_below(doc: &Doc, dir: &str) -> bool {
    let prefix = format!("{dir}/");
    lock(doc).files().values().any(|values| {
        values.iter().all(|r| !r.deleted) && values.iter().any(|r| r.path.starts_with(&prefix))
    })
}

/// Puts every link of the local chain of `id` into the document (idempotent).
fn put_links(index: &Index, doc: &Doc, ctx: &Context<'_>, id: &FileId) -> Result<(), Defer> {
    let links = index.chain_links(&ctx.folder.id, id)?;
    let mut prev = chain::genesis(&ctx.folder.id, id, &ctx.folder.keys.chain_seed);
    let mut doc = lock(doc);
    for (entry, head) in &links {
        doc.put_entry(&prev, entry, head)?;
        prev = *head;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
