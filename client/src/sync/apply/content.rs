//! A version's bytes, built into a temp file in the folder's temp area: chunks the version
//! it replaces holds are copied from it a run at a time (blocks shared where the file system
//! can), chunks other local files hold are re-read and checked, and the rest are fetched from
//! peers. Every byte of the result comes from a checked chunk.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::FileExt;

use harp_protocol::blob::{BlobKind, CheckedBlob};
use harp_protocol::ids::ChunkId;
use harp_protocol::manifest::{ChunkRef, EntryKind, Node};
use harp_protocol::record::Record;

use super::install::disk_matches;
use super::{Context, Defer, Report, later};
use crate::chunk;
use crate::direct_write::{self, SequentialWriter};
use crate::index::{ChunkLoc, ChunkTag, Index};
use crate::store;
use crate::sync::progress::Progress;

/// Manifest node blobs fetched from peers, to store in the index.
pub(super) type Nodes = Vec<(ChunkId, Vec<u8>)>;

/// The manifest nodes and chunk list of a version, fetching missing nodes level by level.
pub(super) fn chunk_list(
    index: &Index,
    ctx: &Context<'_>,
    record: &Record,
) -> Result<(Vec<ChunkRef>, Nodes), Defer> {
    let keys = &ctx.folder.keys;
    let mut fetched_nodes = Vec::new();
    let mut level: Vec<(ChunkId, Option<(u8, u64)>)> = vec![(record.content_root.into(), None)];
    let mut out = Vec::new();
    while !level.is_empty() {
        let mut blobs: HashMap<ChunkId, Vec<u8>> = HashMap::new();
        let mut missing = Vec::new();
        for (id, _) in &level {
            match index.manifest_node(id)? {
                Some(b) => {
                    blobs.insert(*id, b);
                }
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            let mut got = Vec::new();
            let left = ctx.fetcher.fetch(missing, &mut |b| {
                got.push((b.id(), b.into_bytes()));
                Ok(())
            })?;
            if !left.is_empty() {
                return Err(later(format!(
                    "{} manifest nodes of {} are on no connected peer",
                    left.len(),
                    record.path
                )));
            }
            for (id, b) in got {
                fetched_nodes.push((id, b.clone()));
                blobs.insert(id, b);
            }
        }
        let mut next = Vec::new();
        for (id, expect) in &level {
            let blob = blobs
                .get(id)
                .ok_or_else(|| later("a manifest node went missing"))?;
            let node = Node::open(keys, id, blob)
                .map_err(|e| Defer::Refused(format!("manifest of {}: {e}", record.path)))?;
            if let Some((lvl, bytes)) = expect
                && (node.level() != *lvl || node.bytes() != *bytes)
            {
                return Err(Defer::Refused(format!(
                    "manifest of {}: a node disagrees with its parent",
                    record.path
                )));
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
    if total != record.size {
        return Err(Defer::Refused(format!(
            "manifest of {} covers {total} bytes, its record says {}",
            record.path, record.size
        )));
    }
    Ok((out, fetched_nodes))
}

/// A version's chunk list with each chunk's place in the file (tags not known yet).
pub(super) fn located(chunks: &[ChunkRef]) -> Vec<ChunkLoc> {
    let mut offset = 0u64;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let loc = ChunkLoc {
                idx: i as u32,
                offset,
                len: c.len,
                id: c.id,
                tag: None,
            };
            offset += u64::from(c.len);
            loc
        })
        .collect()
}

/// Starts the write-back of a temp file's pages every [`Writeback::EVERY`] bytes, so that the
/// fsync before its rename finds little left to write, and decides which pages stay cached.
///
/// Without the kicks a large file's pages all wait for that fsync (Linux starts flushing only
/// past `dirty_background_ratio`, gigabytes on a desktop), and the disk then works alone after
/// the copy is done: rebuilding a 1 GiB file here took 1.9-3.2 s with one fsync at the end and
/// 0.9-1.0 s with a kick every 64 MiB (measured with the same reads and writes;
/// docs/benchmarks.md). A kick is `posix_fadvise(DONTNEED)`, which on Linux starts the
/// write-back of the dirty pages in its range without waiting for it, and drops the pages in
/// it that are already clean. It only schedules work: durability still comes from the fsync
/// (or syncfs) before the rename.
///
/// Which pages stay cached ([`Cache`]): a new version built from its previous one takes that
/// version's place in the page cache. Each kick covers only the range written since the last
/// one (still dirty, so nothing of it is dropped), and the previous version's pages are
/// dropped as they are copied. The next edit of the file then copies from memory, not from the
/// disk (1 GiB: 0.5-0.7 s against 0.8-2.3 s here, session 15), and a sync never grows the
/// page cache: on this machine, a VM whose host backs guest memory on first touch (~3 µs a
/// page), a page cache that grows costs more than reading from the disk (session 11 kept
/// every page and the 4 KiB overwrite took 0.99-3.04 s). A file with no previous version
/// (a new one, fetched) keeps nothing: its kicks cover the whole file, as a backup tool keeps
/// a restore from pushing the user's own files out of the cache.
struct Writeback<'a> {
    file: &'a fs::File,
    on: bool,
    cache: Cache<'a>,
    /// Where the round counts the bytes written.
    progress: Option<&'a Progress>,
    since: std::cell::Cell<u64>,
    /// The temp file's bytes written since the last kick: `[start, end)`.
    written: std::cell::Cell<Option<(u64, u64)>>,
    /// The previous version's bytes copied since the last kick.
    copied: std::cell::Cell<Option<(u64, u64)>>,
}

/// What a build leaves in the page cache (see [`Writeback`]).
enum Cache<'a> {
    /// Nothing of the new file.
    Nothing,
    /// The new version, in place of the previous one (this file), dropped as it is copied.
    InPlaceOf(&'a fs::File),
}

/// Widens a range to take `[at, at + len)` in.
fn widen(range: &std::cell::Cell<Option<(u64, u64)>>, at: u64, len: u64) {
    let end = at.saturating_add(len);
    range.set(Some(match range.get() {
        Some((s, e)) => (s.min(at), e.max(end)),
        None => (at, end),
    }));
}

/// Advice only: a file system that ignores it loses nothing but the head start (or the
/// cached pages).
fn drop_pages(file: &fs::File, range: Option<(u64, u64)>) {
    let (offset, len) = match range {
        None => (0, None),
        Some((s, e)) => match std::num::NonZeroU64::new(e.saturating_sub(s)) {
            Some(len) => (s, Some(len)),
            None => return,
        },
    };
    if let Err(e) = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed) {
        tracing::debug!("fadvise: {e}");
    }
}

