//! Early transfer: the chunks of a large new file move to the other devices while it is
//! still being scanned, instead of after.
//!
//! Without it a new file of a gigabyte reaches a peer in two steps that cannot overlap: the
//! scan here (cut, seal, id: every chunk, about 1.5 CPU s per GiB) must end before the file's
//! record can be published, and only then does the peer ask for its chunks, which this
//! device reads and seals a second time to serve them. With it:
//!
//! - **Here** ([`Outbox`], [`Offering`]): a new file of at least [`MIN_SIZE`] bytes is offered
//!   to the folder's direct member peers as the scanner cuts it (`/harp/early/1`,
//!   [`crate::net::early`]: its path, size, then each window's chunk ids). The blobs the
//!   scanner seals anyway wait in the [`Outbox`] until a peer asks for them, and are served
//!   from there, not read and sealed again. The scan waits while more than [`ROOM`] bytes
//!   are waiting (so the peer's fetch and this scan run in step), and stops offering when
//!   no peer has taken anything for [`STALL`]: a slow peer costs this scan at most that.
//! - **There** ([`Staging`]): a device that takes the offer fetches the listed chunks from
//!   the offering peer over `/harp/chunks/1` (every blob checked as always: id, AEAD, nonce)
//!   into a staging file in the folder's temp area. Nothing is installed from it. When the
//!   file's signed record arrives, the ordinary applier asks for the staging file
//!   ([`Staging::take`]), keeps the chunks in it that sit where the record's manifest puts
//!   them, gets the rest as usual, and installs the file as any other (fsync, rename).
//!
//! Declined, on the receiving side: a folder that is paused or send-only here, a sender that
//! is not a member, a path that is not a valid record path or that holds a file here (an
//! edit or a conflict takes the ordinary way), a file larger than the free space, and more
//! than [`MAX_STAGED`] files at once ([`MAX_STAGED_PER_PEER`] per peer). A staging file
//! not taken within [`ADOPT_WAIT`] of its offer's end is deleted; the temp area is emptied
//! at every start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harp_protocol::blob::{BlobKind, CheckedBlob};
use harp_protocol::ids::{ChunkId, FolderId};
use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::chunk::Offer;
use crate::direct_write::SequentialWriter;
use crate::index::ChunkLoc;
use crate::net::Handle;
use crate::net::early::{EarlyFile, MAX_REFS, Message};
use crate::scan::Folder;
use crate::sync::apply::Fetcher;

/// New files from this size on are offered while they are scanned.
pub const MIN_SIZE: u64 = 64 << 20;
/// Sealed bytes that may wait in the outbox; the scan waits while more do. Two read windows:
/// 8 MiB left the scan and the peer out of step (a new GiB 5.4-5.9 s against 4.2-4.7 s),
/// 24 MiB was no faster than 16 and kept the sender's peak 15 MB higher (session 17).
pub const ROOM: usize = 16 << 20;
/// How long the scan waits for a peer to take something before it stops offering the file.
pub const STALL: Duration = Duration::from_secs(1);
/// How long blobs of a file whose scan ended stay in the outbox for a peer still catching up.
pub const LINGER: Duration = Duration::from_secs(10);
/// Files staged at once on a receiving device, and per offering peer.
pub const MAX_STAGED: usize = 4;
/// See [`MAX_STAGED`].
pub const MAX_STAGED_PER_PEER: usize = 2;
/// How long a staging file waits for its record after the offer ended.
pub const ADOPT_WAIT: Duration = Duration::from_secs(120);
/// How long a receiving device waits for more of a chunk list before it stops fetching.
const LIST_WAIT: Duration = Duration::from_secs(60);
/// Chunks fetched per request batch while staging.
const FETCH_BATCH: usize = 128;
/// Write-back is started every this many staged bytes (as the applier does), where they go
/// through the page cache.
const KICK_EVERY: u64 = 64 << 20;
/// How long the list may pause before what was fetched is written out in full (so it shows
/// as staged); until then the file is written in whole blocks ([`SequentialWriter`]).
const IDLE_FLUSH: Duration = Duration::from_millis(100);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// The offering side.

