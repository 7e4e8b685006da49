//! Turning file contents into sealed chunks: read, cut (keyed FastCDC), seal (encrypt + id).
//!
//! Cutting is sequential (each boundary depends on the last), sealing is not: the thread that
//! cuts hands each chunk to the current rayon pool as soon as its boundary is known, so with
//! `hashing_threads` threads the expensive part (XChaCha20-Poly1305 and two BLAKE3 passes) runs
//! on all of them, even for one huge file. Only the ids are kept: a blob is made again from the
//! file whenever a peer asks for it.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use harp_protocol::blob::{self, BlobKind};
use harp_protocol::chunker::Chunker;
use harp_protocol::ids::ChunkId;
use harp_protocol::keys::FolderKeys;

use crate::index::{self, ChunkLoc, Index};
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
}

/// Chunk tags a file had at its last scan, with the ids they sealed to.
pub type KnownChunks = std::collections::HashMap<[u8; 32], ChunkId>;

/// The id and tag of a chunk: looked up by tag when the file had it before (a keyed hash, no
/// encryption), else sealed.
fn seal_id(keys: &FolderKeys, data: &[u8], known: Option<&KnownChunks>) -> (ChunkId, [u8; 32]) {
    if let Some(known) = known {
        let tag = blob::chunk_tag(keys, data);
        if let Some(id) = known.get(&tag) {
            return (*id, tag);
        }
    }
    match blob::seal_chunk_tagged(keys, data) {
        Ok((tag, id, _)) => (id, tag),
        // The chunker never cuts more than its maximum, which is below the blob limit.
        Err(_) => unreachable!("chunks are never larger than the blob limit"),
    }
}

/// Cuts `data` into chunks starting at file offset `base` and seals them on the current
/// rayon pool. `eof` says whether `data` ends the file; if not, the last bytes that might be
/// part of a longer chunk are left over: the returned count says how many bytes were cut.
#[allow(clippy::too_many_arguments)] // one hot loop's inputs, each used once
fn cut_and_seal(
    chunker: &Chunker,
    keys: &FolderKeys,
    data: &[u8],
    base: u64,
    first_idx: u32,
    eof: bool,
    known: Option<&KnownChunks>,
    out: &mut Vec<ChunkLoc>,
) -> usize {
    let max = chunker.params().max as usize;
    let sealed = Mutex::new(Vec::new());
    let mut at = 0;
    rayon::scope(|s| {
        let mut idx = first_idx;
        while at < data.len() && (eof || data.len() - at >= max) {
            let len = chunker.cut(&data[at..]);
            let piece = &data[at..at + len];
            let offset = base + at as u64;
            let sealed = &sealed;
            s.spawn(move |_| {
                let (id, tag) = seal_id(keys, piece, known);
                if let Ok(mut v) = sealed.lock() {
                    v.push(ChunkLoc {
                        idx,
                        offset,
                        len: len as u32,
                        id,
                        tag: Some(tag),
                    });
                }
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

/// Chunks and seals everything `reader` yields. `size_hint` (the file's size, if known) keeps
/// the buffer small for small files. Run it inside the rayon pool that should do the sealing
/// (`pool.install`).
pub fn hash_reader(
    reader: impl Read,
    size_hint: u64,
    chunker: &Chunker,
    keys: &FolderKeys,
) -> io::Result<Hashed> {
    hash_reader_known(reader, size_hint, chunker, keys, None)
}

/// [`hash_reader`], mapping chunks whose tag is in `known` (the file's previous chunks) to
/// their ids without sealing them again: a changed large file costs a keyed hash per unchanged
/// chunk instead of an encryption and two hashes.
pub fn hash_reader_known(
    mut reader: impl Read,
    size_hint: u64,
    chunker: &Chunker,
    keys: &FolderKeys,
    known: Option<&KnownChunks>,
) -> io::Result<Hashed> {
    // One byte more than the hint, to see the end of the file without a second read.
    let mut buf = vec![0u8; size_hint.saturating_add(1).min(WINDOW as u64) as usize];
    let mut filled = 0;
    let mut base = 0u64;
    let mut chunks = Vec::new();
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
        let cut = cut_and_seal(
            chunker,
            keys,
            &buf[..filled],
            base,
            chunks.len() as u32,
            eof,
            known,
            &mut chunks,
        );
        base += cut as u64;
        buf.copy_within(cut..filled, 0);
        filled -= cut;
        if eof {
            return Ok(Hashed { chunks, size: base });
        }
    }
}

/// Chunks and seals an in-memory buffer (symlink targets; the benchmark's reference pipeline).
pub fn hash_bytes(data: &[u8], chunker: &Chunker, keys: &FolderKeys) -> Hashed {
    let mut chunks = Vec::new();
    let size = cut_and_seal(chunker, keys, data, 0, 0, true, None, &mut chunks) as u64;
    Hashed { chunks, size }
}

/// Reads one stored range of a file, if the file still has that many bytes there.
fn read_range(
    folder: &Folder,
    path: &str,
    kind: EntryKind,
    offset: u64,
    len: u32,
) -> Option<Vec<u8>> {
    // Index paths are relative and clean; refuse anything else rather than leave the folder.
    if path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return None;
    }
    let full = folder.root.join(path);
    let mut buf = vec![0u8; len as usize];
    match kind {
        EntryKind::Symlink => {
            let target = std::fs::read_link(&full).ok()?;
            let bytes = target.as_os_str().as_bytes();
            buf.copy_from_slice(bytes.get(offset as usize..offset as usize + len as usize)?);
        }
        EntryKind::File => {
            let mut f = std::fs::File::open(&full).ok()?;
            f.seek(SeekFrom::Start(offset)).ok()?;
            f.read_exact(&mut buf).ok()?;
        }
        EntryKind::Directory => return None,
    }
    Some(buf)
}

/// Where the blob `id` of a folder can be had, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A manifest node, stored in the index.
    Stored(Vec<u8>),
    /// A chunk, to re-make from one of these file ranges: (path, kind, offset, length).
    Ranges(Vec<(String, EntryKind, u64, u32)>),
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
/// first file range that still holds it (read, sealed, and checked against its id, so a
/// file changed since the last scan is never served as the old chunk).
pub fn make_blob(folder: &Folder, id: &ChunkId, location: BlobLocation) -> Option<Vec<u8>> {
    match location {
        BlobLocation::Stored(blob) => Some(blob),
        BlobLocation::Ranges(ranges) => ranges.into_iter().find_map(|(path, kind, offset, len)| {
            let plain = read_range(folder, &path, kind, offset, len)?;
            match blob::seal(&folder.keys, BlobKind::Chunk, &plain) {
                Ok((sealed_id, blob)) if &sealed_id == id => Some(blob),
                _ => None,
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
        let known: KnownChunks = first
            .chunks
            .iter()
            .map(|c| (c.tag.unwrap(), c.id))
            .collect();
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
        )
        .unwrap();
        assert_eq!(reused, fresh);
        // Most chunks were known.
        let hits = fresh
            .chunks
            .iter()
            .filter(|c| known.values().any(|id| *id == c.id))
            .count();
        assert!(
            hits + 4 >= fresh.chunks.len(),
            "{hits} of {}",
            fresh.chunks.len()
        );
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let keys = FolderKey::from_bytes([1; 32]).schedule();
        let h = hash_reader(&[][..], 0, &Chunker::for_folder(&keys), &keys).unwrap();
        assert_eq!(
            h,
            Hashed {
                chunks: vec![],
                size: 0
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
    }
}
