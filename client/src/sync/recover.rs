//! Recognising installs that a kill -9 left unrecorded.
//!
//! An install renames a peer's version into place, then records it in the index. A kill -9
//! between the two leaves the version on disk with the index still describing the previous
//! one. The restarted scan cannot tell where the bytes came from, so it records them as this
//! device's own work:
//!
//! - a file that had a row becomes an **edit** signed here. If the peer has written again
//!   since, the planner sees two concurrent edits and sets this "edit" aside as a conflict
//!   copy; if the peer has deleted the file since, the "edit" beats the delete and brings the
//!   file back everywhere.
//! - a file new here becomes a **new file** with a fresh id at the path the peer's file holds:
//!   a path collision, settled by renaming one of them under a conflict name.
//!
//! Neither is what happened. Before each round is planned, [`recognise`] looks for local
//! changes whose content, size and path are those of a link the peer's chain went through
//! after the last link this device holds: such a change is a version this device received,
//! not one it made, so the planner takes the peer's newer record without a conflict
//! ([`FileState::local_passed`]). A new local file of that kind first gets the peer's file id
//! back, its never-published id and chain are dropped.
//!
//! Content a user wrote here that happens to equal such a version is recognised the same way:
//! nothing is lost, since the version is in the peer's chain and the install that replaces it
//! keeps it in the versions store.

use std::collections::{BTreeMap, HashMap, HashSet};

use harp_protocol::chain::{self, Op};
use harp_protocol::ids::{ChainHash, FileId};
use harp_protocol::record::Record;

use super::apply::{Context, local_record};
use super::doc::FolderDoc;
use super::plan::{FileState, winner};
use crate::index::{FileRow, Index};

/// Marks local changes that are unrecorded installs (see the module doc), after giving
/// unrecorded new files their peer's id. Returns how many changes it recognised.
pub fn recognise(
    index: &mut Index,
    doc: &FolderDoc,
    ctx: &Context<'_>,
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<usize, crate::index::Error> {
    readopt_new_files(index, doc, ctx, files)?;
    let mut recognised = 0;
    for (id, f) in files.iter_mut() {
        let Some(local) = f.local.as_ref().filter(|l| !l.deleted) else {
            continue;
        };
        let Some(w) = winner(&f.remote) else {
            continue;
        };
        let local_digest = local.digest();
        let w_digest = w.record.digest();
        if f.base == Some(local_digest) || f.base == Some(w_digest) || local_digest == w_digest {
            continue;
        }
        let held: HashSet<ChainHash> = index
            .chain_links(&ctx.folder.id, id)?
            .into_iter()
            .map(|(_, head)| head)
            .collect();
        if passes_through(doc, ctx, &held, local, &w.record) {
            tracing::info!(
                folder = %ctx.folder.id,
                "{}: the version on disk is one a peer wrote (an install a restart cut short), \
                 not an edit made here",
                local.path
            );
            f.local_passed = true;
            recognised += 1;
        }
    }
    Ok(recognised)
}

/// Whether the chain of `remote` went through a link with `local`'s content, size and path
/// after the last link this device holds (`held`).
fn passes_through(
    doc: &FolderDoc,
    ctx: &Context<'_>,
    held: &HashSet<ChainHash>,
    local: &Record,
    remote: &Record,
) -> bool {
    let path = ctx.folder.keys.commit_path(&local.path);
    let mut head = remote.chain_head;
    for _ in 0..remote.seq {
        if held.contains(&head) {
            return false;
        }
        let Some((prev, entry)) = doc.entry(&head) else {
            return false;
        };
        if entry.op != Op::Delete
            && entry.content_root == local.content_root
            && entry.size == local.size
            && entry.path == path
        {
            return true;
        }
        head = prev;
    }
    false
}

/// A file new here, never published, at the path of a peer's file that this device has no
/// row for, holding a version that peer's chain went through: the install of that file was
/// cut short, and the scan gave it a new id. It gets the peer's id back, with no chain yet
/// (the install that follows records the peer's).
fn readopt_new_files(
    index: &mut Index,
    doc: &FolderDoc,
    ctx: &Context<'_>,
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<(), crate::index::Error> {
    let unheld: HashMap<&str, FileId> = files
        .iter()
        .filter(|(_, f)| f.local.is_none())
        .filter_map(|(id, f)| winner(&f.remote).map(|w| (w.record.path.as_str(), *id)))
        .collect();
    if unheld.is_empty() {
        return Ok(());
    }
    let mut moves: Vec<(FileId, FileId)> = Vec::new();
    for (id, f) in files.iter() {
        let Some(local) = f.local.as_ref() else {
            continue;
        };
        if local.deleted
            || local.kind == harp_protocol::manifest::EntryKind::Directory
            || f.base.is_some()
            || !f.remote.is_empty()
        {
            continue;
        }
        let Some(peer_id) = unheld.get(local.path.as_str()) else {
            continue;
        };
        let Some(w) = winner(&files[peer_id].remote) else {
            continue;
        };
        if passes_through(doc, ctx, &HashSet::new(), local, &w.record) {
            moves.push((*id, *peer_id));
        }
    }
    for (new_id, peer_id) in moves {
        let Some(row) = index.file_by_id(&ctx.folder.id, &new_id)? else {
            continue;
        };
        let chunks = index.chunks(&ctx.folder.id, &new_id)?;
        let readopted = FileRow {
            file_id: peer_id,
            seq: 0,
            chain_head: chain::genesis(&ctx.folder.id, &peer_id, &ctx.folder.keys.chain_seed),
            ..row
        };
        index.write(|w| {
            w.remove_file(&ctx.folder.id, &new_id)?;
            w.truncate_chain(&ctx.folder.id, &new_id, 0)?;
            w.put_file(&ctx.folder.id, &readopted)?;
            w.replace_chunks(&ctx.folder.id, &peer_id, &chunks)
        })?;
        tracing::info!(
            folder = %ctx.folder.id,
            "{}: a peer's file whose install a restart cut short, not a new file made here",
            readopted.path
        );
        files.remove(&new_id);
        if let Some(f) = files.get_mut(&peer_id) {
            f.local = Some(local_record(&readopted));
        }
    }
    Ok(())
}
