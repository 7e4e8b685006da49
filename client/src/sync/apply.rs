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
//!    together by one `syncfs`, see `build_ahead`).
//! 3. **Check the target right before the rename**: the path must hold what the index says
//!    (a file changed since the last scan is never replaced: the next scan records the change
//!    and the planner turns it into a conflict), and every parent must be a real directory
//!    inside the folder (a symlinked parent could lead outside it).
//! 4. **Keep the old version** (overwrite or delete) in the versions store, rename the temp
//!    file into place, set mode and mtime, and record it all in one index transaction.
//!
//! A kill -9 at any step leaves either the old file or the new one under the final name,
//! never a partial one; the next round sees what is on disk and goes on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use ed25519_dalek::SigningKey;
use harp_protocol::blob::{BlobKind, CheckedBlob};
use harp_protocol::chain::{self, ChainTip, Change, Entry, Op};
use harp_protocol::ids::{ChainHash, ChunkId, DeviceId, FileId};
use harp_protocol::manifest::{ChunkRef, EntryKind, Node};
use harp_protocol::record::{Digest, Record};
use unicode_normalization::is_nfc;

use super::doc::FolderDoc;
use super::journal::InstallJournal;

/// The folder document, shared with the metadata sessions: locked only for short reads and
/// writes, never across a fetch (the sessions run on the network's threads).
pub type Doc = std::sync::Mutex<FolderDoc>;

pub(super) fn lock(doc: &Doc) -> std::sync::MutexGuard<'_, FolderDoc> {
    doc.lock().unwrap_or_else(|e| e.into_inner())
}
use super::plan::{self, Action, Candidate, FileState, Merge};
use crate::chunk;
use crate::index::{ChunkLoc, ChunkTag, FileRow, Index};
use crate::scan::Folder;
use crate::store;

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

/// A fetcher in front of another that first answers from blobs fetched ahead for the round.
struct Prefetched<'a> {
    inner: &'a dyn Fetcher,
    blobs: std::sync::Mutex<HashMap<ChunkId, CheckedBlob>>,
}

impl Prefetched<'_> {
    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkId, CheckedBlob>> {
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Fetcher for Prefetched<'_> {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        let mut rest = Vec::new();
        for id in ids {
            let hit = self.blobs().get(&id).cloned();
            match hit {
                Some(b) => sink(b)?,
                None => rest.push(id),
            }
        }
        if rest.is_empty() {
            return Ok(rest);
        }
        self.inner.fetch(rest, sink)
    }
}

/// The most bytes of small files' chunks fetched ahead at once (a window of installs).
const PREFETCH_BUDGET: u64 = 16 << 20;
/// The most files in one window of installs fetched ahead together.
const PREFETCH_FILES: usize = 2048;
/// How many of a record's newest chain links the preparing thread checks ahead.
const VERIFY_AHEAD_LINKS: u64 = 4;
/// Files up to this size have their chunks fetched ahead (bigger ones stream to disk).
const PREFETCH_FILE_MAX: u64 = 4 << 20;

