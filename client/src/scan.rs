//! Scanning a folder: find what changed on disk since the last scan and record it.
//!
//! The pipeline, in order:
//!
//! 1. **Check the root.** A folder whose root is missing, or whose `.harp` marker is gone, or
//!    that is empty when the last scan saw entries, stops the scan with an error: an unmounted
//!    disk must never read as "everything was deleted".
//! 2. **Walk** (parallel, `ignore` crate): every entry except `.harp/` and what `.harpignore`
//!    files exclude (gitignore syntax). Symlinks are recorded, never followed; special files
//!    (fifos, sockets, devices) and names that are not UTF-8 are reported and skipped. Names
//!    are normalised to NFC; two names that normalise alike are reported, not duplicated.
//! 3. **Classify** against the index: an entry with the same kind, size, mtime (ns), inode and
//!    device as its row is unchanged and never read. A new path whose inode belongs to a path
//!    that vanished is a rename (case-only renames included); a path that vanished is a
//!    delete, unless it lies under a directory the walk could not read.
//! 4. **Hash** the new and changed files on a pool of `hashing_threads` threads
//!    ([`crate::chunk`]). A file that changes while it is read is read again (up to three
//!    times), then reported and left for the next scan; an unreadable file is reported and
//!    skipped, never fatal.
//! 5. **Record**, in transactions of a few hundred files: the manifest tree, the chunk
//!    locations, and a signed chain entry (create, modify, rename, delete) for each change of
//!    content or path. A kill -9 at any point leaves the index consistent, and the next scan
//!    picks up what was not recorded.

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use harp_protocol::chain::{ChainTip, Change, Op};
use harp_protocol::chunker::Chunker;
use harp_protocol::ids::{ChainHash, FileId, FolderId};
use harp_protocol::keys::FolderKeys;
use harp_protocol::manifest::{ChunkRef, EntryKind, Tree};
use thiserror::Error;
use unicode_normalization::{UnicodeNormalization, is_nfc};

use crate::chunk::{self, Hashed};

pub mod watch;
use crate::index::{self, ChunkLoc, FileRow, Index};

/// The folder-local directory Harp owns: versions, temp files. Never synced.
pub const MARKER_DIR: &str = ".harp";
/// The ignore file name (gitignore syntax), in any directory of a folder.
pub const IGNORE_FILE: &str = ".harpignore";
/// How many changed files are recorded per transaction.
const BATCH_FILES: usize = 256;
/// How many bytes of changed files are hashed per transaction.
const BATCH_BYTES: u64 = 256 << 20;
/// Changed files at least this large reuse their previous chunks' tags (below it, sealing
/// everything again costs less than looking the tags up).
const KNOWN_CHUNKS_MIN_SIZE: u64 = 1 << 20;
/// How often a file that keeps changing while it is read is tried.
const READ_ATTEMPTS: usize = 3;

/// Errors that stop a scan. Problems with single files are not errors: they are reported in
/// [`Summary::skipped`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder's root does not exist or is not a directory.
    #[error(
        "folder root {0} is missing or not a directory: is the disk mounted? Nothing was changed"
    )]
    RootMissing(PathBuf),
    /// The `.harp` marker is gone although the folder was scanned before.
    #[error(
        "{0} has no .harp marker although it was synced before: is this the right folder (a disk not mounted, a folder replaced)? Nothing was changed; if it is right, create the empty directory {0}/.harp"
    )]
    MarkerMissing(PathBuf),
    /// The folder is empty although the last scan saw entries.
    #[error(
        "folder {root} is empty but held {had} entries at the last scan: refusing to record everything as deleted. If you did delete everything, delete the files through a scan that still sees one entry, or remove and re-add the folder"
    )]
    RootEmpty {
        /// The folder.
        root: PathBuf,
        /// Entries the last scan saw.
        had: u64,
    },
    /// The index failed.
    #[error(transparent)]
    Index(#[from] index::Error),
    /// Creating the marker or the hashing pool failed.
    #[error("{0}")]
    Setup(String),
    /// One entry could not be taken (internal: it becomes a [`Summary::skipped`] report).
    #[error("{}: {}", .0.path, .0.reason)]
    Skip(Skipped),
}

/// A folder as the scanner needs it.
#[derive(Debug)]
pub struct Folder {
    /// Its id.
    pub id: FolderId,
    /// Its root on this device (absolute).
    pub root: PathBuf,
    /// Its keys.
    pub keys: FolderKeys,
    /// Its chunker (keyed gear table).
    pub chunker: Chunker,
    /// What its file system keeps, found out once (see [`Folder::file_system`]).
    file_system: std::sync::OnceLock<FileSystem>,
}

/// What a folder's file system keeps of what Harp syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSystem {
    /// Whether it keeps Unix modes. exFAT, FAT and NTFS through FUSE show every file as 0777
    /// whatever `chmod` did: such a folder neither sends its modes nor takes them as changes.
    pub keeps_modes: bool,
    /// Whether `a.txt` and `A.txt` are one name (FAT, exFAT, NTFS, APFS by default, ext4
    /// casefold).
    pub case_insensitive: bool,
}

/// The file in the marker directory that [`Folder::file_system`] probes with.
const PROBE: &str = "fs-probe";

impl Folder {
    /// A folder with keys derived from its folder key.
    pub fn new(id: FolderId, root: PathBuf, keys: FolderKeys) -> Self {
        let chunker = Chunker::for_folder(&keys);
        Self {
            id,
            root,
            keys,
            chunker,
            file_system: std::sync::OnceLock::new(),
        }
    }

    /// `<root>/.harp`.
    pub fn marker(&self) -> PathBuf {
        self.root.join(MARKER_DIR)
    }

