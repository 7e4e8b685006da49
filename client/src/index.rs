//! The local index: a SQLite database (WAL) in the data dir.
//!
//! The schema lives in `index/schema/NNNN_*.sql`, one numbered migration per file, applied in
//! order inside a transaction and recorded in `PRAGMA user_version`; the files explain the data
//! model. Every write the scanner makes for one batch of files is one transaction, so a kill -9
//! leaves either the old or the new state of each file, and a rescan converges.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use harp_protocol::chain::Entry;
use harp_protocol::ids::{ChainHash, ChunkId, ContentRoot, FileId, FolderId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::Digest;
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

/// The migrations, in order. Entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("index/schema/0001_initial.sql"),
    include_str!("index/schema/0002_sync.sql"),
    include_str!("index/schema/0003_chunk_tags.sql"),
];

/// Errors of the index.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed.
    #[error("index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row holds a value that cannot be right (a hash of the wrong length...).
    #[error("index is corrupt: {0}; `harp check` can rebuild it")]
    Corrupt(&'static str),
    /// The index was written by a newer Harp.
    #[error("index schema version {found} is newer than this harp understands ({known})")]
    TooNew {
        /// The version in the file.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The index directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, Error>;

/// A file's row: what the last scan (or sync) saw at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// Relative, '/'-separated, NFC.
    pub path: String,
    /// Stable across renames.
    pub file_id: FileId,
    /// File, symlink or directory.
    pub kind: EntryKind,
    /// Content bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// Device number.
    pub dev: u64,
    /// Root of the content's manifest tree.
    pub content_root: ContentRoot,
    /// A tombstone: the file was deleted.
    pub deleted: bool,
    /// Entries in the file's chain.
    pub seq: u64,
    /// The chain's head.
    pub chain_head: ChainHash,
}

/// Where one chunk of a current file lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    /// Position in the file's chunk list.
    pub idx: u32,
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// The sealed blob's id.
    pub id: ChunkId,
    /// The chunk's tag, when it was recorded ([`ChunkTag`]).
    pub tag: Option<ChunkTag>,
}

/// What the index keeps of a chunk's tag (`harp_protocol::blob::chunk_tag`, the keyed BLAKE3
/// of its plaintext): the first 24 bytes, which are its blob's nonce. So a device that only
/// received the blob knows it as well as the one that cut the file, and a rescan on either
/// maps unchanged chunks to their ids without cutting or sealing them again. (Rows written
/// before held all 32 bytes; they are read as their first 24.)
pub type ChunkTag = [u8; 24];

/// A file range that held a chunk at its file's last scan ([`Index::locate_chunk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRange {
    /// The file's path in the folder.
    pub path: String,
    /// What the entry is (a symlink's chunk is its target).
    pub kind: EntryKind,
    /// Where the chunk starts.
    pub offset: u64,
    /// Its length.
    pub len: u32,
    /// Its tag, when it was recorded.
    pub tag: Option<ChunkTag>,
}

/// A stored tag: 24 bytes, or the 32 of older rows.
fn chunk_tag(v: Vec<u8>) -> Result<ChunkTag> {
    match v.len() {
        24 | 32 => blob(v[..24].to_vec(), "chunk tag"),
        _ => Err(Error::Corrupt("chunk tag")),
    }
}

/// A kept old version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Row id, to restore or prune it.
    pub id: i64,
    /// The path it had.
    pub path: String,
    /// Its file name in `.harp/versions`.
    pub stored: String,
    /// File, symlink or directory.
    pub kind: EntryKind,
    /// Bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Its modification time.
    pub mtime_ns: i64,
    /// When it was kept, ms since the epoch.
    pub kept_ms: i64,
    /// `overwrite`, `delete` or `restore`.
    pub reason: String,
}

/// What the index remembers of a folder's last scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderState {
    /// End of the last complete scan.
    pub last_scan_ms: Option<i64>,
    /// Entries it saw.
    pub last_entry_count: u64,
}

/// The index database.
#[derive(Debug)]
pub struct Index {
    conn: Connection,
    /// Writes made in the open batch (see [`Index::begin_batch`]); `None`: no batch is open.
    batch: Option<usize>,
}

