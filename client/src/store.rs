//! The versions store: old versions of files, kept in `<folder>/.harp/versions/`.
//!
//! Whenever Harp is about to overwrite or delete a file (sync applying a remote change, a
//! restore), it first moves the current file here with [`keep`]: a rename inside the same
//! filesystem, so it is cheap and atomic, and the old bytes are never lost. (A small edit of a
//! large file written into it in place, `sync::apply::patch`, keeps the version it replaced
//! with [`keep_file`] instead, rebuilt from the file and the bytes the edit replaced.) A kept version
//! lives at its old relative path with `~YYYYMMDD-HHMMSS` inserted before the extension
//! (`docs/report~20261121-221530.odt`), like Syncthing's, so people can also find versions
//! with a file manager. Retention ([`prune`]) follows the folder's policy: *simple* keeps the
//! newest N of each file; *staggered* keeps one per hour for a day, one per day for 30 days,
//! one per week after that, up to a maximum age. Pruning is the only place Harp deletes data,
//! and it only ever deletes kept versions, as the configured policy says.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use harp_protocol::manifest::EntryKind;
use thiserror::Error;

use crate::config::Versioning;
use crate::index::{self, Index, VersionRow};
use crate::scan::{Folder, MARKER_DIR};

/// Errors of the versions store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] index::Error),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No such version.
    #[error("{path} has no version {number} (it has {count}): `harp versions` lists them")]
    NoSuchVersion {
        /// The path.
        path: String,
        /// The number asked for.
        number: usize,
        /// How many there are.
        count: usize,
    },
    /// The kept version's file is gone from `.harp/versions`.
    #[error("version file {0} is missing from the versions store")]
    Missing(PathBuf),
}

type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// `<root>/.harp/versions`.
pub fn versions_dir(folder: &Folder) -> PathBuf {
    folder.root.join(MARKER_DIR).join("versions")
}

/// `<root>/.harp/tmp`: where new contents are written before they are renamed into place.
pub fn temp_dir(folder: &Folder) -> PathBuf {
    folder.root.join(MARKER_DIR).join("tmp")
}

