//! Signed moves this device makes of its own files: a file that lost its path is moved aside
//! (or, holding the same content as the winner, gives its id up to it), and a merge moves a
//! file to the path the other side chose. Each move is a chain entry signed here, then
//! published like a scanned change.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use harp_protocol::chain::{ChainTip, Change, Entry, Op};
use harp_protocol::ids::{ChainHash, DeviceId, FileId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::{Digest, Record};

use super::conflict::free_conflict_name;
#[cfg(test)]
use super::install::tests_hook;
use super::install::{disk_matches, prepare_parents, remote_links, write_chain};
use super::{Context, Defer, Doc, later, local_record, now_ms, publish};
use crate::index::{FileRow, Index};
use crate::scan::Folder;
use crate::store;

/// What becomes of the chain of a file id that gives way to another ([`take_over`]).
pub(in crate::sync) enum GivenUp<'a> {
    /// It was never published (an id the scan made up for a received file): it goes.
    Unpublished,
    /// It was published: it ends with this delete link.
    EndsWith(&'a Entry, &'a ChainHash),
}

/// A file about to take another's place ([`take_over`]): its id, the version it will have
/// there, and its chain up to that version, checked as an install checks it.
pub(in crate::sync) struct Keeper<'a> {
    id: FileId,
    version: &'a Record,
    /// The seq the links start after, and the links ([`remote_links`]).
    joined_at: u64,
    links: Vec<(Entry, ChainHash)>,
}

impl<'a> Keeper<'a> {
    /// Checks `id`'s chain up to `version`; a keeper whose chain does not check is refused.
    pub(in crate::sync) fn checked(
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
pub(in crate::sync) fn take_over(
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
pub(super) fn yield_path(
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
    let tip = tip_of(folder, &row);
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
        // leaves a link the next round claims, not one only the bridge knows). A
        // `receive_only` folder sends nothing: the delete stays in the local chain.
        if ctx.direction.sends() {
            publish(index, doc, ctx, id, &record, pending)?;
        }
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
/// local chain, renames, records it, and publishes it (unless the folder is `receive_only`).
pub(super) fn move_signed(
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
    let tip = tip_of(folder, &row);
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
    // (A `receive_only` folder sends nothing: the move stays in the local chain.)
    if !ctx.direction.sends() {
        return Ok(());
    }
    publish(index, doc, ctx, id, &local_record(&new_row), pending)
}

/// The chain tip of a file this device holds (present, at its recorded link): what its next
/// signed link follows.
fn tip_of(folder: &Folder, row: &FileRow) -> ChainTip {
    ChainTip {
        folder: folder.id,
        file: row.file_id,
        seq: row.seq,
        head: row.chain_head,
        present: true,
    }
}
