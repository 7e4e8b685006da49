//! Turning file contents into sealed chunks: read, cut (keyed FastCDC), seal (encrypt + id).
//!
//! Cutting is sequential (each boundary depends on the last), sealing is not: the thread that
//! cuts hands each chunk to the current rayon pool as soon as its boundary is known, so with
//! `hashing_threads` threads the expensive part (XChaCha20-Poly1305 and two BLAKE3 passes) runs
//! on all of them, even for one huge file. Only the ids are kept: a blob is made again from the
//! file whenever a peer asks for it. (Except for a new file read with an [`Offer`]: its blobs
//! go to the offer with each window's chunk list, so they can go to a peer while the scan goes
//! on, [`crate::early`].)
//!
//! A changed file is not cut again where it did not change. A FastCDC boundary depends only on
//! the bytes since the previous boundary, so where the file still holds, from a boundary on,
//! the bytes of its next chunk at the last scan (same keyed tag), that chunk ends where it
//! ended before. The rescan checks the previous chunks' tags in parallel and cuts only from
//! the first one that differs, until a chunk it cuts is one the file had: from there the
//! previous chunks line up again (after an insert, shifted). See [`KnownChunks`].

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use harp_protocol::blob::{self, BlobKind};
use harp_protocol::chunker::Chunker;
use harp_protocol::ids::ChunkId;
use harp_protocol::keys::FolderKeys;

use crate::index::{self, ChunkLoc, ChunkTag, Index};
use crate::scan::Folder;
use harp_protocol::manifest::EntryKind;

/// How much of a file is read and cut at a time.
const WINDOW: usize = 8 << 20;

/// A file's contents as chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// The chunks, in order.
    pub chunks: Vec<ChunkLoc>,
    /// Bytes read.
    pub size: u64,
    /// Bytes the chunker ran over: all of them for a new file; for a changed one, only
    /// around the changes (the rest were previous chunks, found where they were).
    pub cut_bytes: u64,
}

/// Where a rescan stands against the file's previous chunks, from window to window.
#[derive(Debug, Default)]
struct Alignment {
    /// The position in the previous chunk list that the next byte starts, if it starts one.
    next: Option<usize>,
    /// Bytes cut so far.
    cut_bytes: u64,
}

/// A file's chunks at its last scan: their tags with the ids they sealed to, and their order,
/// so a rescan can check them where they were instead of cutting the file again.
#[derive(Debug, Clone, Default)]
pub struct KnownChunks {
    /// Tag → (id, position in `order`, of its first occurrence).
    by_tag: HashMap<ChunkTag, (ChunkId, usize)>,
    /// The chunks in file order: (length, tag, id). Empty when some chunk has no tag.
    order: Vec<(u32, ChunkTag, ChunkId)>,
    /// The lengths in `order`: a chunk just cut with one of them may be a known one.
    lens: HashSet<u32>,
}

impl KnownChunks {
    /// From a file's chunk list as the index holds it (in file order).
    pub fn new(chunks: &[ChunkLoc]) -> Self {
        let mut known = Self::default();
        let all_tagged = chunks.iter().all(|c| c.tag.is_some());
        for c in chunks {
            let Some(tag) = c.tag else { continue };
            let at = known.order.len();
            known.by_tag.entry(tag).or_insert((c.id, at));
            if all_tagged {
                known.order.push((c.len, tag, c.id));
                known.lens.insert(c.len);
            }
        }
        known
    }

    /// Whether no chunk is known.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    fn id(&self, tag: &ChunkTag) -> Option<ChunkId> {
        self.by_tag.get(tag).map(|(id, _)| *id)
    }

    /// How many of the chunks from `order[next]` on to check at the start of `avail` bytes:
    /// each must fit, leave the window as much as a cut would need (`max` bytes unless the
    /// file ends in it), and not be the last one (that one was cut by the end of the file,
    /// which may have moved).
    fn run(&self, next: usize, avail: usize, eof: bool, max: usize) -> usize {
        let mut used = 0;
        let mut n = 0;
        while next + n + 1 < self.order.len() && n < 256 {
            let len = self.order[next + n].0 as usize;
            if used + len > avail || !(eof || avail - used >= max) {
                break;
            }
            used += len;
            n += 1;
        }
        n
    }
}

