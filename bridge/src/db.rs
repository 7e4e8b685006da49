//! The bridge's SQLite database: schema and opening.
//!
//! One file holds everything; WAL mode so readers never wait for the writer. The schema is
//! versioned with `PRAGMA user_version` and migrated forward on open, each step in a
//! transaction, so a bridge killed mid-upgrade restarts cleanly.

use std::path::Path;

use rusqlite::Connection;

/// The schema steps, in order; `user_version` counts how many ran.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
-- App passwords are 256-bit random tokens: a fast hash is enough to keep them secret at rest.
CREATE TABLE app_passwords (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(user_id),
    label      TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE devices (
    device_id        TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(user_id),
    name             TEXT NOT NULL,
    x25519_public    BLOB NOT NULL,
    addresses        TEXT NOT NULL DEFAULT '[]',
    addresses_expire INTEGER,
    created_ms       INTEGER NOT NULL
);
CREATE INDEX devices_by_user ON devices(user_id);
CREATE TABLE folders (
    folder_id  TEXT PRIMARY KEY,
    owner      TEXT NOT NULL REFERENCES users(user_id),
    label      TEXT NOT NULL,
    index_mode TEXT NOT NULL,
    versioning TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
-- The owner is a member too: every visibility rule is one join.
CREATE TABLE members (
    folder_id TEXT NOT NULL REFERENCES folders(folder_id),
    user_id   TEXT NOT NULL REFERENCES users(user_id),
    PRIMARY KEY (folder_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id);
CREATE TABLE wrapped_keys (
    folder_id        TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    ephemeral_public BLOB NOT NULL,
    nonce            BLOB NOT NULL,
    ciphertext       BLOB NOT NULL,
    wrapped_by       TEXT NOT NULL,
    signature        BLOB NOT NULL,
    PRIMARY KEY (folder_id, device_id)
);
CREATE TABLE changes (
    cursor    INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    change    BLOB NOT NULL
);
CREATE INDEX changes_by_folder ON changes(folder_id, cursor);
CREATE TABLE entries (
    folder_id TEXT NOT NULL,
    file_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    prev      BLOB NOT NULL,
    entry     BLOB NOT NULL,
    head      BLOB NOT NULL,
    PRIMARY KEY (folder_id, file_id, head)
);
CREATE INDEX entries_by_seq ON entries(folder_id, file_id, seq);
CREATE TABLE index_entries (
    folder_id TEXT NOT NULL,
    file_id   TEXT NOT NULL,
    name      TEXT,
    tokens    TEXT NOT NULL DEFAULT '',
    size      INTEGER NOT NULL,
    mtime_ms  INTEGER NOT NULL,
    deleted   INTEGER NOT NULL,
    PRIMARY KEY (folder_id, file_id)
);
",
    r"
-- Each folder's transparency log: one leaf per chain entry stored as new, in that order.
CREATE TABLE log_leaves (
    folder_id TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    PRIMARY KEY (folder_id, idx)
);
ALTER TABLE entries ADD COLUMN log_index INTEGER;
-- Witness cosignature lines, per checkpoint size (one per name and key id).
CREATE TABLE cosignatures (
    folder_id TEXT NOT NULL,
    size      INTEGER NOT NULL,
    name      TEXT NOT NULL,
    key_id    BLOB NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (folder_id, size, name, key_id)
);
",
];

/// Opens (creating if needed) and migrates the database at `path`.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let done = usize::try_from(done).unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_migrates_once() -> rusqlite::Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        let path = dir.path().join("b.sqlite");
        drop(open(&path)?);
        let conn = open(&path)?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(v, MIGRATIONS.len() as i64);
        Ok(())
    }
}
