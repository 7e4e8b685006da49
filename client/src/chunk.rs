//! Turning file contents into sealed chunks: read, cut (keyed FastCDC), seal (encrypt + id).
//!
//! Cutting is sequential (each boundary depends on the last), sealing is not: the thread that
//! cuts hands each chunk to the current rayon pool as soon as its boundary is known, so with
//! `hashing_threads` threads the expensive part (XChaCha20-Poly1305 and two BLAKE3 passes) runs
//! on all of them, even for one huge file. Only the ids are kept: a blob is made again from the
//! file whenever a peer asks for it.

use std::io::{self, Read};
use std::sync::Mutex;

use harp_protocol::blob::{self, BlobKind};
use harp_protocol::chunker::Chunker;
use harp_protocol::ids::ChunkId;
use harp_protocol::keys::FolderKeys;

use crate::index::ChunkLoc;

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

fn seal_id(keys: &FolderKeys, data: &[u8]) -> ChunkId {
    match blob::seal(keys, BlobKind::Chunk, data) {
        Ok((id, _)) => id,
        // The chunker never cuts more than its maximum, which is below the blob limit.
        Err(_) => unreachable!("chunks are never larger than the blob limit"),
    }
}

/// Cuts `data` into chunks starting at file offset `base` and seals them on the current
/// rayon pool. `eof` says whether `data` ends the file; if not, the last bytes that might be
/// part of a longer chunk are left over: the returned count says how many bytes were cut.
fn cut_and_seal(
    chunker: &Chunker,
    keys: &FolderKeys,
    data: &[u8],
    base: u64,
    first_idx: u32,
    eof: bool,
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
                let id = seal_id(keys, piece);
                if let Ok(mut v) = sealed.lock() {
                    v.push(ChunkLoc {
                        idx,
                        offset,
                        len: len as u32,
                        id,
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
    mut reader: impl Read,
    size_hint: u64,
    chunker: &Chunker,
    keys: &FolderKeys,
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
    let size = cut_and_seal(chunker, keys, data, 0, 0, true, &mut chunks) as u64;
    Hashed { chunks, size }
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
