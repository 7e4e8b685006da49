//! Windows of installs made ready ahead of the installs themselves: the manifest nodes of
//! many files and the chunks of the small ones fetched in a few batched requests, the small
//! files built into temp files and made durable together by one `syncfs`, and the newest
//! chain links' signatures checked. With more than one window in a round, a second thread
//! prepares the next window while the current one installs (see `sync_once`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;

use harp_protocol::blob::CheckedBlob;
use harp_protocol::chain;
use harp_protocol::ids::{ChainHash, ChunkId, DeviceId};
use harp_protocol::manifest::{EntryKind, Node};
use harp_protocol::record::{Digest, Record};

use super::content::{Nodes, build_content};
use super::{Action, Context, Doc, Fetcher, Merge, Report, SigningKey, lock};
use crate::index::{ChunkLoc, Index};
use crate::scan::Folder;
use crate::store;

/// A fetcher in front of another that first answers from blobs fetched ahead for the round.
pub(super) struct Prefetched<'a> {
    pub(super) inner: &'a dyn Fetcher,
    pub(super) blobs: std::sync::Mutex<HashMap<ChunkId, CheckedBlob>>,
}

impl Prefetched<'_> {
    pub(super) fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkId, CheckedBlob>> {
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

    fn take_staged(&self, path: &str, size: u64) -> Option<crate::early::Staged> {
        self.inner.take_staged(path, size)
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

/// What preparing a window needs of the round's context: all of it can be shared with the
/// thread that prepares the next window.
#[derive(Clone, Copy)]
pub(super) struct Parts<'a> {
    pub(super) folder: &'a Folder,
    pub(super) device: &'a SigningKey,
    pub(super) members: &'a HashSet<DeviceId>,
    pub(super) fetcher: &'a dyn Fetcher,
    pub(super) doc: &'a Doc,
    pub(super) progress: Option<&'a crate::sync::progress::Progress>,
}

/// A window of installs made ready: its blobs fetched, its small files built.
pub(super) struct Ready {
    pub(super) window: usize,
    pub(super) blobs: HashMap<ChunkId, CheckedBlob>,
    pub(super) built: HashMap<Digest, Built>,
    /// Chain links whose signatures checked (see [`verify_ahead`]).
    pub(super) verified: HashSet<ChainHash>,
}

/// Fetches a window's blobs and builds its small files (nothing for a window of one file:
/// its install fetches what it needs itself).
pub(super) fn prepare(
    index: &Index,
    parts: &Parts<'_>,
    window: usize,
    records: &[Record],
) -> Ready {
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
            direction: Default::default(),
            force: None,
            progress: parts.progress,
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
pub(super) struct Ahead {
    rx: std::sync::mpsc::Receiver<Ready>,
    /// The window the preparer sends next.
    next: usize,
}

impl Ahead {
    /// Starts preparing every window in order on a thread of `scope`, with its own index
    /// connection; each waits until the round takes it.
    pub(super) fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        index: Index,
        parts: Parts<'env>,
        windows: &'env Windows,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        scope.spawn(move || {
            for (w, window) in windows.lists.iter().enumerate() {
                if tx.send(prepare(&index, &parts, w, window)).is_err() {
                    return;
                }
            }
        });
        Self { rx, next: 0 }
    }

    /// Window `w` from the preparer, or `None` if it does not come any more (already passed,
    /// or the thread is gone): then the caller prepares it itself. Windows passed over are
    /// dropped with their temp files.
    pub(super) fn take(&mut self, w: usize) -> Option<Ready> {
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

/// A version's content already written to a temp file that is on disk (synced), ahead of its
/// install: what `install` would otherwise build, with what building it counted.
pub(super) struct Built {
    /// The temp file, durable, with the record's mode and mtime already set.
    pub(super) path: tempfile::TempPath,
    pub(super) locs: Vec<ChunkLoc>,
    pub(super) nodes: Nodes,
    pub(super) fetched: u64,
    pub(super) reused: u64,
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

/// A round's installs that fetch something, cut into windows of bounded memory: at most
/// [`PREFETCH_FILES`] files and [`PREFETCH_BUDGET`] bytes of small files' chunks each.
pub(super) struct Windows {
    lists: Vec<Vec<Record>>,
    of: HashMap<Digest, usize>,
}

impl Windows {
    /// The windows of `actions`, in their order.
    pub(super) fn of(actions: &[Action]) -> Self {
        let mut lists: Vec<Vec<Record>> = Vec::new();
        let mut of = HashMap::new();
        let mut bytes = 0u64;
        for r in actions.iter().filter_map(fetches) {
            if lists.is_empty()
                || bytes + r.size.min(PREFETCH_FILE_MAX) > PREFETCH_BUDGET
                || lists.last().is_some_and(|w| w.len() >= PREFETCH_FILES)
            {
                lists.push(Vec::new());
                bytes = 0;
            }
            bytes += r.size.min(PREFETCH_FILE_MAX);
            of.insert(r.digest(), lists.len() - 1);
            if let Some(w) = lists.last_mut() {
                w.push(r.clone());
            }
        }
        Self { lists, of }
    }

    /// The window an action's fetches belong to.
    pub(super) fn window_of(&self, action: &Action) -> Option<usize> {
        fetches(action).and_then(|r| self.of.get(&r.digest()).copied())
    }

    /// The records of window `w`.
    pub(super) fn records(&self, w: usize) -> &[Record] {
        self.lists.get(w).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether more than one window has files to prepare together (then a second thread
    /// prepares them ahead).
    pub(super) fn several(&self) -> bool {
        self.lists.iter().filter(|w| w.len() > 1).count() > 1
    }
}

/// The version an action installs content of, if it fetches any.
fn fetches(action: &Action) -> Option<&Record> {
    match action {
        Action::Install { record, .. }
        | Action::KeepConflict { winner: record, .. }
        | Action::Merge {
            winner: record,
            how: Merge::KeepLocalPath,
            ..
        } if !record.deleted && record.kind != EntryKind::Directory => Some(record),
        _ => None,
    }
}