/// Someone who takes a new file's sealed chunks as the scan makes them, to send them on before
/// the scan ends ([`crate::early`]).
pub trait Offer: Sync {
    /// A chunk was sealed. Called from the hashing threads, in any order.
    fn sealed(&self, id: ChunkId, blob: Vec<u8>);
    /// These chunks were cut and sealed (in file order; the next call continues the list).
    /// Called between windows on the scanning thread, which it may hold up (the receivers
    /// keeping up).
    fn listed(&self, chunks: &[ChunkLoc]);
    /// The file's scan ended: `complete` when the chunks listed are the whole file as
    /// recorded.
    fn end(self: Box<Self>, complete: bool);
}

/// A chunk's tag as the index keeps it ([`ChunkTag`]).
pub fn tag_of(keys: &FolderKeys, data: &[u8]) -> ChunkTag {
    prefix(&blob::chunk_tag(keys, data))
}

fn prefix(tag: &[u8; 32]) -> ChunkTag {
    let mut out = [0u8; 24];
    out.copy_from_slice(&tag[..24]);
    out
}

/// The id and tag of a chunk: looked up by tag when the file had it before (a keyed hash, no
/// encryption), else sealed. With `offer`, the blob goes to it.
fn seal_id(
    keys: &FolderKeys,
    data: &[u8],
    known: Option<&KnownChunks>,
    offer: Option<&dyn Offer>,
) -> (ChunkId, ChunkTag) {
    if let Some(known) = known {
        let tag = tag_of(keys, data);
        if let Some(id) = known.id(&tag) {
            return (id, tag);
        }
    }
    // A kept buffer (crate::buffers): the blob dies on the thread that sends it, or here.
    let len = blob::BLOB_OVERHEAD + data.len();
    match blob::seal_chunk_tagged_into(keys, data, crate::buffers::take(len)) {
        Ok((tag, id, blob)) => {
            match offer {
                Some(o) => o.sealed(id, blob),
                None => crate::buffers::give(blob),
            }
            (id, prefix(&tag))
        }
        // The chunker never cuts more than its maximum, which is below the blob limit.
        Err(_) => unreachable!("chunks are never larger than the blob limit"),
    }
}

