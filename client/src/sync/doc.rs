//! The folder document: an Automerge map that every member device of a folder holds a copy of.
//!
//! Keys and values (all values are bytes, so the document stays compact: one small value per
//! file, no nested maps):
//!
//! - `f/<file id hex>`: the file's [`Record`]. Two devices that change one file concurrently
//!   leave two values under its key (an Automerge conflict); [`FolderDoc::files`] returns all
//!   of them and the planner picks the winner by a rule every device computes alike.
//! - `e/<chain head hex>`: a chain link, `prev head [32] | entry [218]`, content-addressed by
//!   the head it leads to, so concurrent entries never collide and a device that missed some
//!   versions can walk back from any record to the entries it lacks.
//!
//! Chunk lists are not in the document: they are in manifest trees, fetched as blobs.
//!
//! The document is saved atomically (temp file, fsync, rename) in the data dir. Every process
//! start takes a new random actor id, so a document lost in a crash can never make this device
//! reuse a sequence number its peers have already seen.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use automerge::{ActorId, AutoCommit, ReadDoc, ScalarValue, Value, transaction::Transactable};
use harp_protocol::chain::{ENTRY_LEN, Entry};
use harp_protocol::ids::{ChainHash, FileId};
use harp_protocol::record::Record;

/// Errors of the folder document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The saved document is not a valid Automerge document.
    #[error("the folder document {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Automerge's complaint.
        reason: String,
    },
    /// Reading or writing the document file failed.
    #[error("folder document {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An Automerge operation failed.
    #[error("folder document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// How many changes one received sync message applies at a time (see
/// [`FolderDoc::receive_sync_message`]): at most 4 × [`COMMIT_EVERY`] values in one piece.
/// Each application walks the document's map once, so one change at a time made receiving
/// 10,000 new files quadratic: 40 % of the receiver's CPU in that scenario, its metadata
/// session 1.2-1.5 s. Four at a time: 0.39-0.42 s, as fast as sixteen, with pieces a quarter
/// the size (docs/benchmarks.md).
const APPLY_BATCH: usize = 4;

/// A change holds at most this many values: a round that publishes 10,000 files makes many
/// small changes, not one of 20,000 values, so that a receiver never inserts one huge piece
/// (see [`FolderDoc::receive_sync_message`]).
const COMMIT_EVERY: usize = 64;

/// The changes file may grow to this before the document is written whole again (which it is
/// also at every [`FolderDoc::open`]).
const CHANGES_AT_MOST: u64 = 64 << 20;

/// One folder's metadata document.
///
/// On disk it is two files: the document written whole (`path`, replaced atomically), and
/// beside it the changes made since (`path` + `.changes`), each save appending its new
/// changes as `len u32 BE ‖ change` records and syncing them. A save used to write the whole
/// document every time: for a folder of 10,000 files that is about 0.2 CPU s and a burst of
/// some 25 MB of the encoder's buffers per metadata round, whatever the round changed
/// (`docs/benchmarks.md`, session 22); an append costs what the round changed. Opening folds
/// the changes into the document, written whole again while the daemon holds little else in
/// memory. A record cut short by a crash ends the file; it and anything after it is ignored,
/// as the save it belonged to never returned.
pub struct FolderDoc {
    doc: AutoCommit,
    path: PathBuf,
    /// The heads as last saved (or loaded).
    saved: Vec<automerge::ChangeHash>,
    /// Values put since the last commit (see [`COMMIT_EVERY`]).
    uncommitted: usize,
    /// Whether the document has been written whole at `path`.
    whole_on_disk: bool,
    /// Bytes in the changes file.
    appended: u64,
    /// An append failed and could not be undone: the next save writes the document whole.
    whole_next: bool,
}

impl std::fmt::Debug for FolderDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderDoc")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn file_key(id: &FileId) -> String {
    format!("f/{}", id.to_hex())
}

fn entry_key(head: &ChainHash) -> String {
    format!("e/{}", head.to_hex())
}

fn random_actor() -> ActorId {
    let mut bytes = [0u8; 16];
    // A failing OS random source leaves zeros plus the time: still unique per start.
    if getrandom::getrandom(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = t.to_be_bytes();
    }
    ActorId::from(bytes.as_slice())
}

