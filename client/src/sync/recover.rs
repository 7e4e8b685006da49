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
//! back, at that version, with the peer's chain up to it (checked as an install checks it:
//! member signatures, links, seq); its never-published id and chain are dropped. A local
//! version this device never agreed on (no base) that the winner's chain went through is
//! recognised too: a kill between an install's rename and its record left it (or a publish
//! whose base was not recorded yet).
//!
//! Content a user wrote here that happens to equal such a version is recognised the same way:
//! nothing is lost, since the version is in the peer's chain and the install that replaces it
//! keeps it in the versions store.

use std::collections::{BTreeMap, HashMap, HashSet};

use harp_protocol::chain::{Entry, Op};
use harp_protocol::ids::{ChainHash, FileId};
use harp_protocol::record::Record;

use super::apply::{Context, Defer, Doc, local_record, lock, remote_links};
use super::doc::FolderDoc;
use super::plan::{FileState, winner};
use crate::index::{FileRow, Index};

/// Marks local changes that are unrecorded installs (see the module doc), after giving
/// unrecorded new files their peer's id. Returns how many changes it recognised.
pub fn recognise(
    index: &mut Index,
    doc: &Doc,
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
        if local.chain_head == w.record.chain_head {
            // The same version (the usual case): nothing to recognise, no digests to compute.
            continue;
        }
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
        let d = lock(doc);
        let received = passed_link(&d, ctx, &held, local, &w.record).is_some()
            || (f.base.is_none() && goes_through(&d, local.chain_head, &w.record));
        drop(d);
        if received {
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

/// The link (head and entry) with `local`'s content, size and path that the chain of
/// `remote` went through after the last link this device holds (`held`), if any.
fn passed_link(
    doc: &FolderDoc,
    ctx: &Context<'_>,
    held: &HashSet<ChainHash>,
    local: &Record,
    remote: &Record,
) -> Option<(ChainHash, Entry)> {
    let path = ctx.folder.keys.commit_path(&local.path);
    let mut head = remote.chain_head;
    for _ in 0..remote.seq {
        if held.contains(&head) {
            return None;
        }
        let (prev, entry) = doc.entry(&head)?;
        if entry.op != Op::Delete
            && entry.content_root == local.content_root
            && entry.size == local.size
            && entry.path == path
        {
            return Some((head, entry));
        }
        head = prev;
    }
    None
}

/// Whether the chain of `remote` went through the link `head`.
fn goes_through(doc: &FolderDoc, head: ChainHash, remote: &Record) -> bool {
    let mut at = remote.chain_head;
    for _ in 0..=remote.seq {
        if at == head {
            return true;
        }
        match doc.entry(&at) {
            Some((prev, _)) => at = prev,
            None => return false,
        }
    }
    false
}

/// A file new here, never published, at the path of a peer's file that this device has no
/// row for, holding a version that peer's chain went through: the install of that file was
/// cut short, and the scan gave it a new id. It gets the peer's id back, at that version, with
/// the peer's chain up to it (checked as an install checks it).
fn readopt_new_files(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<(), crate::index::Error> {
    // Only live files this device has not installed yet: a file whose delete it already
    // recorded (its base is the winner) was never being installed, so a file the user puts
    // at its old path is theirs, even with an old version's bytes.
    // Two live files on one path: neither is taken (`None`; the collision is settled as usual).
    let mut by_path: HashMap<&str, Option<FileId>> = HashMap::new();
    for (id, f) in files.iter().filter(|(_, f)| f.local.is_none()) {
        if let Some(w) = winner(&f.remote)
            && !w.record.deleted
            && f.base != Some(w.record.digest())
        {
            by_path
                .entry(w.record.path.as_str())
                .and_modify(|taken| *taken = None)
                .or_insert(Some(*id));
        }
    }
    let unheld: HashMap<&str, FileId> = by_path
        .into_iter()
        .filter_map(|(path, id)| id.map(|id| (path, id)))
        .collect();
    if unheld.is_empty() {
        return Ok(());
    }
    // (new id, peer's id, the version it holds as a record)
    let mut moves: Vec<(FileId, FileId, Record)> = Vec::new();
    {
        let d = lock(doc);
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
            if let Some((head, entry)) = passed_link(&d, ctx, &HashSet::new(), local, &w.record) {
                let version = Record {
                    seq: entry.seq,
                    chain_head: head,
                    ..local.clone()
                };
                moves.push((*id, *peer_id, version));
            }
        }
    }
    for (new_id, peer_id, version) in moves {
        let Some(row) = index.file_by_id(&ctx.folder.id, &new_id)? else {
            continue;
        };
        let (joined_at, links) =
            match remote_links(index, doc, ctx, &peer_id, &version, &HashSet::new()) {
                Ok(l) => l,
                Err(Defer::Index(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(folder = %ctx.folder.id, "{}: not taken back: {e}", row.path);
                    continue;
                }
            };
        let chunks = index.chunks(&ctx.folder.id, &new_id)?;
        let readopted = FileRow {
            file_id: peer_id,
            seq: version.seq,
            chain_head: version.chain_head,
            ..row
        };
        index.write(|w| {
            w.remove_file(&ctx.folder.id, &new_id)?;
            w.truncate_chain(&ctx.folder.id, &new_id, 0)?;
            w.truncate_chain(&ctx.folder.id, &peer_id, joined_at + 1)?;
            for (e, h) in &links {
                w.put_entry(&ctx.folder.id, e, h)?;
            }
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