/// Cuts `data` into chunks starting at file offset `base` and seals them on the current
/// rayon pool. `eof` says whether `data` ends the file; if not, the last bytes that might be
/// part of a longer chunk are left over: the returned count says how many bytes were cut.
///
/// With `known` and `aligned.next`, the previous chunks from there are checked by tag where
/// they would be, on the pool, and the ones still there are taken without cutting.
#[allow(clippy::too_many_arguments)] // one hot loop's inputs, each used once
fn cut_and_seal(
    chunker: &Chunker,
    keys: &FolderKeys,
    data: &[u8],
    base: u64,
    first_idx: u32,
    eof: bool,
    known: Option<&KnownChunks>,
    offer: Option<&dyn Offer>,
    aligned: &mut Alignment,
    out: &mut Vec<ChunkLoc>,
) -> usize {
    let max = chunker.params().max as usize;
    let sealed = Mutex::new(Vec::new());
    let mut at = 0;
    rayon::scope(|s| {
        let mut idx = first_idx;
        while at < data.len() && (eof || data.len() - at >= max) {
            if let (Some(known), Some(next)) = (known, aligned.next) {
                let run = known.run(next, data.len() - at, eof, max);
                if run > 0 {
                    let olds = &known.order[next..next + run];
                    let mut starts = Vec::with_capacity(run);
                    let mut o = at;
                    for (len, _, _) in olds {
                        starts.push(o);
                        o += *len as usize;
                    }
                    let same: Vec<bool> = {
                        use rayon::prelude::*;
                        olds.par_iter()
                            .zip(starts.par_iter())
                            .map(|((len, tag, _), &from)| {
                                tag_of(keys, &data[from..from + *len as usize]) == *tag
                            })
                            .collect()
                    };
                    let still = same.iter().take_while(|s| **s).count();
                    let mut taken = out_lock(&sealed);
                    for (len, tag, id) in &olds[..still] {
                        taken.push(ChunkLoc {
                            idx,
                            offset: base + at as u64,
                            len: *len,
                            id: *id,
                            tag: Some(*tag),
                        });
                        idx += 1;
                        at += *len as usize;
                    }
                    drop(taken);
                    // From the first chunk that changed on, cut.
                    aligned.next = (still == run).then_some(next + run);
                    continue;
                }
                aligned.next = None;
            }
            let len = chunker.cut(&data[at..]);
            aligned.cut_bytes += len as u64;
            let piece = &data[at..at + len];
            let offset = base + at as u64;
            // A chunk just cut that the file had before: the previous chunks line up again
            // from the one after it.
            if let Some(known) = known
                && !known.order.is_empty()
                && known.lens.contains(&(len as u32))
            {
                let tag = tag_of(keys, piece);
                if let Some(&(id, position)) = known.by_tag.get(&tag) {
                    out_lock(&sealed).push(ChunkLoc {
                        idx,
                        offset,
                        len: len as u32,
                        id,
                        tag: Some(tag),
                    });
                    aligned.next = Some(position + 1);
                    idx += 1;
                    at += len;
                    continue;
                }
            }
            let sealed = &sealed;
            s.spawn(move |_| {
                let (id, tag) = seal_id(keys, piece, known, offer);
                out_lock(sealed).push(ChunkLoc {
                    idx,
                    offset,
                    len: len as u32,
                    id,
                    tag: Some(tag),
                });
            });
            idx += 1;
            at += len;
        }
    });
    let mut sealed = sealed.into_inner().unwrap_or_else(|e| e.into_inner());
    sealed.sort_unstable_by_key(|c| c.idx);
    out.extend(sealed);
    at
}

/// The list of chunks made so far (a lock no one holds across a panic that matters: a
/// poisoned list is still whole, each push is one call).
fn out_lock(sealed: &Mutex<Vec<ChunkLoc>>) -> std::sync::MutexGuard<'_, Vec<ChunkLoc>> {
    sealed.lock().unwrap_or_else(|e| e.into_inner())
}

/// Chunks and seals everything `reader` yields. `size_hint` (the file's size, if known) keeps
/// the buffer small for small files. Run it inside the rayon pool that should do the sealing
/// (`pool.install`).
pub fn hash_reader(
    reader: impl Read,
    size_hint: u64,
    chunker: &Chunker,
    keys: &FolderKeys,
) -> io::Result<Hashed> {
    hash_reader_known(reader, size_hint, chunker, keys, None, None)
}

/// [`hash_reader`] for a file that had `known` chunks at its last scan: unchanged chunks are
/// checked where they were (a keyed hash each, on the pool) instead of cut and sealed again,
/// and chunks that moved are found by tag. The chunks are exactly those [`hash_reader`]
/// makes. With `offer`, each window's blobs and chunk list go to it as they are made.
pub fn hash_reader_known(
    mut reader: impl Read,
    size_hint: u64,
    chunker: &Chunker,
    keys: &FolderKeys,
    known: Option<&KnownChunks>,
    offer: Option<&dyn Offer>,
) -> io::Result<Hashed> {
    // One byte more than the hint, to see the end of the file without a second read.
    let mut buf = vec![0u8; size_hint.saturating_add(1).min(WINDOW as u64) as usize];
    let mut filled = 0;
    let mut base = 0u64;
    let mut chunks = Vec::new();
    // The file's start is a boundary now and was one at the last scan.
    let mut aligned = Alignment {
        next: known.map(|_| 0),
        cut_bytes: 0,
    };
    loop {
        // Fill the window, or reach the end of the file.
        let mut eof = false;
        if filled == buf.len() && buf.len() < WINDOW {
            // The file is larger than its hint said (it grew): go on with a full window.
            buf.resize(WINDOW, 0);
        }
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let listed = chunks.len();
        let cut = cut_and_seal(
            chunker,
            keys,
            &buf[..filled],
            base,
            chunks.len() as u32,
            eof,
            known,
            offer,
            &mut aligned,
            &mut chunks,
        );
        if let Some(o) = offer
            && chunks.len() > listed
        {
            o.listed(&chunks[listed..]);
        }
        base += cut as u64;
        buf.copy_within(cut..filled, 0);
        filled -= cut;
        if eof {
            return Ok(Hashed {
                chunks,
                size: base,
                cut_bytes: aligned.cut_bytes,
            });
        }
    }
}

