//! A small edit of a large file (bytes overwritten, appended or cut from the end), written
//! into the file in place, on a file system that cannot share blocks between files (ext4,
//! F2FS).
//!
//! An install normally builds the new version whole in the temp area and renames it over the
//! old one, which goes to the versions store. The unchanged bytes are copied from the old
//! version: on btrfs or XFS the kernel shares their blocks (milliseconds), but on ext4 it
//! writes them again, and a 4 KiB edit of a 1 GiB file costs a 1 GiB copy (1.1-2.0 s on this
//! host) before the edit shows. Here the changed bytes are written into the file itself
//! instead, and the previous version is rebuilt in the versions store afterwards, from the
//! patched file and the bytes the patch replaced. The copy still happens, but after the new
//! version is in place, not before. The previous version is still kept whole. An insert or a
//! delete in the middle moves every byte after it, so it is still built whole.
//!
//! The steps, and what a kill -9 between any two of them leaves:
//! 1. The changed byte ranges' old and new bytes (and the bytes an append adds or a truncation
//!    removes) go to a journal,
//!    `<folder>/.harp/patches/<file id>`, which ends with a BLAKE3 of all before it. It is
//!    fsynced, and so is its directory. A torn journal belongs to a patch that never started.
//! 2. The file is checked against its index row (the scan's size, mtime and inode) and, if it
//!    still matches, the new bytes are written, the length set, and the file fsynced.
//! 3. The installer sets the mode and mtime and commits the index row of the new version.
//! 4. The previous version is rebuilt in the temp area (a copy of the file, with the old
//!    bytes put back), made durable, and renamed into the versions store; the journal goes.
//!
//! If step 3 fails (the index is busy, a full disk under it), the patch is undone at once
//! ([`undo`]). [`recover`] runs on each folder before its first scan. A journal whose file's
//! index row still names the old version (killed before step 3) is rolled back: the old bytes,
//! length, mode and mtime are put back, so the file is again what the index says and the
//! install simply runs again. That happens only if every byte the patch touches holds its old
//! or its new value: a file something else has written into since is left as it is, for the
//! scanner. A journal whose row names the new version (killed in step 4, or the copy failed)
//! has its previous version rebuilt; any later install of the file does that first
//! ([`settle`]), so a delete or another edit never goes ahead of it.
//!
//! Between a kill in step 2 and the restart, the changed ranges (a few KiB for a small edit)
//! can hold part old, part new bytes: this is the one place where a file under its final name
//! may briefly be neither version, which is why it is used only where the alternative is a
//! copy of the whole file (16 MiB and more unchanged, an edit of at most 8 MiB), and never on a
//! file with other names (hard links), which would see the edit too.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use harp_protocol::blob::BlobKind;
use harp_protocol::ids::{ChunkId, ContentRoot, FileId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::Record;

use super::content::{Nodes, chunk_list, located};
use super::{Context, Defer, Report, later};
use crate::index::{ChunkLoc, ChunkTag, FileRow, Index};
use crate::scan::{Folder, MARKER_DIR};
use crate::store;

/// The smallest file written in place: below it a copy is cheap.
pub(super) const WORTH_IT: u64 = 16 << 20;
/// The most bytes of changed chunks written in place. Memory stays bounded by a few times
/// this (the new bytes, the old ones, their journal).
const MAX_PATCH: u64 = 8 << 20;

/// `<root>/.harp/patches`: the journals of edits written in place.
fn patches_dir(folder: &Folder) -> PathBuf {
    folder.root.join(MARKER_DIR).join("patches")
}

fn journal_path(folder: &Folder, id: &FileId) -> PathBuf {
    patches_dir(folder).join(id.to_string())
}

/// Whether the folder's file system is one where an edit is written in place: a local one
/// that cannot share blocks (ext2/3/4, F2FS). Elsewhere the whole-file build shares blocks
/// (btrfs, XFS, bcachefs) or its atomic rename is worth the copy (network and FUSE file
/// systems, whose failure modes are their own).
/// Asked of the file itself: a mount inside the folder may be another file system.
fn writes_in_place(file: &fs::File) -> bool {
    #[cfg(test)]
    if let Some(forced) = tests_hook::IN_PLACE.with(|f| f.get()) {
        return forced;
    }
    const KINDS: [u64; 2] = [0xEF53, 0xF2F5_2010];
    rustix::fs::fstatfs(file).is_ok_and(|fs| KINDS.contains(&(fs.f_type as u64)))
}

/// One changed stretch of the file: its bytes before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    offset: u64,
    old: Vec<u8>,
    new: Vec<u8>,
}