    /// What the folder's file system keeps, probed once with a file of the marker directory:
    /// its mode set to 0600 and read back, and its name looked up in capitals. (Comparing
    /// the inodes of `.harp` and `.HARP` is not enough: exFAT through FUSE gives each name its
    /// own inode number.) A probe that cannot be made (no marker yet, a read-only folder)
    /// says: modes kept, case-sensitive unless `.harp` and `.HARP` are one inode.
    pub fn file_system(&self) -> FileSystem {
        if let Some(known) = self.file_system.get() {
            return *known;
        }
        let marker = self.marker();
        let probe = marker.join(PROBE);
        let made = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&probe)
            .and_then(|f| {
                f.set_permissions(fs::Permissions::from_mode(0o600))?;
                f.metadata()
            });
        let Ok(meta) = made else {
            let lower = fs::symlink_metadata(&marker);
            let upper = fs::symlink_metadata(self.root.join(MARKER_DIR.to_uppercase()));
            let one = matches!((lower, upper), (Ok(l), Ok(u)) if l.ino() == u.ino() && l.dev() == u.dev());
            let guess = FileSystem {
                keeps_modes: true,
                case_insensitive: one,
            };
            // Without a marker yet, asked again later; a marker that takes no probe (read-only)
            // is not asked once per file.
            if marker.is_dir() {
                return *self.file_system.get_or_init(|| guess);
            }
            return guess;
        };
        let found = FileSystem {
            keeps_modes: meta.mode() & 0o777 == 0o600,
            case_insensitive: fs::symlink_metadata(marker.join(PROBE.to_uppercase())).is_ok(),
        };
        *self.file_system.get_or_init(|| found)
    }

    /// An entry's mode as synced: its own where the file system keeps modes, else `previous`
    /// (what the index holds) or the usual default of its kind.
    fn mode_of(&self, meta: &Metadata, previous: Option<u32>) -> u32 {
        if self.file_system().keeps_modes {
            return mode_bits(meta);
        }
        previous.unwrap_or(if meta.is_dir() { 0o755 } else { 0o644 })
    }
}

/// Live counters for a progress display; the scan updates them from every thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Entries the walk has found.
    pub walked: AtomicU64,
    /// Files to hash (known after the walk).
    pub files_total: AtomicU64,
    /// Bytes to hash (known after the walk).
    pub bytes_total: AtomicU64,
    /// Files hashed so far.
    pub files_done: AtomicU64,
    /// Bytes hashed so far.
    pub bytes_done: AtomicU64,
    /// Whether a scan is running (see [`Progress::snapshot`]).
    running: std::sync::atomic::AtomicBool,
}

/// The counters of a scan, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProgressSnapshot {
    /// Entries the walk has found.
    pub walked: u64,
    /// Files to hash (0 until the walk is over).
    pub files_total: u64,
    /// Files hashed so far.
    pub files_done: u64,
    /// Bytes to hash.
    pub bytes_total: u64,
    /// Bytes hashed so far.
    pub bytes_done: u64,
}

/// Marks a scan as over when dropped, however it ends.
pub struct ScanRunning<'a>(&'a Progress);

impl Drop for ScanRunning<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Relaxed);
    }
}

impl Progress {
    /// A scan begins: the counters start from nothing.
    pub fn begin(&self) -> ScanRunning<'_> {
        for c in [
            &self.walked,
            &self.files_total,
            &self.bytes_total,
            &self.files_done,
            &self.bytes_done,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.running.store(true, Ordering::Relaxed);
        ScanRunning(self)
    }

    /// The scan running now, if one is.
    pub fn snapshot(&self) -> Option<ProgressSnapshot> {
        self.running
            .load(Ordering::Relaxed)
            .then(|| ProgressSnapshot {
                walked: self.walked.load(Ordering::Relaxed),
                files_total: self.files_total.load(Ordering::Relaxed),
                files_done: self.files_done.load(Ordering::Relaxed),
                bytes_total: self.bytes_total.load(Ordering::Relaxed),
                bytes_done: self.bytes_done.load(Ordering::Relaxed),
            })
    }
}

/// A file the scan could not take, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Path relative to the folder (as on disk).
    pub path: String,
    /// Why, in words.
    pub reason: String,
}

/// What a scan found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Entries (files, directories, symlinks) in the folder.
    pub entries: u64,
    /// Bytes of file contents in the folder.
    pub bytes: u64,
    /// Files read and hashed.
    pub hashed_files: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// New entries.
    pub created: u64,
    /// Entries whose content changed.
    pub modified: u64,
    /// Entries that moved (content may have changed too).
    pub renamed: u64,
    /// Entries that were deleted.
    pub deleted: u64,
    /// Entries whose mode or mtime changed, not their content.
    pub metadata_only: u64,
    /// Entries not read because nothing changed.
    pub unchanged: u64,
    /// Entries that could not be taken.
    pub skipped: Vec<Skipped>,
    /// Wall time of the scan.
    #[serde(serialize_with = "as_secs")]
    pub elapsed: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// How to scan.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Threads for walking and hashing.
    pub threads: usize,
    /// Counters to update, if someone displays progress.
    pub progress: Option<&'a Progress>,
    /// Who is offered large new files while they are scanned ([`crate::early`]).
    pub early: Option<&'a dyn OfferNewFiles>,
}

/// Takes offers of new files as the scan reads them ([`crate::early::Offering`]).
pub trait OfferNewFiles: Sync + std::fmt::Debug {
    /// A new file of `size` bytes at `path` is about to be read: where its chunks go as they
    /// are made, or `None`.
    fn offer(&self, path: &str, size: u64) -> Option<Box<dyn chunk::Offer + '_>>;
}

/// One entry the walk found.
#[derive(Debug)]
struct Seen {
    disk: PathBuf,
    rel: String,
    kind: EntryKind,
    meta: Metadata,
}