impl FolderDoc {
    /// Opens the document saved at `path` (with the changes appended beside it since it was
    /// written whole), or starts an empty one.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let damaged = |reason: String| Error::Damaged {
            path: path.to_owned(),
            reason,
        };
        let (mut doc, whole_on_disk) = match std::fs::read(path) {
            Ok(bytes) => (
                AutoCommit::load(&bytes).map_err(|e| damaged(e.to_string()))?,
                true,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (AutoCommit::new(), false),
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let changes_path = changes_path(path);
        let had_changes = match std::fs::read(&changes_path) {
            Ok(bytes) => {
                let (applied, used) = apply_change_records(&mut doc, &bytes)
                    .map_err(|e| damaged(format!("{}: {e}", changes_path.display())))?;
                if used < bytes.len() {
                    tracing::warn!(
                        file = %changes_path.display(),
                        "{} bytes after {applied} changes ignored: a save cut short",
                        bytes.len() - used
                    );
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(Error::Io {
                    path: changes_path,
                    source,
                });
            }
        };
        let mut doc = doc.with_actor(random_actor());
        let saved = doc.get_heads();
        let mut opened = Self {
            doc,
            path: path.to_owned(),
            saved,
            uncommitted: 0,
            whole_on_disk,
            appended: 0,
            whole_next: false,
        };
        if had_changes {
            opened.save_whole()?;
        }
        Ok(opened)
    }

    /// An empty document that is never saved, for tests.
    pub fn in_memory() -> Self {
        Self {
            doc: AutoCommit::new().with_actor(random_actor()),
            path: PathBuf::new(),
            saved: Vec::new(),
            uncommitted: 0,
            whole_on_disk: false,
            appended: 0,
            whole_next: false,
        }
    }

    /// Saves what was added since the last save: appended to the changes file and synced, or,
    /// the first time (or when that file has grown large, or an append could not be undone),
    /// the whole document, atomically.
    pub fn save(&mut self) -> Result<(), Error> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        if !self.whole_on_disk || self.whole_next {
            return self.save_whole();
        }
        let changes = self.doc.get_changes(&self.saved);
        if changes.is_empty() {
            self.saved = self.doc.get_heads();
            return Ok(());
        }
        let size: u64 = changes.iter().map(|c| 4 + c.raw_bytes().len() as u64).sum();
        if self.appended + size > CHANGES_AT_MOST {
            return self.save_whole();
        }
        let changes_path = changes_path(&self.path);
        let io = |source| Error::Io {
            path: changes_path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&changes_path)
            .map_err(io)?;
        // Through a small buffer: a round of 10,000 files appends megabytes.
        let mut out = std::io::BufWriter::with_capacity(256 << 10, &file);
        let appended = changes
            .iter()
            .try_for_each(|c| {
                let raw = c.raw_bytes();
                out.write_all(&(raw.len() as u32).to_be_bytes())?;
                out.write_all(raw)
            })
            .and_then(|()| out.flush())
            .and_then(|()| file.sync_data())
            .and_then(|()| {
                // A new changes file's name must last as well as its bytes.
                if self.appended == 0 {
                    sync_dir(&self.path)
                } else {
                    Ok(())
                }
            });
        drop(out);
        if let Err(e) = appended {
            // Cut off what part of it went in: a partial record in the middle would hide
            // every later one at the next open.
            if file
                .set_len(self.appended)
                .and_then(|()| file.sync_data())
                .is_err()
            {
                self.whole_next = true;
            }
            return Err(io(e));
        }
        self.appended += size;
        self.saved = self.doc.get_heads();
        Ok(())
    }

    /// Writes the whole document atomically, then drops the changes file it now holds.
    fn save_whole(&mut self) -> Result<(), Error> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = self.doc.save();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        // The rename must last before the changes it replaces go.
        sync_dir(&self.path).map_err(io)?;
        match std::fs::remove_file(changes_path(&self.path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        self.whole_on_disk = true;
        self.appended = 0;
        self.whole_next = false;
        self.saved = self.doc.get_heads();
        Ok(())
    }

    /// Saves the document if anything was added since it was last saved or loaded.
    pub fn save_if_changed(&mut self) -> Result<bool, Error> {
        if self.doc.get_heads() == self.saved {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// The heads of the document: they change whenever anything was added.
    pub fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.get_heads()
    }

    /// Every file's records: one, or several while devices disagree. Values that do not
    /// decode (a buggy or hostile peer) are left out and logged.
    pub fn files(&self) -> BTreeMap<FileId, Vec<Record>> {
        let mut out = BTreeMap::new();
        for item in self
            .doc
            .map_range(automerge::ROOT, "f/".to_owned().."f0".to_owned())
        {
            let Ok(id) = item.key[2..].parse::<FileId>() else {
                tracing::warn!("folder document: bad file key {:?}", item.key);
                continue;
            };
            let values: Vec<Record> = if item.conflict {
                match self.doc.get_all(automerge::ROOT, item.key.as_ref()) {
                    Ok(all) => all.iter().filter_map(|(v, _)| decode_record(v)).collect(),
                    Err(_) => Vec::new(),
                }
            } else {
                decode_record(&item.value.into_value())
                    .into_iter()
                    .collect()
            };
            if !values.is_empty() {
                out.insert(id, values);
            }
        }
        out
    }

    /// Sets a file's record (superseding every value this device has seen).
    pub fn put_record(&mut self, id: &FileId, record: &Record) -> Result<(), Error> {
        self.doc.put(
            automerge::ROOT,
            file_key(id),
            ScalarValue::Bytes(record.encode()),
        )?;
        self.counted_put();
        Ok(())
    }

    /// Commits the open change once it holds [`COMMIT_EVERY`] values.
    fn counted_put(&mut self) {
        self.uncommitted += 1;
        if self.uncommitted >= COMMIT_EVERY {
            self.doc.commit();
            self.uncommitted = 0;
        }
    }

    /// Puts raw bytes under a file's key, unchecked: what a buggy or hostile peer could do
    /// (tests of the receiving side).
    #[cfg(test)]
    pub fn put_raw_record(&mut self, id: &FileId, bytes: Vec<u8>) -> Result<(), Error> {
        self.doc
            .put(automerge::ROOT, file_key(id), ScalarValue::Bytes(bytes))?;
        self.counted_put();
        Ok(())
    }

    /// Adds a chain link (idempotent: content-addressed by `head`).
    pub fn put_entry(
        &mut self,
        prev: &ChainHash,
        entry: &Entry,
        head: &ChainHash,
    ) -> Result<(), Error> {
        let key = entry_key(head);
        if self.doc.get(automerge::ROOT, key.as_str())?.is_some() {
            return Ok(());
        }
        let mut value = Vec::with_capacity(32 + ENTRY_LEN);
        value.extend_from_slice(prev.as_bytes());
        value.extend_from_slice(&entry.encode());
        self.doc
            .put(automerge::ROOT, key, ScalarValue::Bytes(value))?;
        self.counted_put();
        Ok(())
    }

    /// The link leading to `head`: the previous head and the entry.
    pub fn entry(&self, head: &ChainHash) -> Option<(ChainHash, Entry)> {
        let (value, _) = self
            .doc
            .get(automerge::ROOT, entry_key(head).as_str())
            .ok()??;
        let Value::Scalar(s) = value else { return None };
        let ScalarValue::Bytes(b) = s.as_ref() else {
            return None;
        };
        if b.len() != 32 + ENTRY_LEN {
            return None;
        }
        let prev = ChainHash::from_bytes(b[..32].try_into().ok()?);
        let entry = Entry::decode(&b[32..]).ok()?;
        Some((prev, entry))
    }

    /// The actor id this copy writes changes as (new at every start), in hex.
    pub fn actor(&self) -> String {
        self.doc.get_actor().to_hex_string()
    }

    /// Changes that are not ancestors of `heads` (all of them for no heads) and were written
    /// by one of `actors`, as bytes, with the heads now.
    pub fn changes_after(
        &mut self,
        heads: &[automerge::ChangeHash],
        actors: &std::collections::HashSet<String>,
    ) -> (
        Vec<(automerge::ChangeHash, Vec<u8>)>,
        Vec<automerge::ChangeHash>,
    ) {
        let known: Vec<automerge::ChangeHash> = heads
            .iter()
            .filter(|h| self.doc.get_change_by_hash(h).is_some())
            .copied()
            .collect();
        let changes = self
            .doc
            .get_changes(&known)
            .into_iter()
            .filter(|c| actors.contains(&c.actor_id().to_hex_string()))
            .map(|mut c| (c.hash(), c.bytes().into_owned()))
            .collect();
        (changes, self.doc.get_heads())
    }

    /// Applies changes from elsewhere (the bridge); returns the hashes of those that decoded.
    /// Changes whose dependencies are missing wait inside Automerge until they arrive.
    pub fn apply_changes(
        &mut self,
        raw: Vec<Vec<u8>>,
    ) -> Result<Vec<automerge::ChangeHash>, Error> {
        let mut changes = Vec::new();
        for bytes in raw {
            match automerge::Change::from_bytes(bytes) {
                Ok(c) => changes.push(c),
                Err(e) => {
                    tracing::warn!("folder document: a change from the bridge does not decode: {e}")
                }
            }
        }
        let hashes = changes.iter().map(automerge::Change::hash).collect();
        self.doc.apply_changes(changes)?;
        Ok(hashes)
    }

    /// Every chain link in the document: (head, prev, entry bytes), by seq.
    pub fn links(&self) -> Vec<(ChainHash, ChainHash, Entry)> {
        let mut out: Vec<(ChainHash, ChainHash, Entry)> = self
            .doc
            .keys(automerge::ROOT)
            .filter_map(|k| {
                let hex = k.strip_prefix("e/")?;
                let head: ChainHash = hex.parse().ok()?;
                let (prev, entry) = self.entry(&head)?;
                Some((head, prev, entry))
            })
            .collect();
        out.sort_by_key(|(_, _, e)| e.seq);
        out
    }

    /// Generates the next sync message for a peer (None: nothing to say now): Automerge's V1
    /// form, changes one by one, never a saved document or a V2 bundle, so that a receiver can
    /// apply them one at a time (see [`Self::receive_sync_message`]).
    pub fn sync_message(&mut self, state: &mut automerge::sync::State) -> Option<Vec<u8>> {
        use automerge::sync::SyncDoc;
        // Changes go one by one (V1), never as a saved document or one compressed bundle (V2):
        // see `receive_sync_message` for why.
        state.their_capabilities = Some(vec![automerge::sync::Capability::MessageV1]);
        self.doc
            .sync()
            .generate_sync_message(state)
            .map(|m| m.encode())
    }

    /// Applies a peer's sync message. Returns whether the document changed.
    pub fn receive_sync_message(
        &mut self,
        state: &mut automerge::sync::State,
        message: &[u8],
    ) -> Result<bool, String> {
        use automerge::sync::SyncDoc;
        // A diagnostic: `HARP_DEBUG_SYNC_DIR=DIR` keeps every sync message received, to replay
        // them in the `replay` measurement below (docs/benchmarks.md, peak RSS).
        if let Some(dir) = std::env::var_os("HARP_DEBUG_SYNC_DIR") {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("{}-{n:05}.msg", std::process::id());
            if let Err(e) = std::fs::write(Path::new(&dir).join(name), message) {
                tracing::debug!("HARP_DEBUG_SYNC_DIR: {e}");
            }
        }
        let mut message = automerge::sync::Message::decode(message).map_err(|e| e.to_string())?;
        let before = self.doc.get_heads();
        // Changes are applied a few at a time. Automerge 0.12 inserts one batch's new values
        // as one piece of its column storage; a later insert into the middle of an oversized
        // piece splits it, and the part kept keeps the whole allocation (`Vec::split_off`), so
        // a large batch followed by more changes left hundreds of megabytes allocated for a
        // 4 MB document (a replayed run: 31 -> 233 MiB on one 714 KB message). Small batches
        // keep every piece small; not one change each, as each batch costs a walk of the
        // document ([`APPLY_BATCH`]). A message in another form (an older peer's V2 bundle) goes
        // through Automerge as it is.
        if message.version == automerge::sync::MessageVersion::V1 && !message.changes.is_empty() {
            let changes: Option<Vec<automerge::Change>> = message
                .changes
                .iter()
                .map(|c| automerge::Change::from_bytes(c.to_vec()).ok())
                .collect();
            if let Some(changes) = changes {
                let mut changes = changes.into_iter().peekable();
                while changes.peek().is_some() {
                    let batch: Vec<_> = changes.by_ref().take(APPLY_BATCH).collect();
                    self.doc.apply_changes(batch).map_err(|e| e.to_string())?;
                }
                message.changes = automerge::sync::ChunkList::empty();
            }
        }
        self.doc
            .sync()
            .receive_sync_message(state, message)
            .map_err(|e| e.to_string())?;
        Ok(self.doc.get_heads() != before)
    }

    /// Merges another copy in (tests; devices use the sync protocol).
    pub fn merge(&mut self, other: &mut FolderDoc) -> Result<(), Error> {
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// The document's saved size in bytes (for status and benchmarks).
    pub fn saved_len(&mut self) -> usize {
        self.doc.save().len()
    }
}

/// The changes file beside the document at `path`.
fn changes_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".changes");
    PathBuf::from(p)
}

/// Syncs the directory that holds `path`, so that a name made or replaced in it lasts.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Applies the `len u32 BE ‖ change` records of a changes file, a few at a time (see
/// [`FolderDoc::receive_sync_message`] for why), up to the first that is cut short or does
/// not decode. Returns how many were applied and the bytes they took.
fn apply_change_records(
    doc: &mut AutoCommit,
    bytes: &[u8],
) -> Result<(usize, usize), automerge::AutomergeError> {
    let (mut at, mut applied) = (0, 0);
    let mut batch = Vec::with_capacity(APPLY_BATCH);
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(raw) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        let Ok(change) = automerge::Change::from_bytes(raw.to_vec()) else {
            break;
        };
        batch.push(change);
        at += 4 + len;
        if batch.len() == APPLY_BATCH {
            applied += batch.len();
            doc.apply_changes(std::mem::take(&mut batch))?;
        }
    }
    applied += batch.len();
    doc.apply_changes(batch)?;
    Ok((applied, at))
}