impl<'a> Writeback<'a> {
    const EVERY: u64 = 64 << 20;

    fn new(file: &'a fs::File, on: bool, cache: Cache<'a>, progress: Option<&'a Progress>) -> Self {
        Self {
            file,
            on,
            cache,
            progress,
            since: std::cell::Cell::new(0),
            written: std::cell::Cell::new(None),
            copied: std::cell::Cell::new(None),
        }
    }

    /// `len` bytes were written at `at`.
    fn wrote(&self, at: u64, len: u64) {
        if let Some(p) = self.progress {
            p.wrote(len);
        }
        if !self.on {
            return;
        }
        widen(&self.written, at, len);
        let since = self.since.get() + len;
        if since < Self::EVERY {
            self.since.set(since);
            return;
        }
        self.since.set(0);
        match self.cache {
            Cache::Nothing => drop_pages(self.file, None),
            Cache::InPlaceOf(previous) => {
                if let Some(range) = self.written.take() {
                    drop_pages(self.file, Some(range));
                }
                if let Some(range) = self.copied.take() {
                    drop_pages(previous, Some(range));
                }
            }
        }
    }

    /// `len` bytes of the previous version were copied from `at`.
    fn copied(&self, at: u64, len: u64) {
        if self.on {
            widen(&self.copied, at, len);
        }
    }