/// Bytes an unprivileged writer can still put on the file system that holds `path`, if it
/// says (`statvfs`).
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let fs = rustix::fs::statvfs(path).ok()?;
    Some(fs.f_bavail.saturating_mul(fs.f_frsize))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYYMMDD-HHMMSS` (UTC) of a Unix time in ms.
pub(crate) fn stamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `dir/stem.ext` → (`dir/`, `stem`, `.ext`); a leading dot is part of the stem
/// (`.bashrc` has no extension). Versions and conflict copies put their mark before the
/// extension, so the copy still opens with the same program.
pub(crate) fn split_name(rel: &str) -> (&str, &str, &str) {
    let (dir, name) = match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    (dir, stem, ext)
}

/// The stored name of a version of `rel` kept at `ms`: the stamp goes before the extension.
fn stored_name(rel: &str, ms: i64, n: u32) -> String {
    let (dir, stem, ext) = split_name(rel);
    let dup = if n == 0 {
        String::new()
    } else {
        format!("-{n}")
    };
    format!("{dir}{stem}~{}{dup}{ext}", stamp(ms))
}

/// Moves the current entry at `rel` into the versions store and records it. Returns `None`
/// when there is nothing at `rel`. Directories are not kept (their files are).
pub fn keep(index: &Index, folder: &Folder, rel: &str, reason: &str) -> Result<Option<VersionRow>> {
    let src = folder.root.join(rel);
    let meta = match fs::symlink_metadata(&src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&src)(e)),
    };
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else if meta.is_file() {
        EntryKind::File
    } else {
        return Ok(None);
    };
    let row = VersionRow {
        id: 0,
        path: rel.to_owned(),
        stored: String::new(),
        kind,
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        kept_ms: now_ms(),
        reason: reason.to_owned(),
    };
    store_as_version(index, folder, &src, row).map(Some)
}

/// Records `file` (a durable regular file outside the folder's tree, in its temp area) as a
/// version of `rel` that had `size`, `mode` and `mtime_ns`, moving it into the versions store.
/// For a version that is no longer at `rel` (an edit written into the file in place kept the
/// bytes it replaced, and rebuilt the version from them).
pub fn keep_file(
    index: &Index,
    folder: &Folder,
    rel: &str,
    file: &Path,
    (size, mode, mtime_ns): (u64, u32, i64),
    reason: &str,
) -> Result<VersionRow> {
    let row = VersionRow {
        id: 0,
        path: rel.to_owned(),
        stored: String::new(),
        kind: EntryKind::File,
        size,
        mode,
        mtime_ns,
        kept_ms: now_ms(),
        reason: reason.to_owned(),
    };
    store_as_version(index, folder, file, row)
}

/// Renames `src` into the versions store under a free stamped name and records `row` (its
/// `stored` filled in here).
fn store_as_version(
    index: &Index,
    folder: &Folder,
    src: &Path,
    mut row: VersionRow,
) -> Result<VersionRow> {
    let base = versions_dir(folder);
    let mut n = 0;
    row.stored = loop {
        let name = stored_name(&row.path, row.kept_ms, n);
        if fs::symlink_metadata(base.join(&name)).is_err() {
            break name;
        }
        n += 1;
    };
    let dst = base.join(&row.stored);
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    fs::rename(src, &dst).map_err(io(&dst))?;
    row.id = index.add_version(&folder.id, &row)?;
    Ok(row)
}

/// Puts version `number` (1 = oldest, as [`Index::versions`] lists them) of `rel` back in
/// place. The entry currently there is kept first, so a restore loses nothing either.
pub fn restore(index: &Index, folder: &Folder, rel: &str, number: usize) -> Result<VersionRow> {
    let versions = index.versions(&folder.id, rel)?;
    let version = number
        .checked_sub(1)
        .and_then(|i| versions.get(i))
        .cloned()
        .ok_or(Error::NoSuchVersion {
            path: rel.to_owned(),
            number,
            count: versions.len(),
        })?;
    let stored = versions_dir(folder).join(&version.stored);
    if fs::symlink_metadata(&stored).is_err() {
        return Err(Error::Missing(stored));
    }
    // Copy into the temp area, make it durable, then rename over the path.
    let tmp_dir = temp_dir(folder);
    fs::create_dir_all(&tmp_dir).map_err(io(&tmp_dir))?;
    let tmp = tmp_dir.join(format!("restore-{}-{}", std::process::id(), version.id));
    let _ = fs::remove_file(&tmp);
    if version.kind == EntryKind::Symlink {
        let target = fs::read_link(&stored).map_err(io(&stored))?;
        std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
    } else {
        let mut out = fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut src = fs::File::open(&stored).map_err(io(&stored))?;
        std::io::copy(&mut src, &mut out).map_err(io(&tmp))?;
        out.flush().map_err(io(&tmp))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(version.mode)).map_err(io(&tmp))?;
        let mtime = UNIX_EPOCH + std::time::Duration::from_nanos(version.mtime_ns.max(0) as u64);
        out.set_modified(mtime).map_err(io(&tmp))?;
        out.sync_all().map_err(io(&tmp))?;
    }
    keep(index, folder, rel, "restore")?;
    let dst = folder.root.join(rel);
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    if let Some(parent) = dst.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(version)
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Versions removed.
    pub versions: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Which versions `policy` keeps, given them newest first; returns the ones to remove.
fn to_remove(policy: Versioning, newest_first: &[VersionRow], now_ms: i64) -> Vec<VersionRow> {
    match policy {
        Versioning::Simple { keep } => newest_first.iter().skip(keep as usize).cloned().collect(),
        Versioning::Staggered { max_age_days } => {
            const HOUR: i64 = 3_600_000;
            const DAY: i64 = 24 * HOUR;
            let mut kept_buckets = std::collections::HashSet::new();
            let mut out = Vec::new();
            for v in newest_first {
                let age = (now_ms - v.kept_ms).max(0);
                if max_age_days > 0 && age > i64::from(max_age_days) * DAY {
                    out.push(v.clone());
                    continue;
                }
                // (tier, bucket): every version in its first hour, then one per hour for a
                // day, one per day for 30 days, one per week after that.
                let bucket = if age < HOUR {
                    (0, v.id)
                } else if age < DAY {
                    (1, v.kept_ms / HOUR)
                } else if age < 30 * DAY {
                    (2, v.kept_ms / DAY)
                } else {
                    (3, v.kept_ms / (7 * DAY))
                };
                if !kept_buckets.insert(bucket) {
                    out.push(v.clone());
                }
            }
            out
        }
    }
}

/// Applies the folder's retention policy to every kept version.
pub fn prune(index: &Index, folder: &Folder, policy: Versioning, now_ms: i64) -> Result<Pruned> {
    let all = index.all_versions(&folder.id)?;
    let mut pruned = Pruned::default();
    let mut by_path: std::collections::BTreeMap<&str, Vec<&VersionRow>> = Default::default();
    for v in &all {
        by_path.entry(v.path.as_str()).or_default().push(v);
    }
    for versions in by_path.values() {
        let newest_first: Vec<VersionRow> = versions.iter().rev().map(|v| (*v).clone()).collect();
        for v in to_remove(policy, &newest_first, now_ms) {
            let file = versions_dir(folder).join(&v.stored);
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&file)(e)),
            }
            index.remove_version(v.id)?;
            pruned.versions += 1;
            pruned.bytes += v.size;
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use harp_protocol::ids::FolderId;
    use harp_protocol::keys::FolderKey;

    fn setup() -> (tempfile::TempDir, Folder, Index) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("f");
        fs::create_dir_all(root.join(MARKER_DIR)).unwrap();
        let folder = Folder::new(
            FolderId::from_bytes([1; 16]),
            root,
            FolderKey::from_bytes([2; 32]).schedule(),
        );
        let index = Index::in_memory().unwrap();
        index.ensure_folder(&folder.id, &folder.root).unwrap();
        (dir, folder, index)
    }

    #[test]
    fn stamps_and_names() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(stamp(1_763_763_330_000), "20251121-221530");
        assert_eq!(
            stored_name("docs/a.tar.gz", 0, 0),
            "docs/a.tar~19700101-000000.gz"
        );
        assert_eq!(stored_name(".bashrc", 0, 2), ".bashrc~19700101-000000-2");
    }

    #[test]
    fn keep_and_restore_lose_nothing() {
        let (_d, folder, index) = setup();
        let path = folder.root.join("notes.txt");
        fs::write(&path, "first").unwrap();
        keep(&index, &folder, "notes.txt", "overwrite")
            .unwrap()
            .unwrap();
        assert!(!path.exists());
        fs::write(&path, "second").unwrap();
        let v = restore(&index, &folder, "notes.txt", 1).unwrap();
        assert_eq!(v.size, 5);
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        // "second" was kept by the restore: two versions now, the newest is "second".
        let versions = index.versions(&folder.id, "notes.txt").unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[1].reason, "restore");
        let stored = versions_dir(&folder).join(&versions[1].stored);
        assert_eq!(fs::read_to_string(stored).unwrap(), "second");
        assert!(matches!(
            restore(&index, &folder, "notes.txt", 3),
            Err(Error::NoSuchVersion { count: 2, .. })
        ));
        assert!(keep(&index, &folder, "absent", "delete").unwrap().is_none());
    }

    fn version(id: i64, kept_ms: i64) -> VersionRow {
        VersionRow {
            id,
            path: "a".into(),
            stored: format!("a~{id}"),
            kind: EntryKind::File,
            size: 1,
            mode: 0o644,
            mtime_ns: 0,
            kept_ms,
            reason: "overwrite".into(),
        }
    }

    #[test]
    fn retention_policies() {
        let now = 400 * 86_400_000 + 30 * 60_000;
        let hour = 3_600_000;
        // Newest first: two in the last hour, three in one hour yesterday-ish, two on one
        // day two weeks ago, one a year and a half ago.
        let vs = vec![
            version(8, now - 60_000),
            version(7, now - 120_000),
            version(6, now - 5 * hour),
            version(5, now - 5 * hour - 60_000),
            version(4, now - 5 * hour - 120_000),
            version(3, now - 14 * 24 * hour),
            version(2, now - 14 * 24 * hour - 60_000),
            version(1, now - 399 * 24 * hour),
        ];
        let ids = |v: Vec<VersionRow>| v.into_iter().map(|v| v.id).collect::<Vec<_>>();
        assert_eq!(
            ids(to_remove(Versioning::Simple { keep: 3 }, &vs, now)),
            vec![5, 4, 3, 2, 1]
        );
        assert_eq!(
            ids(to_remove(
                Versioning::Staggered { max_age_days: 365 },
                &vs,
                now
            )),
            vec![5, 4, 2, 1]
        );
        assert_eq!(
            ids(to_remove(
                Versioning::Staggered { max_age_days: 0 },
                &vs,
                now
            )),
            vec![5, 4, 2]
        );
    }
}