/// Sealed blobs of files being offered, until a peer takes them (or [`LINGER`] after their
/// scan ended). Shared by the scanners (which put) and the chunk server (which takes).
#[derive(Debug, Default)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    taken: Condvar,
}

#[derive(Debug, Default)]
struct OutboxState {
    blobs: HashMap<(FolderId, ChunkId), Vec<u8>>,
    bytes: usize,
    takes: u64,
}

impl Outbox {
    /// Takes blob `id` of `folder` out, if it waits here.
    pub fn take(&self, folder: &FolderId, id: &ChunkId) -> Option<Vec<u8>> {
        let mut s = locked(&self.state);
        let blob = s.blobs.remove(&(*folder, *id))?;
        s.bytes -= blob.len();
        s.takes += 1;
        drop(s);
        self.taken.notify_all();
        Some(blob)
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        locked(&self.state).bytes
    }

    fn put(&self, folder: FolderId, id: ChunkId, blob: Vec<u8>) {
        let mut s = locked(&self.state);
        s.bytes += blob.len();
        // The same chunk twice in a file: one copy waits.
        if let Some(old) = s.blobs.insert((folder, id), blob) {
            s.bytes -= old.len();
        }
    }

    fn remove(&self, folder: &FolderId, ids: &[ChunkId]) {
        let mut s = locked(&self.state);
        for id in ids {
            if let Some(b) = s.blobs.remove(&(*folder, *id)) {
                s.bytes -= b.len();
            }
        }
        drop(s);
        self.taken.notify_all();
    }

    /// Waits until at most [`ROOM`] bytes wait; `false` if nothing was taken for [`STALL`]
    /// meanwhile (or `gone` was set: no peer is listening any more).
    fn wait_for_room(&self, gone: &AtomicBool) -> bool {
        let mut s = locked(&self.state);
        let mut takes = s.takes;
        let mut since = Instant::now();
        while s.bytes > ROOM {
            if gone.load(Ordering::Relaxed) {
                return false;
            }
            if s.takes != takes {
                takes = s.takes;
                since = Instant::now();
            }
            let left = STALL.saturating_sub(since.elapsed());
            if left.is_zero() {
                return false;
            }
            let step = left.min(Duration::from_millis(100));
            s = self
                .taken
                .wait_timeout(s, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Offers a folder's large new files to its direct member peers as they are scanned
/// ([`crate::scan::OfferNewFiles`]).
pub struct Offering {
    /// The folder.
    pub folder: FolderId,
    /// Where sealed blobs wait for the chunk server.
    pub outbox: Arc<Outbox>,
    /// The node.
    pub handle: Handle,
    /// Its runtime.
    pub runtime: tokio::runtime::Handle,
    /// Who may be offered the folder's files.
    pub members: crate::members::Members,
    /// Whether changes made here are sent now (not receive-only, not paused).
    pub sending: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for Offering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offering")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl crate::scan::OfferNewFiles for Offering {
    fn offer(&self, path: &str, size: u64) -> Option<Box<dyn Offer + '_>> {
        if size < MIN_SIZE || !(self.sending)() {
            return None;
        }
        let peers: Vec<PeerId> = self
            .runtime
            .block_on(self.handle.peers())
            .ok()?
            .into_iter()
            .filter(|p| p.is_direct() && p.device.is_some_and(|d| self.members.contains(&d)))
            .map(|p| p.peer)
            .collect();
        if peers.is_empty() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let gone = Arc::new(AtomicBool::new(false));
        let (handle, ended) = (self.handle.clone(), gone.clone());
        self.runtime.spawn(async move {
            crate::net::early::offer(handle, peers, rx).await;
            ended.store(true, Ordering::Relaxed);
        });
        tx.send(Message::Begin {
            folder: self.folder,
            path: path.to_owned(),
            size,
        })
        .ok()?;
        tracing::debug!(folder = %self.folder, path, size, "offering a new file while it is scanned");
        Some(Box::new(FileOffer {
            offering: self,
            tx,
            gone,
            active: AtomicBool::new(true),
            ids: Mutex::new(Vec::new()),
        }))
    }
}

/// One file being offered.
struct FileOffer<'a> {
    offering: &'a Offering,
    tx: mpsc::UnboundedSender<Message>,
    /// Set when no stream is left.
    gone: Arc<AtomicBool>,
    active: AtomicBool,
    /// Every blob put in the outbox, to take out what no one took.
    ids: Mutex<Vec<ChunkId>>,
}

impl FileOffer<'_> {
    fn stop(&self) {
        if self.active.swap(false, Ordering::Relaxed) {
            let _ = self.tx.send(Message::End { complete: false });
            let ids = std::mem::take(&mut *locked(&self.ids));
            self.offering.outbox.remove(&self.offering.folder, &ids);
        }
    }
}

impl Offer for FileOffer<'_> {
    fn sealed(&self, id: ChunkId, blob: Vec<u8>) {
        if self.active.load(Ordering::Relaxed) {
            locked(&self.ids).push(id);
            self.offering.outbox.put(self.offering.folder, id, blob);
        } else {
            crate::buffers::give(blob);
        }
    }