/// Chunks and seals an in-memory buffer (symlink targets; the benchmark's reference pipeline).
pub fn hash_bytes(data: &[u8], chunker: &Chunker, keys: &FolderKeys) -> Hashed {
    let mut chunks = Vec::new();
    let mut aligned = Alignment::default();
    let size = cut_and_seal(
        chunker,
        keys,
        data,
        0,
        0,
        true,
        None,
        None,
        &mut aligned,
        &mut chunks,
    ) as u64;
    Hashed {
        chunks,
        size,
        cut_bytes: aligned.cut_bytes,
    }
}

/// Appends one indexed range of a file (or a symlink's target) to `buf`, if the file still has
/// that many bytes there.
fn read_range(folder: &Folder, range: &index::ChunkRange, buf: &mut Vec<u8>) -> Option<()> {
    // Index paths are relative and clean; refuse anything else rather than leave the folder.
    if range
        .path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return None;
    }
    let full = folder.root.join(&range.path);
    let (offset, len) = (range.offset, range.len as usize);
    match range.kind {
        EntryKind::Symlink => {
            let target = std::fs::read_link(&full).ok()?;
            let bytes = target.as_os_str().as_bytes();
            buf.extend_from_slice(bytes.get(offset as usize..offset as usize + len)?);
        }
        EntryKind::File => {
            let mut f = std::fs::File::open(&full).ok()?;
            f.seek(SeekFrom::Start(offset)).ok()?;
            // Into the buffer's spare room: no zeroing, no copy.
            let start = buf.len();
            f.take(len as u64).read_to_end(buf).ok()?;
            if buf.len() != start + len {
                return None;
            }
        }
        EntryKind::Directory => return None,
    }
    Some(())
}

/// Where the blob `id` of a folder can be had, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A manifest node, stored in the index.
    Stored(Vec<u8>),
    /// A chunk, to re-make from one of these file ranges.
    Ranges(Vec<index::ChunkRange>),
}

/// Looks up where blob `id` is (quick: index only; [`make_blob`] does the reading).
pub fn locate_blob(
    index: &Index,
    folder: &Folder,
    id: &ChunkId,
) -> Result<BlobLocation, index::Error> {
    if let Some(node) = index.manifest_node(id)? {
        return Ok(BlobLocation::Stored(node));
    }
    Ok(BlobLocation::Ranges(index.locate_chunk(&folder.id, id)?))
}

/// Makes blob `id` from its location: a stored node as it is, or a chunk re-made from the
/// first file range that still holds it, so a file changed since the last scan is never
/// served as the old chunk. A range with a recorded tag is read straight into the blob's
/// buffer and sealed there only if its bytes still give that tag (sealing is a function of
/// the plaintext: no second hash of the blob); one without is sealed and hashed against `id`.
pub fn make_blob(folder: &Folder, id: &ChunkId, location: BlobLocation) -> Option<Vec<u8>> {
    match location {
        BlobLocation::Stored(blob) => Some(blob),
        BlobLocation::Ranges(ranges) => ranges.into_iter().find_map(|range| {
            let mut buf = crate::buffers::take(blob::BLOB_OVERHEAD + range.len as usize);
            buf.resize(blob::BLOB_HEADER_LEN, 0);
            read_range(folder, &range, &mut buf)?;
            match range.tag {
                Some(nonce) => blob::seal_chunk_in(&folder.keys, buf, &nonce).ok()?,
                None => {
                    match blob::seal(&folder.keys, BlobKind::Chunk, &buf[blob::BLOB_HEADER_LEN..]) {
                        Ok((sealed_id, blob)) if &sealed_id == id => Some(blob),
                        _ => None,
                    }
                }
            }
        }),
    }
}