/// What the walk returns.
struct Walked {
    seen: Vec<Seen>,
    skipped: Vec<Skipped>,
    /// Relative paths (NFC) the walk could not read: nothing under them counts as deleted.
    unreadable: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn mtime_ns(m: &Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

fn mode_bits(m: &Metadata) -> u32 {
    m.mode() & 0o7777
}

fn kind_of(m: &Metadata) -> Option<EntryKind> {
    let t = m.file_type();
    if t.is_file() {
        Some(EntryKind::File)
    } else if t.is_symlink() {
        Some(EntryKind::Symlink)
    } else if t.is_dir() {
        Some(EntryKind::Directory)
    } else {
        None
    }
}

fn special_name(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// The path of `disk` relative to `root` as Harp stores it: '/'-separated UTF-8 in NFC.
fn relative_name(root: &Path, disk: &Path) -> Result<String, String> {
    let rel = disk
        .strip_prefix(root)
        .map_err(|_| "outside the folder".to_owned())?;
    let mut out = String::new();
    for part in rel.components() {
        let name = part.as_os_str().to_str().ok_or_else(|| {
            "the name is not valid UTF-8, which other devices could not represent".to_owned()
        })?;
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(name);
    }
    Ok(if is_nfc(&out) {
        out
    } else {
        out.nfc().collect()
    })
}

fn walk(folder: &Folder, threads: usize, progress: Option<&Progress>) -> Walked {
    let root = folder.root.clone();
    let seen = Mutex::new(Vec::new());
    let skipped = Mutex::new(Vec::new());
    let unreadable = Mutex::new(Vec::new());
    let mut builder = ignore::WalkBuilder::new(&root);
    builder
        .hidden(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .parents(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .threads(threads)
        .filter_entry(|e| !(e.depth() == 1 && e.file_name() == MARKER_DIR));
    let push_skip = |path: &Path, reason: String| {
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        if let Ok(mut v) = skipped.lock() {
            v.push(Skipped {
                path: shown,
                reason,
            });
        }
        if let (Ok(rel), Ok(mut v)) = (relative_name(&root, path), unreadable.lock()) {
            v.push(rel);
        }
    };
    builder.build_parallel().run(|| {
        Box::new(|result| {
            let entry = match result {
                Ok(e) => e,
                Err(err) => {
                    let path = error_path(&err).unwrap_or_else(|| root.clone());
                    push_skip(&path, format!("cannot read: {}", error_message(&err)));
                    return ignore::WalkState::Continue;
                }
            };
            if entry.depth() == 0 {
                return ignore::WalkState::Continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(err) => {
                    push_skip(
                        entry.path(),
                        format!("cannot stat: {}", error_message(&err)),
                    );
                    return ignore::WalkState::Continue;
                }
            };
            let Some(kind) = kind_of(&meta) else {
                push_skip(entry.path(), format!("{}: not synced", special_name(&meta)));
                return ignore::WalkState::Continue;
            };
            match relative_name(&root, entry.path()) {
                Ok(rel) => {
                    if let Some(p) = progress {
                        p.walked.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut v) = seen.lock() {
                        v.push(Seen {
                            disk: entry.path().to_path_buf(),
                            rel,
                            kind,
                            meta,
                        });
                    }
                }
                Err(reason) => push_skip(entry.path(), reason),
            }
            ignore::WalkState::Continue
        })
    });
    Walked {
        seen: seen.into_inner().unwrap_or_else(|e| e.into_inner()),
        skipped: skipped.into_inner().unwrap_or_else(|e| e.into_inner()),
        unreadable: unreadable.into_inner().unwrap_or_else(|e| e.into_inner()),
    }
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
}

fn error_message(err: &ignore::Error) -> String {
    match err {
        ignore::Error::WithPath { err, .. } | ignore::Error::WithDepth { err, .. } => {
            error_message(err)
        }
        other => other.to_string(),
    }
}

/// Whether `path` is `prefix` or lies under it.
fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// What the scan will do with one entry.
#[derive(Debug)]
enum Work {
    /// A path with no live row: a new file (or a re-created one, continuing a tombstone's chain).
    Create {
        seen: Seen,
        tombstone: Option<FileRow>,
    },
    /// A live row whose metadata changed.
    Update { seen: Seen, row: FileRow },
    /// A live row whose file now lives at another path.
    Rename { seen: Seen, from: FileRow },
    /// A live row whose path vanished.
    Delete { row: FileRow },
}

/// The content of an entry after hashing.
#[derive(Debug)]
struct Content {
    size: u64,
    mode: u32,
    mtime_ns: i64,
    inode: u64,
    dev: u64,
    chunks: Vec<ChunkLoc>,
    tree: Tree,
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && mtime_ns(a) == mtime_ns(b) && a.ino() == b.ino() && a.dev() == b.dev()
}

/// Reads an entry's content into chunks and its manifest tree.
fn hash_entry(
    folder: &Folder,
    seen: &Seen,
    progress: Option<&Progress>,
    known: Option<&chunk::KnownChunks>,
    early: Option<&dyn OfferNewFiles>,
) -> Result<Content, String> {
    let content = |meta: &Metadata, hashed: Hashed| -> Result<Content, String> {
        let refs: Vec<ChunkRef> = hashed
            .chunks
            .iter()
            .map(|c| ChunkRef {
                id: c.id,
                len: c.len,
            })
            .collect();
        let tree = Tree::build(&folder.keys, &refs).map_err(|e| format!("manifest: {e}"))?;
        Ok(Content {
            size: hashed.size,
            mode: folder.mode_of(meta, None),
            mtime_ns: mtime_ns(meta),
            inode: meta.ino(),
            dev: meta.dev(),
            chunks: hashed.chunks,
            tree,
        })
    };
    match seen.kind {
        EntryKind::Directory => content(
            &seen.meta,
            Hashed {
                chunks: vec![],
                size: 0,
                cut_bytes: 0,
            },
        ),
        EntryKind::Symlink => {
            let target =
                fs::read_link(&seen.disk).map_err(|e| format!("cannot read the link: {e}"))?;
            let hashed =
                chunk::hash_bytes(target.as_os_str().as_bytes(), &folder.chunker, &folder.keys);
            content(&seen.meta, hashed)
        }
        EntryKind::File => {
            for _ in 0..READ_ATTEMPTS {
                let file = match fs::File::open(&seen.disk) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err("vanished during the scan".to_owned());
                    }
                    Err(e) => return Err(format!("cannot open: {e}")),
                };
                let before = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
                if !before.is_file() {
                    return Err(
                        "replaced by something that is not a file during the scan".to_owned()
                    );
                }
                let offer = early.and_then(|e| e.offer(&seen.rel, before.len()));
                let hashed = chunk::hash_reader_known(
                    &file,
                    before.len(),
                    &folder.chunker,
                    &folder.keys,
                    known,
                    offer.as_deref(),
                );
                let hashed = match hashed {
                    Ok(h) => h,
                    Err(e) => {
                        if let Some(o) = offer {
                            o.end(false);
                        }
                        return Err(format!("cannot read: {e}"));
                    }
                };
                let after = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
                let at_path = fs::symlink_metadata(&seen.disk).ok();
                if let Some(p) = progress {
                    p.bytes_done.fetch_add(hashed.size, Ordering::Relaxed);
                }
                let stable = same_file(&before, &after)
                    && at_path.as_ref().is_some_and(|m| same_file(&before, m))
                    && hashed.size == before.len();
                if let Some(o) = offer {
                    o.end(stable);
                }
                if stable {
                    return content(&before, hashed);
                }
            }
            Err(format!(
                "kept changing while being read ({READ_ATTEMPTS} attempts): left for the next scan"
            ))
        }
    }
}

/// The file id of the directory at `path`: derived from the path, so that two devices that
/// create the same directory create the same record (no path conflict for directories), and a
/// directory's id always says where it is (directory moves are a delete and a create).
pub fn dir_file_id(keys: &FolderKeys, path: &str) -> FileId {
    let commitment = keys.commit_path(path);
    let h = blake3::derive_key(
        "harp 2026-11-22 directory file id v1",
        commitment.as_bytes(),
    );
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    FileId::from_bytes(id)
}

fn random_file_id() -> Result<FileId, Error> {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id).map_err(|e| Error::Setup(format!("no randomness: {e}")))?;
    Ok(FileId::from_bytes(id))
}

/// Scans `folder`, records what changed in `index`, signing chain entries with `device`.
pub fn scan(
    index: &mut Index,
    folder: &Folder,
    device: &SigningKey,
    opts: &Options<'_>,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let _running = opts.progress.map(Progress::begin);
    let root_meta = fs::metadata(&folder.root).ok();
    if !root_meta.is_some_and(|m| m.is_dir()) {
        return Err(Error::RootMissing(folder.root.clone()));
    }
    index.ensure_folder(&folder.id, &folder.root)?;
    let state = index.folder_state(&folder.id)?;
    let rows = index.files(&folder.id)?;
    let live_rows = rows.values().filter(|r| !r.deleted).count() as u64;
    let had = state.last_entry_count.max(live_rows);
    let marker = folder.marker();
    if !marker.is_dir() {
        if had > 0 {
            return Err(Error::MarkerMissing(marker));
        }
        fs::create_dir_all(&marker)
            .map_err(|e| Error::Setup(format!("cannot create {}: {e}", marker.display())))?;
    }

    let threads = opts.threads.max(1);
    let walked = walk(folder, threads, opts.progress);
    let mut summary = Summary {
        skipped: walked.skipped,
        ..Summary::default()
    };
    if walked.seen.is_empty() && had > 0 {
        return Err(Error::RootEmpty {
            root: folder.root.clone(),
            had,
        });
    }

    // Two names that normalise to the same NFC name: keep the one already in NFC.
    let mut seen = walked.seen;
    seen.sort_by(|a, b| {
        a.rel
            .cmp(&b.rel)
            .then_with(|| is_nfc_name(&b.disk).cmp(&is_nfc_name(&a.disk)))
    });
    let mut by_path: HashMap<String, Seen> = HashMap::with_capacity(seen.len());
    for s in seen {
        if let Some(kept) = by_path.get(&s.rel) {
            summary.skipped.push(Skipped {
                path: s
                    .disk
                    .strip_prefix(&folder.root)
                    .unwrap_or(&s.disk)
                    .to_string_lossy()
                    .into_owned(),
                reason: format!(
                    "same name as {} after Unicode normalisation: rename one of them",
                    kept.disk
                        .strip_prefix(&folder.root)
                        .unwrap_or(&kept.disk)
                        .to_string_lossy()
                ),
            });
            continue;
        }
        by_path.insert(s.rel.clone(), s);
    }
    summary.entries = by_path.len() as u64;
    summary.bytes = by_path
        .values()
        .filter(|s| s.kind == EntryKind::File)
        .map(|s| s.meta.len())
        .sum();

    let walked_paths: HashSet<String> = by_path.keys().cloned().collect();

    // Classify.
    let mut work = Vec::new();
    let mut new_paths = Vec::new();
    let mut metadata_rows = Vec::new();
    for (path, s) in by_path {
        match rows.get(&path) {
            Some(row) if !row.deleted && row.kind == s.kind => {
                let same = row.size == s.meta.len()
                    && row.mtime_ns == mtime_ns(&s.meta)
                    && row.inode == s.meta.ino()
                    && row.dev == s.meta.dev();
                let mode = folder.mode_of(&s.meta, Some(row.mode));
                let mode_changed = row.mode != mode;
                if s.kind == EntryKind::Directory || same {
                    // Directories have no content; their mtime moves with their children.
                    if mode_changed {
                        summary.metadata_only += 1;
                    } else {
                        summary.unchanged += 1;
                    }
                    if mode_changed || !same {
                        metadata_rows.push(FileRow {
                            mode,
                            mtime_ns: mtime_ns(&s.meta),
                            inode: s.meta.ino(),
                            dev: s.meta.dev(),
                            ..row.clone()
                        });
                    }
                } else {
                    work.push(Work::Update {
                        seen: s,
                        row: row.clone(),
                    });
                }
            }
            Some(row) if !row.deleted => {
                // The kind changed (a file became a directory...): the old entry is deleted
                // and a new one created.
                work.push(Work::Delete { row: row.clone() });
                new_paths.push((s, None));
            }
            Some(row) => new_paths.push((s, Some(row.clone()))),
            None => new_paths.push((s, None)),
        }
    }

    // Rows whose path vanished: renamed (same inode at a new path) or deleted. Nothing under
    // a directory the walk could not read counts as vanished.
    let mut vanished: HashMap<(u64, u64, u8), FileRow> = HashMap::new();
    let mut hard_linked = Vec::new();
    for row in rows.values().filter(|r| !r.deleted) {
        if walked_paths.contains(&row.path)
            || walked.unreadable.iter().any(|u| is_under(&row.path, u))
        {
            continue;
        }
        let key = (row.dev, row.inode, row.kind as u8);
        if let Some(other) = vanished.insert(key, row.clone()) {
            // Two vanished rows with one inode (hard links): at most one is taken for a rename.
            hard_linked.push(other);
        }
    }
    for (s, tombstone) in new_paths {
        let key = (s.meta.dev(), s.meta.ino(), s.kind as u8);
        // Directories are never renames: their id is their path's (see `dir_file_id`), and a
        // moved directory's files are renamed one by one.
        let renamed = if s.kind == EntryKind::Directory {
            None
        } else {
            vanished.remove(&key)
        };
        match renamed {
            Some(from) => work.push(Work::Rename { seen: s, from }),
            None if s.kind == EntryKind::Directory && tombstone.is_none() => {
                // A directory's id is its path's: its chain may exist with no row here (a
                // peer made and deleted it before this device saw it). Continue that chain.
                let id = dir_file_id(&folder.keys, &s.rel);
                let links = index.chain_links(&folder.id, &id)?;
                match links.last() {
                    Some((last, head)) => {
                        let row = FileRow {
                            path: s.rel.clone(),
                            file_id: id,
                            kind: EntryKind::Directory,
                            size: 0,
                            mode: 0,
                            mtime_ns: 0,
                            inode: 0,
                            dev: 0,
                            content_root: last.content_root,
                            deleted: last.op == harp_protocol::chain::Op::Delete,
                            seq: last.seq,
                            chain_head: *head,
                        };
                        if row.deleted {
                            work.push(Work::Create {
                                seen: s,
                                tombstone: Some(row),
                            });
                        } else {
                            work.push(Work::Update { seen: s, row });
                        }
                    }
                    None => work.push(Work::Create { seen: s, tombstone }),
                }
            }
            None => work.push(Work::Create { seen: s, tombstone }),
        }
    }
    for row in vanished.into_values().chain(hard_linked) {
        work.push(Work::Delete { row });
    }

    record(
        index,
        folder,
        device,
        opts,
        work,
        metadata_rows,
        &mut summary,
    )?;
    let live = index
        .files(&folder.id)?
        .values()
        .filter(|r| !r.deleted)
        .count() as u64;
    index.finish_scan(&folder.id, now_ms(), live)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn is_nfc_name(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(is_nfc)
}

/// Which counter of the summary a record adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Created,
    Modified,
    Renamed,
    Deleted,
    MetadataOnly,
}

/// What recording one entry writes.
struct Record {
    counted: Counted,
    row: FileRow,
    /// A rename's old path, removed if it still holds this file.
    moved_from: Option<String>,
    entry: Option<(harp_protocol::chain::Entry, ChainHash)>,
    /// New chunk locations (None: keep the current ones).
    chunks: Option<Vec<ChunkLoc>>,
    nodes: Vec<(harp_protocol::ids::ChunkId, Vec<u8>)>,
}

fn live_tip(folder: &FolderId, row: &FileRow) -> ChainTip {
    ChainTip {
        folder: *folder,
        file: row.file_id,
        seq: row.seq,
        head: row.chain_head,
        present: !row.deleted,
    }
}

fn row_from(path: &str, file_id: FileId, kind: EntryKind, c: &Content) -> FileRow {
    FileRow {
        path: path.to_owned(),
        file_id,
        kind,
        size: c.size,
        mode: c.mode,
        mtime_ns: c.mtime_ns,
        inode: c.inode,
        dev: c.dev,
        content_root: c.tree.root,
        deleted: false,
        seq: 0,
        chain_head: ChainHash::from_bytes([0; 32]),
    }
}

/// Signs the entry for `op` at `tip`, and puts the tip after it into `row`.
fn sign(
    folder: &Folder,
    device: &SigningKey,
    tip: ChainTip,
    op: Op,
    row: &mut FileRow,
    path: &str,
) -> Result<(harp_protocol::chain::Entry, ChainHash), Error> {
    let (entry, head) = tip
        .sign(
            device,
            Change {
                op,
                content_root: row.content_root,
                size: row.size,
                path: folder.keys.commit_path(path),
                timestamp_ms: now_ms() as u64,
            },
        )
        .map_err(|e| Error::Setup(format!("index and chain disagree for {path}: {e}")))?;
    row.seq = entry.seq;
    row.chain_head = head;
    Ok((entry, head))
}

fn tree_nodes(c: &mut Content) -> Vec<(harp_protocol::ids::ChunkId, Vec<u8>)> {
    std::mem::take(&mut c.tree.nodes)
}

/// Turns one piece of work (and its content, when it was hashed) into what to record.
fn plan(
    folder: &Folder,
    device: &SigningKey,
    work: Work,
    content: Option<Content>,
) -> Result<Option<Record>, Error> {
    Ok(Some(match (work, content) {
        (Work::Create { seen, tombstone }, Some(mut c)) => {
            let (file_id, tip) = match tombstone {
                Some(t) => (t.file_id, live_tip(&folder.id, &t)),
                None => {
                    let id = if seen.kind == EntryKind::Directory {
                        dir_file_id(&folder.keys, &seen.rel)
                    } else {
                        random_file_id()?
                    };
                    (
                        id,
                        ChainTip::genesis(folder.id, id, &folder.keys.chain_seed),
                    )
                }
            };
            let mut row = row_from(&seen.rel, file_id, seen.kind, &c);
            let entry = sign(folder, device, tip, Op::Create, &mut row, &seen.rel)?;
            Record {
                counted: Counted::Created,
                row,
                moved_from: None,
                entry: Some(entry),
                nodes: tree_nodes(&mut c),
                chunks: Some(c.chunks),
            }
        }
        (Work::Update { seen, row: old }, Some(mut c)) => {
            let mut row = FileRow {
                seq: old.seq,
                chain_head: old.chain_head,
                ..row_from(&seen.rel, old.file_id, seen.kind, &c)
            };
            row.mode = folder.mode_of(&seen.meta, Some(old.mode));
            let (counted, entry) = if row.content_root == old.content_root {
                (Counted::MetadataOnly, None)
            } else {
                (
                    Counted::Modified,
                    Some(sign(
                        folder,
                        device,
                        live_tip(&folder.id, &old),
                        Op::Modify,
                        &mut row,
                        &seen.rel,
                    )?),
                )
            };
            Record {
                counted,
                row,
                moved_from: None,
                entry,
                nodes: tree_nodes(&mut c),
                chunks: Some(c.chunks),
            }
        }
        (Work::Rename { seen, from }, content) => {
            let (mut row, chunks, nodes) = match content {
                Some(mut c) => {
                    let nodes = tree_nodes(&mut c);
                    (
                        FileRow {
                            mode: folder.mode_of(&seen.meta, Some(from.mode)),
                            ..row_from(&seen.rel, from.file_id, seen.kind, &c)
                        },
                        Some(c.chunks),
                        nodes,
                    )
                }
                None => (
                    FileRow {
                        path: seen.rel.clone(),
                        mode: folder.mode_of(&seen.meta, Some(from.mode)),
                        mtime_ns: mtime_ns(&seen.meta),
                        inode: seen.meta.ino(),
                        dev: seen.meta.dev(),
                        ..from.clone()
                    },
                    None,
                    Vec::new(),
                ),
            };
            row.seq = from.seq;
            row.chain_head = from.chain_head;
            let entry = sign(
                folder,
                device,
                live_tip(&folder.id, &from),
                Op::Rename,
                &mut row,
                &seen.rel,
            )?;
            Record {
                counted: Counted::Renamed,
                row,
                moved_from: Some(from.path),
                entry: Some(entry),
                chunks,
                nodes,
            }
        }
        (Work::Delete { row: old }, _) => {
            let mut row = FileRow {
                deleted: true,
                ..old.clone()
            };
            let entry = sign(
                folder,
                device,
                live_tip(&folder.id, &old),
                Op::Delete,
                &mut row,
                &old.path,
            )?;
            Record {
                counted: Counted::Deleted,
                row,
                moved_from: None,
                entry: Some(entry),
                chunks: Some(Vec::new()),
                nodes: Vec::new(),
            }
        }
        // Hashing failed: already reported, nothing to record.
        (Work::Create { .. } | Work::Update { .. }, None) => return Ok(None),
    }))
}

fn write_records(
    index: &mut Index,
    folder: &FolderId,
    records: &[Record],
    metadata_rows: &[FileRow],
) -> Result<(), Error> {
    if records.is_empty() && metadata_rows.is_empty() {
        return Ok(());
    }
    index.write(|w| {
        for row in metadata_rows {
            w.put_file(folder, row)?;
        }
        for r in records {
            if let Some(from) = &r.moved_from {
                w.remove_path_of(folder, from, &r.row.file_id)?;
            }
            w.put_nodes(folder, &r.nodes)?;
            if let Some((entry, head)) = &r.entry {
                w.put_entry(folder, entry, head)?;
            }
            w.put_file(folder, &r.row)?;
            if let Some(chunks) = &r.chunks {
                w.replace_chunks(folder, &r.row.file_id, chunks)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Adds planned records to the summary; skipped entries become reports, other errors stop.
fn collect_records(
    planned: Vec<Result<Option<Record>, Error>>,
    summary: &mut Summary,
) -> Result<Vec<Record>, Error> {
    let mut records = Vec::with_capacity(planned.len());
    for p in planned {
        match p {
            Ok(Some(r)) => {
                match r.counted {
                    Counted::Created => summary.created += 1,
                    Counted::Modified => summary.modified += 1,
                    Counted::Renamed => summary.renamed += 1,
                    Counted::Deleted => summary.deleted += 1,
                    Counted::MetadataOnly => summary.metadata_only += 1,
                }
                if r.chunks.is_some() && r.counted != Counted::Deleted {
                    summary.hashed_files += 1;
                    summary.hashed_bytes += r.row.size;
                }
                records.push(r);
            }
            Ok(None) => {}
            Err(Error::Skip(skipped)) => summary.skipped.push(skipped),
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

fn needs_content(w: &Work) -> bool {
    match w {
        Work::Create { .. } | Work::Update { .. } => true,
        Work::Rename { seen, from } => {
            seen.kind != EntryKind::Directory
                && (from.size != seen.meta.len() || from.mtime_ns != mtime_ns(&seen.meta))
        }
        Work::Delete { .. } => false,
    }
}

fn content_size(w: &Work) -> u64 {
    match w {
        Work::Create { seen, .. } | Work::Update { seen, .. } | Work::Rename { seen, .. } => {
            if seen.kind == EntryKind::File {
                seen.meta.len()
            } else {
                0
            }
        }
        Work::Delete { .. } => 0,
    }
}

fn shown(w: &Work) -> String {
    match w {
        Work::Create { seen, .. } | Work::Update { seen, .. } | Work::Rename { seen, .. } => {
            seen.rel.clone()
        }
        Work::Delete { row } => row.path.clone(),
    }
}

fn record(
    index: &mut Index,
    folder: &Folder,
    device: &SigningKey,
    opts: &Options<'_>,
    work: Vec<Work>,
    metadata_rows: Vec<FileRow>,
    summary: &mut Summary,
) -> Result<(), Error> {
    let (heavy, quick): (Vec<Work>, Vec<Work>) = work.into_iter().partition(needs_content);
    if let Some(p) = opts.progress {
        p.files_total.store(heavy.len() as u64, Ordering::Relaxed);
        p.bytes_total
            .store(heavy.iter().map(content_size).sum(), Ordering::Relaxed);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .thread_name(|i| format!("harp-hash-{i}"))
        .build()
        .map_err(|e| Error::Setup(format!("cannot start hashing threads: {e}")))?;

    // Deletes and pure renames need no reading: one transaction, with the metadata updates.
    let planned: Vec<Result<Option<Record>, Error>> = pool.install(|| {
        use rayon::prelude::*;
        quick
            .into_par_iter()
            .map(|w| plan(folder, device, w, None))
            .collect()
    });
    let records = collect_records(planned, summary)?;
    write_records(index, &folder.id, &records, &metadata_rows)?;

    // Changed files that had chunks: their chunk tags, so unchanged chunks are not sealed
    // again (a 4 KiB edit in a 1 GiB file costs a keyed hash per chunk, not an encryption).
    let mut known: HashMap<FileId, chunk::KnownChunks> = HashMap::new();
    for w in &heavy {
        if let Work::Update { row, .. } = w
            && row.size >= KNOWN_CHUNKS_MIN_SIZE
        {
            let tags = chunk::KnownChunks::new(&index.chunks(&folder.id, &row.file_id)?);
            if !tags.is_empty() {
                known.insert(row.file_id, tags);
            }
        }
    }
    let known = &known;

    // The rest is read, hashed, planned and signed on the pool, batch by batch, while a
    // writer thread records the previous batch (one transaction each).
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(1);
        let writer = s.spawn(move || -> Result<(), Error> {
            for records in rx {
                write_records(index, &folder.id, &records, &[])?;
            }
            Ok(())
        });
        let mut heavy = heavy.into_iter().peekable();
        while heavy.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(w) = heavy.next_if(|_| batch.len() < BATCH_FILES && bytes < BATCH_BYTES)
            {
                bytes += content_size(&w);
                batch.push(w);
            }
            let planned: Vec<Result<Option<Record>, Error>> = pool.install(|| {
                use rayon::prelude::*;
                batch
                    .into_par_iter()
                    .map(|w| {
                        let seen = match &w {
                            Work::Create { seen, .. }
                            | Work::Update { seen, .. }
                            | Work::Rename { seen, .. } => seen,
                            Work::Delete { .. } => unreachable!("deletes need no content"),
                        };
                        let previous = match &w {
                            Work::Update { row, .. } => known.get(&row.file_id),
                            _ => None,
                        };
                        // Only new files are offered early: a changed one moves as the
                        // chunks that changed, once its scan is recorded.
                        let early = match &w {
                            Work::Create { .. } => opts.early,
                            _ => None,
                        };
                        let hashed = hash_entry(folder, seen, opts.progress, previous, early);
                        if let Some(p) = opts.progress {
                            p.files_done.fetch_add(1, Ordering::Relaxed);
                        }
                        match hashed {
                            Ok(c) => plan(folder, device, w, Some(c)),
                            Err(reason) => Err(Error::Skip(Skipped {
                                path: shown(&w),
                                reason,
                            })),
                        }
                    })
                    .collect()
            });
            let records = collect_records(planned, summary)?;
            if tx.send(records).is_err() {
                // The writer stopped on an error: it is returned below.
                break;
            }
        }
        drop(tx);
        writer
            .join()
            .unwrap_or_else(|_| Err(Error::Setup("the index writer panicked".to_owned())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use harp_protocol::blob::{self, BlobKind};
    use harp_protocol::chain::Chain;
    use harp_protocol::keys::FolderKey;
    use harp_protocol::manifest;
    use std::os::unix::fs::PermissionsExt;

    struct T {
        _dir: tempfile::TempDir,
        folder: Folder,
        index: Index,
        device: SigningKey,
    }

    impl T {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("folder");
            fs::create_dir_all(&root).unwrap();
            Self {
                folder: Folder::new(
                    FolderId::from_bytes([1; 16]),
                    root,
                    FolderKey::from_bytes([2; 32]).schedule(),
                ),
                _dir: dir,
                index: Index::in_memory().unwrap(),
                device: SigningKey::from_bytes(&[3; 32]),
            }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.folder.root.join(rel)
        }

        fn write(&self, rel: &str, data: &[u8]) {
            let p = self.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }

        fn scan(&mut self) -> Summary {
            self.try_scan().unwrap()
        }

        fn try_scan(&mut self) -> Result<Summary, Error> {
            scan(
                &mut self.index,
                &self.folder,
                &self.device,
                &Options {
                    threads: 2,
                    progress: None,
                    early: None,
                },
            )
        }

        fn row(&self, rel: &str) -> FileRow {
            self.index
                .file(&self.folder.id, rel)
                .unwrap()
                .unwrap_or_else(|| panic!("no row for {rel}"))
        }

        fn chain(&self, rel: &str) -> Chain {
            let row = self.row(rel);
            let entries = self.index.chain(&self.folder.id, &row.file_id).unwrap();
            let chain = Chain::from_entries(
                self.folder.id,
                row.file_id,
                &self.folder.keys.chain_seed,
                entries,
            )
            .unwrap();
            assert_eq!(chain.head(), row.chain_head);
            chain
        }

        /// The index's chunks of `rel` re-made from the file on disk, and its manifest tree.
        fn check_content(&self, rel: &str) {
            let row = self.row(rel);
            let data = fs::read(self.path(rel)).unwrap();
            let chunks = self.index.chunks(&self.folder.id, &row.file_id).unwrap();
            let mut at = 0usize;
            for c in &chunks {
                assert_eq!(c.offset as usize, at);
                let (id, _) = blob::seal(
                    &self.folder.keys,
                    BlobKind::Chunk,
                    &data[at..at + c.len as usize],
                )
                .unwrap();
                assert_eq!(id, c.id, "{rel} chunk {}", c.idx);
                at += c.len as usize;
            }
            assert_eq!(at, data.len());
            let refs = manifest::walk(&self.folder.keys, &row.content_root, |id| {
                self.index.manifest_node(id).unwrap()
            })
            .unwrap();
            assert_eq!(refs.len(), chunks.len());
            assert!(
                refs.iter()
                    .zip(&chunks)
                    .all(|(r, c)| r.id == c.id && r.len == c.len)
            );
        }
    }

    fn random(seed: u64, len: usize) -> Vec<u8> {
        crate::testutil::random(&seed.to_le_bytes(), len)
    }

    #[test]
    fn interesting_sizes_are_chunked_and_recorded_exactly() {
        let mut t = T::new();
        let p = t.folder.chunker.params();
        let sizes = [
            0,
            1,
            p.min - 1,
            p.min,
            p.min + 1,
            p.avg,
            p.max - 1,
            p.max,
            p.max + 1,
            (1 << 20) + 1,
        ];
        for (i, size) in sizes.iter().enumerate() {
            t.write(&format!("f{i}"), &random(i as u64, *size as usize));
        }
        let s = t.scan();
        assert_eq!(
            (s.created, s.hashed_files, s.entries),
            (sizes.len() as u64, sizes.len() as u64, sizes.len() as u64)
        );
        for i in 0..sizes.len() {
            t.check_content(&format!("f{i}"));
            assert_eq!(t.chain(&format!("f{i}")).entries().len(), 1);
        }
        // Nothing changed: nothing is read again.
        let again = t.scan();
        assert_eq!(
            (again.hashed_files, again.unchanged, again.created),
            (0, sizes.len() as u64, 0)
        );
        assert!(t.folder.marker().is_dir());
    }

    #[test]
    fn ignore_rules_and_the_marker_dir_are_respected() {
        let mut t = T::new();
        t.write(".harpignore", b"*.tmp\n/build/\n!keep.tmp\n");
        t.write("a.txt", b"a");
        t.write("x.tmp", b"x");
        t.write("keep.tmp", b"k");
        t.write("build/out.o", b"o");
        t.write("src/build/mod.rs", b"m");
        t.write("sub/.harpignore", b"secret*\n");
        t.write("sub/secret.key", b"s");
        t.write("sub/public.txt", b"p");
        t.write(".harp/versions/old~1.txt", b"v");
        t.scan();
        let paths: std::collections::BTreeSet<String> =
            t.index.files(&t.folder.id).unwrap().into_keys().collect();
        let want: std::collections::BTreeSet<String> = [
            ".harpignore",
            "a.txt",
            "keep.tmp",
            "src",
            "src/build",
            "src/build/mod.rs",
            "sub",
            "sub/.harpignore",
            "sub/public.txt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(paths, want);
    }

    #[test]
    fn edits_renames_deletes_and_recreates_build_valid_chains() {
        let mut t = T::new();
        t.write("doc.txt", b"one");
        t.write("dir/inner.txt", b"inner");
        t.write("Case.txt", b"case");
        t.scan();
        let doc_id = t.row("doc.txt").file_id;
        let inner_id = t.row("dir/inner.txt").file_id;

        t.write("doc.txt", b"two, longer");
        fs::rename(t.path("dir"), t.path("moved")).unwrap();
        fs::rename(t.path("Case.txt"), t.path("case.txt")).unwrap();
        let s = t.scan();
        // The directory itself is a delete and a create (its id is its path's); its file and
        // the case-only rename are renames.
        assert_eq!(
            (s.modified, s.renamed, s.deleted, s.created),
            (1, 2, 1, 1),
            "{s:?}"
        );
        assert_eq!(t.row("moved/inner.txt").file_id, inner_id);
        assert_eq!(t.row("moved").file_id, dir_file_id(&t.folder.keys, "moved"));
        assert!(t.index.file(&t.folder.id, "Case.txt").unwrap().is_none());
        let ops: Vec<Op> = t.chain("case.txt").entries().iter().map(|e| e.op).collect();
        assert_eq!(ops, vec![Op::Create, Op::Rename]);
        t.check_content("doc.txt");

        fs::remove_file(t.path("doc.txt")).unwrap();
        let s = t.scan();
        assert_eq!(s.deleted, 1);
        assert!(t.row("doc.txt").deleted);
        t.write("doc.txt", b"three");
        let s = t.scan();
        assert_eq!(s.created, 1);
        let row = t.row("doc.txt");
        assert_eq!(row.file_id, doc_id, "a re-created path continues its chain");
        let ops: Vec<Op> = t.chain("doc.txt").entries().iter().map(|e| e.op).collect();
        assert_eq!(ops, vec![Op::Create, Op::Modify, Op::Delete, Op::Create]);
        // Every entry carries the commitment to the path at that time.
        let last = t.chain("doc.txt").entries().last().unwrap().clone();
        assert_eq!(last.path, t.folder.keys.commit_path("doc.txt"));
        assert_eq!(last.content_root, row.content_root);
    }

    /// ext4 (the test's temp dir) keeps modes and case: the probe says so, and does not
    /// decide before the marker directory exists (a folder being set up).
    #[test]
    fn the_file_system_probe_finds_modes_kept_and_case_apart_here() {
        let t = T::new();
        assert_eq!(
            t.folder.file_system(),
            FileSystem {
                keeps_modes: true,
                case_insensitive: false
            }
        );
        assert!(
            t.folder.file_system.get().is_none(),
            "decided without a marker"
        );
        fs::create_dir_all(t.folder.marker()).unwrap();
        let found = t.folder.file_system();
        assert!(found.keeps_modes && !found.case_insensitive);
        assert!(t.folder.marker().join(PROBE).is_file());
        assert_eq!(t.folder.file_system.get(), Some(&found));
    }

    #[test]
    fn mode_and_mtime_only_changes_sign_no_entry() {
        let mut t = T::new();
        t.write("run.sh", b"#!/bin/sh\n");
        t.scan();
        fs::set_permissions(t.path("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let s = t.scan();
        assert_eq!((s.metadata_only, s.hashed_files), (1, 0));
        assert_eq!(t.row("run.sh").mode, 0o755);
        let f = fs::File::options()
            .write(true)
            .open(t.path("run.sh"))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .unwrap();
        let s = t.scan();
        assert_eq!((s.metadata_only, s.hashed_files, s.modified), (1, 1, 0));
        assert_eq!(t.chain("run.sh").entries().len(), 1);
    }

    #[test]
    fn symlinks_are_recorded_not_followed_and_special_files_skipped() {
        let mut t = T::new();
        let outside = t._dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"not ours").unwrap();
        std::os::unix::fs::symlink(&outside, t.path("link")).unwrap();
        let fifo = t.path("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let s = t.scan();
        assert_eq!(s.entries, 1);
        let row = t.row("link");
        assert_eq!(row.kind, EntryKind::Symlink);
        assert_eq!(row.size, outside.as_os_str().len() as u64);
        assert!(t.index.file(&t.folder.id, "link/secret").unwrap().is_none());
        assert_eq!(s.skipped.len(), 1);
        assert!(s.skipped[0].reason.contains("fifo"), "{:?}", s.skipped);
    }

    #[test]
    fn names_are_nfc_and_normalisation_twins_are_not_duplicated() {
        let mut t = T::new();
        t.write("cafe\u{301}.txt", b"nfd");
        t.scan();
        assert!(
            t.index
                .file(&t.folder.id, "caf\u{e9}.txt")
                .unwrap()
                .is_some()
        );
        t.write("caf\u{e9}.txt", b"nfc twin");
        let s = t.scan();
        assert_eq!(t.index.files(&t.folder.id).unwrap().len(), 1);
        assert_eq!(s.skipped.len(), 1, "{:?}", s.skipped);
        assert!(s.skipped[0].reason.contains("normalisation"));
    }

    #[test]
    fn a_vanished_or_emptied_root_is_never_read_as_mass_deletion() {
        let mut t = T::new();
        t.write("a", b"a");
        t.write("b", b"b");
        t.scan();
        // Emptied (a disk mounted empty, say) but the marker survives.
        for f in ["a", "b"] {
            fs::remove_file(t.path(f)).unwrap();
        }
        assert!(matches!(t.try_scan(), Err(Error::RootEmpty { had: 2, .. })));
        // The marker gone: the folder is not the one we knew.
        fs::remove_dir_all(t.folder.marker()).unwrap();
        t.write("c", b"c");
        assert!(matches!(t.try_scan(), Err(Error::MarkerMissing(_))));
        // The root gone.
        fs::remove_dir_all(&t.folder.root).unwrap();
        assert!(matches!(t.try_scan(), Err(Error::RootMissing(_))));
        // None of this touched the index.
        assert!(!t.row("a").deleted && !t.row("b").deleted);
    }

    #[test]
    fn a_file_that_keeps_changing_is_retried_then_left_for_the_next_scan() {
        let mut t = T::new();
        t.write("growing.log", &random(1, 16 << 20));
        let path = t.path("growing.log");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let summary = std::thread::scope(|s| {
            s.spawn(|| {
                let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    f.write_all(b"x").unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
            let summary = t.scan();
            stop.store(true, Ordering::Relaxed);
            summary
        });
        assert!(t.index.file(&t.folder.id, "growing.log").unwrap().is_none());
        assert_eq!(summary.skipped.len(), 1);
        assert!(
            summary.skipped[0].reason.contains("kept changing"),
            "{:?}",
            summary.skipped
        );
        // Once it is quiet, the next scan takes it, with exactly its final content.
        let s = t.scan();
        assert_eq!(s.created, 1);
        t.check_content("growing.log");
    }

    use std::io::Write;
}