    /// The build is over: what is left of the previous version in the cache goes.
    fn done(&self) {
        if let (true, Cache::InPlaceOf(previous)) = (self.on, &self.cache) {
            drop_pages(previous, None);
        }
    }
}

/// Where each chunk of a file is: offset and length.
type ChunkRanges = HashMap<ChunkId, (u64, u32)>;

/// Contiguous bytes that the previous version of a file holds at `src` and the new one needs
/// at `dst`: read and written in one go, up to [`Run::MAX`], instead of chunk by chunk.
struct Run {
    src: u64,
    dst: u64,
    len: u64,
    ids: Vec<ChunkId>,
}

impl Run {
    const MAX: u64 = 4 << 20;

    /// Takes `next` in if it continues this run on both sides.
    fn extend(&mut self, next: &Run) -> bool {
        let fits = self.src + self.len == next.src
            && self.dst + self.len == next.dst
            && self.len + next.len <= Self::MAX;
        if fits {
            self.len += next.len;
            self.ids.extend_from_slice(&next.ids);
        }
        fits
    }

    /// Copies the run; if the previous version can no longer be read there (it shrank), its
    /// chunks are fetched instead.
    fn copy(
        self,
        from: &fs::File,
        to: &fs::File,
        buf: &mut Vec<u8>,
        writeback: &Writeback<'_>,
        report: &mut Report,
        remote: &mut Vec<ChunkId>,
    ) -> std::io::Result<()> {
        if self.move_bytes(from, to, buf)? {
            writeback.copied(self.src, self.len);
            writeback.wrote(self.dst, self.len);
            report.reused_bytes += self.len;
        } else {
            remote.extend(self.ids);
        }
        Ok(())
    }

    /// Moves the run's bytes; `false` if the previous version no longer holds them all.
    ///
    /// The copy is the kernel's (`copy_file_range`), so that a file system that shares blocks
    /// between files (btrfs, XFS with reflink) shares the unchanged ones instead of writing
    /// them again: an edit in place of a large file then costs the changed blocks, not a
    /// copy of the file. Blocks can be shared only where both sides are at the same offset
    /// within a block (an overwrite, an append; not what follows an insert), so such a run is
    /// cut at the first block boundary (without that cut btrfs copied 1 GiB in 3.1 s instead
    /// of sharing it in 6 ms). Elsewhere (ext4) the kernel copies, as fast as reading and
    /// writing here (measured); runs that cannot share blocks, and file systems without
    /// `copy_file_range`, go through a buffer here.
    fn move_bytes(
        &self,
        from: &fs::File,
        to: &fs::File,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        const BLOCK: u64 = 4096;
        let (mut src, mut dst, end) = (self.src, self.dst, self.src + self.len);
        if src % BLOCK != dst % BLOCK {
            // No block can be shared, and btrfs copies slower in the kernel than through
            // here (1 GiB: 3.3-5.1 s against 2.6 s; ext4: the same either way).
            return self.move_through(from, to, buf);
        }
        if src % BLOCK != 0 {
            let head = (BLOCK - src % BLOCK).min(self.len);
            if kernel_copy(from, &mut src, to, &mut dst, head).is_err() {
                return self.move_through(from, to, buf);
            }
        }
        while src < end {
            let left = end - src;
            match kernel_copy(from, &mut src, to, &mut dst, left) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(_) => return self.move_through(from, to, buf),
            }
        }
        Ok(true)
    }

    /// [`Run::move_bytes`] through a buffer here.
    fn move_through(
        &self,
        from: &fs::File,
        to: &fs::File,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        buf.resize(self.len as usize, 0);
        if from.read_exact_at(buf, self.src).is_err() {
            return Ok(false);
        }
        to.write_all_at(buf, self.dst)?;
        Ok(true)
    }
}

/// One `copy_file_range` of at most `len` bytes at `src` to `dst`, moving both on by what it
/// copied.
fn kernel_copy(
    from: &fs::File,
    src: &mut u64,
    to: &fs::File,
    dst: &mut u64,
    len: u64,
) -> std::io::Result<usize> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    Ok(rustix::fs::copy_file_range(
        from,
        Some(src),
        to,
        Some(dst),
        len,
    )?)
}