/// The blob `id` of `folder`, ready to send to a peer ([`locate_blob`] then [`make_blob`]).
/// `None` when no current file holds it any more.
pub fn read_blob(
    index: &Index,
    folder: &Folder,
    id: &ChunkId,
) -> Result<Option<Vec<u8>>, index::Error> {
    let location = locate_blob(index, folder, id)?;
    Ok(make_blob(folder, id, location))
}

#[cfg(test)]
mod tests {
    use super::*;
    use harp_protocol::keys::FolderKey;

    #[test]
    fn reading_in_windows_gives_the_same_chunks_as_one_buffer() {
        let keys = FolderKey::from_bytes([1; 32]).schedule();
        let chunker = Chunker::for_folder(&keys);
        let mut data = vec![0u8; 20 << 20];
        blake3::Hasher::new()
            .update(b"x")
            .finalize_xof()
            .fill(&mut data);
        let whole = hash_bytes(&data, &chunker, &keys);
        // A reader that returns odd-sized pieces, to cross window edges at every offset.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len()).min(777_777);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let streamed = hash_reader(Dribble(&data), data.len() as u64, &chunker, &keys).unwrap();
        assert_eq!(streamed, whole);
        // A wrong size hint (a file that grew) changes nothing.
        assert_eq!(
            hash_reader(Dribble(&data), 10, &chunker, &keys).unwrap(),
            whole
        );
        assert_eq!(whole.size, data.len() as u64);
        let mut offset = 0;
        for (i, c) in whole.chunks.iter().enumerate() {
            assert_eq!((c.idx as usize, c.offset), (i, offset));
            let (id, _) = blob::seal(
                &keys,
                BlobKind::Chunk,
                &data[offset as usize..][..c.len as usize],
            )
            .unwrap();
            assert_eq!(id, c.id);
            offset += u64::from(c.len);
        }
        assert_eq!(offset, data.len() as u64);
    }

    #[test]
    fn known_tags_give_the_same_chunks_as_sealing_everything() {
        let keys = FolderKey::from_bytes([1; 32]).schedule();
        let chunker = Chunker::for_folder(&keys);
        let before = crate::testutil::random(b"known", 6 << 20);
        let first = hash_reader(&before[..], before.len() as u64, &chunker, &keys).unwrap();
        let known = KnownChunks::new(&first.chunks);
        let mut after = before.clone();
        after[3_000_000..3_004_096].fill(7);
        after.splice(100..100, *b"inserted");
        let fresh = hash_reader(&after[..], after.len() as u64, &chunker, &keys).unwrap();
        let reused = hash_reader_known(
            &after[..],
            after.len() as u64,
            &chunker,
            &keys,
            Some(&known),
            None,
        )
        .unwrap();
        assert_eq!((&reused.chunks, reused.size), (&fresh.chunks, fresh.size));
        assert_eq!(fresh.cut_bytes, fresh.size);
        // Only the bytes around the two changes went through the chunker.
        assert!(
            reused.cut_bytes < fresh.size / 4,
            "cut {} of {} bytes again",
            reused.cut_bytes,
            fresh.size
        );
        // Most chunks were known.
        let hits = fresh
            .chunks
            .iter()
            .filter(|c| first.chunks.iter().any(|k| k.id == c.id))
            .count();
        assert!(
            hits + 4 >= fresh.chunks.len(),
            "{hits} of {}",
            fresh.chunks.len()
        );
    }

    /// Rescans `after` knowing the chunks of `before`; checks them against a fresh cut and
    /// returns the bytes cut again.
    fn rescan_matches_fresh(before: &[u8], after: &[u8]) -> u64 {
        let keys = FolderKey::from_bytes([2; 32]).schedule();
        let chunker = Chunker::for_folder(&keys);
        let first = hash_reader(before, before.len() as u64, &chunker, &keys).unwrap();
        let known = KnownChunks::new(&first.chunks);
        let fresh = hash_reader(after, after.len() as u64, &chunker, &keys).unwrap();
        let reused = hash_reader_known(
            after,
            after.len() as u64,
            &chunker,
            &keys,
            Some(&known),
            None,
        )
        .unwrap();
        assert_eq!(reused.size, after.len() as u64);
        assert_eq!(reused.chunks, fresh.chunks);
        reused.cut_bytes
    }