    fn listed(&self, chunks: &[ChunkLoc]) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        for part in chunks.chunks(MAX_REFS) {
            let Some(first) = part.first() else { continue };
            let refs = part.iter().map(|c| (c.id, c.len)).collect();
            if self
                .tx
                .send(Message::Chunks {
                    first: first.idx,
                    refs,
                })
                .is_err()
            {
                self.stop();
                return;
            }
        }
        if !self.offering.outbox.wait_for_room(&self.gone) {
            tracing::debug!(folder = %self.offering.folder, "no peer keeps up: offer stopped");
            self.stop();
        }
    }

    fn end(self: Box<Self>, complete: bool) {
        if !complete {
            self.stop();
            return;
        }
        if self.active.swap(false, Ordering::Relaxed) {
            let _ = self.tx.send(Message::End { complete: true });
            // What a peer still catching up has not taken yet waits a little.
            let ids = std::mem::take(&mut *locked(&self.ids));
            let (outbox, folder) = (self.offering.outbox.clone(), self.offering.folder);
            self.offering.runtime.spawn(async move {
                tokio::time::sleep(LINGER).await;
                outbox.remove(&folder, &ids);
            });
        }
    }
}

// ---------------------------------------------------------------------------------------
// The receiving side.

/// A staged file handed to the applier: the file, and the chunks written into it (each
/// checked: id, AEAD, nonce).
#[derive(Debug)]
pub struct Staged {
    /// The staging file (in the folder's temp area), as long as the offered size.
    pub file: tempfile::NamedTempFile,
    /// The chunks in it, at their positions in the offered list.
    pub done: Vec<ChunkLoc>,
}

/// Files being staged on this device, by folder and path.
#[derive(Debug, Default)]
pub struct Staging {
    stages: Mutex<HashMap<(FolderId, String), Arc<Stage>>>,
}

#[derive(Debug)]
struct Stage {
    peer: PeerId,
    state: Mutex<StageState>,
    changed: Condvar,
}

#[derive(Debug)]
enum Stop {
    /// The applier takes the file.
    Taken,
    /// A newer offer replaced it, or the offer broke: the file goes.
    Dropped,
}

#[derive(Debug)]
struct StageState {
    size: u64,
    /// The offered list so far: (offset, id, length) by position.
    refs: Vec<(u64, ChunkId, u32)>,
    listed: u64,
    /// Positions handed to the fetch so far.
    next: usize,
    done: Vec<ChunkLoc>,
    /// `Some(complete)` once the offer ended.
    ended: Option<bool>,
    stop: Option<Stop>,
    /// The worker is gone.
    finished: bool,
    file: Option<tempfile::NamedTempFile>,
}

impl StageState {
    fn staged_bytes(&self) -> u64 {
        self.done.iter().map(|c| u64::from(c.len)).sum()
    }
}

impl Stage {
    fn state(&self) -> MutexGuard<'_, StageState> {
        locked(&self.state)
    }
}

/// What a staging worker needs besides its stage.
pub struct StageWork {
    /// The folder (keys, temp area).
    pub folder: Arc<Folder>,
    /// Gets blobs from the offering peer ([`PeerFetcher`]).
    pub fetcher: Box<dyn Fetcher + Send>,
}

