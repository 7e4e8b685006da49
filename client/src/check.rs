//! `harp check`: is what this device recorded sound, and does the disk still hold it?
//!
//! Like `restic check`, it reads everything it can vouch for and names every problem:
//! - the index database (SQLite's own integrity check);
//! - every file's chain, from the folder's genesis: signatures, sequence, legal operations,
//!   the stored link hashes, and that its last entry says what the index row says;
//! - every version's manifest tree: present, decryptable, consistent with its parent nodes, and
//!   equal to the chunk rows the index keeps for the file;
//! - chain entries left without a file row;
//! - with `--read-data`, every file's bytes against its manifest, re-chunked and re-sealed.
//!
//! A file that changed on disk since the last scan is not a problem: it is a pending change
//! (`harp scan` records it), listed apart. A file whose size, mtime and inode are unchanged but
//! whose bytes differ is a problem (bit rot, or a write that bypassed the clock).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

use harp_protocol::chain::{self, Op};
use harp_protocol::ids::{ChunkId, FileId};
use harp_protocol::manifest::{ChunkRef, EntryKind, Node};
use serde::Serialize;

use crate::index::{self, FileRow, Index};
use crate::scan::Folder;

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The path (or file id) it is about; empty for the whole index.
    pub path: String,
    /// What is wrong.
    pub what: String,
}

/// What a check of one folder found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Index rows checked (files, links, directories, tombstones).
    pub rows: u64,
    /// File bytes read and re-chunked (`--read-data`).
    pub bytes_read: u64,
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// Paths that changed on disk since the last scan (not checked against their record).
    pub pending: Vec<String>,
}

fn problem(report: &mut Report, path: &str, what: impl Into<String>) {
    report.problems.push(Problem {
        path: path.to_owned(),
        what: what.into(),
    });
}

/// How far a check has got: rows checked of all, and file bytes read (for a progress bar).
pub type OnProgress<'a> = &'a dyn Fn(u64, u64, u64);

/// Checks one folder; `read_data` also reads every file's bytes. `progress` is told after
/// each row (rows done, rows in all, bytes read so far).
pub fn check_folder(
    index: &Index,
    folder: &Folder,
    read_data: bool,
    progress: OnProgress<'_>,
) -> Result<Report, index::Error> {
    let mut report = Report::default();
    let integrity = index.integrity_check()?;
    if integrity != "ok" {
        problem(&mut report, "", format!("index database: {integrity}"));
    }
    let rows = index.files(&folder.id)?;
    let mut paths: Vec<&String> = rows.keys().collect();
    paths.sort();
    let mut with_rows = HashSet::new();
    for path in paths {
        let row = &rows[path];
        report.rows += 1;
        with_rows.insert(row.file_id);
        check_chain(index, folder, row, &mut report)?;
        if row.deleted || row.kind == EntryKind::Directory {
            continue;
        }
        let chunks = check_manifest(index, folder, row, &mut report)?;
        check_disk(folder, row, chunks.as_deref(), read_data, &mut report);
        progress(report.rows, rows.len() as u64, report.bytes_read);
    }
    for id in index.chained_files(&folder.id)? {
        if !with_rows.contains(&id) {
            report.rows += 1;
            check_rowless_chain(index, folder, &id, &mut report)?;
        }
    }
    Ok(report)
}