    #[test]
    fn edits_across_read_windows_are_cut_again_only_around_them() {
        let base = crate::testutil::random(b"windows", 20 << 20);
        let w = WINDOW;
        type Edit = fn(&mut Vec<u8>, usize);
        let edits: [(&str, usize, Edit); 8] = [
            ("insert at a window's end", w - 10, |d, at| d.insert(at, 1)),
            ("insert in the second window", w + 12_345, |d, at| {
                d.insert(at, 1)
            }),
            ("delete across a window's end", w - 100, |d, at| {
                d.drain(at..at + 300);
            }),
            ("overwrite 4 KiB", 13 << 20, |d, at| {
                d[at..at + 4096].fill(0)
            }),
            ("append", 0, |d, _| d.extend_from_slice(&[3; 70_000])),
            ("truncate", 0, |d, _| d.truncate(d.len() - 100_000)),
            ("prepend", 0, |d, _| {
                d.splice(0..0, [9u8; 10]);
            }),
            ("a zeroed stretch longer than a chunk", 5 << 20, |d, at| {
                d[at..at + 600_000].fill(0)
            }),
        ];
        for (what, at, edit) in edits {
            let mut after = base.clone();
            edit(&mut after, at);
            let cut = rescan_matches_fresh(&base, &after);
            // A change costs the chunks around it: a few maximum-size chunks at most (the
            // zeroed stretch is cut at the maximum size), never the rest of the file.
            assert!(cut < 2 << 20, "{what}: cut {cut} bytes again");
        }
        // Unchanged: nothing but the last chunk (cut by the end of the file) is cut again.
        assert!(rescan_matches_fresh(&base, &base) <= 256 << 10);
        // Everything changed: everything is cut, and the result is still right.
        let other = crate::testutil::random(b"other", 3 << 20);
        assert_eq!(rescan_matches_fresh(&base, &other), other.len() as u64);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn a_rescan_after_any_edit_cuts_where_a_fresh_cut_does(
            seed in proptest::prelude::any::<u64>(),
            len in 0usize..3_000_000,
            op in 0u8..5,
            at in 0.0f64..1.0,
            n in 1usize..300_000,
        ) {
            let before = crate::testutil::random(&seed.to_le_bytes(), len);
            let mut after = before.clone();
            let at = (at * len as f64) as usize;
            match op {
                0 => { after.splice(at..at, std::iter::repeat_n(0xee, n)); }
                1 => { after.drain(at..(at + n).min(len)); }
                2 => { let end = (at + n).min(len); after[at..end].fill(0x11); }
                3 => after.extend(std::iter::repeat_n(0x22, n)),
                _ => after.truncate(len.saturating_sub(n)),
            }
            rescan_matches_fresh(&before, &after);
        }
    }

    /// Keeps what a scan offers.
    #[derive(Default)]
    struct Kept {
        blobs: std::sync::Mutex<HashMap<ChunkId, Vec<u8>>>,
        listed: std::sync::Mutex<Vec<ChunkLoc>>,
    }

    impl Offer for &Kept {
        fn sealed(&self, id: ChunkId, blob: Vec<u8>) {
            self.blobs.lock().unwrap().insert(id, blob);
        }
        fn listed(&self, chunks: &[ChunkLoc]) {
            self.listed.lock().unwrap().extend_from_slice(chunks);
        }
        fn end(self: Box<Self>, _complete: bool) {}
    }