/// Fetches a folder's blobs from one peer (the one that offered a file).
pub struct PeerFetcher {
    /// The node.
    pub handle: Handle,
    /// Its runtime.
    pub runtime: tokio::runtime::Handle,
    /// The peer.
    pub peer: PeerId,
    /// The folder.
    pub folder: FolderId,
}

impl Fetcher for PeerFetcher {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        crate::net::chunks::fetch_blocking(
            &self.runtime,
            &self.handle,
            &[self.peer],
            self.folder,
            ids,
            sink,
        )
    }
}

impl Staging {
    /// Starts staging `path` of `folder`, offered by `peer` with `size` bytes: a staging file
    /// and a worker thread that fetches what gets listed. `None` when too many files are
    /// staged already or the file cannot be made. An earlier offer of the same path is
    /// dropped.
    pub fn begin(
        self: &Arc<Self>,
        peer: PeerId,
        path: &str,
        size: u64,
        work: StageWork,
    ) -> Option<Box<dyn EarlyFile>> {
        let key = (work.folder.id, path.to_owned());
        let mut stages = locked(&self.stages);
        if let Some(old) = stages.remove(&key) {
            old.state().stop.get_or_insert(Stop::Dropped);
            old.changed.notify_all();
        }
        let live = |s: &&Arc<Stage>| !s.state().finished;
        if stages.values().filter(live).count() >= MAX_STAGED
            || stages
                .values()
                .filter(live)
                .filter(|s| s.peer == peer)
                .count()
                >= MAX_STAGED_PER_PEER
        {
            tracing::debug!(%peer, path, "offer declined: enough files staged already");
            return None;
        }
        let dir = crate::store::temp_dir(&work.folder);
        let file = std::fs::create_dir_all(&dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(&dir))
            .and_then(|f| f.as_file().set_len(size).map(|()| f));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path, "offer declined: no staging file: {e}");
                return None;
            }
        };
        let stage = Arc::new(Stage {
            peer,
            state: Mutex::new(StageState {
                size,
                refs: Vec::new(),
                listed: 0,
                next: 0,
                done: Vec::new(),
                ended: None,
                stop: None,
                finished: false,
                file: Some(file),
            }),
            changed: Condvar::new(),
        });
        stages.insert(key.clone(), stage.clone());
        drop(stages);
        let (staging, worker_stage) = (self.clone(), stage.clone());
        let started = std::thread::Builder::new()
            .name("harp-early".into())
            .spawn(move || {
                stage_worker(&worker_stage, &work);
                staging.forget(&key, &worker_stage);
            });
        if let Err(e) = started {
            tracing::warn!("cannot start a staging thread: {e}");
            stage.state().stop = Some(Stop::Dropped);
            return None;
        }
        Some(Box::new(Feed(stage)))
    }

    /// Hands the staging file of `path` to the applier, if one was staged with `size` bytes:
    /// stops its fetch first. Anything else staged for that path is dropped.
    pub fn take(&self, folder: &FolderId, path: &str, size: u64) -> Option<Staged> {
        let stage = locked(&self.stages).remove(&(*folder, path.to_owned()))?;
        let mut s = stage.state();
        s.stop.get_or_insert(Stop::Taken);
        stage.changed.notify_all();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(path, "the staging fetch did not stop: not used");
                return None;
            }
            s = stage
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if !matches!(s.stop, Some(Stop::Taken)) || s.size != size {
            return None;
        }
        let file = s.file.take()?;
        Some(Staged {
            file,
            done: std::mem::take(&mut s.done),
        })
    }

    /// Bytes staged so far for `path`, and bytes listed (`None`: nothing is staged there).
    pub fn progress(&self, folder: &FolderId, path: &str) -> Option<(u64, u64)> {
        let stage = locked(&self.stages)
            .get(&(*folder, path.to_owned()))?
            .clone();
        let s = stage.state();
        Some((s.staged_bytes(), s.listed))
    }

    /// The files of `folder` being staged, for a status: (path, bytes staged, bytes offered),
    /// by path.
    pub fn incoming(&self, folder: &FolderId) -> Vec<(String, u64, u64)> {
        let stages: Vec<(String, Arc<Stage>)> = locked(&self.stages)
            .iter()
            .filter(|((f, _), _)| f == folder)
            .map(|((_, path), stage)| (path.clone(), stage.clone()))
            .collect();
        let mut out: Vec<(String, u64, u64)> = stages
            .into_iter()
            .filter_map(|(path, stage)| {
                let s = stage.state();
                (!s.finished && s.stop.is_none()).then(|| (path, s.staged_bytes(), s.size))
            })
            .collect();
        out.sort();
        out
    }

    /// Files being staged.
    pub fn len(&self) -> usize {
        locked(&self.stages).len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn forget(&self, key: &(FolderId, String), stage: &Arc<Stage>) {
        let mut stages = locked(&self.stages);
        if stages.get(key).is_some_and(|s| Arc::ptr_eq(s, stage)) {
            stages.remove(key);
        }
    }
}