/// Writes committed together at most in one batch (see [`Index::begin_batch`]).
const BATCH_WRITES: usize = 256;

fn blob<const N: usize>(v: Vec<u8>, what: &'static str) -> Result<[u8; N]> {
    v.try_into().map_err(|_| Error::Corrupt(what))
}

fn kind_of(v: i64) -> Result<EntryKind> {
    match v {
        1 => Ok(EntryKind::File),
        2 => Ok(EntryKind::Symlink),
        3 => Ok(EntryKind::Directory),
        _ => Err(Error::Corrupt("file kind")),
    }
}

const FILE_COLUMNS: &str =
    "path, file_id, kind, size, mode, mtime_ns, inode, dev, content_root, deleted, seq, chain_head";

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<FileRow>> {
    let raw = (
        r.get::<_, String>(0)?,
        r.get::<_, Vec<u8>>(1)?,
        r.get::<_, i64>(2)?,
        r.get::<_, i64>(3)?,
        r.get::<_, i64>(4)?,
        r.get::<_, i64>(5)?,
        r.get::<_, i64>(6)?,
        r.get::<_, i64>(7)?,
        r.get::<_, Vec<u8>>(8)?,
        r.get::<_, bool>(9)?,
        r.get::<_, i64>(10)?,
        r.get::<_, Vec<u8>>(11)?,
    );
    Ok((|| {
        let (path, id, kind, size, mode, mtime_ns, inode, dev, root, deleted, seq, head) = raw;
        Ok(FileRow {
            path,
            file_id: FileId::from_bytes(blob(id, "file id")?),
            kind: kind_of(kind)?,
            size: size as u64,
            mode: mode as u32,
            mtime_ns,
            inode: inode as u64,
            dev: dev as u64,
            content_root: ContentRoot::from_bytes(blob(root, "content root")?),
            deleted,
            seq: seq as u64,
            chain_head: ChainHash::from_bytes(blob(head, "chain head")?),
        })
    })())
}

impl Index {
    /// Opens (creating if needed) the index at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// Caps this connection's page cache at `mib`. The writer keeps its 64 MiB (scans touch
    /// pages all over the B-trees); a connection that only looks rows up (the chunk server,
    /// the web UI) does with a few, and every MiB it does not cache is RSS the daemon keeps
    /// below its budget (the OS caches the file anyway).
    pub fn with_cache_mib(self, mib: i64) -> Result<Self> {
        self.conn.pragma_update(None, "cache_size", -1024 * mib)?;
        Ok(self)
    }

    /// Another connection to the same database file, with a small page cache: for a thread
    /// that reads beside this connection's (the sync applier prepares the next window of
    /// installs on one). `None` for an index in memory.
    pub fn reopen(&self) -> Result<Option<Self>> {
        match self.conn.path() {
            Some(path) if !path.is_empty() => {
                Ok(Some(Self::open(Path::new(path))?.with_cache_mib(4)?))
            }
            _ => Ok(None),
        }
    }