/// A file id with chain entries and no index row is a tombstone whose row was dropped: a
/// duplicate that gave its path to an identical file from another device (a receiver killed
/// between installing a file and recording it scans the file in as its own), or a file
/// created and deleted elsewhere before this device saw it. Its chain must verify and end
/// in a delete; a chain that ends with the file present has lost its row.
fn check_rowless_chain(
    index: &Index,
    folder: &Folder,
    id: &FileId,
    report: &mut Report,
) -> Result<(), index::Error> {
    let name = id.to_string();
    let links = match index.chain_links(&folder.id, id) {
        Ok(l) => l,
        Err(index::Error::Corrupt(what)) => {
            problem(
                report,
                &name,
                format!("chain: a stored {what} does not decode"),
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let h0 = chain::genesis(&folder.id, id, &folder.keys.chain_seed);
    let entries: Vec<_> = links.iter().map(|(e, _)| e.clone()).collect();
    let mut head = h0;
    for (entry, stored) in &links {
        head = chain::link(&head, &entry.encode());
        if head != *stored {
            let what = format!("chain: the stored link after entry {} is wrong", entry.seq);
            problem(report, &name, what);
            return Ok(());
        }
    }
    match chain::verify_chain(&folder.id, id, &h0, &entries) {
        Err(e) => problem(report, &name, format!("chain: {e} [{}]", e.code())),
        Ok(v) if v.present => problem(
            report,
            &name,
            "the chain says this file exists but it has no index row (a lost row)",
        ),
        Ok(_) => {}
    }
    Ok(())
}

fn check_chain(
    index: &Index,
    folder: &Folder,
    row: &FileRow,
    report: &mut Report,
) -> Result<(), index::Error> {
    let path = &row.path;
    let links = match index.chain_links(&folder.id, &row.file_id) {
        Ok(l) => l,
        Err(index::Error::Corrupt(what)) => {
            problem(
                report,
                path,
                format!("chain: a stored {what} does not decode"),
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let h0 = chain::genesis(&folder.id, &row.file_id, &folder.keys.chain_seed);
    let entries: Vec<_> = links.iter().map(|(e, _)| e.clone()).collect();
    let verified = match chain::verify_chain(&folder.id, &row.file_id, &h0, &entries) {
        Ok(v) => v,
        Err(e) => {
            problem(report, path, format!("chain: {e} [{}]", e.code()));
            return Ok(());
        }
    };
    let mut head = h0;
    for (entry, stored) in &links {
        head = chain::link(&head, &entry.encode());
        if head != *stored {
            problem(
                report,
                path,
                format!("chain: the stored link after entry {} is wrong", entry.seq),
            );
            return Ok(());
        }
    }
    if verified.head != row.chain_head || verified.seq != row.seq {
        problem(
            report,
            path,
            format!(
                "chain ends at entry {} but the index row says {} (head differs: {})",
                verified.seq,
                row.seq,
                verified.head != row.chain_head
            ),
        );
        return Ok(());
    }
    let Some((last, _)) = links.last() else {
        return Ok(());
    };
    let deleted = last.op == Op::Delete;
    if deleted != row.deleted {
        problem(
            report,
            path,
            "the chain's last entry and the index row disagree on whether it exists",
        );
    } else if !deleted && row.kind != EntryKind::Directory {
        if last.content_root != row.content_root || last.size != row.size {
            problem(
                report,
                path,
                "the chain's last entry records other content than the index row",
            );
        }
        if last.path != folder.keys.commit_path(path) {
            problem(
                report,
                path,
                "the chain's last entry commits to another path",
            );
        }
    }
    Ok(())
}

/// The chunk list of the row's manifest tree, or `None` (a problem was recorded).
fn check_manifest(
    index: &Index,
    folder: &Folder,
    row: &FileRow,
    report: &mut Report,
) -> Result<Option<Vec<ChunkRef>>, index::Error> {
    let path = &row.path;
    let mut level: Vec<(ChunkId, Option<(u8, u64)>)> = vec![(row.content_root.into(), None)];
    let mut out = Vec::new();
    while !level.is_empty() {
        let mut next = Vec::new();
        for (id, expect) in &level {
            let Some(blob) = index.manifest_node(id)? else {
                problem(
                    report,
                    path,
                    format!("manifest node {id} is missing from the index"),
                );
                return Ok(None);
            };
            let node = match Node::open(&folder.keys, id, &blob) {
                Ok(n) => n,
                Err(e) => {
                    problem(report, path, format!("manifest node {id}: {e}"));
                    return Ok(None);
                }
            };
            if let Some((lvl, bytes)) = expect
                && (node.level() != *lvl || node.bytes() != *bytes)
            {
                problem(report, path, "a manifest node disagrees with its parent");
                return Ok(None);
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
    if total != row.size {
        problem(
            report,
            path,
            format!(
                "the manifest covers {total} bytes, the index row says {}",
                row.size
            ),
        );
        return Ok(None);
    }
    let rows: Vec<(ChunkId, u32)> = index
        .chunks(&folder.id, &row.file_id)?
        .iter()
        .map(|c| (c.id, c.len))
        .collect();
    let listed: Vec<(ChunkId, u32)> = out.iter().map(|c| (c.id, c.len)).collect();
    if rows != listed {
        problem(
            report,
            path,
            format!(
                "the index's chunk rows ({}) differ from the manifest's chunks ({})",
                rows.len(),
                listed.len()
            ),
        );
    }
    Ok(Some(out))
}

fn check_disk(
    folder: &Folder,
    row: &FileRow,
    chunks: Option<&[ChunkRef]>,
    read_data: bool,
    report: &mut Report,
) {
    let path = &row.path;
    let full = folder.root.join(path);
    let Ok(meta) = std::fs::symlink_metadata(&full) else {
        report.pending.push(format!("{path} (gone)"));
        return;
    };
    let unchanged = meta.len() == row.size
        && meta.ino() == row.inode
        && meta.dev() == row.dev
        && meta.mtime() * 1_000_000_000 + meta.mtime_nsec() == row.mtime_ns;
    let kind_ok = match row.kind {
        EntryKind::File => meta.is_file(),
        EntryKind::Symlink => meta.file_type().is_symlink(),
        EntryKind::Directory => meta.is_dir(),
    };
    if !kind_ok || (row.kind == EntryKind::File && !unchanged) {
        report.pending.push(path.clone());
        return;
    }
    if !read_data {
        return;
    }
    let Some(expected) = chunks else { return };
    let hashed = match row.kind {
        EntryKind::File => match std::fs::File::open(&full)
            .and_then(|f| crate::chunk::hash_reader(f, row.size, &folder.chunker, &folder.keys))
        {
            Ok(h) => h,
            Err(e) => {
                problem(report, path, format!("cannot read it: {e}"));
                return;
            }
        },
        _ => match std::fs::read_link(&full) {
            Ok(target) => crate::chunk::hash_bytes(
                std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()),
                &folder.chunker,
                &folder.keys,
            ),
            Err(e) => {
                problem(report, path, format!("cannot read the link: {e}"));
                return;
            }
        },
    };
    report.bytes_read += hashed.size;
    let got: Vec<(ChunkId, u32)> = hashed.chunks.iter().map(|c| (c.id, c.len)).collect();
    let want: Vec<(ChunkId, u32)> = expected.iter().map(|c| (c.id, c.len)).collect();
    if got != want {
        let offset = hashed
            .chunks
            .iter()
            .zip(expected)
            .find(|(g, w)| g.id != w.id || g.len != w.len)
            .map_or(0, |(g, _)| g.offset);
        problem(
            report,
            path,
            format!(
                "its bytes differ from the recorded version although size, mtime and inode match \
                 (from offset {offset}): damaged on disk?"
            ),
        );
    }
}