/// The network side's handle on a stage.
struct Feed(Arc<Stage>);

impl EarlyFile for Feed {
    fn listed(&mut self, first: u32, refs: Vec<(ChunkId, u32)>) -> bool {
        let mut s = self.0.state();
        if first as usize != s.refs.len() {
            return false;
        }
        for (id, len) in refs {
            let offset = s.listed;
            s.listed += u64::from(len);
            if s.listed > s.size {
                return false;
            }
            s.refs.push((offset, id, len));
        }
        drop(s);
        self.0.changed.notify_all();
        true
    }

    fn end(self: Box<Self>, complete: bool) {
        let mut s = self.0.state();
        let whole = complete && s.listed == s.size;
        s.ended = Some(whole);
        if !whole {
            s.stop.get_or_insert(Stop::Dropped);
        }
        drop(s);
        self.0.changed.notify_all();
    }
}

/// Fetches what gets listed into the staging file until the offer ends and the list is
/// done, the stage is stopped, or the peer stops answering; then waits for the applier.
fn stage_worker(stage: &Stage, work: &StageWork) {
    let opened = stage
        .state()
        .file
        .as_ref()
        .map(|f| (f.as_file().try_clone(), f.path().to_owned()));
    let mut file = match opened {
        Some((Ok(f), path)) => SequentialWriter::new(f, &path),
        _ => return finish(stage),
    };
    let mut since_kick = 0u64;
    // Chunks fetched whose bytes may not all be in the file yet.
    let mut pending: Vec<ChunkLoc> = Vec::new();
    loop {
        let batch: Vec<(usize, u64, ChunkId, u32)> = {
            let mut s = stage.state();
            loop {
                if s.stop.is_some() {
                    break;
                }
                if s.next < s.refs.len() {
                    break;
                }
                if s.ended.is_some() {
                    break;
                }
                let wait = if pending.is_empty() {
                    LIST_WAIT
                } else {
                    IDLE_FLUSH
                };
                let (next, timeout) = stage
                    .changed
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner());
                s = next;
                if timeout.timed_out() && s.next == s.refs.len() && s.ended.is_none() {
                    if !pending.is_empty() {
                        break;
                    }
                    s.stop.get_or_insert(Stop::Dropped);
                }
            }
            if s.stop.is_some() || (s.next == s.refs.len() && pending.is_empty()) {
                break;
            }
            if s.next == s.refs.len() {
                // Nothing more listed for a while: put what was fetched in the file, so
                // that it counts as staged (and shows so), then wait again.
                drop(s);
                match file.flush() {
                    Ok(()) => stage.state().done.append(&mut pending),
                    Err(e) => {
                        tracing::debug!(peer = %stage.peer, "staging stopped: {e}");
                        break;
                    }
                }
                continue;
            }
            let end = (s.next + FETCH_BATCH).min(s.refs.len());
            let batch = (s.next..end)
                .map(|i| (i, s.refs[i].0, s.refs[i].1, s.refs[i].2))
                .collect();
            s.next = end;
            batch
        };
        let mut at: HashMap<ChunkId, Vec<(usize, u64, u32)>> = HashMap::new();
        let mut ids = Vec::new();
        for (i, offset, id, len) in &batch {
            let places = at.entry(*id).or_default();
            if places.is_empty() {
                // Asked for in file order, so they mostly come in order for the writer.
                ids.push(*id);
            }
            places.push((*i, *offset, *len));
        }
        let mut written = Vec::new();
        let fetched = work.fetcher.fetch(ids, &mut |blob: CheckedBlob| {
            let (id, nonce) = (blob.id(), blob.nonce());
            let plain = blob
                .into_plaintext(&work.folder.keys, BlobKind::Chunk)
                .map_err(|e| std::io::Error::other(format!("chunk {id}: {e}")))?;
            for &(i, offset, len) in at.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
                if plain.len() != len as usize {
                    return Err(std::io::Error::other(format!(
                        "chunk {id} has {} bytes, the list says {len}",
                        plain.len()
                    )));
                }
                file.write_at(&plain, offset)?;
                written.push(ChunkLoc {
                    idx: i as u32,
                    offset,
                    len,
                    id,
                    tag: nonce,
                });
                since_kick += u64::from(len);
            }
            crate::buffers::give(plain.into_buffer());
            if since_kick >= KICK_EVERY {
                since_kick = 0;
                // Start the write-back now (see sync::apply::content::Writeback), for bytes
                // that went through the page cache.
                file.kick();
            }
            Ok(())
        });
        // Only what is in the file counts as staged; the rest of the batch once it is (or
        // when the list pauses, above).
        pending.append(&mut written);
        let below = file.in_file_below();
        if let Ok(below) = below {
            let (done, later) = pending
                .drain(..)
                .partition(|c| c.offset + u64::from(c.len) <= below);
            pending = later;
            stage.state().done.extend::<Vec<ChunkLoc>>(done);
        }
        if let Err(e) = fetched.and(below) {
            tracing::debug!(peer = %stage.peer, "staging stopped: {e}");
            break;
        }
    }
    match file.flush() {
        Ok(()) => stage.state().done.append(&mut pending),
        Err(e) => tracing::debug!(peer = %stage.peer, "staging file not written: {e}"),
    }
    drop(file);
    // The list is fetched (or the fetch stopped): wait for the applier, if the offer is whole.
    let mut s = stage.state();
    let deadline = Instant::now() + ADOPT_WAIT;
    while s.stop.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            s.stop = Some(Stop::Dropped);
            break;
        }
        s = stage
            .changed
            .wait_timeout(s, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    drop(s);
    finish(stage);
}