fn decode_record(v: &Value<'_>) -> Option<Record> {
    let Value::Scalar(s) = v else { return None };
    let ScalarValue::Bytes(b) = s.as_ref() else {
        return None;
    };
    match Record::decode(b) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("folder document: a record does not decode: {e}");
            None
        }
    }
}

#[cfg(test)]
mod memory {
    use super::*;
    use automerge::sync::{State, SyncDoc};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn rss_mib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
        (pages * 4096) >> 20
    }

    /// How much memory a document of 10,000 files takes, built locally and received.
    #[test]
    #[ignore = "a measurement: [EVERY=n] [BATCH=n] cargo test --release -p harp --lib memory -- --ignored --nocapture"]
    fn document_of_10000_files() {
        let every: u32 = std::env::var("EVERY").map_or(2048, |v| v.parse().unwrap());
        let batch: u32 = std::env::var("BATCH").map_or(10_000, |v| v.parse().unwrap());
        let base = rss_mib();
        let mut a = AutoCommit::new();
        let mut b = AutoCommit::new();
        if std::env::var("LOADED").is_ok() {
            // As in the daemon: documents loaded from disk, with a little history already.
            for i in 0..3u8 {
                a.put(
                    automerge::ROOT,
                    format!("f/{i}"),
                    ScalarValue::Bytes(vec![i; 200]),
                )
                .unwrap();
                a.commit();
            }
            b.merge(&mut a).unwrap();
            a = AutoCommit::load(&a.save()).unwrap();
            b = AutoCommit::load(&b.save()).unwrap();
        }
        let (mut sa, mut sb) = (State::new(), State::new());
        let mut biggest = 0;
        let fresh = std::env::var("FRESH").is_ok();
        let twice = std::env::var("TWICE").is_ok();
        let (mut sa2, mut sb2) = (State::new(), State::new());
        let mut sync = |a: &mut AutoCommit, b: &mut AutoCommit| {
            if fresh {
                // As the daemon's sessions did: every session from a fresh sync state.
                (sa, sb) = (State::new(), State::new());
            }
            for _ in 0..10 {
                if twice {
                    // A second session at the same time, as when both sides start one: the
                    // same changes may arrive through both.
                    if let Some(m) = a.sync().generate_sync_message(&mut sa2) {
                        b.sync().receive_sync_message(&mut sb2, m).unwrap();
                    }
                    if let Some(m) = b.sync().generate_sync_message(&mut sb2) {
                        a.sync().receive_sync_message(&mut sa2, m).unwrap();
                    }
                }
                if let Some(m) = a.sync().generate_sync_message(&mut sa) {
                    let bytes = m.encode();
                    biggest = biggest.max(bytes.len());
                    b.sync()
                        .receive_sync_message(
                            &mut sb,
                            automerge::sync::Message::decode(&bytes).unwrap(),
                        )
                        .unwrap();
                }
                if let Some(m) = b.sync().generate_sync_message(&mut sb) {
                    a.sync().receive_sync_message(&mut sa, m).unwrap();
                }
            }
        };
        for i in 0..10_000u32 {
            let mut v = vec![0u8; 200];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut v);
            a.put(
                automerge::ROOT,
                format!("f/{}", hex(&v[..16])),
                ScalarValue::Bytes(v.clone()),
            )
            .unwrap();
            a.put(
                automerge::ROOT,
                format!("e/{}", hex(&v[16..48])),
                ScalarValue::Bytes(v),
            )
            .unwrap();
            if i % every == 0 {
                a.commit();
            }
            if (i + 1) % batch == 0 {
                a.commit();
                sync(&mut a, &mut b);
            }
        }
        a.commit();
        sync(&mut a, &mut b);
        let saved = a.save();
        let hwm: u64 = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0);
        println!("peak {} MiB", hwm >> 10);
        println!(
            "a and b: +{} MiB; saved {} KiB, largest message {} KiB",
            rss_mib() - base,
            saved.len() >> 10,
            biggest >> 10
        );
        let before = rss_mib();
        let c = AutoCommit::load(&saved).unwrap();
        println!("loaded from save: +{} MiB", rss_mib() - before);
        drop((a, b, c));
    }
}

