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
//! Neither is what happened. Each install notes the version it is about to rename into place
//! in the [install journal](super::journal) first; before each round is planned, [`recognise`]
//! looks for local changes whose content, size and path are those of a version the journal
//! holds for that file: such a change is a version this device received, not one it made, so
//! the planner takes the peer's newer record without a conflict ([`FileState::local_passed`]).
//! A new local file of that kind first gets the peer's file id back, at that version, with the
//! peer's chain up to it (checked as an install checks it: member signatures, links, seq); its
//! never-published id and chain are dropped. It does so even if the peer has deleted or moved
//! the file since: the planner then carries the delete or move out, keeping the bytes in the
//! versions store. A local version this device never agreed on (no base) that the winner's
//! chain went through is recognised too (a version taken back so, whose successor was not
//! installed yet).
//!
//! Only the journal is trusted: content a user wrote here that happens to equal a peer's
//! version is the user's edit (a conflict if the peer wrote too), and a file the user puts
//! where a peer's file used to be is the user's new file.

use std::collections::{BTreeMap, HashMap, HashSet};

use harp_protocol::chain::{Entry, Op};
use harp_protocol::ids::{ChainHash, FileId};
use harp_protocol::record::Record;

use super::apply::{Context, Defer, Doc, GivenUp, Keeper, local_record, lock, take_over};
use super::doc::FolderDoc;
use super::journal::Entry as Noted;
use super::plan::{FileState, winner};
use crate::index::Index;

/// Marks local changes that are unrecorded installs (see the module doc), after giving
/// unrecorded new files their peer's id. `journal` is what the install journal holds from
/// earlier rounds. Returns how many changes it recognised.
pub fn recognise(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    journal: &[Noted],
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<usize, crate::index::Error> {
    let mut by_file: HashMap<FileId, Vec<&Noted>> = HashMap::new();
    for e in journal {
        by_file.entry(e.file_id).or_default().push(e);
    }
    readopt_new_files(index, doc, ctx, journal, files)?;
    let mut recognised = 0;
    for (id, f) in files.iter_mut() {
        let Some(local) = f.local.as_ref().filter(|l| !l.deleted) else {
            continue;
        };
        let noted = by_file.get(id).map(Vec::as_slice).unwrap_or_default();
        if noted.is_empty() && f.base.is_some() {
            // Neither case below can apply (the usual case: no digests to compute).
            continue;
        }
        let Some(w) = winner(&f.remote) else {
            continue;
        };
        if local.chain_head == w.record.chain_head {
            continue;
        }
        let local_digest = local.digest();
        let w_digest = w.record.digest();
        if f.base == Some(local_digest) || f.base == Some(w_digest) || local_digest == w_digest {
            continue;
        }
        let d = lock(doc);
        let mut received = f.base.is_none() && goes_through(&d, local.chain_head, &w.record);
        if !received && !noted.is_empty() {
            let held: HashSet<ChainHash> = index
                .chain_links(&ctx.folder.id, id)?
                .into_iter()
                .map(|(_, head)| head)
                .collect();
            received = noted
                .iter()
                .any(|e| !held.contains(&e.head) && holds(&d, ctx, e, local).is_some());
        }
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

/// The link of the journal's `noted` install, if `local` (content, size, path) is that
/// version.
fn holds(doc: &FolderDoc, ctx: &Context<'_>, noted: &Noted, local: &Record) -> Option<Entry> {
    if noted.path != local.path {
        return None;
    }
    let (_, entry) = doc.entry(&noted.head)?;
    (entry.op != Op::Delete
        && entry.seq == noted.seq
        && entry.content_root == local.content_root
        && entry.size == local.size
        && entry.path == ctx.folder.keys.commit_path(&local.path))
    .then_some(entry)
}

/// Whether the chain of `remote` went through the link `head`.
pub(super) fn goes_through(doc: &FolderDoc, head: ChainHash, remote: &Record) -> bool {
    chain_back(doc, remote).any(|at| at == head)
}

/// The heads of `remote`'s chain, newest first, as far as the document holds its links (at
/// most `seq + 1`, however the links in it loop).
pub(super) fn chain_back<'a>(
    doc: &'a FolderDoc,
    remote: &Record,
) -> impl Iterator<Item = ChainHash> + 'a {
    std::iter::successors(Some(remote.chain_head), |at| {
        doc.entry(at).map(|(prev, _)| prev)
    })
    .take(
        usize::try_from(remote.seq)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    )
}

/// A file new here, never published, at a path where the install journal says this device
/// put a version of a peer's file, holding that version: the install was cut short, and the
/// scan gave the file a new id. It gets the peer's id back, at that version, with the peer's
/// chain up to it (checked as an install checks it). The peer's file may have been deleted or
/// moved since: the round then installs that on top, as for any file.
fn readopt_new_files(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    journal: &[Noted],
    files: &mut BTreeMap<FileId, FileState>,
) -> Result<(), crate::index::Error> {
    // The journal's installs by path, latest first, of files this device does not hold there.
    let mut by_path: HashMap<&str, Vec<&Noted>> = HashMap::new();
    for e in journal.iter().rev() {
        // No row for it, or a row at another path: a move with an edit, cut short after the
        // new version's rename (the old path still holds the old version, or it went to the
        // versions store already and the scan took that for a delete).
        let unheld = |f: &FileState| f.local.as_ref().is_none_or(|l| l.path != e.path);
        if files.get(&e.file_id).is_some_and(unheld) {
            by_path.entry(e.path.as_str()).or_default().push(e);
        }
    }
    if by_path.is_empty() {
        return Ok(());
    }
    // (new id, peer's id, the version it holds as a record)
    let mut moves: Vec<(FileId, FileId, Record)> = Vec::new();
    let mut taken: HashSet<FileId> = HashSet::new();
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
            let Some(noted) = by_path.get(local.path.as_str()) else {
                continue;
            };
            let Some((e, entry)) = noted
                .iter()
                .filter(|e| !taken.contains(&e.file_id))
                .find_map(|e| holds(&d, ctx, e, local).map(|entry| (e, entry)))
            else {
                continue;
            };
            taken.insert(e.file_id);
            let version = Record {
                seq: entry.seq,
                chain_head: e.head,
                ..local.clone()
            };
            moves.push((*id, e.file_id, version));
        }
    }
    for (new_id, peer_id, version) in moves {
        let Some(row) = index.file_by_id(&ctx.folder.id, &new_id)? else {
            continue;
        };
        let taken = match Keeper::checked(index, doc, ctx, peer_id, &version)
            .and_then(|keeper| take_over(index, ctx, &row, &keeper, GivenUp::Unpublished))
        {
            Ok(t) => t,
            Err(Defer::Index(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(folder = %ctx.folder.id, "{}: not taken back: {e}", row.path);
                continue;
            }
        };
        tracing::info!(
            folder = %ctx.folder.id,
            "{}: a peer's file whose install a restart cut short, not a new file made here",
            taken.path
        );
        files.remove(&new_id);
        if let Some(f) = files.get_mut(&peer_id) {
            f.local = Some(local_record(&taken));
            // Received, whatever its base says (a move with an edit has one): the winner is
            // installed over it, with no conflict copy.
            f.local_passed = true;
        }
    }
    Ok(())
}