fn finish(stage: &Stage) {
    let mut s = stage.state();
    if !matches!(s.stop, Some(Stop::Taken)) {
        s.file = None;
    }
    s.finished = true;
    drop(s);
    stage.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use harp_protocol::blob;
    use harp_protocol::keys::FolderKey;

    /// Serves blobs from memory.
    struct Blobs(HashMap<ChunkId, Vec<u8>>);

    impl Fetcher for Blobs {
        fn fetch(
            &self,
            ids: Vec<ChunkId>,
            sink: &mut dyn FnMut(CheckedBlob) -> std::io::Result<()>,
        ) -> std::io::Result<Vec<ChunkId>> {
            let mut left = Vec::new();
            for id in ids {
                match self.0.get(&id) {
                    Some(b) => sink(CheckedBlob::check(id, b.clone()).unwrap())?,
                    None => left.push(id),
                }
            }
            Ok(left)
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        folder: Arc<Folder>,
        data: Vec<u8>,
        chunks: Vec<ChunkLoc>,
        blobs: HashMap<ChunkId, Vec<u8>>,
    }

    fn setup(size: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let keys = FolderKey::from_bytes([3; 32]).schedule();
        let folder = Folder::new(FolderId::from_bytes([4; 16]), dir.path().to_owned(), keys);
        let data = crate::testutil::random(b"early", size);
        let hashed = crate::chunk::hash_bytes(&data, &folder.chunker, &folder.keys);
        let blobs = hashed
            .chunks
            .iter()
            .map(|c| {
                let piece = &data[c.offset as usize..c.offset as usize + c.len as usize];
                let (_, id, b) = blob::seal_chunk_tagged(&folder.keys, piece).unwrap();
                assert_eq!(id, c.id);
                (id, b)
            })
            .collect();
        Setup {
            _dir: dir,
            folder: Arc::new(folder),
            data,
            chunks: hashed.chunks,
            blobs,
        }
    }

    fn work(s: &Setup, blobs: HashMap<ChunkId, Vec<u8>>) -> StageWork {
        StageWork {
            folder: s.folder.clone(),
            fetcher: Box::new(Blobs(blobs)),
        }
    }

    fn refs(chunks: &[ChunkLoc]) -> Vec<(ChunkId, u32)> {
        chunks.iter().map(|c| (c.id, c.len)).collect()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "waited for {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn temp_files(s: &Setup) -> usize {
        std::fs::read_dir(crate::store::temp_dir(&s.folder))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[test]
    fn listed_chunks_are_staged_checked_and_handed_over_once() {
        let s = setup(3 << 20);
        let staging = Arc::new(Staging::default());
        let peer = PeerId::random();
        let size = s.data.len() as u64;
        // One chunk is on no peer: it stays out of the staged list.
        let mut blobs = s.blobs.clone();
        let absent = s.chunks[2].id;
        blobs.remove(&absent);
        let mut feed = staging
            .begin(peer, "big.bin", size, work(&s, blobs))
            .unwrap();
        let half = s.chunks.len() / 2;
        assert!(feed.listed(0, refs(&s.chunks[..half])));
        assert!(feed.listed(half as u32, refs(&s.chunks[half..])));
        feed.end(true);
        let missing = u64::from(s.chunks[2].len);
        wait_until("the staging fetch", || {
            staging.progress(&s.folder.id, "big.bin") == Some((size - missing, size))
        });
        // Another size is not this file.
        assert!(staging.take(&s.folder.id, "big.bin", size + 1).is_none());
        let mut feed = staging
            .begin(peer, "big.bin", size, work(&s, s.blobs.clone()))
            .unwrap();
        assert!(feed.listed(0, refs(&s.chunks)));
        feed.end(true);
        wait_until("the second staging fetch", || {
            staging.progress(&s.folder.id, "big.bin") == Some((size, size))
        });
        assert_eq!(
            staging.incoming(&s.folder.id),
            vec![("big.bin".to_owned(), size, size)]
        );
        assert!(staging.incoming(&FolderId::from_bytes([9; 16])).is_empty());
        let staged = staging.take(&s.folder.id, "big.bin", size).unwrap();
        assert_eq!(std::fs::read(staged.file.path()).unwrap(), s.data);
        let mut done = staged.done.clone();
        done.sort_by_key(|c| c.idx);
        assert_eq!(done.len(), s.chunks.len());
        for (d, c) in done.iter().zip(&s.chunks) {
            assert_eq!(
                (d.idx, d.offset, d.len, d.id),
                (c.idx, c.offset, c.len, c.id)
            );
            assert!(d.tag.is_some(), "the nonce is kept as the tag");
        }
        assert!(staging.take(&s.folder.id, "big.bin", size).is_none());
        assert!(staging.is_empty());
        drop(staged);
        assert_eq!(temp_files(&s), 0);
    }

    #[test]
    fn a_folder_s_status_shows_what_is_coming_in_early_until_it_is_taken() {
        let s = setup(1 << 20);
        let staging = Arc::new(Staging::default());
        let status = crate::folder_status::FolderStatus::new(serde_json::json!({"state": "idle"}));
        status.show_incoming(staging.clone(), s.folder.id);
        assert!(status.now().get("incoming").is_none());
        let size = s.data.len() as u64;
        let mut feed = staging
            .begin(PeerId::random(), "big.bin", size, work(&s, s.blobs.clone()))
            .unwrap();
        let first = s.chunks[0].len;
        assert!(feed.listed(0, refs(&s.chunks[..1])));
        wait_until("the first chunk", || {
            staging.progress(&s.folder.id, "big.bin") == Some((u64::from(first), u64::from(first)))
        });
        let now = status.now();
        assert_eq!(now["state"], "idle");
        assert_eq!(
            now["incoming"],
            serde_json::json!([{"path": "big.bin", "bytes_done": first, "bytes_total": size}])
        );
        assert!(staging.take(&s.folder.id, "big.bin", size).is_some());
        assert!(status.now().get("incoming").is_none());
    }

    #[test]
    fn gaps_overruns_and_broken_offers_leave_nothing_behind() {
        let s = setup(1 << 20);
        let staging = Arc::new(Staging::default());
        let peer = PeerId::random();
        let size = s.data.len() as u64;
        let mut feed = staging
            .begin(peer, "a.bin", size, work(&s, s.blobs.clone()))
            .unwrap();
        // A list must start at 0 and go on without gaps, within the offered size.
        assert!(!feed.listed(1, refs(&s.chunks[1..])));
        assert!(feed.listed(0, refs(&s.chunks[..1])));
        assert!(!feed.listed(5, refs(&s.chunks[5..])));
        let mut twice = refs(&s.chunks[1..]);
        twice.extend(refs(&s.chunks));
        assert!(!feed.listed(1, twice));
        // An offer that ends unfinished goes, file and all.
        feed.end(false);
        wait_until("the stage to go", || staging.is_empty());
        assert!(staging.take(&s.folder.id, "a.bin", size).is_none());
        wait_until("the staging file to go", || temp_files(&s) == 0);
    }

    #[test]
    fn a_newer_offer_replaces_an_older_one_and_each_peer_stages_two_at_most() {
        let s = setup(1 << 20);
        let staging = Arc::new(Staging::default());
        let (p1, p2) = (PeerId::random(), PeerId::random());
        let size = s.data.len() as u64;
        let w = || work(&s, s.blobs.clone());
        let _old = staging.begin(p1, "x.bin", size, w()).unwrap();
        let _new = staging.begin(p1, "x.bin", size, w()).unwrap();
        wait_until("the older file to go", || temp_files(&s) == 1);
        let _y = staging.begin(p1, "y.bin", size, w()).unwrap();
        assert!(staging.begin(p1, "z.bin", size, w()).is_none());
        let _z = staging.begin(p2, "z.bin", size, w()).unwrap();
        let _v = staging.begin(p2, "v.bin", size, w()).unwrap();
        // Four at once in all.
        assert!(
            staging
                .begin(PeerId::random(), "w.bin", size, w())
                .is_none()
        );
        assert_eq!(staging.len(), 4);
    }

    #[test]
    fn the_outbox_serves_each_blob_once_and_the_scan_waits_only_while_peers_take() {
        let outbox = Arc::new(Outbox::default());
        let folder = FolderId::from_bytes([1; 16]);
        let id = |n: u8| ChunkId::from_bytes([n; 32]);
        outbox.put(folder, id(1), vec![0; 10]);
        outbox.put(folder, id(1), vec![0; 10]);
        assert_eq!(outbox.bytes(), 10);
        assert_eq!(outbox.take(&folder, &id(1)), Some(vec![0; 10]));
        assert_eq!(outbox.take(&folder, &id(1)), None);
        assert_eq!(outbox.bytes(), 0);
        let gone = AtomicBool::new(false);
        assert!(outbox.wait_for_room(&gone));
        // Over the room with no one taking: the scan stops offering after STALL.
        outbox.put(folder, id(2), vec![0; ROOM]);
        outbox.put(folder, id(3), vec![0; 1 << 20]);
        let started = Instant::now();
        assert!(!outbox.wait_for_room(&gone));
        assert!(started.elapsed() >= STALL);
        // Someone taking makes room.
        let taker = {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                outbox.take(&folder, &id(2)).is_some()
            })
        };
        assert!(outbox.wait_for_room(&gone));
        assert!(taker.join().unwrap());
        // No peer left: no wait at all.
        outbox.put(folder, id(4), vec![0; ROOM]);
        gone.store(true, Ordering::Relaxed);
        let started = Instant::now();
        assert!(!outbox.wait_for_room(&gone));
        assert!(started.elapsed() < STALL);
        outbox.remove(&folder, &[id(3), id(4)]);
        assert_eq!(outbox.bytes(), 0);
    }
}