#[cfg(test)]
mod replay {
    use automerge::AutoCommit;
    use automerge::sync::State;

    fn hwm() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
            >> 10
    }

    /// Applies the sync messages one daemon received (kept with `HARP_DEBUG_SYNC_DIR=DIR`) to
    /// a new document, printing the memory peak after each: what found that one message of
    /// 714 KB took the peak from 31 to 233 MiB (docs/benchmarks.md).
    #[test]
    #[ignore = "a measurement: REPLAY=DIR PID=pid [RELOAD=1] cargo test --release -p harp --lib replay -- --ignored --nocapture"]
    fn replay_dumped() {
        let dir = std::env::var("REPLAY").unwrap();
        let prefix = format!("{}-", std::env::var("PID").unwrap());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect();
        files.sort();
        let mut doc = super::FolderDoc::in_memory();
        let mut state = State::new();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let n = automerge::sync::Message::decode(&bytes)
                .unwrap()
                .changes
                .len();
            let before = hwm();
            let t = std::time::Instant::now();
            if std::env::var("RELOAD").is_ok() {
                // As after a daemon restart: the document loaded from its saved bytes.
                doc.doc = AutoCommit::load(&doc.doc.save()).unwrap();
            }
            doc.receive_sync_message(&mut state, &bytes).unwrap();
            let rss = std::fs::read_to_string("/proc/self/statm").unwrap();
            let rss: u64 = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
            println!(
                "{:?}: {} bytes, {n} chunks, {:?}, peak {} -> {} MiB, rss {} MiB",
                f.file_name().unwrap(),
                bytes.len(),
                t.elapsed(),
                before,
                hwm(),
                (rss * 4096) >> 20
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::{Message, MessageVersion, State};

    fn keys(doc: &FolderDoc) -> usize {
        doc.doc.length(automerge::ROOT)
    }

    fn put_files(doc: &mut FolderDoc, from: u32, to: u32) {
        for i in from..to {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            doc.put_raw_record(&FileId::from_bytes(id), vec![i as u8; 100])
                .unwrap();
        }
    }

    /// A save after the first appends only what changed; opening folds the appended changes
    /// into the document, written whole, and the changes file goes.
    #[test]
    fn saves_append_their_changes_and_opening_folds_them_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("folder.automerge");
        let changes = changes_path(&path);
        let mut doc = FolderDoc::open(&path).unwrap();
        put_files(&mut doc, 0, 300);
        doc.save().unwrap();
        let whole = std::fs::metadata(&path).unwrap().len();
        assert!(
            !changes.exists(),
            "the first save writes the document whole"
        );
        put_files(&mut doc, 300, 310);
        assert!(doc.save_if_changed().unwrap());
        put_files(&mut doc, 310, 320);
        assert!(doc.save_if_changed().unwrap());
        assert!(!doc.save_if_changed().unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert!(std::fs::metadata(&changes).unwrap().len() > 0);
        let heads = doc.heads();
        drop(doc);

        let mut reopened = FolderDoc::open(&path).unwrap();
        assert_eq!(reopened.heads(), heads);
        assert_eq!(keys(&reopened), 320);
        assert!(!changes.exists(), "folded into the document");
        // And it goes on appending from there.
        put_files(&mut reopened, 320, 321);
        reopened.save().unwrap();
        assert!(changes.exists());
        let heads = reopened.heads();
        drop(reopened);
        assert_eq!(FolderDoc::open(&path).unwrap().heads(), heads);
    }

    /// A save cut short (a crash in the middle of an append) leaves a partial record at the
    /// end of the changes file: opening keeps every save before it and ignores the rest.
    #[test]
    fn a_save_cut_short_loses_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("folder.automerge");
        let changes = changes_path(&path);
        let mut doc = FolderDoc::open(&path).unwrap();
        put_files(&mut doc, 0, 50);
        doc.save().unwrap();
        put_files(&mut doc, 50, 60);
        doc.save().unwrap();
        let kept = doc.heads();
        let before = std::fs::read(&changes).unwrap();
        put_files(&mut doc, 60, 70);
        doc.save().unwrap();
        let after = std::fs::read(&changes).unwrap();
        assert!(after.len() > before.len() + 8);
        drop(doc);
        let whole = std::fs::read(&path).unwrap();
        for cut in [
            before.len() + 2,
            before.len() + 7,
            (before.len() + after.len()) / 2,
            after.len() - 1,
        ] {
            std::fs::write(&changes, &after[..cut]).unwrap();
            let opened = FolderDoc::open(&path).unwrap();
            let files = keys(&opened);
            assert!((60..70).contains(&files), "cut at {cut}: {files} files");
            assert!(!changes.exists());
            drop(opened);
            // Opening wrote the document whole: put the first one back for the next cut.
            std::fs::write(&path, &whole).unwrap();
        }
        // A changes file whose first record is garbage: the document alone.
        std::fs::write(&changes, [0xff; 40]).unwrap();
        assert_eq!(keys(&FolderDoc::open(&path).unwrap()), 50);
        // And a whole one: everything saved.
        std::fs::write(&path, &whole).unwrap();
        std::fs::write(&changes, &before).unwrap();
        let mut opened = FolderDoc::open(&path).unwrap();
        assert_eq!(opened.heads(), kept);
    }

    /// Documents meet through `sync_message` and `receive_sync_message` in small changes sent
    /// one by one: a round of 1,000 values arrives as many changes, never as one bundle or a
    /// whole saved document, and both sides end with the same heads and values.
    #[test]
    fn sync_sends_small_changes_one_by_one_and_converges() {
        let mut a = FolderDoc::in_memory();
        let mut b = FolderDoc::in_memory();
        for i in 0..500u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            a.put_raw_record(&FileId::from_bytes(id), vec![i as u8; 150])
                .unwrap();
        }
        let (mut sa, mut sb) = (State::new(), State::new());
        let mut chunks = 0;
        for _ in 0..20 {
            if let Some(m) = a.sync_message(&mut sa) {
                let decoded = Message::decode(&m).unwrap();
                assert_eq!(decoded.version, MessageVersion::V1);
                chunks += decoded.changes.len();
                b.receive_sync_message(&mut sb, &m).unwrap();
            }
            if let Some(m) = b.sync_message(&mut sb) {
                a.receive_sync_message(&mut sa, &m).unwrap();
            }
        }
        assert_eq!(a.heads(), b.heads());
        assert!(
            chunks >= 500 / COMMIT_EVERY,
            "{chunks} changes carried 500 values"
        );
        for i in [0u32, 250, 499] {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            let key = file_key(&FileId::from_bytes(id));
            assert_eq!(
                a.doc
                    .get(automerge::ROOT, key.as_str())
                    .unwrap()
                    .map(|(v, _)| v.to_string()),
                b.doc
                    .get(automerge::ROOT, key.as_str())
                    .unwrap()
                    .map(|(v, _)| v.to_string())
            );
        }
    }
}