    #[test]
    fn an_offer_gets_every_blob_and_the_list_in_order_and_the_chunks_do_not_change() {
        let keys = FolderKey::from_bytes([5; 32]).schedule();
        let chunker = Chunker::for_folder(&keys);
        // Several read windows.
        let data = crate::testutil::random(b"offered", 3 * WINDOW + 12_345);
        let plain = hash_reader(&data[..], data.len() as u64, &chunker, &keys).unwrap();
        let kept = Kept::default();
        let offer = &kept;
        let offered = hash_reader_known(
            &data[..],
            data.len() as u64,
            &chunker,
            &keys,
            None,
            Some(&offer),
        )
        .unwrap();
        assert_eq!(offered, plain);
        assert_eq!(*kept.listed.lock().unwrap(), plain.chunks);
        let blobs = kept.blobs.lock().unwrap();
        for c in &plain.chunks {
            let blob = blobs.get(&c.id).expect("every chunk's blob is offered");
            let checked = blob::CheckedBlob::check(c.id, blob.clone()).unwrap();
            let opened = checked.into_plaintext(&keys, BlobKind::Chunk).unwrap();
            let at = c.offset as usize;
            assert_eq!(&opened[..], &data[at..at + c.len as usize]);
        }
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let keys = FolderKey::from_bytes([1; 32]).schedule();
        let h = hash_reader(&[][..], 0, &Chunker::for_folder(&keys), &keys).unwrap();
        assert_eq!(
            h,
            Hashed {
                chunks: vec![],
                size: 0,
                cut_bytes: 0,
            }
        );
    }
}

#[cfg(test)]
mod serve_tests {
    use super::*;
    use crate::scan::{Options, scan};
    use ed25519_dalek::SigningKey;

    #[test]
    fn blobs_are_remade_from_files_and_never_served_stale() {
        let (_dir, folder) = crate::testutil::temp_folder();
        let root = folder.root.clone();
        let mut index = Index::in_memory().unwrap();
        let mut data = crate::testutil::random(b"serve", 600_000);
        std::fs::write(root.join("a.bin"), &data).unwrap();
        std::os::unix::fs::symlink("a.bin", root.join("link")).unwrap();
        let device = SigningKey::from_bytes(&[3; 32]);
        scan(
            &mut index,
            &folder,
            &device,
            &Options {
                threads: 2,
                progress: None,
                early: None,
            },
        )
        .unwrap();
        let row = index.file(&folder.id, "a.bin").unwrap().unwrap();
        let chunks = index.chunks(&folder.id, &row.file_id).unwrap();
        assert!(chunks.len() > 2);
        for c in &chunks {
            let b = read_blob(&index, &folder, &c.id).unwrap().unwrap();
            let plain = blob::open(&folder.keys, BlobKind::Chunk, &c.id, &b).unwrap();
            assert_eq!(plain, &data[c.offset as usize..][..c.len as usize]);
        }
        // The manifest root is served from the index; the symlink's chunk from the link.
        assert!(
            read_blob(&index, &folder, &row.content_root.into())
                .unwrap()
                .is_some()
        );
        let link = index.file(&folder.id, "link").unwrap().unwrap();
        let link_chunk = index.chunks(&folder.id, &link.file_id).unwrap()[0];
        let b = read_blob(&index, &folder, &link_chunk.id).unwrap().unwrap();
        assert_eq!(
            blob::open(&folder.keys, BlobKind::Chunk, &link_chunk.id, &b).unwrap(),
            b"a.bin"
        );
        // Change the file behind the index's back: its old chunk 1 is not served any more.
        data[chunks[1].offset as usize] ^= 1;
        std::fs::write(root.join("a.bin"), &data).unwrap();
        assert_eq!(read_blob(&index, &folder, &chunks[1].id).unwrap(), None);
        assert!(read_blob(&index, &folder, &chunks[0].id).unwrap().is_some());
        // The scan recorded tags, so those reads compared nonces; rows without one (an older
        // index) are sealed and hashed against the id instead, with the same outcome.
        for (c, served) in [(chunks[0], true), (chunks[1], false)] {
            let ranges = index.locate_chunk(&folder.id, &c.id).unwrap();
            assert!(ranges.iter().all(|r| r.tag.is_some()));
            let untagged = ranges
                .into_iter()
                .map(|r| index::ChunkRange { tag: None, ..r })
                .collect();
            let blob = make_blob(&folder, &c.id, BlobLocation::Ranges(untagged));
            assert_eq!(blob.is_some(), served);
            if let Some(b) = blob {
                assert_eq!(ChunkId::of_ciphertext(&b), c.id);
            }
        }
    }
}