    /// An index in memory, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers never block the writer; NORMAL sync is safe against process crashes
        // (kill -9), which is what the index must survive; the files are the truth after a
        // power loss, and a rescan rebuilds what was lost.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Scans write many rows with random keys: a 64 MiB page cache keeps the B-tree pages
        // they touch in memory, and checkpointing every ~40 MiB of WAL instead of 4 MiB keeps
        // the writer from stalling mid-scan.
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "wal_autocheckpoint", 10000)?;
        // Plan each statement once: the bundled SQLite is built with STAT4, which otherwise
        // prepares a cached statement again every time its bound values change (measured:
        // every chunk lookup, chain read and batch lookup; 6 % of a receiver's CPU while it
        // installed 10,000 small files).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn, batch: None })
    }

    /// Runs SQLite's own consistency check; `Ok("ok")` when sound.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Records a folder (idempotent).
    pub fn ensure_folder(&self, id: &FolderId, root: &Path) -> Result<()> {
        self.conn.execute(
            "INSERT INTO folder (id, root) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET root = excluded.root",
            params![id.as_bytes(), root.to_string_lossy()],
        )?;
        Ok(())
    }

    /// Forgets a folder: every row of it (files, chunk locations, manifest nodes, chain
    /// entries, kept-version records, sync bases), in one transaction. Nothing on disk is
    /// touched.
    pub fn remove_folder(&mut self, id: &FolderId) -> Result<()> {
        let tx = self.conn.transaction()?;
        for table in [
            "chunk",
            "manifest_node",
            "chain_entry",
            "version",
            "sync_base",
            "file",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE folder = ?1"),
                [id.as_bytes()],
            )?;
        }
        tx.execute("DELETE FROM folder WHERE id = ?1", [id.as_bytes()])?;
        tx.commit()?;
        Ok(())
    }

    /// What the last scan of a folder saw.
    pub fn folder_state(&self, id: &FolderId) -> Result<FolderState> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_scan_ms, last_entry_count FROM folder WHERE id = ?1",
                [id.as_bytes()],
                |r| {
                    Ok(FolderState {
                        last_scan_ms: r.get(0)?,
                        last_entry_count: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Records the end of a complete scan.
    pub fn finish_scan(&self, id: &FolderId, now_ms: i64, entries: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE folder SET last_scan_ms = ?2, last_entry_count = ?3 WHERE id = ?1",
            params![id.as_bytes(), now_ms, entries as i64],
        )?;
        Ok(())
    }

    /// Every row of a folder (tombstones included), by path.
    pub fn files(&self, folder: &FolderId) -> Result<HashMap<String, FileRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLUMNS} FROM file WHERE folder = ?1"
        ))?;
        let rows = stmt.query_map([folder.as_bytes()], file_row)?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row??;
            out.insert(row.path.clone(), row);
        }
        Ok(out)
    }

    /// The row at `path`, if any.
    pub fn file(&self, folder: &FolderId, path: &str) -> Result<Option<FileRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLUMNS} FROM file WHERE folder = ?1 AND path = ?2"
        ))?;
        stmt.query_row(params![folder.as_bytes(), path], file_row)
            .optional()?
            .transpose()
    }

    /// Live entries of a folder and, among them, conflict copies (`*.conflict-*`).
    pub fn counts(&self, folder: &FolderId) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(path LIKE '%.conflict-%'), 0) FROM file
             WHERE folder = ?1 AND deleted = 0",
            [folder.as_bytes()],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// The row of `file`, wherever it is (tombstones included).
    pub fn file_by_id(&self, folder: &FolderId, file: &FileId) -> Result<Option<FileRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLUMNS} FROM file WHERE folder = ?1 AND file_id = ?2"
        ))?;
        stmt.query_row(params![folder.as_bytes(), file.as_bytes()], file_row)
            .optional()?
            .transpose()
    }

    /// The chunk locations of a current file, in order.
    pub fn chunks(&self, folder: &FolderId, file: &FileId) -> Result<Vec<ChunkLoc>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT idx, offset, len, id, tag FROM chunk WHERE folder = ?1 AND file_id = ?2 ORDER BY idx",
        )?;
        let rows = stmt.query_map(params![folder.as_bytes(), file.as_bytes()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (idx, offset, len, id, tag) = r?;
            Ok(ChunkLoc {
                idx: idx as u32,
                offset: offset as u64,
                len: len as u32,
                id: ChunkId::from_bytes(blob(id, "chunk id")?),
                tag: tag.map(chunk_tag).transpose()?,
            })
        })
        .collect()
    }

    /// Where a chunk can be read from: every current file range that held it at its last
    /// scan (at most 16).
    pub fn locate_chunk(&self, folder: &FolderId, id: &ChunkId) -> Result<Vec<ChunkRange>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.path, f.kind, c.offset, c.len, c.tag FROM chunk c
             JOIN file f ON f.folder = c.folder AND f.file_id = c.file_id
             WHERE c.id = ?1 AND c.folder = ?2 AND f.deleted = 0 LIMIT 16",
        )?;
        let rows = stmt.query_map(params![id.as_bytes(), folder.as_bytes()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (path, kind, offset, len, tag) = r?;
            Ok(ChunkRange {
                path,
                kind: kind_of(kind)?,
                offset: offset as u64,
                len: len as u32,
                tag: tag.map(chunk_tag).transpose()?,
            })
        })
        .collect()
    }

    /// Which of `ids` some current file of `folder` held at its last scan: one query per 500
    /// ids, so that a new file's chunks are not looked up one by one only to find nothing.
    pub fn known_chunks(&self, folder: &FolderId, ids: &[ChunkId]) -> Result<HashSet<ChunkId>> {
        let mut known = HashSet::new();
        for batch in ids.chunks(500) {
            let marks = vec!["?"; batch.len()].join(",");
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT DISTINCT c.id FROM chunk c
                 JOIN file f ON f.folder = c.folder AND f.file_id = c.file_id
                 WHERE c.folder = ? AND f.deleted = 0 AND c.id IN ({marks})"
            ))?;
            let mut args: Vec<&[u8]> = Vec::with_capacity(batch.len() + 1);
            args.push(folder.as_bytes());
            args.extend(batch.iter().map(|id| id.as_bytes().as_slice()));
            let rows =
                stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, Vec<u8>>(0))?;
            for id in rows {
                known.insert(ChunkId::from_bytes(blob(id?, "chunk id")?));
            }
        }
        Ok(known)
    }

    /// A manifest node blob.
    pub fn manifest_node(&self, id: &ChunkId) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT blob FROM manifest_node WHERE id = ?1")?;
        Ok(stmt.query_row([id.as_bytes()], |r| r.get(0)).optional()?)
    }

    /// The chain of a file, oldest first (decoded; the caller verifies it).
    pub fn chain(&self, folder: &FolderId, file: &FileId) -> Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry FROM chain_entry WHERE folder = ?1 AND file_id = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![folder.as_bytes(), file.as_bytes()], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        rows.map(|r| Entry::decode(&r?).map_err(|_| Error::Corrupt("chain entry")))
            .collect()
    }

    /// Kept versions of a path, oldest first.
    pub fn versions(&self, folder: &FolderId, path: &str) -> Result<Vec<VersionRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, path, stored, kind, size, mode, mtime_ns, kept_ms, reason FROM version
             WHERE folder = ?1 AND path = ?2 ORDER BY kept_ms, id",
        )?;
        let rows = stmt.query_map(params![folder.as_bytes(), path], version_row)?;
        rows.map(|r| r?).collect()
    }

    /// Every kept version of a folder, oldest first.
    pub fn all_versions(&self, folder: &FolderId) -> Result<Vec<VersionRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, path, stored, kind, size, mode, mtime_ns, kept_ms, reason FROM version
             WHERE folder = ?1 ORDER BY path, kept_ms, id",
        )?;
        let rows = stmt.query_map(params![folder.as_bytes()], version_row)?;
        rows.map(|r| r?).collect()
    }

    /// Records a kept version.
    pub fn add_version(&self, folder: &FolderId, v: &VersionRow) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO version (folder, path, stored, kind, size, mode, mtime_ns, kept_ms, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                folder.as_bytes(),
                v.path,
                v.stored,
                v.kind as i64,
                v.size as i64,
                v.mode,
                v.mtime_ns,
                v.kept_ms,
                v.reason
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Forgets a kept version (after its file was pruned).
    pub fn remove_version(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM version WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The sync bases of a folder: per file id, the digest of the last agreed record.
    pub fn sync_bases(&self, folder: &FolderId) -> Result<HashMap<FileId, Digest>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT file_id, digest FROM sync_base WHERE folder = ?1")?;
        let rows = stmt.query_map([folder.as_bytes()], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        rows.map(|r| {
            let (id, digest) = r?;
            Ok((
                FileId::from_bytes(blob(id, "file id")?),
                Digest(blob(digest, "sync digest")?),
            ))
        })
        .collect()
    }

    /// Every file of a folder that has chain entries.
    pub fn chained_files(&self, folder: &FolderId) -> Result<Vec<FileId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT file_id FROM chain_entry WHERE folder = ?1")?;
        let rows = stmt.query_map([folder.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|r| Ok(FileId::from_bytes(blob(r?, "file id")?)))
            .collect()
    }

    /// The chain of a file with the hash after each entry, oldest first.
    pub fn chain_links(&self, folder: &FolderId, file: &FileId) -> Result<Vec<(Entry, ChainHash)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry, hash FROM chain_entry WHERE folder = ?1 AND file_id = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![folder.as_bytes(), file.as_bytes()], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        rows.map(|r| {
            let (e, h) = r?;
            Ok((
                Entry::decode(&e).map_err(|_| Error::Corrupt("chain entry"))?,
                ChainHash::from_bytes(blob(h, "chain hash")?),
            ))
        })
        .collect()
    }

    /// Runs `f` inside one read transaction: every read sees the same snapshot of the
    /// database, whatever a running daemon commits meanwhile (WAL mode).
    pub fn snapshot<T>(&self, f: impl FnOnce(&Index) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        // The snapshot starts at the first read, not at BEGIN: take it now.
        let started = self
            .conn
            .query_row("SELECT count(*) FROM folder", [], |r| r.get::<_, i64>(0));
        let out = started.map_err(Error::from).and_then(|_| f(self));
        self.conn.execute_batch("COMMIT")?;
        out
    }

    /// Opens a batch, or keeps the open one: until [`Index::end_batch`], each
    /// [`Index::write`] is a savepoint inside one transaction, committed every
    /// `BATCH_WRITES` writes. Each write is still all or nothing, and reads on this connection
    /// see it at once; but a kill -9 loses every write of the uncommitted batch. Only for
    /// writes whose loss the next round recovers from (the sync applier's installs of files
    /// new here: see `sync::recover`). Committing one install at a time was half of an
    /// install's CPU (WAL pages written again for every file).
    pub fn begin_batch(&mut self) -> Result<()> {
        match self.batch {
            Some(n) if n < BATCH_WRITES => return Ok(()),
            Some(_) => self.end_batch()?,
            None => {}
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.batch = Some(0);
        Ok(())
    }

    /// Commits the open batch, if any.
    pub fn end_batch(&mut self) -> Result<()> {
        if self.batch.take().is_some()
            && let Err(e) = self.conn.execute_batch("COMMIT")
        {
            // Never leave the transaction open behind the next write's back.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }

    /// Drops the open batch's writes, as a kill -9 would.
    #[cfg(test)]
    pub fn abandon_batch(&mut self) {
        if self.batch.take().is_some() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Runs `f` in one write transaction: all of its writes land, or none. In a batch
    /// ([`Index::begin_batch`]) the transaction is a savepoint, committed with the batch.
    pub fn write<T>(&mut self, f: impl FnOnce(&Writer<'_>) -> Result<T>) -> Result<T> {
        if let Some(n) = self.batch.as_mut() {
            *n += 1;
            let sp = self.conn.savepoint()?;
            let out = f(&Writer { tx: &sp })?;
            sp.commit()?;
            return Ok(out);
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&Writer { tx: &tx })?;
        tx.commit()?;
        Ok(out)
    }
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<VersionRow>> {
    let kind = r.get::<_, i64>(3)?;
    let row = VersionRow {
        id: r.get(0)?,
        path: r.get(1)?,
        stored: r.get(2)?,
        kind: EntryKind::File,
        size: r.get::<_, i64>(4)? as u64,
        mode: r.get(5)?,
        mtime_ns: r.get(6)?,
        kept_ms: r.get(7)?,
        reason: r.get(8)?,
    };
    Ok(kind_of(kind).map(|kind| VersionRow { kind, ..row }))
}

impl Drop for Index {
    fn drop(&mut self) {
        // A batch still open is committed, not lost with the connection.
        if let Err(e) = self.end_batch() {
            tracing::warn!("the index's last batch of writes failed to commit: {e}");
        }
    }
}

/// Writes inside one transaction (see [`Index::write`]).
#[derive(Debug)]
pub struct Writer<'a> {
    tx: &'a Connection,
}

impl Writer<'_> {
    /// Inserts the row at `row.path`, or updates the row there.
    pub fn put_file(&self, folder: &FolderId, row: &FileRow) -> Result<()> {
        // An upsert on the path only: a file id that is still at another path is a unique
        // violation and fails the transaction, instead of silently deleting that row (which
        // `INSERT OR REPLACE` would do).
        let mut stmt = self.tx.prepare_cached(&format!(
            "INSERT INTO file (folder, {FILE_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (folder, path) DO UPDATE SET
               file_id = excluded.file_id, kind = excluded.kind, size = excluded.size,
               mode = excluded.mode, mtime_ns = excluded.mtime_ns, inode = excluded.inode,
               dev = excluded.dev, content_root = excluded.content_root,
               deleted = excluded.deleted, seq = excluded.seq, chain_head = excluded.chain_head"
        ))?;
        stmt.execute(params![
            folder.as_bytes(),
            row.path,
            row.file_id.as_bytes(),
            row.kind as i64,
            row.size as i64,
            row.mode,
            row.mtime_ns,
            row.inode as i64,
            row.dev as i64,
            row.content_root.as_bytes(),
            row.deleted,
            row.seq as i64,
            row.chain_head.as_bytes(),
        ])?;
        Ok(())
    }

    /// Removes the row at `path` if it still holds `file` (a rename moved the file away; a
    /// new file may already have taken the path).
    pub fn remove_path_of(&self, folder: &FolderId, path: &str, file: &FileId) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM file WHERE folder = ?1 AND path = ?2 AND file_id = ?3")?
            .execute(params![folder.as_bytes(), path, file.as_bytes()])?;
        Ok(())
    }

    /// Replaces the chunk locations of a file.
    pub fn replace_chunks(
        &self,
        folder: &FolderId,
        file: &FileId,
        chunks: &[ChunkLoc],
    ) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM chunk WHERE folder = ?1 AND file_id = ?2")?
            .execute(params![folder.as_bytes(), file.as_bytes()])?;
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO chunk (folder, file_id, idx, offset, len, id, tag) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for c in chunks {
            stmt.execute(params![
                folder.as_bytes(),
                file.as_bytes(),
                c.idx,
                c.offset as i64,
                c.len,
                c.id.as_bytes(),
                c.tag.as_ref().map(|t| &t[..])
            ])?;
        }
        Ok(())
    }

    /// Stores manifest node blobs (idempotent).
    pub fn put_nodes(&self, folder: &FolderId, nodes: &[(ChunkId, Vec<u8>)]) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO manifest_node (id, folder, blob) VALUES (?1, ?2, ?3)",
        )?;
        for (id, b) in nodes {
            stmt.execute(params![id.as_bytes(), folder.as_bytes(), b])?;
        }
        Ok(())
    }

    /// Records the digest of the record this device and the folder document agree on.
    pub fn set_base(&self, folder: &FolderId, file: &FileId, digest: &Digest) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO sync_base (folder, file_id, digest) VALUES (?1, ?2, ?3)
                 ON CONFLICT (folder, file_id) DO UPDATE SET digest = excluded.digest",
            )?
            .execute(params![folder.as_bytes(), file.as_bytes(), &digest.0[..]])?;
        Ok(())
    }

    /// Removes the row at `path`, whatever file it holds (with its chunk locations).
    pub fn remove_path(&self, folder: &FolderId, path: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "DELETE FROM chunk WHERE folder = ?1 AND file_id IN
                   (SELECT file_id FROM file WHERE folder = ?1 AND path = ?2)",
            )?
            .execute(params![folder.as_bytes(), path])?;
        self.tx
            .prepare_cached("DELETE FROM file WHERE folder = ?1 AND path = ?2")?
            .execute(params![folder.as_bytes(), path])?;
        Ok(())
    }

    /// Removes the row of `file`, wherever it is (with its chunk locations).
    pub fn remove_file(&self, folder: &FolderId, file: &FileId) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM chunk WHERE folder = ?1 AND file_id = ?2")?
            .execute(params![folder.as_bytes(), file.as_bytes()])?;
        self.tx
            .prepare_cached("DELETE FROM file WHERE folder = ?1 AND file_id = ?2")?
            .execute(params![folder.as_bytes(), file.as_bytes()])?;
        Ok(())
    }

    /// Drops a file's chain entries from `seq` on (a fork that lost to a remote chain).
    pub fn truncate_chain(&self, folder: &FolderId, file: &FileId, seq: u64) -> Result<()> {
        self.tx
            .prepare_cached(
                "DELETE FROM chain_entry WHERE folder = ?1 AND file_id = ?2 AND seq >= ?3",
            )?
            .execute(params![folder.as_bytes(), file.as_bytes(), seq as i64])?;
        Ok(())
    }

    /// Appends a chain entry and the link after it.
    pub fn put_entry(&self, folder: &FolderId, entry: &Entry, hash: &ChainHash) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO chain_entry (folder, file_id, seq, entry, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                folder.as_bytes(),
                entry.file.as_bytes(),
                entry.seq as i64,
                &entry.encode()[..],
                hash.as_bytes()
            ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, id: u8) -> FileRow {
        FileRow {
            path: path.into(),
            file_id: FileId::from_bytes([id; 16]),
            kind: EntryKind::File,
            size: 10,
            mode: 0o644,
            mtime_ns: 5,
            inode: 7,
            dev: 1,
            content_root: ContentRoot::from_bytes([3; 32]),
            deleted: false,
            seq: 1,
            chain_head: ChainHash::from_bytes([4; 32]),
        }
    }

    #[test]
    fn migrations_apply_once_and_rows_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        let folder = FolderId::from_bytes([1; 16]);
        {
            let mut idx = Index::open(&path).unwrap();
            idx.ensure_folder(&folder, Path::new("/f")).unwrap();
            idx.write(|w| {
                w.put_file(&folder, &row("a", 1))?;
                w.replace_chunks(
                    &folder,
                    &FileId::from_bytes([1; 16]),
                    &[ChunkLoc {
                        idx: 0,
                        offset: 0,
                        len: 10,
                        id: ChunkId::from_bytes([9; 32]),
                        tag: None,
                    }],
                )
            })
            .unwrap();
        }
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.file(&folder, "a").unwrap(), Some(row("a", 1)));
        assert_eq!(
            idx.locate_chunk(&folder, &ChunkId::from_bytes([9; 32]))
                .unwrap(),
            vec![ChunkRange {
                path: "a".to_owned(),
                kind: EntryKind::File,
                offset: 0,
                len: 10,
                tag: None
            }]
        );
        assert_eq!(idx.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_failed_transaction_writes_nothing() {
        let mut idx = Index::in_memory().unwrap();
        let folder = FolderId::from_bytes([1; 16]);
        idx.ensure_folder(&folder, Path::new("/f")).unwrap();
        let r = idx.write(|w| {
            w.put_file(&folder, &row("a", 1))?;
            // Same file id at another path violates the unique index: the whole batch rolls back.
            w.put_file(&folder, &row("b", 1))
        });
        assert!(r.is_err());
        assert!(idx.files(&folder).unwrap().is_empty());
    }

    #[test]
    fn a_second_connection_reads_what_the_first_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = Index::open(&dir.path().join("i.sqlite3")).unwrap();
        let other = idx.reopen().unwrap().unwrap();
        let folder = FolderId::from_bytes([1; 16]);
        idx.ensure_folder(&folder, Path::new("/f")).unwrap();
        idx.write(|w| w.put_file(&folder, &row("a", 1))).unwrap();
        assert!(other.files(&folder).unwrap().contains_key("a"));
        // An index in memory has no second connection.
        assert!(Index::in_memory().unwrap().reopen().unwrap().is_none());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        drop(Index::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Index::open(&path),
            Err(Error::TooNew { found: 99, .. })
        ));
    }
}

#[cfg(test)]
mod planning_tests {
    use super::*;

    /// The bundled SQLite (STAT4) would prepare a cached statement again whenever its bound
    /// values change; with the query planner's stability guarantee on, it is planned once.
    #[test]
    fn cached_statements_are_planned_once_whatever_values_they_are_given() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("i.sqlite3")).unwrap();
        let folder = FolderId::from_bytes([1; 16]);
        for i in 0..5u8 {
            idx.locate_chunk(&folder, &ChunkId::from_bytes([i; 32]))
                .unwrap();
            idx.known_chunks(&folder, &[ChunkId::from_bytes([i; 32]); 3])
                .unwrap();
        }
        let st = idx
            .conn
            .prepare_cached(
                "SELECT f.path, f.kind, c.offset, c.len, c.tag FROM chunk c
             JOIN file f ON f.folder = c.folder AND f.file_id = c.file_id
             WHERE c.id = ?1 AND c.folder = ?2 AND f.deleted = 0 LIMIT 16",
            )
            .unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