/// Defers a file that cannot fit on the folder's disk before anything is fetched for it: a
/// full disk would otherwise cost the whole file from the network on every retry, only to
/// fail writing it. (A disk that fills while the file is written still fails cleanly: the
/// temp file goes, the error is the file's reason to wait.)
fn enough_room(tmp_dir: &std::path::Path, record: &Record) -> Result<(), Defer> {
    let Some(free) = store::free_bytes(tmp_dir) else {
        return Ok(()); // no figure: let the writes tell
    };
    if record.size > free {
        const MB: f64 = 1e6;
        return Err(later(format!(
            "not enough free space: {} needs {:.1} MB, {:.1} MB free on the folder's disk",
            record.path,
            record.size as f64 / MB,
            free as f64 / MB
        )));
    }
    Ok(())
}

/// Writes the content of `record` into a new temp file; returns it and the chunk locations.
pub(super) fn build_content(
    index: &Index,
    ctx: &Context<'_>,
    record: &Record,
    report: &mut Report,
    sync: bool,
) -> Result<(tempfile::NamedTempFile, Vec<ChunkLoc>, Nodes), Defer> {
    let started = std::time::Instant::now();
    let (chunks, nodes) = chunk_list(index, ctx, record)?;
    let listed = started.elapsed();
    // A new file a peer offered while scanning it may be here in part already (staged).
    let (tmp, staged) = match ctx.fetcher.take_staged(&record.path, record.size) {
        Some(s) => (s.file, s.done),
        None => {
            let tmp_dir = store::temp_dir(ctx.folder);
            fs::create_dir_all(&tmp_dir)?;
            enough_room(&tmp_dir, record)?;
            let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
            tmp.as_file().set_len(record.size)?;
            (tmp, Vec::new())
        }
    };
    let mut locs = located(&chunks);
    let mut offsets: HashMap<ChunkId, Vec<(u64, u32)>> = HashMap::new();
    for l in &locs {
        offsets.entry(l.id).or_default().push((l.offset, l.len));
    }
    let keys = &ctx.folder.keys;
    let file = tmp.as_file();
    // Each chunk's tag, for the rows: a rescan after a local edit then finds the unchanged
    // chunks where they are (chunk::KnownChunks) instead of cutting and sealing them again.
    let tags: std::cell::RefCell<HashMap<ChunkId, ChunkTag>> = Default::default();
    // Staged chunks count where the manifest puts the same chunk at the same offset (each
    // was checked when it arrived); every other byte is written below as usual.
    let mut staged_bytes = 0u64;
    let mut staged_chunks = 0usize;
    for s in &staged {
        let at = locs.get(s.idx as usize);
        if !at.is_some_and(|l| l.offset == s.offset && l.id == s.id && l.len == s.len) {
            continue;
        }
        if let Some(places) = offsets.get_mut(&s.id)
            && let Some(i) = places.iter().position(|p| *p == (s.offset, s.len))
        {
            places.swap_remove(i);
            staged_bytes += u64::from(s.len);
            staged_chunks += 1;
            if let Some(tag) = s.tag {
                tags.borrow_mut().insert(s.id, tag);
            }
        }
    }
    offsets.retain(|_, places| !places.is_empty());
    // Chunks this device already has: straight from a local file that is unchanged since its
    // scan (the scanner's own trust: size, mtime, inode), else re-made and checked against
    // the id, else fetched.
    let reused_before = report.reused_bytes;
    let mut unchanged: HashMap<String, Option<fs::File>> = HashMap::new();
    let open_unchanged = |path: &str| -> Result<Option<fs::File>, Defer> {
        Ok(index
            .file(&ctx.folder.id, path)?
            .filter(|r| !r.deleted && r.kind == EntryKind::File && disk_matches(ctx.folder, r))
            .and_then(|_| fs::File::open(ctx.folder.root.join(path)).ok()))
    };
    // The version this one replaces holds most chunks of an edit: its chunk list is read once,
    // not looked up chunk by chunk (13,456 queries for a 1 GiB file).
    let previous: Option<(fs::File, ChunkRanges)> =
        match index.file(&ctx.folder.id, &record.path)? {
            Some(row) if !row.deleted && row.kind == EntryKind::File => {
                match open_unchanged(&record.path)? {
                    Some(f) => {
                        let rows = index.chunks(&ctx.folder.id, &row.file_id)?;
                        let held = rows.iter().map(|c| (c.id, (c.offset, c.len))).collect();
                        tags.borrow_mut()
                            .extend(rows.iter().filter_map(|c| Some((c.id, c.tag?))));
                        Some((f, held))
                    }
                    None => None,
                }
            }
            _ => None,
        };
    let cache = match &previous {
        Some((f, _)) => Cache::InPlaceOf(f),
        None => Cache::Nothing,
    };
    let writeback = Writeback::new(file, sync, cache, ctx.progress);
    // Set for the fetch of a large new file: its bytes go past the page cache.
    let direct: std::cell::RefCell<Option<SequentialWriter>> = Default::default();
    let put_plain = |id: ChunkId, plain: &[u8], counter: &mut u64| -> std::io::Result<()> {
        for (off, len) in offsets.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            if plain.len() != *len as usize {
                return Err(std::io::Error::other(format!(
                    "chunk {id} has {} bytes, the manifest says {len}",
                    plain.len()
                )));
            }
            match direct.borrow_mut().as_mut() {
                Some(w) => w.write_at(plain, *off)?,
                None => file.write_all_at(plain, *off)?,
            }
            writeback.wrote(*off, u64::from(*len));
            *counter += u64::from(*len);
        }
        Ok(())
    };
    let write = |sealed: CheckedBlob, counter: &mut u64| -> std::io::Result<()> {
        let (id, nonce) = (sealed.id(), sealed.nonce());
        let plain = sealed
            .into_plaintext(keys, BlobKind::Chunk)
            .map_err(|e| std::io::Error::other(format!("chunk {id}: {e}")))?;
        // The blob opened, so its nonce is the tag's prefix.
        if let Some(tag) = nonce {
            tags.borrow_mut().insert(id, tag);
        }
        put_plain(id, &plain, counter)?;
        crate::buffers::give(plain.into_buffer());
        Ok(())
    };
    let elsewhere: Vec<ChunkId> = offsets
        .keys()
        .filter(|id| {
            !previous
                .as_ref()
                .is_some_and(|(_, held)| held.contains_key(id))
        })
        .copied()
        .collect();
    let elsewhere = index.known_chunks(&ctx.folder.id, &elsewhere)?;
    let mut plain = Vec::new();
    let mut remote = Vec::new();
    // In file order, so that the writes (and their early write-back) run front to back.
    let mut seen = HashSet::with_capacity(offsets.len());
    let mut run: Option<Run> = None;
    for id in chunks
        .iter()
        .map(|c| &c.id)
        .filter(|id| offsets.contains_key(*id) && seen.insert(**id))
    {
        if let Some((f, held)) = &previous
            && let Some(&(off, len)) = held.get(id)
        {
            // Unchanged stretches of the previous version are copied a run at a time.
            if let Some(&[(dst, dst_len)]) = offsets.get(id).map(Vec::as_slice)
                && dst_len == len
            {
                let next = Run {
                    src: off,
                    dst,
                    len: u64::from(len),
                    ids: vec![*id],
                };
                let extended = run.as_mut().is_some_and(|r| r.extend(&next));
                if !extended && let Some(r) = run.replace(next) {
                    r.copy(f, file, &mut plain, &writeback, report, &mut remote)?;
                }
                continue;
            }
            if let Some(r) = run.take() {
                r.copy(f, file, &mut plain, &writeback, report, &mut remote)?;
            }
            plain.resize(len as usize, 0);
            if f.read_exact_at(&mut plain, off).is_ok() {
                writeback.copied(off, u64::from(len));
                put_plain(*id, &plain, &mut report.reused_bytes)?;
                continue;
            }
        }
        if !elsewhere.contains(id) {
            remote.push(*id);
            continue;
        }
        // Elsewhere in the folder: a file range that held it at its last scan, if that file
        // is unchanged since; a symlink's target re-made and checked against the id.
        let mut done = false;
        let mut other_kinds = Vec::new();
        for range in index.locate_chunk(&ctx.folder.id, id)? {
            if range.kind != EntryKind::File {
                other_kinds.push(range);
                continue;
            }
            if !unchanged.contains_key(&range.path) {
                let open = open_unchanged(&range.path)?;
                unchanged.insert(range.path.clone(), open);
            }
            let Some(Some(f)) = unchanged.get(&range.path) else {
                continue;
            };
            plain.resize(range.len as usize, 0);
            if f.read_exact_at(&mut plain, range.offset).is_ok() {
                put_plain(*id, &plain, &mut report.reused_bytes)?;
                tags.borrow_mut()
                    .insert(*id, chunk::tag_of(&ctx.folder.keys, &plain));
                done = true;
                break;
            }
        }
        if done {
            continue;
        }
        let location = chunk::BlobLocation::Ranges(other_kinds);
        match chunk::make_blob(ctx.folder, id, location) {
            Some(sealed) => {
                let sealed = CheckedBlob::check(*id, sealed)
                    .map_err(|e| std::io::Error::other(format!("chunk {id}: {e}")))?;
                write(sealed, &mut report.reused_bytes)?
            }
            None => remote.push(*id),
        }
    }
    if let (Some(r), Some((f, _))) = (run.take(), &previous) {
        r.copy(f, file, &mut plain, &writeback, report, &mut remote)?;
    }
    writeback.done();
    let fetched_chunks = remote.len();
    let local = started.elapsed();
    let mut fetched = staged_bytes;
    if !remote.is_empty() {
        // A large new file (nothing of it to keep cached, see `Writeback`) that comes whole
        // from peers is written past the page cache: less CPU while both devices share it.
        // Only whole: the writer owns every byte of the file (it may write zeros between
        // the bytes it is given), so not over bytes staged or copied from local files.
        let remote_bytes: u64 = remote
            .iter()
            .filter_map(|id| offsets.get(id))
            .flatten()
            .map(|(_, len)| u64::from(*len))
            .sum();
        if previous.is_none()
            && remote_bytes == record.size
            && remote_bytes >= direct_write::WORTH_IT
            && let Ok(f) = file.try_clone()
        {
            *direct.borrow_mut() = Some(SequentialWriter::new(f, tmp.path()));
        }
        let left = ctx.fetcher.fetch(remote, &mut |b| write(b, &mut fetched))?;
        if let Some(mut w) = direct.borrow_mut().take() {
            w.flush()?;
        }
        if !left.is_empty() {
            return Err(later(format!(
                "{} chunks of {} are on no connected peer",
                left.len(),
                record.path
            )));
        }
    }
    report.fetched_bytes += fetched;
    report.early_bytes += staged_bytes;
    // Every byte of the file must have come from a checked chunk: a source that claimed a
    // chunk without delivering it would otherwise leave zeros behind.
    let written = report.reused_bytes - reused_before + fetched;
    if written != record.size {
        return Err(later(format!(
            "{}: {written} of {} bytes arrived",
            record.path, record.size
        )));
    }
    let tags = tags.into_inner();
    for loc in &mut locs {
        loc.tag = tags.get(&loc.id).copied();
    }
    let built = started.elapsed();
    if sync {
        file.sync_all()?;
    }
    tracing::debug!(
        folder = %ctx.folder.id,
        "{}: {} bytes built from {} chunks ({} fetched, {} staged early) in {:.3} s (chunk \
         list {:.3} s, local chunks {:.3} s, fetch {:.3} s), synced in {:.3} s",
        record.path,
        record.size,
        offsets.len() + staged_chunks,
        fetched_chunks,
        staged_chunks,
        built.as_secs_f64(),
        listed.as_secs_f64(),
        (local - listed).as_secs_f64(),
        (built - local).as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    Ok((tmp, locs, nodes))
}
