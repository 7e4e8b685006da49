//! Installing a remote version: its chain checked back to a link this device has, its content
//! built, the target checked right before the rename, the replaced version kept in the
//! versions store, and the index written in one transaction (see the parent module's steps).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use harp_protocol::chain::{self, Entry, Op};
use harp_protocol::ids::{ChainHash, FileId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::Record;

use super::content::build_content;
use super::patch;
use super::window::Built;
use super::{Context, Defer, Doc, InstallJournal, Report, later, lock};
use crate::index::{FileRow, Index};
use crate::scan::Folder;
use crate::store;

/// The verified links from the local chain (or genesis) to `record`'s head, oldest first,
/// and the seq they start after.
pub(in crate::sync) fn remote_links(
    index: &Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    record: &Record,
    verified: &HashSet<ChainHash>,
) -> Result<(u64, Vec<(Entry, ChainHash)>), Defer> {
    let local: HashMap<ChainHash, u64> = index
        .chain_links(&ctx.folder.id, id)?
        .into_iter()
        .map(|(e, h)| (h, e.seq))
        .collect();
    let genesis = chain::genesis(&ctx.folder.id, id, &ctx.folder.keys.chain_seed);
    let mut links = Vec::new();
    let mut head = record.chain_head;
    let joined_at = loop {
        if let Some(seq) = local.get(&head) {
            break *seq;
        }
        if head == genesis {
            break 0;
        }
        if links.len() as u64 >= record.seq {
            return Err(Defer::Refused(format!(
                "the chain of {} is longer than its record says",
                record.path
            )));
        }
        let Some((prev, entry)) = lock(doc).entry(&head) else {
            return Err(later(format!(
                "chain entries of {} have not arrived",
                record.path
            )));
        };
        if entry.folder != ctx.folder.id || entry.file != *id {
            return Err(Defer::Refused(format!(
                "a chain entry of {} belongs to another file",
                record.path
            )));
        }
        if chain::link(&prev, &entry.encode()) != head {
            return Err(Defer::Refused(format!(
                "a chain link of {} does not hash to its key",
                record.path
            )));
        }
        if !ctx.members.contains(&entry.author) {
            return Err(Defer::Refused(format!(
                "{} was changed by {}, which is not a member of the folder",
                record.path, entry.author
            )));
        }
        if !verified.contains(&head) {
            entry
                .verify_signature(&prev)
                .map_err(|e| Defer::Refused(format!("{}: {e}", record.path)))?;
        }
        links.push((entry, head));
        head = prev;
    };
    links.reverse();
    // Contiguous seqs from the join point, and the last entry says what the record says.
    for (i, (e, _)) in links.iter().enumerate() {
        if e.seq != joined_at + 1 + i as u64 {
            return Err(Defer::Refused(format!(
                "the chain of {} skips from {} to {}",
                record.path,
                joined_at + i as u64,
                e.seq
            )));
        }
    }
    let last_seq = links.last().map(|(e, _)| e.seq).unwrap_or(joined_at);
    if last_seq != record.seq {
        return Err(Defer::Refused(format!(
            "the record of {} says seq {} but its chain ends at {last_seq}",
            record.path, record.seq
        )));
    }
    if let Some((e, _)) = links.last() {
        let path_ok = e.path == ctx.folder.keys.commit_path(&record.path);
        let content_ok = if record.deleted {
            e.op == Op::Delete
        } else {
            e.op != Op::Delete && e.content_root == record.content_root && e.size == record.size
        };
        if !path_ok || !content_ok {
            return Err(Defer::Refused(format!(
                "the record of {} does not match its last chain entry",
                record.path
            )));
        }
    }
    Ok((joined_at, links))
}

/// Whether the disk still holds what the index row says (nothing changed since the scan).
pub(super) fn disk_matches(folder: &Folder, row: &FileRow) -> bool {
    let Ok(m) = fs::symlink_metadata(folder.root.join(&row.path)) else {
        return false;
    };
    match row.kind {
        EntryKind::Directory => m.is_dir(),
        EntryKind::Symlink => m.file_type().is_symlink() && m.ino() == row.inode,
        EntryKind::File => {
            m.is_file()
                && m.len() == row.size
                && m.ino() == row.inode
                && m.dev() == row.dev
                && m.mtime() * 1_000_000_000 + m.mtime_nsec() == row.mtime_ns
        }
    }
}

/// Makes sure every parent of `rel` is a real directory inside the folder (creating missing
/// ones): a symlink or a file where a directory should be stops the install.
pub(super) fn prepare_parents(folder: &Folder, rel: &str) -> Result<(), Defer> {
    let mut dir = folder.root.clone();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(later(format!(
                    "{} is not a directory here",
                    dir.strip_prefix(&folder.root).unwrap_or(&dir).display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Makes the disk and the index match `record`.
#[allow(clippy::too_many_arguments)] // the round's state, the action, and what the window prepared for it
pub(super) fn install(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    record: &Record,
    report: &mut Report,
    journal: &mut InstallJournal,
    built: Option<Built>,
    verified: &HashSet<ChainHash>,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let (joined_at, links) = remote_links(index, doc, ctx, id, record, verified)?;
    // Whatever this install does to the file, the previous version of an earlier edit in
    // place is kept first (or the edit undone, if cut short).
    patch::settle(index, folder, id)?;
    let mine = index.file_by_id(&folder.id, id)?;
    let at_target = index.file(&folder.id, &record.path)?;
    if let Some(m) = &mine
        && !m.deleted
        && !disk_matches(folder, m)
    {
        return Err(later(format!(
            "{} changed on disk since the last scan",
            m.path
        )));
    }
    let target = folder.root.join(&record.path);
    // Installs of files new here are recorded in the open batch (see `Index::begin_batch`),
    // once their bytes are in place; anything else, and any file still to be fetched (the
    // batch would hold SQLite's write lock through the fetch), commits the batch first.
    let batched = mine.is_none() && at_target.is_none() && !record.deleted && built.is_some();
    if !batched {
        index.end_batch()?;
    }

    if record.deleted {
        if let Some(m) = mine.as_ref().filter(|m| !m.deleted) {
            let path = folder.root.join(&m.path);
            if m.kind == EntryKind::Directory {
                if let Err(e) = fs::remove_dir(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(later(format!("directory {} is not empty yet", m.path)));
                }
            } else {
                store::keep(index, folder, &m.path, "delete")?;
            }
        }
        index.write(|w| {
            write_chain(w, ctx, id, joined_at, &links)?;
            // The tombstone stays where the record says; a local row at another path (the file
            // moved here before it was deleted there) goes, or the two would never agree.
            if let Some(m) = mine.as_ref().filter(|m| m.path != record.path) {
                w.remove_path_of(&folder.id, &m.path, id)?;
                w.replace_chunks(&folder.id, id, &[])?;
            } else if let Some(m) = &mine {
                let mut row = m.clone();
                row.deleted = true;
                row.seq = record.seq;
                row.chain_head = record.chain_head;
                w.put_file(&folder.id, &row)?;
                w.replace_chunks(&folder.id, id, &[])?;
            }
            w.set_base(&folder.id, id, &record.digest())
        })?;
        return Ok(());
    }

    // The target path must be free, or hold this file, or a tombstone.
    let target_meta = fs::symlink_metadata(&target).ok();
    let replacing = match (&at_target, &target_meta) {
        (_, None) => None,
        (Some(row), Some(_)) if row.file_id == *id => Some(row.clone()),
        (Some(row), Some(_)) if !row.deleted && disk_matches(folder, row) => {
            return Err(later(format!(
                "{} is held by another file that has not moved yet",
                record.path
            )));
        }
        (_, Some(m)) if m.is_dir() && record.kind == EntryKind::Directory => None,
        (_, Some(_)) => {
            return Err(later(format!(
                "{} exists on disk but is not scanned yet",
                record.path
            )));
        }
    };
    prepare_parents(folder, &record.path)?;

    let same_content = mine.as_ref().is_some_and(|m| {
        !m.deleted && m.kind == record.kind && m.content_root == record.content_root
    });
    let mut nodes = Vec::new();
    let mut locs = None;
    // Whether the rename below was noted in the install journal (see `super::journal`).
    let mut noted = false;
    // Whether mode and mtime came with a file built ahead.
    let mut meta_done = false;
    // An edit written into the file in place, whose previous version is kept at the end.
    let mut patched = None;
    match record.kind {
        EntryKind::Directory => match &target_meta {
            Some(m) if m.is_dir() => {}
            _ => {
                fs::create_dir(&target)?;
                #[cfg(test)]
                tests_hook::killed_after_rename(index)?;
            }
        },
        _ if same_content => {
            let m = mine
                .as_ref()
                .ok_or_else(|| later("the local file vanished"))?;
            if m.path != record.path {
                if replacing.is_some() {
                    store::keep(index, folder, &record.path, "overwrite")?;
                }
                tracing::debug!(folder = %folder.id, "{} moved to {}", m.path, record.path);
                journal.note(*id, record.chain_head, record.seq, &record.path)?;
                noted = true;
                if let Err(e) = fs::rename(folder.root.join(&m.path), &target) {
                    journal.cancel();
                    return Err(e.into());
                }
                #[cfg(test)]
                tests_hook::killed_after_rename(index)?;
            }
        }
        EntryKind::Symlink => {
            let (tmp, l, n) = build_content(index, ctx, record, report, true)?;
            let target_bytes = fs::read(tmp.path())?;
            let link_tmp = tmp.path().with_extension("link");
            let _ = fs::remove_file(&link_tmp);
            if let Err(e) = std::os::unix::fs::symlink(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target_bytes),
                &link_tmp,
            ) {
                // ENOSYS or EOPNOTSUPP (exFAT through FUSE): no symbolic links there.
                return Err(if e.kind() == std::io::ErrorKind::Unsupported {
                    Defer::NotHere(format!(
                        "a symbolic link, which this file system cannot hold ({e}): it stays \
                         on the devices that can"
                    ))
                } else {
                    e.into()
                });
            }
            recheck(folder, &replacing, &target)?;
            if replacing.is_some() {
                store::keep(index, folder, &record.path, "overwrite")?;
            }
            journal.note(*id, record.chain_head, record.seq, &record.path)?;
            noted = true;
            if let Err(e) = fs::rename(&link_tmp, &target) {
                journal.cancel();
                return Err(e.into());
            }
            locs = Some(l);
            nodes = n;
        }
        EntryKind::File
            if built.is_none()
                && let Some(p) = in_place(index, ctx, record, &mine, &replacing, report)? =>
        {
            locs = Some(p.locs);
            nodes = p.nodes;
            patched = Some(p.previous);
        }
        EntryKind::File => {
            let (tmp, l, n) = match built {
                Some(b) => {
                    meta_done = true;
                    report.fetched_bytes += b.fetched;
                    report.reused_bytes += b.reused;
                    (b.path, b.locs, b.nodes)
                }
                None => {
                    let (t, l, n) = build_content(index, ctx, record, report, true)?;
                    (t.into_temp_path(), l, n)
                }
            };
            recheck(folder, &replacing, &target)?;
            if replacing.is_some() {
                store::keep(index, folder, &record.path, "overwrite")?;
            }
            journal.note(*id, record.chain_head, record.seq, &record.path)?;
            noted = true;
            if let Err(e) = tmp.persist(&target) {
                journal.cancel();
                return Err(e.error.into());
            }
            #[cfg(test)]
            tests_hook::killed_after_rename(index)?;
            locs = Some(l);
            nodes = n;
        }
    }
    // A moved file whose content also changed: its old path still holds the old version.
    if let Some(m) = mine
        .as_ref()
        .filter(|m| !m.deleted && m.path != record.path)
        && !same_content
        && m.kind != EntryKind::Directory
    {
        store::keep(index, folder, &m.path, "overwrite")?;
        #[cfg(test)]
        tests_hook::killed_after_keep(index)?;
    }
    // Mode, mtime and the index; an edit written in place is undone if they fail (the file
    // would otherwise hold bytes the index does not describe).
    let mut finish = || -> Result<FileRow, Defer> {
        if record.kind != EntryKind::Symlink && !meta_done {
            fs::set_permissions(&target, fs::Permissions::from_mode(record.mode))?;
        }
        if record.kind == EntryKind::File && !meta_done {
            let f = fs::OpenOptions::new().write(true).open(&target)?;
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::from_nanos(record.mtime_ns.max(0) as u64);
            f.set_modified(t)?;
        }
        let meta = fs::symlink_metadata(&target)?;
        if batched {
            index.begin_batch()?;
        }
        let row = FileRow {
            path: record.path.clone(),
            file_id: *id,
            kind: record.kind,
            size: record.size,
            mode: record.mode,
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            inode: meta.ino(),
            dev: meta.dev(),
            content_root: record.content_root,
            deleted: false,
            seq: record.seq,
            chain_head: record.chain_head,
        };
        #[cfg(test)]
        if patched.is_some() {
            patch::tests_hook::failed_before_commit()?;
        }
        index.write(|w| {
            write_chain(w, ctx, id, joined_at, &links)?;
            if let Some(m) = &mine
                && m.path != record.path
            {
                w.remove_path_of(&folder.id, &m.path, id)?;
            }
            if at_target.as_ref().is_some_and(|r| r.file_id != *id) {
                w.remove_path(&folder.id, &record.path)?;
            }
            w.put_nodes(&folder.id, &nodes)?;
            w.put_file(&folder.id, &row)?;
            if let Some(l) = &locs {
                w.replace_chunks(&folder.id, id, l)?;
            }
            w.set_base(&folder.id, id, &record.digest())
        })?;
        Ok(row)
    };
    let row = match finish() {
        Ok(row) => row,
        Err(e) => {
            if let Some(p) = patched {
                patch::undo(index, folder, p);
            }
            return Err(e);
        }
    };
    if noted {
        journal.recorded();
    }
    if let Some(p) = patched {
        #[cfg(test)]
        patch::tests_hook::killed_before_keep()?;
        patch::keep_previous(index, folder, p, &row);
    }
    Ok(())
}

/// The edit written into the file in place, if it can be (see [`patch`]): only over the
/// same file at the same path.
fn in_place(
    index: &mut Index,
    ctx: &Context<'_>,
    record: &Record,
    mine: &Option<FileRow>,
    replacing: &Option<FileRow>,
    report: &mut Report,
) -> Result<Option<patch::Patched>, Defer> {
    match (mine, replacing) {
        (Some(m), Some(r)) if r.file_id == m.file_id && r.path == m.path => {
            patch::write_in_place(index, ctx, record, m, report)
        }
        _ => Ok(None),
    }
}

/// Checks, right before the rename, that the target still holds what it held when planned.
fn recheck(folder: &Folder, replacing: &Option<FileRow>, target: &Path) -> Result<(), Defer> {
    match replacing {
        Some(row) if !disk_matches(folder, row) => Err(later(format!(
            "{} changed on disk while its new version was fetched",
            row.path
        ))),
        None if fs::symlink_metadata(target).is_ok_and(|m| !m.is_dir()) => Err(later(format!(
            "{} appeared on disk while its new version was fetched",
            target.display()
        ))),
        _ => Ok(()),
    }
}

pub(super) fn write_chain(
    w: &crate::index::Writer<'_>,
    ctx: &Context<'_>,
    id: &FileId,
    joined_at: u64,
    links: &[(Entry, ChainHash)],
) -> Result<(), crate::index::Error> {
    // The installed record's head is the chain's head: local entries past the join point (a
    // branch that lost) go, even when no new entry comes.
    w.truncate_chain(&ctx.folder.id, id, joined_at + 1)?;
    for (e, h) in links {
        w.put_entry(&ctx.folder.id, e, h)?;
    }
    Ok(())
}

/// A test's kill -9 at the worst moment of an install.
#[cfg(test)]
pub(in crate::sync) mod tests_hook {
    use super::Defer;

    thread_local! {
        /// When set to N, the Nth file install from now is "killed" right after its rename:
        /// the uncommitted batch of index writes is lost and the round stops, as a kill -9
        /// would leave them (minus the process).
        pub static KILL_AT_RENAME: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// When set, the round is "killed" right after the next keep of a local version: the
        /// old path's file of a moved and edited file kept, a conflict copy made, or a file
        /// moved aside from a path it lost.
        pub static KILL_AFTER_KEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(in crate::sync) fn killed_after_keep(index: &mut crate::index::Index) -> Result<(), Defer> {
        if !KILL_AFTER_KEEP.with(|k| k.replace(false)) {
            return Ok(());
        }
        index.abandon_batch();
        Err(Defer::Index(crate::index::Error::Corrupt(
            "killed by the test",
        )))
    }

    pub(in crate::sync) fn killed_after_rename(
        index: &mut crate::index::Index,
    ) -> Result<(), Defer> {
        let left = KILL_AT_RENAME.with(|k| k.get());
        if left == 0 {
            return Ok(());
        }
        KILL_AT_RENAME.with(|k| k.set(left - 1));
        if left > 1 {
            return Ok(());
        }
        index.abandon_batch();
        Err(Defer::Index(crate::index::Error::Corrupt(
            "killed by the test",
        )))
    }
}
