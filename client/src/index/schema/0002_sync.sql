-- Sync state: per file id, the record this device and the folder document last agreed on.
--
-- The planner compares it with the local row (did the disk change since?) and the document's
-- values (did a peer change the file since?). Keyed by file id, not path: a file another
-- device deleted or moved keeps its base even where no local row exists.
CREATE TABLE sync_base (
    folder  BLOB NOT NULL,
    file_id BLOB NOT NULL,                   -- FileId, 16 bytes
    digest  BLOB NOT NULL,                   -- BLAKE3 of the agreed record's bytes
    PRIMARY KEY (folder, file_id)
) STRICT, WITHOUT ROWID;

-- The hash after each chain entry, to find where a remote chain joins the local one.
CREATE INDEX chain_by_hash ON chain_entry (folder, hash);