/// A patch's journal (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Journal {
    path: String,
    file_id: FileId,
    old_root: ContentRoot,
    new_root: ContentRoot,
    old_size: u64,
    new_size: u64,
    old_mode: u32,
    old_mtime_ns: i64,
    inode: u64,
    dev: u64,
    /// Changed stretches within both versions' length.
    ranges: Vec<Range>,
    /// The bytes past the shorter version's length: what a truncation removes
    /// (`old_tail`) or an append adds (`new_tail`).
    old_tail: Vec<u8>,
    new_tail: Vec<u8>,
}

impl Journal {
    /// A JSON header line, the old bytes of every range, their new bytes, then a BLAKE3 of
    /// all that.
    fn encode(&self) -> Vec<u8> {
        let ranges: Vec<(u64, usize)> = self
            .ranges
            .iter()
            .map(|r| (r.offset, r.old.len()))
            .collect();
        let header = serde_json::json!({
            "path": self.path,
            "file_id": self.file_id.to_string(),
            "old_root": self.old_root.to_string(),
            "new_root": self.new_root.to_string(),
            "old_size": self.old_size,
            "new_size": self.new_size,
            "tails": (self.old_tail.len(), self.new_tail.len()),
            "old_mode": self.old_mode,
            "old_mtime_ns": self.old_mtime_ns,
            "inode": self.inode,
            "dev": self.dev,
            "ranges": ranges,
        });
        let mut out = header.to_string().into_bytes();
        out.push(b'\n');
        for r in &self.ranges {
            out.extend_from_slice(&r.old);
        }
        for r in &self.ranges {
            out.extend_from_slice(&r.new);
        }
        out.extend_from_slice(&self.old_tail);
        out.extend_from_slice(&self.new_tail);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// `None` for anything but a whole journal.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let nl = body.iter().position(|b| *b == b'\n')?;
        let header: serde_json::Value = serde_json::from_slice(&body[..nl]).ok()?;
        let text = |k: &str| header.get(k)?.as_str();
        let int = |k: &str| header.get(k)?.as_u64();
        let spans: Vec<(u64, usize)> =
            serde_json::from_value(header.get("ranges")?.clone()).ok()?;
        let (old_tail, new_tail): (usize, usize) =
            serde_json::from_value(header.get("tails")?.clone()).ok()?;
        let rest = &body[nl + 1..];
        let total = spans
            .iter()
            .try_fold(0usize, |sum, (_, n)| sum.checked_add(*n))?;
        let tails = old_tail.checked_add(new_tail)?;
        if rest.len() != total.checked_mul(2)?.checked_add(tails)? {
            return None;
        }
        let (olds, rest) = rest.split_at(total);
        let (news, tails) = rest.split_at(total);
        let (old_tail, new_tail) = tails.split_at(old_tail);
        let mut at = 0;
        let mut ranges = Vec::with_capacity(spans.len());
        for (offset, n) in spans {
            ranges.push(Range {
                offset,
                old: olds.get(at..at + n)?.to_vec(),
                new: news.get(at..at + n)?.to_vec(),
            });
            at += n;
        }
        Some(Self {
            path: text("path")?.to_owned(),
            file_id: text("file_id")?.parse().ok()?,
            old_root: text("old_root")?.parse().ok()?,
            new_root: text("new_root")?.parse().ok()?,
            old_size: int("old_size")?,
            new_size: int("new_size")?,
            old_mode: u32::try_from(int("old_mode")?).ok()?,
            old_mtime_ns: header.get("old_mtime_ns")?.as_i64()?,
            inode: int("inode")?,
            dev: int("dev")?,
            ranges,
            old_tail: old_tail.to_vec(),
            new_tail: new_tail.to_vec(),
        })
    }