/// Fetches, in a few batched requests instead of two round trips per file, the manifest nodes
/// of every version about to be installed and the chunks of the small ones.
fn prefetch(index: &Index, ctx: &Context<'_>, records: &[&Record], into: &Prefetched<'_>) {
    let keys = &ctx.folder.keys;
    let mut level: Vec<(ChunkId, bool)> = records
        .iter()
        .map(|r| (r.content_root.into(), r.size <= PREFETCH_FILE_MAX))
        .collect();
    let mut chunks = Vec::new();
    while !level.is_empty() {
        let missing: Vec<ChunkId> = level
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !matches!(index.manifest_node(id), Ok(Some(_))))
            .collect();
        if !missing.is_empty() {
            let mut got = Vec::new();
            if into
                .inner
                .fetch(missing, &mut |b| {
                    got.push((b.id(), b));
                    Ok(())
                })
                .is_err()
            {
                return;
            }
            into.blobs().extend(got);
        }
        let mut next = Vec::new();
        for (id, small) in &level {
            let blob = match index.manifest_node(id) {
                Ok(Some(b)) => b,
                _ => match into.blobs().get(id) {
                    Some(b) => b.bytes().to_vec(),
                    None => continue,
                },
            };
            match Node::open(keys, id, &blob) {
                Ok(Node::Leaf(refs)) if *small => chunks.extend(refs),
                Ok(Node::Inner { children, .. }) => {
                    next.extend(children.iter().map(|c| (c.id, *small)));
                }
                _ => {}
            }
        }
        level = next;
    }
    let mut budget = PREFETCH_BUDGET;
    let mut seen = HashSet::new();
    chunks.retain(|c| seen.insert(c.id));
    // Chunks some local file holds are copied from it, not fetched: one query per 500 ids.
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    let Ok(known) = index.known_chunks(&ctx.folder.id, &ids) else {
        return;
    };
    let wanted: Vec<ChunkId> = chunks
        .into_iter()
        .filter(|c| !known.contains(&c.id))
        .take_while(|c| {
            budget = budget.saturating_sub(u64::from(c.len));
            budget > 0
        })
        .map(|c| c.id)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let mut got = Vec::new();
    if into
        .inner
        .fetch(wanted, &mut |b| {
            got.push((b.id(), b));
            Ok(())
        })
        .is_ok()
    {
        into.blobs().extend(got);
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
    /// Bytes written from chunks found locally.
    pub reused_bytes: u64,
    /// Actions put off to a later round, with why.
    pub deferred: Vec<(String, String)>,
    /// Other devices' files this device cannot hold (not retried: nothing here changes it),
    /// with why.
    pub refused: Vec<(String, String)>,
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
    let mut pending: Vec<(FileId, Digest)> = Vec::new();
    let rows = index.files(&ctx.folder.id)?;
    let bases = index.sync_bases(&ctx.folder.id)?;
    let mut files: BTreeMap<FileId, FileState> = BTreeMap::new();
    for row in rows.values() {
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
    for (id, digest) in bases {
        if let Some(f) = files.get_mut(&id) {
            f.base = Some(digest);
        }
    }
    // A file replaced by another kind at the same path (a link became a directory) lost its
    // row to the new one, but its delete is in its chain: show it as a local tombstone, or the
    // delete would never be published and peers would keep the old entry in the way.
    // The same holds for a file this device gave up to an equal one (`yield_path`), when the
    // round was cut short before the document with its delete was saved and its base recorded.
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
        let Some(agreed) = agreed else {
            continue;
        };
        if agreed.record.deleted {
            continue;
        }
        if let Some((last, head)) = links.last()
            && last.op == harp_protocol::chain::Op::Delete
            && last.seq > agreed.record.seq
        {
            f.local = Some(Record {
                deleted: true,
                seq: last.seq,
                chain_head: *head,
                ..agreed.record.clone()
            });
            // (local_record's tombstone form: no content fields.)
            if let Some(l) = f.local.as_mut() {
                l.mode = 0;
                l.mtime_ns = 0;
                l.size = 0;
                l.content_root = harp_protocol::ids::ContentRoot::from_bytes([0; 32]);
            }
        }
    }
    // Versions a kill -9 left on disk unrecorded are told apart from edits made here, by the
    // install journal's entries that the index has not caught up with yet.
    if !journal.earlier().is_empty() {
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
    }
    let recognised = super::recover::recognise(index, doc, ctx, journal.earlier(), &mut files)?;
    if recognised > 0 {
        tracing::info!(
            folder = %ctx.folder.id,
            "{recognised} files hold versions received before a restart: installing on top"
        );
    }
    settle_by_chains(index, doc, ctx, &mut files)?;
    let mut actions = plan::plan(&me, &files, names_of(ctx.folder));
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
    drop(rows);
    // Order: settle path collisions and conflicts first, then publish, then install deletes
    // and renames before new content, parents before children.
    actions.sort_by_key(|a| match a {
        Action::Yield { .. } | Action::Refuse { .. } => (0, 0, 0),
        Action::KeepConflict { .. } => (1, 0, 0),
        Action::Publish { .. } | Action::Adopt { .. } => (2, 0, 0),
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
    let cached = Prefetched {
        inner: ctx.fetcher,
        blobs: Default::default(),
    };
    let to_fetch: Vec<Record> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Install { record, .. }
            | Action::KeepConflict { winner: record, .. }
            | Action::Merge {
                winner: record,
                how: Merge::KeepLocalPath,
                ..
            } if !record.deleted && record.kind != EntryKind::Directory => Some(record.clone()),
            _ => None,
        })
        .collect();
    // Windows of installs whose blobs are fetched together (bounded memory).
    let mut windows: Vec<Vec<Record>> = Vec::new();
    let mut window_of: HashMap<Digest, usize> = HashMap::new();
    let mut bytes = 0u64;
    for r in to_fetch {
        if windows.is_empty()
            || bytes + r.size.min(PREFETCH_FILE_MAX) > PREFETCH_BUDGET
            || windows.last().is_some_and(|w| w.len() >= PREFETCH_FILES)
        {
            windows.push(Vec::new());
            bytes = 0;
        }
        bytes += r.size.min(PREFETCH_FILE_MAX);
        window_of.insert(r.digest(), windows.len() - 1);
        if let Some(w) = windows.last_mut() {
            w.push(r);
        }
    }
    let parts = Parts {
        folder: ctx.folder,
        device: ctx.device,
        members: ctx.members,
        fetcher: ctx.fetcher,
        doc,
    };
    // With more than one window to fetch, the next one is fetched and built on a second index
    // connection while the current one installs.
    let preparer = if windows.iter().filter(|w| w.len() > 1).count() > 1 {
        index.reopen()?
    } else {
        None
    };
    std::thread::scope(|s| {
        let mut ahead = preparer.map(|prep_index| {
            let (tx, rx) = std::sync::mpsc::sync_channel(0);
            let windows = &windows;
            s.spawn(move || {
                for (w, window) in windows.iter().enumerate() {
                    if tx.send(prepare(&prep_index, &parts, w, window)).is_err() {
                        return;
                    }
                }
            });
            Ahead { rx, next: 0 }
        });
        let mut current_window = None;
        let mut window_started: Option<std::time::Instant> = None;
        let mut built: HashMap<Digest, Built> = HashMap::new();
        let mut verified: HashSet<ChainHash> = HashSet::new();
        let round_ctx = Context {
            fetcher: &cached,
            ..*ctx
        };
        let ctx = &round_ctx;
        let mut report = Report::default();
        for action in actions {
            let due = match &action {
                Action::Install { record, .. }
                | Action::KeepConflict { winner: record, .. }
                | Action::Merge {
                    winner: record,
                    how: Merge::KeepLocalPath,
                    ..
                } => window_of.get(&record.digest()).copied(),
                _ => None,
            };
            if let Some(w) = due
                && current_window != Some(w)
            {
                cached.blobs().clear();
                built.clear();
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
                    .unwrap_or_else(|| prepare(index, &parts, w, &windows[w]));
                window_started = Some(std::time::Instant::now());
                tracing::debug!(
                    folder = %ctx.folder.id,
                    "window {w} ready after {:.3} s waiting",
                    waiting.elapsed().as_secs_f64()
                );
                *cached.blobs() = ready.blobs;
                built = ready.built;
                verified = ready.verified;
                current_window = Some(w);
            }
            // Installs of files new here commit in batches (a kill -9 that loses one is
            // recovered from: see `super::recover`); anything else commits the batch first.
            if !matches!(&action, Action::Install { resolve: false, record, .. } if !record.deleted)
            {
                index.end_batch()?;
            }
            let mut what = describe(&action);
            let result = match action {
                Action::Publish { id, record } => {
                    match publish(index, doc, ctx, &id, &record, &mut pending) {
                        Err(Defer::Lost(head)) => {
                            what.0 = "keep a conflict copy of";
                            lost_claim(
                                index,
                                doc,
                                ctx,
                                &id,
                                &record,
                                head,
                                &mut report,
                                &mut journal,
                            )
                        }
                        other => other,
                    }
                }
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
                        index,
                        doc,
                        ctx,
                        &id,
                        &record,
                        &mut report,
                        &mut journal,
                        prebuilt,
                        &verified,
                    )
                }
                .and_then(|()| {
                    if resolve {
                        lock(doc).put_record(&id, &record)?;
                    }
                    Ok(())
                }),
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
                    &mut report,
                    &mut journal,
                ),
                Action::Refuse { path, kept, .. } => {
                    let why = format!(
                        "differs from {kept} only by case, which this file system cannot \
                         hold apart: it stays on the devices that can"
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
                    // The winner's content first (over the local version, which goes to the
                    // versions store like any replaced one), then back to this device's path.
                    let prebuilt = built.remove(&winner.digest());
                    install(
                        index,
                        doc,
                        ctx,
                        &id,
                        &winner,
                        &mut report,
                        &mut journal,
                        prebuilt,
                        &verified,
                    )
                    .and_then(|()| {
                        move_signed(
                            index,
                            doc,
                            ctx,
                            &id,
                            (&winner.path, &local.path),
                            &mut pending,
                        )
                    })
                }
                Action::Merge {
                    id,
                    local,
                    how: Merge::Made,
                    ..
                } => publish(index, doc, ctx, &id, &local, &mut pending),
                Action::Merge {
                    id,
                    local,
                    winner,
                    how: Merge::TakeWinnerPath,
                } => move_signed(
                    index,
                    doc,
                    ctx,
                    &id,
                    (&local.path, &winner.path),
                    &mut pending,
                ),
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
                    &mut pending,
                ),
            };
            match result {
                Ok(()) => match what.0 {
                    // (A merge and a yield publish what they did, too.)
                    "publish" | "merge" | "yield" => report.published += 1,
                    "install" => report.installed += 1,
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
        if !pending.is_empty() {
            index.write(|w| {
                for (id, digest) in &pending {
                    w.set_base(&ctx.folder.id, id, digest)?;
                }
                Ok(())
            })?;
        }
        // Every install that reached the index is committed now: the journal keeps the rest,
        // and what earlier rounds left unless this round recorded that version (a later
        // agreement is seen at the next round's start).
        let settled = journal.settle(|e| Ok(!chain_holds(index, ctx, e)?));
        match settled {
            Ok(0) => {}
            Ok(kept) => tracing::debug!(
                folder = %ctx.folder.id,
                "install journal: {kept} installs not recorded yet"
            ),
            Err(e) => tracing::warn!(folder = %ctx.folder.id, "{e}: kept as it was"),
        }
        Ok(report)
    })
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
) -> Result<(), Defer> {
    let winner = lock(doc)
        .files()
        .remove(id)
        .unwrap_or_default()
        .into_iter()
        .find(|r| Some(r.chain_head) == head);
    match winner {
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

/// The verified links from the local chain (or genesis) to `record`'s head, oldest first,
/// and the seq they start after.
pub(super) fn remote_links(
    index: &Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    record: &Record,
    verified: &HashSet<ChainHash>,
) -> Result<(u64, Vec<(Entry, ChainHash)>), Defer> {
    let local: HashMap<ChainHash, u64> = index
        .chain_links(&ctx.folder.id, id)?
        .into_iter()
        .map(|(e, h)| (h, e.seq))
        .collect();
    let genesis = chain::genesis(&ctx.folder.id, id, &ctx.folder.keys.chain_seed);
    let mut links = Vec::new();
    let mut head = record.chain_head;
    let joined_at = loop {
        if let Some(seq) = local.get(&head) {
            break *seq;
        }
        if head == genesis {
            break 0;
        }
        if links.len() as u64 >= record.seq {
            return Err(Defer::Refused(format!(
                "the chain of {} is longer than its record says",
                record.path
            )));
        }
        let Some((prev, entry)) = lock(doc).entry(&head) else {
            return Err(later(format!(
                "chain entries of {} have not arrived",
                record.path
            )));
        };
        if entry.folder != ctx.folder.id || entry.file != *id {
            return Err(Defer::Refused(format!(
                "a chain entry of {} belongs to another file",
                record.path
            )));
        }
        if chain::link(&prev, &entry.encode()) != head {
            return Err(Defer::Refused(format!(
                "a chain link of {} does not hash to its key",
                record.path
            )));
        }
        if !ctx.members.contains(&entry.author) {
            return Err(Defer::Refused(format!(
                "{} was changed by {}, which is not a member of the folder",
                record.path, entry.author
            )));
        }
        if !verified.contains(&head) {
            entry
                .verify_signature(&prev)
                .map_err(|e| Defer::Refused(format!("{}: {e}", record.path)))?;
        }
        links.push((entry, head));
        head = prev;
    };
    links.reverse();
    // Contiguous seqs from the join point, and the last entry says what the record says.
    for (i, (e, _)) in links.iter().enumerate() {
        if e.seq != joined_at + 1 + i as u64 {
            return Err(Defer::Refused(format!(
                "the chain of {} skips from {} to {}",
                record.path,
                joined_at + i as u64,
                e.seq
            )));
        }
    }
    let last_seq = links.last().map(|(e, _)| e.seq).unwrap_or(joined_at);
    if last_seq != record.seq {
        return Err(Defer::Refused(format!(
            "the record of {} says seq {} but its chain ends at {last_seq}",
            record.path, record.seq
        )));
    }
    if let Some((e, _)) = links.last() {
        let path_ok = e.path == ctx.folder.keys.commit_path(&record.path);
        let content_ok = if record.deleted {
            e.op == Op::Delete
        } else {
            e.op != Op::Delete && e.content_root == record.content_root && e.size == record.size
        };
        if !path_ok || !content_ok {
            return Err(Defer::Refused(format!(
                "the record of {} does not match its last chain entry",
                record.path
            )));
        }
    }
    Ok((joined_at, links))
}

/// Whether the disk still holds what the index row says (nothing changed since the scan).
fn disk_matches(folder: &Folder, row: &FileRow) -> bool {
    let Ok(m) = fs::symlink_metadata(folder.root.join(&row.path)) else {
        return false;
    };
    match row.kind {
        EntryKind::Directory => m.is_dir(),
        EntryKind::Symlink => m.file_type().is_symlink() && m.ino() == row.inode,
        EntryKind::File => {
            m.is_file()
                && m.len() == row.size
                && m.ino() == row.inode
                && m.dev() == row.dev
                && m.mtime() * 1_000_000_000 + m.mtime_nsec() == row.mtime_ns
        }
    }
}

/// Makes sure every parent of `rel` is a real directory inside the folder (creating missing
/// ones): a symlink or a file where a directory should be stops the install.
fn prepare_parents(folder: &Folder, rel: &str) -> Result<(), Defer> {
    let mut dir = folder.root.clone();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(later(format!(
                    "{} is not a directory here",
                    dir.strip_prefix(&folder.root).unwrap_or(&dir).display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What preparing a window needs of the round's context: all of it can be shared with the
/// thread that prepares the next window.
#[derive(Clone, Copy)]
struct Parts<'a> {
    folder: &'a Folder,
    device: &'a SigningKey,
    members: &'a HashSet<DeviceId>,
    fetcher: &'a dyn Fetcher,
    doc: &'a Doc,
}

/// A window of installs made ready: its blobs fetched, its small files built.
struct Ready {
    window: usize,
    blobs: HashMap<ChunkId, CheckedBlob>,
    built: HashMap<Digest, Built>,
    /// Chain links whose signatures checked (see [`verify_ahead`]).
    verified: HashSet<ChainHash>,
}

/// Fetches a window's blobs and builds its small files (nothing for a window of one file:
/// its install fetches what it needs itself).
fn prepare(index: &Index, parts: &Parts<'_>, window: usize, records: &[Record]) -> Ready {
    let cache = Prefetched {
        inner: parts.fetcher,
        blobs: Default::default(),
    };
    let mut built = HashMap::new();
    let started = std::time::Instant::now();
    let mut fetched_at = started;
    if records.len() > 1 {
        let ctx = Context {
            folder: parts.folder,
            device: parts.device,
            members: parts.members,
            fetcher: &cache,
            authority: None,
        };
        let refs: Vec<&Record> = records.iter().collect();
        prefetch(index, &ctx, &refs, &cache);
        fetched_at = std::time::Instant::now();
        built = build_ahead(index, &ctx, &refs);
    }
    let built_at = std::time::Instant::now();
    // What is built is on disk: only the blobs of what was not built stay in memory.
    let mut blobs = cache.blobs.into_inner().unwrap_or_else(|e| e.into_inner());
    for b in built.values() {
        for c in &b.locs {
            blobs.remove(&c.id);
        }
    }
    let verified = verify_ahead(parts.doc, records);
    tracing::debug!(
        folder = %parts.folder.id,
        "window {window} of {} files prepared: fetch {:.3} s, build {:.3} s, signatures {:.3} s",
        records.len(),
        (fetched_at - started).as_secs_f64(),
        (built_at - fetched_at).as_secs_f64(),
        built_at.elapsed().as_secs_f64(),
    );
    Ready {
        window,
        blobs,
        built,
        verified,
    }
}

/// The newest links of each record's chain (at most [`VERIFY_AHEAD_LINKS`]) whose entry hashes
/// to the link and whose signature checks. The install still walks and checks every link
/// (hash, author, sequence, what the last one says) but skips the signatures found here: a
/// link is a hash of the entry and the link before it, so the same link is the same signed
/// bytes. Done by the preparing thread, it takes an Ed25519 check per file off the installs.
fn verify_ahead(doc: &Doc, records: &[Record]) -> HashSet<ChainHash> {
    let mut verified = HashSet::new();
    for r in records {
        let mut head = r.chain_head;
        for _ in 0..r.seq.min(VERIFY_AHEAD_LINKS) {
            let Some((prev, entry)) = lock(doc).entry(&head) else {
                break;
            };
            if chain::link(&prev, &entry.encode()) != head || entry.verify_signature(&prev).is_err()
            {
                break;
            }
            verified.insert(head);
            head = prev;
        }
    }
    verified
}

/// The windows a second thread prepares, one ahead of the window being installed.
struct Ahead {
    rx: std::sync::mpsc::Receiver<Ready>,
    /// The window the preparer sends next.
    next: usize,
}

impl Ahead {
    /// Window `w` from the preparer, or `None` if it does not come any more (already passed,
    /// or the thread is gone): then the caller prepares it itself. Windows passed over are
    /// dropped with their temp files.
    fn take(&mut self, w: usize) -> Option<Ready> {
        while self.next <= w {
            let ready = self.rx.recv().ok()?;
            self.next = ready.window + 1;
            if ready.window == w {
                return Some(ready);
            }
        }
        None
    }
}

/// Manifest node blobs fetched from peers, to store in the index.
type Nodes = Vec<(ChunkId, Vec<u8>)>;

/// A version's content already written to a temp file that is on disk (synced), ahead of its
/// install: what `install` would otherwise build, with what building it counted.
struct Built {
    /// The temp file, durable, with the record's mode and mtime already set.
    path: tempfile::TempPath,
    locs: Vec<ChunkLoc>,
    nodes: Nodes,
    fetched: u64,
    reused: u64,
}

/// Builds the contents of a window of small files into temp files without an fsync each,
/// then makes them all durable with one `syncfs` of the folder's file system: one journal
/// commit instead of one per file (an fsync costs ~0.75 ms here, most of a small file's
/// install). Each is still on disk before its rename, so a crash never leaves a partial file
/// under its name. What cannot be built ahead (or if the sync fails) is built by `install`
/// as before; temp files not used are deleted when the window ends.
fn build_ahead(index: &Index, ctx: &Context<'_>, records: &[&Record]) -> HashMap<Digest, Built> {
    let mut built = HashMap::new();
    for r in records {
        if r.deleted || r.kind != EntryKind::File || r.size > PREFETCH_FILE_MAX {
            continue;
        }
        let mut counted = Report::default();
        if let Ok((tmp, locs, nodes)) = build_content(index, ctx, r, &mut counted, false) {
            // Mode and mtime now, through the open file: made durable by the same `syncfs`,
            // and the install is left with the rename.
            let mtime =
                std::time::UNIX_EPOCH + std::time::Duration::from_nanos(r.mtime_ns.max(0) as u64);
            let f = tmp.as_file();
            if f.set_permissions(fs::Permissions::from_mode(r.mode))
                .and_then(|()| f.set_modified(mtime))
                .is_err()
            {
                continue;
            }
            built.insert(
                r.digest(),
                Built {
                    path: tmp.into_temp_path(),
                    locs,
                    nodes,
                    fetched: counted.fetched_bytes,
                    reused: counted.reused_bytes,
                },
            );
        }
    }
    if built.is_empty() {
        return built;
    }
    let started = std::time::Instant::now();
    let synced = fs::File::open(store::temp_dir(ctx.folder))
        .and_then(|dir| rustix::fs::syncfs(&dir).map_err(std::io::Error::from));
    tracing::debug!(
        folder = %ctx.folder.id,
        "syncfs of a window of {} files: {:.3} s",
        built.len(),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = synced {
        tracing::warn!(folder = %ctx.folder.id, "syncfs: {e}; installing file by file");
        built.clear();
    }
    built
}

/// The manifest nodes and chunk list of a version, fetching missing nodes level by level.
fn chunk_list(
    index: &Index,
    ctx: &Context<'_>,
    record: &Record,
) -> Result<(Vec<ChunkRef>, Nodes), Defer> {
    let keys = &ctx.folder.keys;
    let mut fetched_nodes = Vec::new();
    let mut level: Vec<(ChunkId, Option<(u8, u64)>)> = vec![(record.content_root.into(), None)];
    let mut out = Vec::new();
    while !level.is_empty() {
        let mut blobs: HashMap<ChunkId, Vec<u8>> = HashMap::new();
        let mut missing = Vec::new();
        for (id, _) in &level {
            match index.manifest_node(id)? {
                Some(b) => {
                    blobs.insert(*id, b);
                }
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            let mut got = Vec::new();
            let left = ctx.fetcher.fetch(missing, &mut |b| {
                got.push((b.id(), b.into_bytes()));
                Ok(())
            })?;
            if !left.is_empty() {
                return Err(later(format!(
                    "{} manifest nodes of {} are on no connected peer",
                    left.len(),
                    record.path
                )));
            }
            for (id, b) in got {
                fetched_nodes.push((id, b.clone()));
                blobs.insert(id, b);
            }
        }
        let mut next = Vec::new();
        for (id, expect) in &level {
            let blob = blobs
                .get(id)
                .ok_or_else(|| later("a manifest node went missing"))?;
            let node = Node::open(keys, id, blob)
                .map_err(|e| Defer::Refused(format!("manifest of {}: {e}", record.path)))?;
            if let Some((lvl, bytes)) = expect
                && (node.level() != *lvl || node.bytes() != *bytes)
            {
                return Err(Defer::Refused(format!(
                    "manifest of {}: a node disagrees with its parent",
                    record.path
                )));
            }
            match node {
                Node::Leaf(chunks) => out.extend(chunks),
                Node::Inner { level, children } => {
                    next.extend(children.iter().map(|c| (c.id, Some((level - 1, c.bytes)))));
                }
            }
        }
        level = next;
    }
    let total: u64 = out.iter().map(|c| u64::from(c.len)).sum();
    if total != record.size {
        return Err(Defer::Refused(format!(
            "manifest of {} covers {total} bytes, its record says {}",
            record.path, record.size
        )));
    }
    Ok((out, fetched_nodes))
}

/// Starts the write-back of a temp file's pages every [`Writeback::EVERY`] bytes, so that the
/// fsync before its rename finds little left to write. Without it a large file's pages all wait
/// for that fsync (Linux starts flushing only past `dirty_background_ratio`, gigabytes on a
/// desktop), and the disk then works alone after the copy is done: rebuilding a 1 GiB file here
/// took 1.9-3.2 s with one fsync at the end and 0.9-1.0 s with a kick every 64 MiB (measured
/// with the same reads and writes; docs/benchmarks.md).
///
/// The kick is `posix_fadvise(DONTNEED)`, which on Linux starts write-back of the dirty range
/// without waiting for it. It also drops the pages already clean, so the next edit of the file
/// reads its previous version from the disk; an `fdatasync` on a thread of its own keeps them,
/// but made the rebuild of 1 GiB take 2.6-3.3 s instead of ~1 s (the copy waited on it).
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which starts the write-back and keeps the pages,
/// was measured too (session 11): on this machine (a VM whose host backs guest memory on
/// first touch, ~2.6 µs a page) a page cache that grows costs more than reading the previous
/// version from the disk, and the 4 KiB overwrite took 0.99-3.04 s against 0.95-1.11 s.
/// It only schedules work: durability still comes from the fsync (or syncfs) before the rename.
struct Writeback<'a> {
    file: &'a fs::File,
    on: bool,
    since: std::cell::Cell<u64>,
}

impl<'a> Writeback<'a> {
    const EVERY: u64 = 64 << 20;

    fn new(file: &'a fs::File, on: bool) -> Self {
        Self {
            file,
            on,
            since: std::cell::Cell::new(0),
        }
    }

    fn wrote(&self, bytes: u64) {
        if !self.on {
            return;
        }
        let since = self.since.get() + bytes;
        if since < Self::EVERY {
            self.since.set(since);
            return;
        }
        self.since.set(0);
        // Advice only: a file system that ignores it loses nothing but the head start.
        if let Err(e) = rustix::fs::fadvise(self.file, 0, None, rustix::fs::Advice::DontNeed) {
            tracing::debug!("fadvise: {e}");
        }
    }
}

/// Where each chunk of a file is: offset and length.
type ChunkRanges = HashMap<ChunkId, (u64, u32)>;

/// Contiguous bytes that the previous version of a file holds at `src` and the new one needs
/// at `dst`: read and written in one go, up to [`Run::MAX`], instead of chunk by chunk.
struct Run {
    src: u64,
    dst: u64,
    len: u64,
    ids: Vec<ChunkId>,
}

impl Run {
    const MAX: u64 = 4 << 20;

    /// Takes `next` in if it continues this run on both sides.
    fn extend(&mut self, next: &Run) -> bool {
        let fits = self.src + self.len == next.src
            && self.dst + self.len == next.dst
            && self.len + next.len <= Self::MAX;
        if fits {
            self.len += next.len;
            self.ids.extend_from_slice(&next.ids);
        }
        fits
    }

    /// Copies the run; if the previous version can no longer be read there (it shrank), its
    /// chunks are fetched instead.
    fn copy(
        self,
        from: &fs::File,
        to: &fs::File,
        buf: &mut Vec<u8>,
        writeback: &Writeback<'_>,
        report: &mut Report,
        remote: &mut Vec<ChunkId>,
    ) -> std::io::Result<()> {
        if self.move_bytes(from, to, buf)? {
            writeback.wrote(self.len);
            report.reused_bytes += self.len;
        } else {
            remote.extend(self.ids);
        }
        Ok(())
    }

    /// Moves the run's bytes; `false` if the previous version no longer holds them all.
    ///
    /// The copy is the kernel's (`copy_file_range`), so that a file system that shares blocks
    /// between files (btrfs, XFS with reflink) shares the unchanged ones instead of writing
    /// them again: an edit in place of a large file then costs the changed blocks, not a
    /// copy of the file. Blocks can be shared only where both sides are at the same offset
    /// within a block (an overwrite, an append; not what follows an insert), so such a run is
    /// cut at the first block boundary (without that cut btrfs copied 1 GiB in 3.1 s instead
    /// of sharing it in 6 ms). Elsewhere (ext4) the kernel copies, as fast as reading and
    /// writing here (measured); runs that cannot share blocks, and file systems without
    /// `copy_file_range`, go through a buffer here.
    fn move_bytes(
        &self,
        from: &fs::File,
        to: &fs::File,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        const BLOCK: u64 = 4096;
        let (mut src, mut dst, end) = (self.src, self.dst, self.src + self.len);
        if src % BLOCK != dst % BLOCK {
            // No block can be shared, and btrfs copies slower in the kernel than through
            // here (1 GiB: 3.3-5.1 s against 2.6 s; ext4: the same either way).
            return self.move_through(from, to, buf);
        }
        if src % BLOCK != 0 {
            let head = (BLOCK - src % BLOCK).min(self.len);
            if kernel_copy(from, &mut src, to, &mut dst, head).is_err() {
                return self.move_through(from, to, buf);
            }
        }
        while src < end {
            let left = end - src;
            match kernel_copy(from, &mut src, to, &mut dst, left) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(_) => return self.move_through(from, to, buf),
            }
        }
        Ok(true)
    }

    /// [`Run::move_bytes`] through a buffer here.
    fn move_through(
        &self,
        from: &fs::File,
        to: &fs::File,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        buf.resize(self.len as usize, 0);
        if from.read_exact_at(buf, self.src).is_err() {
            return Ok(false);
        }
        to.write_all_at(buf, self.dst)?;
        Ok(true)
    }
}

/// One `copy_file_range` of at most `len` bytes at `src` to `dst`, moving both on by what it
/// copied.
fn kernel_copy(
    from: &fs::File,
    src: &mut u64,
    to: &fs::File,
    dst: &mut u64,
    len: u64,
) -> std::io::Result<usize> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    Ok(rustix::fs::copy_file_range(
        from,
        Some(src),
        to,
        Some(dst),
        len,
    )?)
}

/// Defers a file that cannot fit on the folder's disk before anything is fetched for it: a
/// full disk would otherwise cost the whole file from the network on every retry, only to
/// fail writing it. (A disk that fills while the file is written still fails cleanly: the
/// temp file goes, the error is the file's reason to wait.)
fn enough_room(tmp_dir: &std::path::Path, record: &Record) -> Result<(), Defer> {
    let Ok(fs) = rustix::fs::statvfs(tmp_dir) else {
        return Ok(()); // no figure: let the writes tell
    };
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if record.size > free {
        const MB: f64 = 1e6;
        return Err(later(format!(
            "not enough free space: {} needs {:.1} MB, {:.1} MB free on the folder's disk",
            record.path,
            record.size as f64 / MB,
            free as f64 / MB
        )));
    }
    Ok(())
}

/// Writes the content of `record` into a new temp file; returns it and the chunk locations.
fn build_content(
    index: &Index,
    ctx: &Context<'_>,
    record: &Record,
    report: &mut Report,
    sync: bool,
) -> Result<(tempfile::NamedTempFile, Vec<ChunkLoc>, Nodes), Defer> {
    let started = std::time::Instant::now();
    let (chunks, nodes) = chunk_list(index, ctx, record)?;
    let listed = started.elapsed();
    let tmp_dir = store::temp_dir(ctx.folder);
    fs::create_dir_all(&tmp_dir)?;
    enough_room(&tmp_dir, record)?;
    let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
    tmp.as_file().set_len(record.size)?;
    let mut offsets: HashMap<ChunkId, Vec<(u64, u32)>> = HashMap::new();
    let mut locs = Vec::with_capacity(chunks.len());
    let mut offset = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        offsets.entry(c.id).or_default().push((offset, c.len));
        locs.push(ChunkLoc {
            idx: i as u32,
            offset,
            len: c.len,
            id: c.id,
            tag: None,
        });
        offset += u64::from(c.len);
    }
    let keys = &ctx.folder.keys;
    let file = tmp.as_file();
    let writeback = Writeback::new(file, sync);
    let put_plain = |id: ChunkId, plain: &[u8], counter: &mut u64| -> std::io::Result<()> {
        for (off, len) in offsets.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            if plain.len() != *len as usize {
                return Err(std::io::Error::other(format!(
                    "chunk {id} has {} bytes, the manifest says {len}",
                    plain.len()
                )));
            }
            file.write_all_at(plain, *off)?;
            writeback.wrote(u64::from(*len));
            *counter += u64::from(*len);
        }
        Ok(())
    };
    // Each chunk's tag, for the rows: a rescan after a local edit then finds the unchanged
    // chunks where they are (chunk::KnownChunks) instead of cutting and sealing them again.
    let tags: std::cell::RefCell<HashMap<ChunkId, ChunkTag>> = Default::default();
    let write = |sealed: CheckedBlob, counter: &mut u64| -> std::io::Result<()> {
        let (id, nonce) = (sealed.id(), sealed.nonce());
        let plain = sealed
            .into_plaintext(keys, BlobKind::Chunk)
            .map_err(|e| std::io::Error::other(format!("chunk {id}: {e}")))?;
        // The blob opened, so its nonce is the tag's prefix.
        if let Some(tag) = nonce {
            tags.borrow_mut().insert(id, tag);
        }
        put_plain(id, &plain, counter)
    };
    // Chunks this device already has: straight from a local file that is unchanged since its
    // scan (the scanner's own trust: size, mtime, inode), else re-made and checked against
    // the id, else fetched.
    let reused_before = report.reused_bytes;
    let mut unchanged: HashMap<String, Option<fs::File>> = HashMap::new();
    let open_unchanged = |path: &str| -> Result<Option<fs::File>, Defer> {
        Ok(index
            .file(&ctx.folder.id, path)?
            .filter(|r| !r.deleted && r.kind == EntryKind::File && disk_matches(ctx.folder, r))
            .and_then(|_| fs::File::open(ctx.folder.root.join(path)).ok()))
    };
    // The version this one replaces holds most chunks of an edit: its chunk list is read once,
    // not looked up chunk by chunk (13,456 queries for a 1 GiB file).
    let previous: Option<(fs::File, ChunkRanges)> =
        match index.file(&ctx.folder.id, &record.path)? {
            Some(row) if !row.deleted && row.kind == EntryKind::File => {
                match open_unchanged(&record.path)? {
                    Some(f) => {
                        let rows = index.chunks(&ctx.folder.id, &row.file_id)?;
                        let held = rows.iter().map(|c| (c.id, (c.offset, c.len))).collect();
                        tags.borrow_mut()
                            .extend(rows.iter().filter_map(|c| Some((c.id, c.tag?))));
                        Some((f, held))
                    }
                    None => None,
                }
            }
            _ => None,
        };
    let elsewhere: Vec<ChunkId> = offsets
        .keys()
        .filter(|id| {
            !previous
                .as_ref()
                .is_some_and(|(_, held)| held.contains_key(id))
        })
        .copied()
        .collect();
    let elsewhere = index.known_chunks(&ctx.folder.id, &elsewhere)?;
    let mut plain = Vec::new();
    let mut remote = Vec::new();
    // In file order, so that the writes (and their early write-back) run front to back.
    let mut seen = HashSet::with_capacity(offsets.len());
    let mut run: Option<Run> = None;
    for id in chunks.iter().map(|c| &c.id).filter(|id| seen.insert(**id)) {
        if let Some((f, held)) = &previous
            && let Some(&(off, len)) = held.get(id)
        {
            // Unchanged stretches of the previous version are copied a run at a time.
            if let Some(&[(dst, dst_len)]) = offsets.get(id).map(Vec::as_slice)
                && dst_len == len
            {
                let next = Run {
                    src: off,
                    dst,
                    len: u64::from(len),
                    ids: vec![*id],
                };
                let extended = run.as_mut().is_some_and(|r| r.extend(&next));
                if !extended && let Some(r) = run.replace(next) {
                    r.copy(f, file, &mut plain, &writeback, report, &mut remote)?;
                }
                continue;
            }
            if let Some(r) = run.take() {
                r.copy(f, file, &mut plain, &writeback, report, &mut remote)?;
            }
            plain.resize(len as usize, 0);
            if f.read_exact_at(&mut plain, off).is_ok() {
                put_plain(*id, &plain, &mut report.reused_bytes)?;
                continue;
            }
        }
        if !elsewhere.contains(id) {
            remote.push(*id);
            continue;
        }
        // Elsewhere in the folder: a file range that held it at its last scan, if that file
        // is unchanged since; a symlink's target re-made and checked against the id.
        let mut done = false;
        let mut other_kinds = Vec::new();
        for range in index.locate_chunk(&ctx.folder.id, id)? {
            if range.kind != EntryKind::File {
                other_kinds.push(range);
                continue;
            }
            if !unchanged.contains_key(&range.path) {
                let open = open_unchanged(&range.path)?;
                unchanged.insert(range.path.clone(), open);
            }
            let Some(Some(f)) = unchanged.get(&range.path) else {
                continue;
            };
            plain.resize(range.len as usize, 0);
            if f.read_exact_at(&mut plain, range.offset).is_ok() {
                put_plain(*id, &plain, &mut report.reused_bytes)?;
                tags.borrow_mut()
                    .insert(*id, chunk::tag_of(&ctx.folder.keys, &plain));
                done = true;
                break;
            }
        }
        if done {
            continue;
        }
        let location = chunk::BlobLocation::Ranges(other_kinds);
        match chunk::make_blob(ctx.folder, id, location) {
            Some(sealed) => {
                let sealed = CheckedBlob::check(*id, sealed)
                    .map_err(|e| std::io::Error::other(format!("chunk {id}: {e}")))?;
                write(sealed, &mut report.reused_bytes)?
            }
            None => remote.push(*id),
        }
    }
    if let (Some(r), Some((f, _))) = (run.take(), &previous) {
        r.copy(f, file, &mut plain, &writeback, report, &mut remote)?;
    }
    let fetched_chunks = remote.len();
    let local = started.elapsed();
    let mut fetched = 0u64;
    if !remote.is_empty() {
        let left = ctx.fetcher.fetch(remote, &mut |b| write(b, &mut fetched))?;
        report.fetched_bytes += fetched;
        if !left.is_empty() {
            return Err(later(format!(
                "{} chunks of {} are on no connected peer",
                left.len(),
                record.path
            )));
        }
    }
    // Every byte of the file must have come from a checked chunk: a source that claimed a
    // chunk without delivering it would otherwise leave zeros behind.
    let written = report.reused_bytes - reused_before + fetched;
    if written != record.size {
        return Err(later(format!(
            "{}: {written} of {} bytes arrived",
            record.path, record.size
        )));
    }
    let tags = tags.into_inner();
    for loc in &mut locs {
        loc.tag = tags.get(&loc.id).copied();
    }
    let built = started.elapsed();
    if sync {
        file.sync_all()?;
    }
    tracing::debug!(
        folder = %ctx.folder.id,
        "{}: {} bytes built from {} chunks ({} fetched) in {:.3} s (chunk list {:.3} s, local \
         chunks {:.3} s, fetch {:.3} s), synced in {:.3} s",
        record.path,
        record.size,
        offsets.len(),
        fetched_chunks,
        built.as_secs_f64(),
        listed.as_secs_f64(),
        (local - listed).as_secs_f64(),
        (built - local).as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    Ok((tmp, locs, nodes))
}

/// Makes the disk and the index match `record`.
#[allow(clippy::too_many_arguments)] // the round's state, the action, and what the window prepared for it
fn install(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    record: &Record,
    report: &mut Report,
    journal: &mut InstallJournal,
    built: Option<Built>,
    verified: &HashSet<ChainHash>,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let (joined_at, links) = remote_links(index, doc, ctx, id, record, verified)?;
    let mine = index.file_by_id(&folder.id, id)?;
    let at_target = index.file(&folder.id, &record.path)?;
    if let Some(m) = &mine
        && !m.deleted
        && !disk_matches(folder, m)
    {
        return Err(later(format!(
            "{} changed on disk since the last scan",
            m.path
        )));
    }
    let target = folder.root.join(&record.path);
    // Installs of files new here are recorded in the open batch (see `Index::begin_batch`),
    // once their bytes are in place; anything else, and any file still to be fetched (the
    // batch would hold SQLite's write lock through the fetch), commits the batch first.
    let batched = mine.is_none() && at_target.is_none() && !record.deleted && built.is_some();
    if !batched {
        index.end_batch()?;
    }

    if record.deleted {
        if let Some(m) = mine.as_ref().filter(|m| !m.deleted) {
            let path = folder.root.join(&m.path);
            if m.kind == EntryKind::Directory {
                if let Err(e) = fs::remove_dir(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(later(format!("directory {} is not empty yet", m.path)));
                }
            } else {
                store::keep(index, folder, &m.path, "delete")?;
            }
        }
        index.write(|w| {
            write_chain(w, ctx, id, joined_at, &links)?;
            // The tombstone stays where the record says; a local row at another path (the file
            // moved here before it was deleted there) goes, or the two would never agree.
            if let Some(m) = mine.as_ref().filter(|m| m.path != record.path) {
                w.remove_path_of(&folder.id, &m.path, id)?;
                w.replace_chunks(&folder.id, id, &[])?;
            } else if let Some(m) = &mine {
                let mut row = m.clone();
                row.deleted = true;
                row.seq = record.seq;
                row.chain_head = record.chain_head;
                w.put_file(&folder.id, &row)?;
                w.replace_chunks(&folder.id, id, &[])?;
            }
            w.set_base(&folder.id, id, &record.digest())
        })?;
        return Ok(());
    }

    // The target path must be free, or hold this file, or a tombstone.
    let target_meta = fs::symlink_metadata(&target).ok();
    let replacing = match (&at_target, &target_meta) {
        (_, None) => None,
        (Some(row), Some(_)) if row.file_id == *id => Some(row.clone()),
        (Some(row), Some(_)) if !row.deleted && disk_matches(folder, row) => {
            return Err(later(format!(
                "{} is held by another file that has not moved yet",
                record.path
            )));
        }
        (_, Some(m)) if m.is_dir() && record.kind == EntryKind::Directory => None,
        (_, Some(_)) => {
            return Err(later(format!(
                "{} exists on disk but is not scanned yet",
                record.path
            )));
        }
    };
    prepare_parents(folder, &record.path)?;

    let same_content = mine.as_ref().is_some_and(|m| {
        !m.deleted && m.kind == record.kind && m.content_root == record.content_root
    });
    let mut nodes = Vec::new();
    let mut locs = None;
    // Whether the rename below was noted in the install journal (see `super::journal`).
    let mut noted = false;
    // Whether mode and mtime came with a file built ahead.
    let mut meta_done = false;
    match record.kind {
        EntryKind::Directory => match &target_meta {
            Some(m) if m.is_dir() => {}
            _ => {
                fs::create_dir(&target)?;
                #[cfg(test)]
                tests_hook::killed_after_rename(index)?;
            }
        },
        _ if same_content => {
            let m = mine
                .as_ref()
                .ok_or_else(|| later("the local file vanished"))?;
            if m.path != record.path {
                if replacing.is_some() {
                    store::keep(index, folder, &record.path, "overwrite")?;
                }
                tracing::debug!(folder = %folder.id, "{} moved to {}", m.path, record.path);
                journal.note(*id, record.chain_head, record.seq, &record.path)?;
                noted = true;
                if let Err(e) = fs::rename(folder.root.join(&m.path), &target) {
                    journal.cancel();
                    return Err(e.into());
                }
                #[cfg(test)]
                tests_hook::killed_after_rename(index)?;
            }
        }
        EntryKind::Symlink => {
            let (tmp, l, n) = build_content(index, ctx, record, report, true)?;
            let target_bytes = fs::read(tmp.path())?;
            let link_tmp = tmp.path().with_extension("link");
            let _ = fs::remove_file(&link_tmp);
            if let Err(e) = std::os::unix::fs::symlink(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target_bytes),
                &link_tmp,
            ) {
                // ENOSYS or EOPNOTSUPP (exFAT through FUSE): no symbolic links there.
                return Err(if e.kind() == std::io::ErrorKind::Unsupported {
                    Defer::NotHere(format!(
                        "a symbolic link, which this file system cannot hold ({e}): it stays \
                         on the devices that can"
                    ))
                } else {
                    e.into()
                });
            }
            recheck(folder, &replacing, &target)?;
            if replacing.is_some() {
                store::keep(index, folder, &record.path, "overwrite")?;
            }
            journal.note(*id, record.chain_head, record.seq, &record.path)?;
            noted = true;
            if let Err(e) = fs::rename(&link_tmp, &target) {
                journal.cancel();
                return Err(e.into());
            }
            locs = Some(l);
            nodes = n;
        }
        EntryKind::File => {
            let (tmp, l, n) = match built {
                Some(b) => {
                    meta_done = true;
                    report.fetched_bytes += b.fetched;
                    report.reused_bytes += b.reused;
                    (b.path, b.locs, b.nodes)
                }
                None => {
                    let (t, l, n) = build_content(index, ctx, record, report, true)?;
                    (t.into_temp_path(), l, n)
                }
            };
            recheck(folder, &replacing, &target)?;
            if replacing.is_some() {
                store::keep(index, folder, &record.path, "overwrite")?;
            }
            journal.note(*id, record.chain_head, record.seq, &record.path)?;
            noted = true;
            if let Err(e) = tmp.persist(&target) {
                journal.cancel();
                return Err(e.error.into());
            }
            #[cfg(test)]
            tests_hook::killed_after_rename(index)?;
            locs = Some(l);
            nodes = n;
        }
    }
    // A moved file whose content also changed: its old path still holds the old version.
    if let Some(m) = mine
        .as_ref()
        .filter(|m| !m.deleted && m.path != record.path)
        && !same_content
        && m.kind != EntryKind::Directory
    {
        store::keep(index, folder, &m.path, "overwrite")?;
        #[cfg(test)]
        tests_hook::killed_after_keep(index)?;
    }
    if record.kind != EntryKind::Symlink && !meta_done {
        fs::set_permissions(&target, fs::Permissions::from_mode(record.mode))?;
    }
    if record.kind == EntryKind::File && !meta_done {
        let f = fs::OpenOptions::new().write(true).open(&target)?;
        let t =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(record.mtime_ns.max(0) as u64);
        f.set_modified(t)?;
    }
    let meta = fs::symlink_metadata(&target)?;
    if batched {
        index.begin_batch()?;
    }
    let row = FileRow {
        path: record.path.clone(),
        file_id: *id,
        kind: record.kind,
        size: record.size,
        mode: record.mode,
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        inode: meta.ino(),
        dev: meta.dev(),
        content_root: record.content_root,
        deleted: false,
        seq: record.seq,
        chain_head: record.chain_head,
    };
    index.write(|w| {
        write_chain(w, ctx, id, joined_at, &links)?;
        if let Some(m) = &mine
            && m.path != record.path
        {
            w.remove_path_of(&folder.id, &m.path, id)?;
        }
        if at_target.as_ref().is_some_and(|r| r.file_id != *id) {
            w.remove_path(&folder.id, &record.path)?;
        }
        w.put_nodes(&folder.id, &nodes)?;
        w.put_file(&folder.id, &row)?;
        if let Some(l) = &locs {
            w.replace_chunks(&folder.id, id, l)?;
        }
        w.set_base(&folder.id, id, &record.digest())
    })?;
    if noted {
        journal.recorded();
    }
    Ok(())
}

/// A test's kill -9 at the worst moment of an install.
#[cfg(test)]
pub(super) mod tests_hook {
    use super::Defer;

    thread_local! {
        /// When set to N, the Nth file install from now is "killed" right after its rename:
        /// the uncommitted batch of index writes is lost and the round stops, as a kill -9
        /// would leave them (minus the process).
        pub static KILL_AT_RENAME: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// When set, the round is "killed" right after the next keep of a local version: the
        /// old path's file of a moved and edited file kept, a conflict copy made, or a file
        /// moved aside from a path it lost.
        pub static KILL_AFTER_KEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(super) fn killed_after_keep(index: &mut crate::index::Index) -> Result<(), Defer> {
        if !KILL_AFTER_KEEP.with(|k| k.replace(false)) {
            return Ok(());
        }
        index.abandon_batch();
        Err(Defer::Index(crate::index::Error::Corrupt(
            "killed by the test",
        )))
    }

    pub(super) fn killed_after_rename(index: &mut crate::index::Index) -> Result<(), Defer> {
        let left = KILL_AT_RENAME.with(|k| k.get());
        if left == 0 {
            return Ok(());
        }
        KILL_AT_RENAME.with(|k| k.set(left - 1));
        if left > 1 {
            return Ok(());
        }
        index.abandon_batch();
        Err(Defer::Index(crate::index::Error::Corrupt(
            "killed by the test",
        )))
    }
}

/// Checks, right before the rename, that the target still holds what it held when planned.
fn recheck(folder: &Folder, replacing: &Option<FileRow>, target: &Path) -> Result<(), Defer> {
    match replacing {
        Some(row) if !disk_matches(folder, row) => Err(later(format!(
            "{} changed on disk while its new version was fetched",
            row.path
        ))),
        None if fs::symlink_metadata(target).is_ok_and(|m| !m.is_dir()) => Err(later(format!(
            "{} appeared on disk while its new version was fetched",
            target.display()
        ))),
        _ => Ok(()),
    }
}

fn write_chain(
    w: &crate::index::Writer<'_>,
    ctx: &Context<'_>,
    id: &FileId,
    joined_at: u64,
    links: &[(Entry, ChainHash)],
) -> Result<(), crate::index::Error> {
    // The installed record's head is the chain's head: local entries past the join point (a
    // branch that lost) go, even when no new entry comes.
    w.truncate_chain(&ctx.folder.id, id, joined_at + 1)?;
    for (e, h) in links {
        w.put_entry(&ctx.folder.id, e, h)?;
    }
    Ok(())
}

/// A conflict name for `rel` ([`conflict_name`]) that nothing on disk holds yet: two conflicts
/// of one file within a second, on one device, would otherwise get the same one.
pub(super) fn free_conflict_name(folder: &Folder, rel: &str, me: &DeviceId) -> String {
    let mut name = conflict_name(rel, me, now_ms());
    let mut n = 1;
    while fs::symlink_metadata(folder.root.join(&name)).is_ok() {
        name = conflict_name(&format!("{rel}-{n}"), me, now_ms());
        n += 1;
    }
    name
}

/// `name.ext` → `name.conflict-YYYYMMDD-HHMMSS-DEVICE.ext`, beside it.
pub fn conflict_name(rel: &str, device: &DeviceId, ms: i64) -> String {
    let (dir, stem, ext) = store::split_name(rel);
    let dev = device.to_string();
    format!(
        "{dir}{stem}.conflict-{}-{}{ext}",
        store::stamp(ms),
        &dev[..dev.len().min(7)]
    )
}

/// What a conflict copy's name says: the file it is a copy of, when (`YYYYMMDD-HHMMSS` UTC)
/// and the start of the device id that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictName {
    /// The path of the file it is a conflict copy of.
    pub original: String,
    /// When it was set aside, `YYYYMMDD-HHMMSS` (UTC).
    pub stamp: String,
    /// The first characters of the device id whose version it holds.
    pub device: String,
}

/// Reads a name made by [`conflict_name`]; `None` for any other name.
pub fn parse_conflict_name(rel: &str) -> Option<ConflictName> {
    let (dir, name) = match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    };
    // `<stem>.conflict-<YYYYMMDD-HHMMSS>-<device>[<.ext>]`
    let (stem, rest) = name.rsplit_once(".conflict-")?;
    let stamp = rest.get(..15)?;
    let after = rest.get(15..)?.strip_prefix('-')?;
    let (device, ext) = match after.find('.') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let well_formed = stamp.as_bytes()[8] == b'-'
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
        && !device.is_empty()
        && device.bytes().all(|b| b.is_ascii_alphanumeric())
        && !stem.is_empty();
    well_formed.then(|| ConflictName {
        original: format!("{dir}{stem}{ext}"),
        stamp: stamp.to_owned(),
        device: device.to_owned(),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A conflict copy of `rel` by `device` beside it with the same content as `src`, if any.
fn existing_conflict_copy(
    folder: &Folder,
    rel: &str,
    device: &DeviceId,
    src: &Path,
) -> Result<Option<String>, Defer> {
    let (dir, stem, _) = store::split_name(rel);
    let dev = device.to_string();
    let dev = &dev[..dev.len().min(7)];
    let prefix = format!("{stem}.conflict-");
    let Ok(entries) = fs::read_dir(folder.root.join(dir)) else {
        return Ok(None);
    };
    let ours = fs::read(src).ok();
    for e in entries.map_while(Result::ok) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix)
            && n.contains(dev)
            && ours.is_some()
            && fs::read(e.path()).ok() == ours
        {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Copies the losing local content aside under a conflict name (the scanner records the copy
/// as a new file), settles the document if asked, then installs the winner.
#[allow(clippy::too_many_arguments)] // the round's state and the two versions
fn keep_conflict(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    (local, winner): (&Record, &Record),
    resolve: bool,
    report: &mut Report,
    journal: &mut InstallJournal,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let me = DeviceId::of_signing_key(ctx.device);
    if local.kind != EntryKind::Directory {
        let row = index
            .file(&folder.id, &local.path)?
            .filter(|r| r.file_id == *id)
            .ok_or_else(|| later("the conflicting file moved"))?;
        if !disk_matches(folder, &row) {
            return Err(later(format!(
                "{} changed on disk since the last scan",
                local.path
            )));
        }
        let src = folder.root.join(&local.path);
        if let Some(existing) = existing_conflict_copy(folder, &local.path, &me, &src)? {
            // A round that made the copy and then could not install the winner ran before.
            tracing::debug!(folder = %folder.id, "{} is already kept as {existing}", local.path);
        } else {
            let name = free_conflict_name(folder, &local.path, &me);
            let dst = folder.root.join(&name);
            let tmp_dir = store::temp_dir(folder);
            fs::create_dir_all(&tmp_dir)?;
            if local.kind == EntryKind::Symlink {
                let target = fs::read_link(&src)?;
                let tmp = tmp_dir.join(format!("conflict-{}", id.to_hex()));
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(target, &tmp)?;
                fs::rename(&tmp, &dst)?;
            } else {
                let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
                fs::copy(&src, tmp.path())?;
                tmp.as_file().sync_all()?;
                tmp.persist_noclobber(&dst).map_err(|e| e.error)?;
            }
            tracing::info!(folder = %folder.id, "conflict: {} kept as {name}", local.path);
            report.conflicts += 1;
            #[cfg(test)]
            tests_hook::killed_after_keep(index)?;
        }
    }
    if resolve {
        lock(doc).put_record(id, winner)?;
    }
    // The local file is now "unchanged since the base": take the winner's base position so the
    // next steps treat it as a plain remote update.
    install(
        index,
        doc,
        ctx,
        id,
        winner,
        report,
        journal,
        None,
        &HashSet::new(),
    )?;
    report.installed += 1;
    Ok(())
}

/// What becomes of the chain of a file id that gives way to another ([`take_over`]).
pub(super) enum GivenUp<'a> {
    /// It was never published (an id the scan made up for a received file): it goes.
    Unpublished,
    /// It was published: it ends with this delete link.
    EndsWith(&'a Entry, &'a ChainHash),
}

/// A file about to take another's place ([`take_over`]): its id, the version it will have
/// there, and its chain up to that version, checked as an install checks it.
pub(super) struct Keeper<'a> {
    id: FileId,
    version: &'a Record,
    /// The seq the links start after, and the links ([`remote_links`]).
    joined_at: u64,
    links: Vec<(Entry, ChainHash)>,
}

impl<'a> Keeper<'a> {
    /// Checks `id`'s chain up to `version`; a keeper whose chain does not check is refused.
    pub(super) fn checked(
        index: &Index,
        doc: &Doc,
        ctx: &Context<'_>,
        id: FileId,
        version: &'a Record,
    ) -> Result<Self, Defer> {
        let (joined_at, links) = remote_links(index, doc, ctx, &id, version, &HashSet::new())?;
        Ok(Self {
            id,
            version,
            joined_at,
            links,
        })
    }
}

/// Records the file `row` describes as `keeper`, whose content it holds (same path, same
/// content root): `row`'s id gives way to the keeper's, with the keeper's checked chain and
/// `row`'s chunk list. The bytes stay where they are; `given_up` says what becomes of `row`'s
/// own chain.
///
/// If this device holds `keeper` at another path (a move and an edit whose install a kill -9
/// cut short: the new version is here, the old one still there), the old path's file goes to
/// the versions store, as the install would have done; if it changed since its scan, nothing
/// is taken over (the next scan records the change).
pub(super) fn take_over(
    index: &mut Index,
    ctx: &Context<'_>,
    row: &FileRow,
    keeper: &Keeper<'_>,
    given_up: GivenUp<'_>,
) -> Result<FileRow, Defer> {
    let folder = ctx.folder;
    let elsewhere = index
        .file_by_id(&folder.id, &keeper.id)?
        .filter(|m| m.path != row.path);
    if let Some(m) = elsewhere.as_ref().filter(|m| !m.deleted) {
        if m.kind == EntryKind::Directory || !disk_matches(folder, m) {
            return Err(later(format!(
                "{} holds an earlier version of {}, changed since the last scan",
                m.path, row.path
            )));
        }
        store::keep(index, folder, &m.path, "overwrite")?;
    }
    let chunks = index.chunks(&folder.id, &row.file_id)?;
    let taken = FileRow {
        file_id: keeper.id,
        seq: keeper.version.seq,
        chain_head: keeper.version.chain_head,
        ..row.clone()
    };
    index.write(|w| {
        w.remove_file(&folder.id, &row.file_id)?;
        match given_up {
            GivenUp::Unpublished => w.truncate_chain(&folder.id, &row.file_id, 0)?,
            GivenUp::EndsWith(entry, head) => w.put_entry(&folder.id, entry, head)?,
        }
        if let Some(m) = &elsewhere {
            w.remove_path_of(&folder.id, &m.path, &keeper.id)?;
        }
        write_chain(w, ctx, &keeper.id, keeper.joined_at, &keeper.links)?;
        w.put_file(&folder.id, &taken)?;
        w.replace_chunks(&folder.id, &keeper.id, &chunks)
    })?;
    Ok(taken)
}

/// A file held here lost its path to another file: give it up (same content) or move it
/// aside under a conflict name, sign the change and publish it.
fn yield_path(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    (id, local, version_of): (&FileId, &Record, &DeviceId),
    same_as: Option<(FileId, Record)>,
    pending: &mut Vec<(FileId, Digest)>,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let row = index
        .file(&folder.id, &local.path)?
        .filter(|r| r.file_id == *id && !r.deleted)
        .ok_or_else(|| later("the file moved"))?;
    if !disk_matches(folder, &row) {
        return Err(later(format!(
            "{} changed on disk since the last scan",
            local.path
        )));
    }
    let tip = ChainTip {
        folder: folder.id,
        file: *id,
        seq: row.seq,
        head: row.chain_head,
        present: true,
    };
    if let Some((keeper, version)) = same_as {
        // The keeper's chain is checked before anything is written: a keeper this device
        // would not install must not take this file's place (its delete would be published
        // and then undone, round after round).
        let keeper = Keeper::checked(index, doc, ctx, keeper, &version)?;
        let (entry, head) = tip
            .sign(
                ctx.device,
                Change {
                    op: Op::Delete,
                    content_root: row.content_root,
                    size: 0,
                    path: folder.keys.commit_path(&row.path),
                    timestamp_ms: now_ms() as u64,
                },
            )
            .map_err(|e| Defer::Refused(e.to_string()))?;
        let record = local_record(&FileRow {
            deleted: true,
            seq: entry.seq,
            chain_head: head,
            ..row.clone()
        });
        // This file goes (its delete is published), and the bytes on disk are recorded as the
        // other file's version: they are that version, so nothing is fetched or moved, and the
        // next scan does not find a file without a row there (which it would take for a new
        // file, yielding again, round after round). The delete link and the take-over are one
        // transaction: a kill between them would leave a chain ahead of its row.
        take_over(index, ctx, &row, &keeper, GivenUp::EndsWith(&entry, &head))?;
        // Published like a scanned change: in an ordered folder the bridge must see the link
        // before any document does (claimed after the index holds it, so a kill in between
        // leaves a link the next round claims, not one only the bridge knows).
        publish(index, doc, ctx, id, &record, pending)?;
        #[cfg(test)]
        tests_hook::killed_after_keep(index)?;
        return Ok(());
    }
    // (A second yield of one path within a second, by one device, would take the same name.)
    let new_path = free_conflict_name(folder, &local.path, version_of);
    move_signed(index, doc, ctx, id, (&local.path, &new_path), pending)?;
    tracing::info!(folder = %folder.id, "path conflict: {} moved to {new_path}", local.path);
    Ok(())
}

/// Moves this device's file `id` from `from` to `to` (a free path): signs the rename on the
/// local chain, renames, records it, and publishes it.
fn move_signed(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    (from, to): (&str, &str),
    pending: &mut Vec<(FileId, Digest)>,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let row = index
        .file(&folder.id, from)?
        .filter(|r| r.file_id == *id && !r.deleted)
        .ok_or_else(|| later("the file moved"))?;
    if !disk_matches(folder, &row) {
        return Err(later(format!("{from} changed on disk since the last scan")));
    }
    let dst = folder.root.join(to);
    if fs::symlink_metadata(&dst).is_ok() {
        return Err(later(format!("{to} exists")));
    }
    prepare_parents(folder, to)?;
    let tip = ChainTip {
        folder: folder.id,
        file: *id,
        seq: row.seq,
        head: row.chain_head,
        present: true,
    };
    let (entry, head) = tip
        .sign(
            ctx.device,
            Change {
                op: Op::Rename,
                content_root: row.content_root,
                size: row.size,
                path: folder.keys.commit_path(to),
                timestamp_ms: now_ms() as u64,
            },
        )
        .map_err(|e| Defer::Refused(e.to_string()))?;
    fs::rename(folder.root.join(&row.path), &dst)?;
    #[cfg(test)]
    tests_hook::killed_after_keep(index)?;
    let meta = fs::symlink_metadata(&dst)?;
    let new_row = FileRow {
        path: to.to_owned(),
        seq: entry.seq,
        chain_head: head,
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        inode: meta.ino(),
        ..row.clone()
    };
    index.write(|w| {
        w.remove_path_of(&folder.id, &row.path, id)?;
        w.put_entry(&folder.id, &entry, &head)?;
        w.put_file(&folder.id, &new_row)
    })?;
    publish(index, doc, ctx, id, &local_record(&new_row), pending)
}
