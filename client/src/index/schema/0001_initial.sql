-- The local index of one device: what it knows of the files of each folder it syncs.
--
-- It lives in the data dir, never inside a synced folder. The files on disk are the truth for
-- local content; the index records what the last scan saw (so unchanged files are skipped),
-- where each chunk of each current file lies (so a chunk is served by reading its range from
-- the file, never from a second encrypted copy), the manifest tree nodes (small), every
-- signed chain entry, and the versions kept in each folder's `.harp/versions`.
--
-- Ids and hashes are BLOBs of their raw bytes. Times are Unix nanoseconds (mtime) or
-- milliseconds (events). Paths are relative to the folder root, '/'-separated, Unicode NFC.

-- One row per synced folder.
CREATE TABLE folder (
    id               BLOB PRIMARY KEY,       -- FolderId, 16 bytes
    root             TEXT NOT NULL,          -- absolute path of the folder on this device
    last_scan_ms     INTEGER,                -- end of the last complete scan
    last_entry_count INTEGER NOT NULL DEFAULT 0
        -- entries seen by that scan: a scan that finds the root missing or empty while this
        -- is > 0 stops instead of reading it as "everything was deleted"
) STRICT;

-- The current state of every path of a folder, including deleted ones (tombstones keep the
-- file id, so a later re-create continues the same chain).
CREATE TABLE file (
    folder       BLOB NOT NULL REFERENCES folder (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,              -- relative, '/'-separated, NFC
    file_id      BLOB NOT NULL,              -- FileId, 16 bytes: stays across renames
    kind         INTEGER NOT NULL,           -- 1 file, 2 symlink, 3 directory
    size         INTEGER NOT NULL,           -- bytes of content (symlink: of its target)
    mode         INTEGER NOT NULL,           -- permission bits (st_mode & 0o7777)
    mtime_ns     INTEGER NOT NULL,
    inode        INTEGER NOT NULL,           -- with dev: detects renames, and replaced files
    dev          INTEGER NOT NULL,
    content_root BLOB NOT NULL,              -- ContentRoot of the manifest tree, 32 bytes
    deleted      INTEGER NOT NULL DEFAULT 0, -- 1: tombstone
    seq          INTEGER NOT NULL,           -- entries in the file's chain
    chain_head   BLOB NOT NULL,              -- ChainHash after the last entry
    PRIMARY KEY (folder, path)
) STRICT;
CREATE UNIQUE INDEX file_by_id ON file (folder, file_id);
CREATE INDEX file_by_inode ON file (folder, dev, inode);

-- Where the chunks of each current file are: chunk `idx` of the file is `len` bytes at
-- `offset`, and sealing them gives the blob `id`. Replaced whole when the file changes.
CREATE TABLE chunk (
    folder  BLOB NOT NULL,
    file_id BLOB NOT NULL,
    idx     INTEGER NOT NULL,
    offset  INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    id      BLOB NOT NULL,                   -- ChunkId: BLAKE3 of the sealed blob
    PRIMARY KEY (folder, file_id, idx)
) STRICT, WITHOUT ROWID;
CREATE INDEX chunk_by_id ON chunk (id);

-- Manifest tree nodes (sealed blobs, ~2 KiB each), kept for current and past versions so
-- that peers can fetch them and old versions stay describable.
CREATE TABLE manifest_node (
    id     BLOB PRIMARY KEY,                 -- ChunkId of the node blob
    folder BLOB NOT NULL,
    blob   BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- Every entry of every file's hash chain, as signed (218 bytes), with the link after it.
CREATE TABLE chain_entry (
    folder  BLOB NOT NULL,
    file_id BLOB NOT NULL,
    seq     INTEGER NOT NULL,
    entry   BLOB NOT NULL,
    hash    BLOB NOT NULL,                   -- ChainHash after this entry
    PRIMARY KEY (folder, file_id, seq)
) STRICT, WITHOUT ROWID;

-- Old versions kept in `<folder>/.harp/versions/`, newest last.
CREATE TABLE version (
    id           INTEGER PRIMARY KEY,
    folder       BLOB NOT NULL,
    path         TEXT NOT NULL,              -- the path the version had
    stored       TEXT NOT NULL,              -- file name inside .harp/versions
    kind         INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    mode         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    kept_ms      INTEGER NOT NULL,           -- when it was moved aside
    reason       TEXT NOT NULL               -- 'overwrite', 'delete', 'restore'
) STRICT;
CREATE INDEX version_by_path ON version (folder, path, kept_ms);