    /// Writes the journal durably (a temp name, fsync, rename, fsync of the directory).
    fn save(&self, folder: &Folder) -> std::io::Result<PathBuf> {
        let dir = patches_dir(folder);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                fs::File::open(parent)?.sync_all()?;
            }
        }
        let path = journal_path(folder, &self.file_id);
        let tmp = dir.join(format!("{}.new", self.file_id));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&self.encode())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(&dir)?.sync_all()?;
        Ok(path)
    }

    /// Whether `m` is the inode the patch was made for.
    fn same_inode(&self, m: &fs::Metadata) -> bool {
        m.is_file() && m.ino() == self.inode && m.dev() == self.dev
    }

    /// Where the tails start: the shorter version's length.
    fn common(&self) -> u64 {
        self.old_size.min(self.new_size)
    }

    /// Writes one side of the patch into `file` (the new bytes, or the old ones back) and
    /// makes it durable.
    fn write_side(&self, file: &fs::File, new: bool) -> std::io::Result<()> {
        for r in &self.ranges {
            file.write_all_at(if new { &r.new } else { &r.old }, r.offset)?;
        }
        let (tail, size) = if new {
            (&self.new_tail, self.new_size)
        } else {
            (&self.old_tail, self.old_size)
        };
        file.write_all_at(tail, self.common())?;
        file.set_len(size)?;
        file.sync_data()
    }

    /// Whether every byte the patch touches holds its old or its new value, and nothing else
    /// (a write cut short), and the length is between the two versions'.
    fn only_old_or_new(&self, file: &fs::File) -> std::io::Result<bool> {
        let len = file.metadata()?.len();
        let (short, long) = (self.common(), self.old_size.max(self.new_size));
        if len < short || len > long {
            return Ok(false);
        }
        let either = |now: &[u8], old: &[u8], new: &[u8]| {
            now.iter()
                .enumerate()
                .all(|(i, b)| old.get(i) == Some(b) || new.get(i) == Some(b))
        };
        for r in &self.ranges {
            let mut now = vec![0; r.old.len()];
            file.read_exact_at(&mut now, r.offset)?;
            if !either(&now, &r.old, &r.new) {
                return Ok(false);
            }
        }
        let mut now = vec![0; (len - short) as usize];
        file.read_exact_at(&mut now, short)?;
        Ok(either(&now, &self.old_tail, &self.new_tail))
    }
}

/// An edit written in place: what the installer records, and the version it replaced.
pub(super) struct Patched {
    /// The new version's chunks, where they are.
    pub(super) locs: Vec<ChunkLoc>,
    /// Manifest nodes fetched for it.
    pub(super) nodes: Nodes,
    /// To keep with [`keep_previous`] once the index holds the new version.
    pub(super) previous: Previous,
}

/// The version an edit in place replaced, not yet in the versions store: its journal.
pub(super) struct Previous(Journal);

