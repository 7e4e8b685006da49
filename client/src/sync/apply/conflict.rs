//! Conflict copies: their names (`name.conflict-YYYYMMDD-HHMMSS-DEVICE.ext`), and keeping a
//! losing local version beside the winner before the winner is installed.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use harp_protocol::ids::{DeviceId, FileId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::Record;

#[cfg(test)]
use super::install::tests_hook;
use super::install::{disk_matches, install};
use super::{Context, Defer, Doc, InstallJournal, Report, later, lock, now_ms};
use crate::index::Index;
use crate::scan::Folder;
use crate::store;

/// A conflict name for `rel` ([`conflict_name`]) that nothing on disk holds yet: two conflicts
/// of one file within a second, on one device, would otherwise get the same one.
pub(in crate::sync) fn free_conflict_name(folder: &Folder, rel: &str, me: &DeviceId) -> String {
    let mut name = conflict_name(rel, me, now_ms());
    let mut n = 1;
    while fs::symlink_metadata(folder.root.join(&name)).is_ok() {
        name = conflict_name(&format!("{rel}-{n}"), me, now_ms());
        n += 1;
    }
    name
}

/// `name.ext` → `name.conflict-YYYYMMDD-HHMMSS-DEVICE.ext`, beside it.
pub fn conflict_name(rel: &str, device: &DeviceId, ms: i64) -> String {
    let (dir, stem, ext) = store::split_name(rel);
    let dev = device.to_string();
    format!(
        "{dir}{stem}.conflict-{}-{}{ext}",
        store::stamp(ms),
        &dev[..dev.len().min(7)]
    )
}

/// What a conflict copy's name says: the file it is a copy of, when (`YYYYMMDD-HHMMSS` UTC)
/// and the start of the device id that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictName {
    /// The path of the file it is a conflict copy of.
    pub original: String,
    /// When it was set aside, `YYYYMMDD-HHMMSS` (UTC).
    pub stamp: String,
    /// The first characters of the device id whose version it holds.
    pub device: String,
}

/// Reads a name made by [`conflict_name`]; `None` for any other name.
pub fn parse_conflict_name(rel: &str) -> Option<ConflictName> {
    let (dir, name) = match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    };
    // `<stem>.conflict-<YYYYMMDD-HHMMSS>-<device>[<.ext>]`
    let (stem, rest) = name.rsplit_once(".conflict-")?;
    let stamp = rest.get(..15)?;
    let after = rest.get(15..)?.strip_prefix('-')?;
    let (device, ext) = match after.find('.') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let well_formed = stamp.as_bytes()[8] == b'-'
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
        && !device.is_empty()
        && device.bytes().all(|b| b.is_ascii_alphanumeric())
        && !stem.is_empty();
    well_formed.then(|| ConflictName {
        original: format!("{dir}{stem}{ext}"),
        stamp: stamp.to_owned(),
        device: device.to_owned(),
    })
}

/// A conflict copy of `rel` by `device` beside it with the same content as `src`, if any.
fn existing_conflict_copy(
    folder: &Folder,
    rel: &str,
    device: &DeviceId,
    src: &Path,
) -> Result<Option<String>, Defer> {
    let (dir, stem, _) = store::split_name(rel);
    let dev = device.to_string();
    let dev = &dev[..dev.len().min(7)];
    let prefix = format!("{stem}.conflict-");
    let Ok(entries) = fs::read_dir(folder.root.join(dir)) else {
        return Ok(None);
    };
    let ours = fs::read(src).ok();
    for e in entries.map_while(Result::ok) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix)
            && n.contains(dev)
            && ours.is_some()
            && fs::read(e.path()).ok() == ours
        {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Copies the losing local content aside under a conflict name (the scanner records the copy
/// as a new file), settles the document if asked, then installs the winner.
#[allow(clippy::too_many_arguments)] // the round's state and the two versions
pub(super) fn keep_conflict(
    index: &mut Index,
    doc: &Doc,
    ctx: &Context<'_>,
    id: &FileId,
    (local, winner): (&Record, &Record),
    resolve: bool,
    report: &mut Report,
    journal: &mut InstallJournal,
) -> Result<(), Defer> {
    let folder = ctx.folder;
    let me = DeviceId::of_signing_key(ctx.device);
    if local.kind != EntryKind::Directory {
        let row = index
            .file(&folder.id, &local.path)?
            .filter(|r| r.file_id == *id)
            .ok_or_else(|| later("the conflicting file moved"))?;
        if !disk_matches(folder, &row) {
            return Err(later(format!(
                "{} changed on disk since the last scan",
                local.path
            )));
        }
        let src = folder.root.join(&local.path);
        if let Some(existing) = existing_conflict_copy(folder, &local.path, &me, &src)? {
            // A round that made the copy and then could not install the winner ran before.
            tracing::debug!(folder = %folder.id, "{} is already kept as {existing}", local.path);
        } else {
            let name = free_conflict_name(folder, &local.path, &me);
            let dst = folder.root.join(&name);
            let tmp_dir = store::temp_dir(folder);
            fs::create_dir_all(&tmp_dir)?;
            if local.kind == EntryKind::Symlink {
                let target = fs::read_link(&src)?;
                let tmp = tmp_dir.join(format!("conflict-{}", id.to_hex()));
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(target, &tmp)?;
                fs::rename(&tmp, &dst)?;
            } else {
                let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
                fs::copy(&src, tmp.path())?;
                tmp.as_file().sync_all()?;
                tmp.persist_noclobber(&dst).map_err(|e| e.error)?;
            }
            tracing::info!(folder = %folder.id, "conflict: {} kept as {name}", local.path);
            report.conflicts += 1;
            #[cfg(test)]
            tests_hook::killed_after_keep(index)?;
        }
    }
    if resolve {
        lock(doc).put_record(id, winner)?;
    }
    // The local file is now "unchanged since the base": take the winner's base position so the
    // next steps treat it as a plain remote update.
    install(
        index,
        doc,
        ctx,
        id,
        winner,
        report,
        journal,
        None,
        &HashSet::new(),
    )?;
    report.installed += 1;
    Ok(())
}
