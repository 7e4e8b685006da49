//! The forced rounds of one-way folders: `harp folder revert` in a `receive_only` folder
//! (files only this device has are discarded, to the versions store; the rest are installs of
//! the document's winners, see [`super::plan::Force::Revert`]) and `harp folder override` in
//! a `send_only` folder (each file this device has otherwise than the document gets a version
//! signed on top of the winner's chain that says what is here).

use std::collections::HashSet;
use std::fs;

use harp_protocol::chain::{ChainTip, Change, Op};
use harp_protocol::ids::FileId;
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::{Digest, Record};

use super::install::{disk_matches, remote_links, write_chain};
use super::{Context, Defer, Doc, later, local_record, now_ms, publish};
use crate::index::{FileRow, Index};
use crate::store;

/// Removes a file only this device has and never sent: its bytes go to the versions store,
/// its row and its (unsent) chain go. A directory goes only once empty (its files go first).
pub(super) fn discard(
    index: &mut Index,
    ctx: &Context<'_>,
    id: &FileId,
    local: &Record,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let row = index
        .file_by_id(&folder.id, id)?
        .filter(|r| r.path == local.path && !r.deleted)
        .ok_or_else(|| later("the file moved"))?;
    if !disk_matches(folder, &row) {
        return Err(later(format!(
            "{} changed on disk since the last scan",
            local.path
        )));
    }
    if row.kind == EntryKind::Directory {
        if let Err(e) = fs::remove_dir(folder.root.join(&row.path))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(later(format!(
                "directory {} is not empty (it holds files no scan records)",
                row.path
            )));
        }
    } else {
        store::keep(index, folder, &row.path, "revert")?;
    }
    index.write(|w| {
        w.remove_file(&folder.id, id)?;
        w.truncate_chain(&folder.id, id, 0)
    })?;
    tracing::info!(folder = %folder.id, "reverted: {} (made here, never sent) went to the versions store", row.path);
    Ok(())
}

/// Makes what this device has of `id` the newest version everywhere: the winner's chain is
/// checked and taken into the index, then a link on top of it says what is here (a move, an
/// edit, a new life after a delete, or a delete when nothing is here) and is published. A
/// difference of mode or mtime alone needs no link (links are made for content and paths):
/// the local record is published at the winner's link.
pub(super) fn override_with(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    (local, winner): (Option<&Record>, &Record),
    pending: &mut Vec<(FileId, Digest)>,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let row = index.file_by_id(&folder.id, id)?;
    if let Some(r) = row.as_ref().filter(|r| !r.deleted)
        && !disk_matches(folder, r)
    {
        return Err(later(format!(
            "{} changed on disk since the last scan",
            r.path
        )));
    }
    let (joined_at, links) = remote_links(index, doc, ctx, id, winner, &HashSet::new())?;
    let here = local.filter(|l| !l.deleted);
    let tip = ChainTip {
        folder: folder.id,
        file: *id,
        seq: winner.seq,
        head: winner.chain_head,
        present: !winner.deleted,
    };
    let change = match here {
        None if winner.deleted => None,
        // Deleted where this device's tombstone is (else where the winner is): the path the
        // published tombstone says.
        None => Some(Change {
            op: Op::Delete,
            content_root: winner.content_root,
            size: 0,
            path: folder
                .keys
                .commit_path(row.as_ref().map_or(&winner.path, |r| &r.path)),
            timestamp_ms: now_ms() as u64,
        }),
        Some(l) => {
            let op = if winner.deleted {
                Some(Op::Create)
            } else if l.path != winner.path {
                Some(Op::Rename)
            } else if l.content_root != winner.content_root || l.kind != winner.kind {
                Some(Op::Modify)
            } else {
                None
            };
            op.map(|op| Change {
                op,
                content_root: l.content_root,
                size: l.size,
                path: folder.keys.commit_path(&l.path),
                timestamp_ms: now_ms() as u64,
            })
        }
    };
    let signed = change
        .map(|c| tip.sign(ctx.device, c))
        .transpose()
        .map_err(|e| Defer::Refused(e.to_string()))?;
    let (seq, head) = signed
        .as_ref()
        .map(|(e, h)| (e.seq, *h))
        .unwrap_or((winner.seq, winner.chain_head));
    let record = match &row {
        Some(r) => local_record(&FileRow {
            seq,
            chain_head: head,
            ..r.clone()
        }),
        // Nothing here, not even a tombstone: the delete at the winner's path.
        None => local_record(&FileRow {
            path: winner.path.clone(),
            file_id: *id,
            kind: winner.kind,
            size: 0,
            mode: 0,
            mtime_ns: 0,
            inode: 0,
            dev: 0,
            content_root: winner.content_root,
            deleted: true,
            seq,
            chain_head: head,
        }),
    };
    index.write(|w| {
        write_chain(w, ctx, id, joined_at, &links)?;
        if let Some((entry, head)) = &signed {
            w.put_entry(&folder.id, entry, head)?;
        }
        match &row {
            Some(r) => w.put_file(
                &folder.id,
                &FileRow {
                    seq,
                    chain_head: head,
                    ..r.clone()
                },
            ),
            None => Ok(()),
        }
    })?;
    tracing::info!(folder = %folder.id, "overridden: {} is now this device's version everywhere", record.path);
    publish(index, doc, ctx, id, &record, pending)
}