/// Writes `record` into the file `mine` describes, if it is a small edit of a large file: an
/// overwrite, an append or a truncation, not an insert or a delete in its middle, which move
/// what follows (see the module doc). The file is then fsynced, its mode and mtime still the
/// old ones. `Ok(None)`: not this way (the caller builds the version whole).
pub(super) fn write_in_place(
    index: &mut Index,
    ctx: &Context<'_>,
    record: &Record,
    mine: &FileRow,
    report: &mut Report,
) -> Result<Option<Patched>, Defer> {
    let folder = ctx.folder;
    // What the whole-file build would copy.
    let common = mine.size.min(record.size);
    let fits = record.kind == EntryKind::File
        && mine.kind == EntryKind::File
        && !mine.deleted
        && mine.path == record.path
        && common >= WORTH_IT;
    if !fits {
        return Ok(None);
    }
    let target = folder.root.join(&record.path);
    // A file that cannot be opened for writing (read-only, busy) is replaced as usual; so is
    // one with other names (hard links): the edit would show under them too.
    let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(&target) else {
        return Ok(None);
    };
    if !writes_in_place(&file) || file.metadata().map_or(true, |m| m.nlink() != 1) {
        return Ok(None);
    }
    let started = Instant::now();
    let (chunks, nodes) = chunk_list(index, ctx, record)?;
    // The whole-file build that follows finds the manifest nodes fetched here in the index,
    // instead of asking peers again (a round trip per tree level).
    let not_here = |index: &mut Index, nodes: &Nodes| -> Result<Option<Patched>, Defer> {
        if !nodes.is_empty() {
            index.write(|w| w.put_nodes(&folder.id, nodes))?;
        }
        Ok(None)
    };
    let old_rows = index.chunks(&folder.id, &mine.file_id)?;
    if old_rows.iter().map(|c| u64::from(c.len)).sum::<u64>() != mine.size {
        return not_here(index, &nodes);
    }
    let old_at: HashMap<u64, (ChunkId, u32)> =
        old_rows.iter().map(|c| (c.offset, (c.id, c.len))).collect();
    let mut tags: HashMap<ChunkId, ChunkTag> = old_rows
        .iter()
        .filter_map(|c| Some((c.id, c.tag?)))
        .collect();
    let old_place: HashMap<ChunkId, (u64, u32)> =
        old_rows.iter().map(|c| (c.id, (c.offset, c.len))).collect();

    // The new chunks not at the same offset in the old version, as contiguous spans. Every
    // byte past the old version's end is in one (nothing of the old version is there).
    let mut locs = located(&chunks);
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut changed: Vec<(u64, ChunkId, u32)> = Vec::new();
    for l in locs
        .iter()
        .filter(|l| old_at.get(&l.offset) != Some(&(l.id, l.len)))
    {
        changed.push((l.offset, l.id, l.len));
        match spans.last_mut() {
            Some((start, len)) if *start + *len == l.offset => *len += u64::from(l.len),
            _ => spans.push((l.offset, u64::from(l.len))),
        }
    }
    let changed_bytes: u64 = spans.iter().map(|(_, len)| len).sum();
    let removed = mine.size - common;
    // Checked before anything is allocated: after an insert, every chunk past it moved.
    if (changed.is_empty() && removed == 0) || changed_bytes + removed > MAX_PATCH {
        return not_here(index, &nodes);
    }
    let mut spans: Vec<(u64, Vec<u8>)> = spans
        .into_iter()
        .map(|(start, len)| (start, vec![0; len as usize]))
        .collect();
    // Room for the previous version's copy, as the whole-file build would need.
    let journal_bytes = 2 * changed_bytes + removed;
    if store::free_bytes(&folder.root).is_some_and(|free| free < common + journal_bytes) {
        return not_here(index, &nodes);
    }

    let unchanged = |f: &fs::File| {
        f.metadata().is_ok_and(|m| {
            m.is_file()
                && m.nlink() == 1
                && m.ino() == mine.inode
                && m.dev() == mine.dev
                && m.len() == mine.size
                && m.mtime() * 1_000_000_000 + m.mtime_nsec() == mine.mtime_ns
        })
    };
    if !unchanged(&file) {
        return Err(later(format!(
            "{} changed on disk since the last scan",
            record.path
        )));
    }
    // The new bytes: from the old version (a chunk that moved) or from peers.
    let mut filled = 0u64;
    let mut put = |spans: &mut [(u64, Vec<u8>)], id: ChunkId, plain: &[u8]| {
        for (at, _, len) in changed.iter().filter(|(_, c, _)| *c == id) {
            if plain.len() != *len as usize {
                return Err(std::io::Error::other(format!(
                    "chunk {id} has {} bytes, the manifest says {len}",
                    plain.len()
                )));
            }
            let (start, buf) = spans
                .iter_mut()
                .rfind(|(start, _)| start <= at)
                .ok_or_else(|| std::io::Error::other("a changed chunk outside its span"))?;
            let from = (*at - *start) as usize;
            buf[from..from + plain.len()].copy_from_slice(plain);
            filled += u64::from(*len);
        }
        Ok(())
    };
    let mut remote = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, id, _) in &changed {
        if !seen.insert(*id) {
            continue;
        }
        match old_place.get(id) {
            Some(&(at, len)) => {
                let mut plain = vec![0; len as usize];
                file.read_exact_at(&mut plain, at)?;
                put(&mut spans, *id, &plain)?;
            }
            None => remote.push(*id),
        }
    }
    let keys = &ctx.folder.keys;
    let mut fetched = 0u64;
    if !remote.is_empty() {
        let left = ctx.fetcher.fetch(remote, &mut |sealed| {
            let (id, nonce) = (sealed.id(), sealed.nonce());
            let plain = sealed
                .into_plaintext(keys, BlobKind::Chunk)
                .map_err(|e| std::io::Error::other(format!("chunk {id}: {e}")))?;
            if let Some(tag) = nonce {
                tags.insert(id, tag);
            }
            fetched += plain.len() as u64;
            put(&mut spans, id, &plain)
        })?;
        if !left.is_empty() {
            return Err(later(format!(
                "{} chunks of {} are on no connected peer",
                left.len(),
                record.path
            )));
        }
    }
    if filled != changed_bytes {
        return Err(later(format!(
            "{}: {filled} of {changed_bytes} changed bytes arrived",
            record.path
        )));
    }
    // Within both versions' length: each stretch's old bytes beside its new ones, trimmed
    // to the bytes that differ (a 4 KiB edit changes 4 KiB of its chunks). Past it: the
    // tails.
    let mut ranges = Vec::with_capacity(spans.len());
    let mut new_tail = Vec::new();
    for (start, mut new) in spans {
        if start + new.len() as u64 > common {
            let inside = common.saturating_sub(start) as usize;
            new_tail.extend_from_slice(&new[inside..]);
            new.truncate(inside);
        }
        let mut old = vec![0; new.len()];
        file.read_exact_at(&mut old, start)?;
        let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let tail = old[head..]
            .iter()
            .rev()
            .zip(new[head..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let end = old.len() - tail;
        if head < end {
            ranges.push(Range {
                offset: start + head as u64,
                old: old[head..end].to_vec(),
                new: new[head..end].to_vec(),
            });
        }
    }
    if new_tail.len() as u64 != record.size - common {
        return Err(Defer::Refused(format!(
            "the manifest of {} leaves bytes past the old end uncovered",
            record.path
        )));
    }
    let mut old_tail = vec![0; removed as usize];
    file.read_exact_at(&mut old_tail, common)?;
    let journal = Journal {
        path: record.path.clone(),
        file_id: mine.file_id,
        old_root: mine.content_root,
        new_root: record.content_root,
        old_size: mine.size,
        new_size: record.size,
        old_mode: mine.mode,
        old_mtime_ns: mine.mtime_ns,
        inode: mine.inode,
        dev: mine.dev,
        ranges,
        old_tail,
        new_tail,
    };
    journal.save(folder)?;
    // Right before the write: the path still holds the scanned file.
    let still =
        fs::symlink_metadata(&target).is_ok_and(|m| m.ino() == mine.inode && m.dev() == mine.dev);
    if !still || !unchanged(&file) {
        let _ = fs::remove_file(journal_path(folder, &mine.file_id));
        return Err(later(format!(
            "{} changed on disk while its new version was fetched",
            record.path
        )));
    }
    if let Err(e) = journal.write_side(&file, true) {
        // Undone now, not at the next start: the index still names the old version.
        drop(file);
        if let Err(undo) = recover_one(index, folder, &journal_path(folder, &mine.file_id)) {
            tracing::warn!(folder = %folder.id, "{}: {undo}", record.path);
        }
        return Err(e.into());
    }
    #[cfg(test)]
    tests_hook::killed_after_patch()?;
    for loc in &mut locs {
        loc.tag = tags.get(&loc.id).copied();
    }
    let written: usize =
        journal.ranges.iter().map(|r| r.new.len()).sum::<usize>() + journal.new_tail.len();
    report.fetched_bytes += fetched;
    report.reused_bytes += record.size - changed_bytes;
    tracing::debug!(
        folder = %folder.id,
        "{}: {} bytes written in place ({} ranges, {} past the old end, {} removed; {} of {} \
         changed chunk bytes fetched) in {:.3} s",
        record.path,
        written,
        journal.ranges.len(),
        journal.new_tail.len(),
        removed,
        fetched,
        changed_bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(Some(Patched {
        locs,
        nodes,
        previous: Previous(journal),
    }))
}

/// Rebuilds the version a patch replaced in the versions store (step 4 of the module doc)
/// and drops its journal; `row` is the index row just committed for the new version. Left
/// for the next round (see [`settle`]) if it fails.
pub(super) fn keep_previous(index: &Index, folder: &Folder, previous: Previous, row: &FileRow) {
    let journal = previous.0;
    if let Err(e) = rebuild_previous(index, folder, &journal, row) {
        tracing::warn!(
            folder = %folder.id,
            "the version of {} before this edit is not kept yet (tried again before the \
             file's next install): {e}",
            journal.path
        );
    }
}

/// Undoes a patch whose install failed before the index took it (the file goes back to
/// what the index says), and drops its journal.
pub(super) fn undo(index: &Index, folder: &Folder, previous: Previous) {
    let path = journal_path(folder, &previous.0.file_id);
    if let Err(e) = recover_one(index, folder, &path) {
        tracing::warn!(folder = %folder.id, "{}: undoing an edit in place: {e}", previous.0.path);
    }
}

/// Before anything else replaces, moves or deletes file `id`: the version its last edit in
/// place replaced must be in the versions store first (the bytes it is rebuilt from go).
pub(super) fn settle(index: &Index, folder: &Folder, id: &FileId) -> Result<(), Defer> {
    let path = journal_path(folder, id);
    if !path.exists() {
        return Ok(());
    }
    recover_one(index, folder, &path)?;
    if path.exists() {
        return Err(later(
            "the version this file had before its last edit is not in the versions store yet",
        ));
    }
    Ok(())
}

/// Why a previous version could not be rebuilt.
#[derive(Debug, thiserror::Error)]
enum RebuildError {
    /// The file no longer holds the patched version: what it was built from is gone.
    #[error("the file changed before its previous version was copied")]
    Gone,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Index(#[from] crate::index::Error),
}

fn rebuild_previous(
    index: &Index,
    folder: &Folder,
    j: &Journal,
    row: &FileRow,
) -> Result<(), RebuildError> {
    let started = Instant::now();
    // Kept already (a kill between the keep and the journal's removal).
    let kept_already = index.versions(&folder.id, &j.path)?.iter().any(|v| {
        v.size == j.old_size
            && v.mtime_ns == j.old_mtime_ns
            && store::versions_dir(folder).join(&v.stored).is_file()
    });
    if kept_already {
        fs::remove_file(journal_path(folder, &j.file_id))?;
        return Ok(());
    }
    let source = folder.root.join(&row.path);
    let from = fs::File::open(&source)?;
    // The file is still the version the index names (nothing wrote into it since), and that
    // version is the patch's.
    let holds_patch = |f: &fs::File| -> std::io::Result<bool> {
        let m = f.metadata()?;
        let as_indexed = j.same_inode(&m)
            && m.len() == j.new_size
            && m.len() == row.size
            && m.ino() == row.inode
            && m.mtime() * 1_000_000_000 + m.mtime_nsec() == row.mtime_ns;
        if !as_indexed {
            return Ok(false);
        }
        let stretches = j.ranges.iter().map(|r| (r.offset, &r.new));
        for (at, bytes) in stretches.chain([(j.common(), &j.new_tail)]) {
            let mut now = vec![0; bytes.len()];
            f.read_exact_at(&mut now, at)?;
            if now != *bytes {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if !holds_patch(&from)? {
        return Err(RebuildError::Gone);
    }
    let tmp_dir = store::temp_dir(folder);
    fs::create_dir_all(&tmp_dir)?;
    let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
    copy_whole(&from, tmp.as_file(), j.common())?;
    for r in &j.ranges {
        tmp.as_file().write_all_at(&r.old, r.offset)?;
    }
    tmp.as_file().write_all_at(&j.old_tail, j.common())?;
    if !holds_patch(&from)? {
        return Err(RebuildError::Gone);
    }
    let out = tmp.as_file();
    out.set_permissions(fs::Permissions::from_mode(j.old_mode))?;
    out.set_modified(UNIX_EPOCH + Duration::from_nanos(j.old_mtime_ns.max(0) as u64))?;
    out.sync_all()?;
    let kept = tmp.into_temp_path().keep().map_err(|e| e.error)?;
    let stored = store::keep_file(
        index,
        folder,
        &j.path,
        &kept,
        (j.old_size, j.old_mode, j.old_mtime_ns),
        "overwrite",
    );
    if let Err(e) = stored {
        let _ = fs::remove_file(&kept);
        return Err(e.into());
    }
    fs::remove_file(journal_path(folder, &j.file_id))?;
    tracing::debug!(
        folder = %folder.id,
        "{}: the version before the edit kept in {:.3} s",
        j.path,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Copies `len` bytes of `from` to `to` with the kernel's `copy_file_range` (through a
/// buffer where the kernel cannot: another file system, an old kernel), starting each
/// 64 MiB's write-back as it goes and dropping the pages on both sides (as the whole-file
/// build does, see `content::Writeback`): the copy is for the versions store, which nobody
/// reads soon.
fn copy_whole(from: &fs::File, to: &fs::File, len: u64) -> std::io::Result<()> {
    const KICK: u64 = 64 << 20;
    const STEP: u64 = 8 << 20;
    let mut at = 0u64;
    let mut kicked = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    while at < len {
        let step = (len - at).min(STEP);
        let (mut src, mut dst) = (at, at);
        let n = if buf.is_empty() {
            rustix::fs::copy_file_range(from, Some(&mut src), to, Some(&mut dst), step as usize)
                .map(|n| n as u64)
                .map_err(std::io::Error::from)
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
        };
        let n = match n {
            Ok(n) => n,
            Err(_) => {
                buf.resize(step as usize, 0);
                from.read_exact_at(&mut buf, at)?;
                to.write_all_at(&buf, at)?;
                step
            }
        };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than its version",
            ));
        }
        at += n;
        if at - kicked >= KICK || at == len {
            for f in [to, from] {
                let _ = rustix::fs::fadvise(
                    f,
                    kicked,
                    std::num::NonZeroU64::new(at - kicked),
                    rustix::fs::Advice::DontNeed,
                );
            }
            kicked = at;
        }
    }
    Ok(())
}

/// Finishes or undoes the edits written in place that a stopped daemon left (see the module
/// doc). Runs before the folder's first scan, which would otherwise take a cut-short file's
/// bytes for a local edit.
pub fn recover(index: &Index, folder: &Folder) {
    let Ok(entries) = fs::read_dir(patches_dir(folder)) else {
        return;
    };
    for e in entries.map_while(Result::ok) {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "new") {
            // A journal not yet complete: its patch never started.
            let _ = fs::remove_file(&path);
            continue;
        }
        if let Err(err) = recover_one(index, folder, &path) {
            tracing::warn!(folder = %folder.id, "{}: {err}", path.display());
        }
    }
}

/// [`recover`] for one journal.
fn recover_one(index: &Index, folder: &Folder, path: &Path) -> Result<(), Defer> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(j) = Journal::decode(&bytes) else {
        tracing::warn!(folder = %folder.id, "{}: not a whole patch journal, dropped", path.display());
        fs::remove_file(path)?;
        return Ok(());
    };
    let row = index
        .file_by_id(&folder.id, &j.file_id)?
        .filter(|r| !r.deleted);
    match row {
        Some(r) if r.content_root == j.new_root => match rebuild_previous(index, folder, &j, &r) {
            Ok(()) => {}
            Err(RebuildError::Gone) => {
                tracing::warn!(
                    folder = %folder.id,
                    "the version of {} before a received edit could not be kept: the file \
                     changed before it was copied",
                    j.path
                );
                fs::remove_file(path)?;
            }
            Err(e) => return Err(later(format!("{}: {e}", j.path))),
        },
        Some(r) if r.content_root == j.old_root && r.path == j.path => {
            roll_back(folder, &j)?;
            fs::remove_file(path)?;
        }
        _ => {
            tracing::warn!(
                folder = %folder.id,
                "{}: an edit written into it in place no longer applies (the file moved on \
                 since); its journal is dropped",
                j.path
            );
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Puts a cut-short patch's old bytes, length, mode and mtime back, so the file is again what
/// the index says, unless something else has written into it since: then it is left alone
/// for the scanner, which takes it as a local edit.
fn roll_back(folder: &Folder, j: &Journal) -> Result<(), Defer> {
    let target = folder.root.join(&j.path);
    let open = || fs::OpenOptions::new().read(true).write(true).open(&target);
    let f = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(folder = %folder.id, "{}: gone since an edit of it was cut short", j.path);
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // The install may have set a read-only mode before it was cut short.
            fs::set_permissions(&target, fs::Permissions::from_mode(j.old_mode | 0o600))?;
            open()?
        }
        Err(e) => return Err(e.into()),
    };
    if !f.metadata().is_ok_and(|m| j.same_inode(&m)) || !j.only_old_or_new(&f)? {
        tracing::warn!(
            folder = %folder.id,
            "{}: written into by something else since an edit of it was cut short; left as it is",
            j.path
        );
        return Ok(());
    }
    j.write_side(&f, false)?;
    f.set_permissions(fs::Permissions::from_mode(j.old_mode))?;
    f.set_modified(UNIX_EPOCH + Duration::from_nanos(j.old_mtime_ns.max(0) as u64))?;
    tracing::info!(folder = %folder.id, "{}: an edit cut short was rolled back", j.path);
    Ok(())
}

/// A test's kill -9 in the middle of an edit in place, and its choice of file system.
#[cfg(test)]
pub(in crate::sync) mod tests_hook {
    use super::Defer;

    thread_local! {
        /// `Some(b)`: whether edits are written in place, whatever the file system.
        pub static IN_PLACE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
        /// When set, the round is "killed" right after the next patch's bytes are written.
        pub static KILL_AFTER_PATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// When set, the round is "killed" after the next patched file's index commit, before
        /// its previous version is kept.
        pub static KILL_BEFORE_KEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// See [`failed_before_commit`].
        pub static FAIL_BEFORE_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(super) fn killed_after_patch() -> Result<(), Defer> {
        if KILL_AFTER_PATCH.with(|k| k.replace(false)) {
            return Err(Defer::Index(crate::index::Error::Corrupt(
                "killed by the test",
            )));
        }
        Ok(())
    }

    /// When set, the next patched file's install fails (an error, not a kill) right before
    /// its index commit.
    pub(in crate::sync) fn failed_before_commit() -> Result<(), Defer> {
        if FAIL_BEFORE_COMMIT.with(|k| k.replace(false)) {
            return Err(Defer::Later("failed by the test".into()));
        }
        Ok(())
    }

    pub(in crate::sync) fn killed_before_keep() -> Result<(), Defer> {
        if KILL_BEFORE_KEEP.with(|k| k.replace(false)) {
            return Err(Defer::Index(crate::index::Error::Corrupt(
                "killed by the test",
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal {
            path: "dir/big file.bin".into(),
            file_id: FileId::from_bytes([3; 16]),
            old_root: ContentRoot::from_bytes([4; 32]),
            new_root: ContentRoot::from_bytes([5; 32]),
            old_size: 1 << 30,
            new_size: (1 << 30) + 5,
            old_mode: 0o644,
            old_mtime_ns: 1_700_000_000_123_456_789,
            inode: 77,
            dev: 2049,
            ranges: vec![
                Range {
                    offset: 4096,
                    old: vec![1; 10],
                    new: vec![2; 10],
                },
                Range {
                    offset: 1 << 29,
                    old: vec![3; 4096],
                    new: vec![4; 4096],
                },
            ],
            old_tail: vec![6; 3],
            new_tail: vec![7; 8],
        }
    }

    #[test]
    fn a_journal_reads_back_as_written() {
        let j = journal();
        assert_eq!(Journal::decode(&j.encode()), Some(j));
    }

    #[test]
    fn a_torn_or_altered_journal_is_not_read() {
        let bytes = journal().encode();
        for cut in [0, 1, 31, 32, 100, bytes.len() - 1] {
            assert_eq!(Journal::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(Journal::decode(&flipped), None);
    }
}
