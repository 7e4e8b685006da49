//! Writing a large file's bytes past the page cache (`O_DIRECT`), as they arrive in order.
//!
//! Why: a buffered write pays the kernel for page-cache pages, ext4's delayed allocation and
//! the write-back of each page. On the reference machine (a VM) that is 0.7-0.9 CPU s per GiB
//! against 0.1 s for the same bytes written with `O_DIRECT` in 8 MiB blocks, and the disk
//! keeps up with both (docs/benchmarks.md, session 18). While a file comes in, both devices
//! share the CPU, so that CPU is the transfer's time. A received new file keeps nothing in the
//! page cache anyway (see `sync::apply::content::Writeback`), so skipping it loses nothing.
//!
//! `O_DIRECT` wants the memory, the file offset and the length aligned to the device's
//! blocks. [`SequentialWriter`] gathers the bytes in an aligned buffer and hands whole blocks
//! to a thread of its own that writes them directly, while the next buffer fills (a direct
//! write waits for the disk: done in line, it left the fetch idle that long). The unaligned
//! rest goes through the ordinary descriptor at a [`SequentialWriter::flush`], after which
//! every byte given is in the file; [`SequentialWriter::in_file_below`] says how far that
//! holds without one. Bytes for an offset already handed on go through the ordinary
//! descriptor (correct, only slower). Only local block-device file systems get direct
//! writes (ext4, XFS, btrfs, F2FS, bcachefs); on any other, or where `O_DIRECT` is refused,
//! every byte goes the ordinary way, as it would without this module.
//!
//! Durability is unchanged: the fsync before a rename covers bytes written either way.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;

/// Files (or the part of one that is fetched) from this size on are worth a writer thread.
pub const WORTH_IT: u64 = 16 << 20;

/// The alignment of memory, offsets and lengths: 4 KiB, a multiple of every common logical
/// block size (512 B and 4 KiB).
pub const ALIGN: usize = 4096;

/// The most bytes gathered in one buffer before its whole blocks are handed on (two buffers:
/// one filling, one being written). 4 MiB writes run at the disk's full speed here.
const SPAN: usize = 4 << 20;

/// Whole blocks for the writer thread: `buf[head..head + len]` at file offset `offset`.
struct Job {
    buf: Vec<u8>,
    head: usize,
    len: usize,
    offset: u64,
}

/// The writer thread and the job it has, if any.
struct Direct {
    jobs: Option<mpsc::SyncSender<Job>>,
    results: mpsc::Receiver<(Job, io::Result<()>)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The file range being written: `[offset, offset + len)`.
    in_flight: Option<(u64, usize)>,
    /// The other buffer, when it is not being written.
    spare: Option<Vec<u8>>,
}

/// How the writer thread writes a job (a seam for the tests: a file system that refuses).
type WriteFn = fn(&File, &[u8], u64) -> io::Result<()>;

impl Direct {
    fn start(file: File, write: WriteFn) -> io::Result<Self> {
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let (outbox, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("harp-direct-write".into())
            .spawn(move || {
                for job in inbox {
                    let written = write(&file, &job.buf[job.head..job.head + job.len], job.offset);
                    if outbox.send((job, written)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
            in_flight: None,
            spare: None,
        })
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        // Let the thread finish the job it has (the file's bytes stay right), then go.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes a file from bytes that arrive at roughly increasing offsets (see the module doc).
///
/// **It owns the file's bytes**: a block is written whole, so the bytes between two it was
/// given (a chunk that never came) may be written as zeros. Use it on a file that nothing
/// else writes, or has written, while it runs: a new staging file, or a new file that comes
/// whole from peers, not one that already holds bytes copied from elsewhere.
pub struct SequentialWriter {
    /// The ordinary descriptor.
    file: File,
    /// The writer thread, on the same file opened with `O_DIRECT`; `None` where the file
    /// system refused it.
    direct: Option<Direct>,
    /// The buffer filling (capacity `SPAN + ALIGN` from the start, so it never moves).
    buf: Vec<u8>,
    /// Where the aligned part of `buf` starts.
    head: usize,
    /// The file offset of `buf[head]`, a multiple of [`ALIGN`].
    base: u64,
    /// The file offset just past the highest byte gathered (`base` when none is).
    end: u64,
    /// Bytes written past the page cache.
    direct_bytes: u64,
}

impl std::fmt::Debug for SequentialWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialWriter")
            .field("direct", &self.direct.is_some())
            .field("base", &self.base)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Whether `path` is on a local block-device file system where `O_DIRECT` is what was
/// measured: ext4, XFS, btrfs, F2FS, bcachefs. Elsewhere (NFS and SMB, where every direct
/// write is a round trip to the server; FUSE; tmpfs; ZFS, whose `O_DIRECT` depends on its
/// version) the ordinary writes are the known path.
fn local_block_file_system(path: &Path) -> bool {
    const KINDS: [u64; 5] = [0xEF53, 0x5846_5342, 0x9123_683E, 0xF2F5_2010, 0xCA45_1A4E];
    match rustix::fs::statfs(path) {
        Ok(fs) => KINDS.contains(&(fs.f_type as u64)),
        Err(_) => false,
    }
}

fn floor(offset: u64) -> u64 {
    offset - offset % ALIGN as u64
}

fn ceil(offset: u64) -> u64 {
    floor(offset.saturating_add(ALIGN as u64 - 1))
}

/// An empty buffer that will not move, and where its aligned part starts.
fn aligned_buffer() -> (Vec<u8>, usize) {
    let buf: Vec<u8> = Vec::with_capacity(SPAN + ALIGN);
    let head = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
    (buf, head)
}

impl SequentialWriter {
    /// A writer for `file`, which is the file at `path`: the path is opened a second time
    /// with `O_DIRECT` (if that fails, every write goes through `file`).
    pub fn new(file: File, path: &Path) -> Self {
        use rustix::fs::{Mode, OFlags};
        if !local_block_file_system(path) {
            return Self::buffered(file);
        }
        let direct = rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::DIRECT | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .and_then(|fd| Direct::start(File::from(fd), |f, bytes, at| f.write_all_at(bytes, at)))
        .map_err(|e| tracing::debug!(path = %path.display(), "no O_DIRECT: {e}"))
        .ok();
        Self::with(file, direct)
    }

    /// A writer that only ever writes through `file` (what a file system without `O_DIRECT`
    /// gets; the tests use it as the reference).
    pub fn buffered(file: File) -> Self {
        Self::with(file, None)
    }

    fn with(file: File, direct: Option<Direct>) -> Self {
        let (buf, head) = if direct.is_some() {
            aligned_buffer()
        } else {
            (Vec::new(), 0)
        };
        Self {
            file,
            direct,
            buf,
            head,
            base: 0,
            end: 0,
            direct_bytes: 0,
        }
    }

    /// Whether writes still go past the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes written past the page cache so far.
    pub fn direct_bytes(&self) -> u64 {
        self.direct_bytes
    }

    /// Every byte given below this offset is in the file (bytes given above it may be too).
    pub fn in_file_below(&mut self) -> io::Result<u64> {
        self.collect(false)?;
        Ok(match &self.direct {
            Some(direct) => direct.in_flight.map_or(self.base, |(offset, _)| offset),
            // Ordinary writes are in the file as they are made (nothing is gathered then).
            None if self.end == self.base => u64::MAX,
            None => self.base,
        })
    }

    /// Starts the write-back of what went through the page cache (see
    /// `sync::apply::content::Writeback`): nothing to do for direct writes.
    pub fn kick(&self) {
        if self.direct.is_none()
            && let Err(e) = rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed)
        {
            tracing::debug!("fadvise: {e}");
        }
    }

    /// Writes `data` at `offset`: gathered for a direct write, or written now through the
    /// ordinary descriptor. Call [`flush`](Self::flush) before counting on the bytes.
    pub fn write_at(&mut self, mut data: &[u8], mut offset: u64) -> io::Result<()> {
        if self.direct.is_none() {
            return self.file.write_all_at(data, offset);
        }
        if offset < self.base {
            // Already handed on (a late chunk): the ordinary way, once the direct write of
            // that range (with whatever the buffer had there) is done, so it cannot land
            // after this one.
            self.collect(true)?;
            let below = usize::try_from(self.base - offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            self.file.write_all_at(&data[..below], offset)?;
            (data, offset) = (&data[below..], offset + below as u64);
            if data.is_empty() || self.direct.is_none() {
                return self.file.write_all_at(data, offset);
            }
        }
        if self.end == self.base {
            // Nothing gathered: start at this block. The bytes before `offset` in it are a
            // gap no one wrote (all bytes at `base` or above come through `buf`).
            self.base = floor(offset);
            self.end = self.base;
            self.buf.truncate(self.head);
        }
        let stop = offset + data.len() as u64;
        if stop - self.base > SPAN as u64 {
            self.write_blocks()?;
        }
        if self.direct.is_none() {
            // O_DIRECT was just refused: what was gathered is written, the rest goes this way.
            return self.file.write_all_at(data, offset);
        }
        if stop - self.base > SPAN as u64 {
            // A jump ahead (or a piece larger than what is left of the buffer): write out what
            // is gathered and start afresh at this offset, but never in a block that holds
            // bytes written already (the flush wrote the last partial one the ordinary way).
            self.flush()?;
            let start = floor(offset).max(ceil(self.end));
            self.buf.truncate(self.head);
            if offset < start || stop - start > SPAN as u64 {
                // The ordinary way, and nothing is gathered below its end from here on.
                self.base = ceil(stop);
                self.end = self.base;
                return self.file.write_all_at(data, offset);
            }
            self.base = start;
            self.end = start;
        }
        let at = self.head + (offset - self.base) as usize;
        if at >= self.buf.len() {
            // Past what is gathered (the usual case: right after it): zeros for a gap, then
            // the bytes, without filling their place with zeros first.
            self.buf.resize(at, 0);
            self.buf.extend_from_slice(data);
        } else {
            if self.buf.len() < at + data.len() {
                self.buf.resize(at + data.len(), 0);
            }
            self.buf[at..at + data.len()].copy_from_slice(data);
        }
        self.end = self.end.max(stop);
        Ok(())
    }

    /// Puts every byte given so far in the file: whole blocks directly (and waits for that),
    /// the last partial block through the ordinary descriptor (it stays gathered, and goes
    /// directly again once the block is whole).
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_blocks()?;
        self.collect(true)?;
        if self.end > self.base {
            let len = (self.end - self.base) as usize;
            self.file
                .write_all_at(&self.buf[self.head..self.head + len], self.base)?;
        }
        Ok(())
    }

    /// Takes the writer thread's result, waiting for it if `wait`. A write the file system
    /// refuses for its alignment is done the ordinary way, and so is every later one.
    fn collect(&mut self, wait: bool) -> io::Result<()> {
        let Some(direct) = &mut self.direct else {
            return Ok(());
        };
        if direct.in_flight.is_none() {
            return Ok(());
        }
        let (job, written) = if wait {
            direct.results.recv().map_err(|_| gone())?
        } else {
            match direct.results.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => return Err(gone()),
            }
        };
        direct.in_flight = None;
        match written {
            Ok(()) => {
                self.direct_bytes += job.len as u64;
                direct.spare = Some(job.buf);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                // From here on, the ordinary way: that job's bytes, what is gathered (so
                // that nothing waits in the buffer while later bytes go straight to the
                // file), and every later write.
                tracing::debug!("O_DIRECT write refused, writing buffered: {e}");
                self.direct = None;
                self.file
                    .write_all_at(&job.buf[job.head..job.head + job.len], job.offset)?;
                let gathered = (self.end - self.base) as usize;
                self.file
                    .write_all_at(&self.buf[self.head..self.head + gathered], self.base)?;
                self.base = self.end;
                self.buf.truncate(self.head);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Hands the whole blocks gathered to the writer thread (once it is done with the last
    /// ones) and goes on in the other buffer, from the partial block.
    fn write_blocks(&mut self) -> io::Result<()> {
        if floor(self.end) <= self.base {
            return Ok(());
        }
        self.collect(true)?;
        let whole = floor(self.end).saturating_sub(self.base) as usize;
        if whole == 0 {
            return Ok(());
        }
        let gathered = (self.end - self.base) as usize;
        let Some(direct) = &mut self.direct else {
            self.file
                .write_all_at(&self.buf[self.head..self.head + whole], self.base)?;
            self.buf
                .copy_within(self.head + whole..self.head + gathered, self.head);
            self.buf.truncate(self.head + gathered - whole);
            self.base += whole as u64;
            return Ok(());
        };
        let (mut next, next_head) = match direct.spare.take() {
            Some(buf) => {
                let head = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
                (buf, head)
            }
            None => aligned_buffer(),
        };
        next.clear();
        next.resize(next_head, 0);
        next.extend_from_slice(&self.buf[self.head + whole..self.head + gathered]);
        let full = std::mem::replace(&mut self.buf, next);
        let job = Job {
            buf: full,
            head: self.head,
            len: whole,
            offset: self.base,
        };
        self.head = next_head;
        direct.in_flight = Some((self.base, whole));
        let sent = direct.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(gone());
        }
        self.base += whole as u64;
        Ok(())
    }
}

fn gone() -> io::Error {
    io::Error::other("the direct-write thread is gone")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(seed: u8, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// A new file of `size` bytes in the system's temp dir (O_DIRECT is taken there when
    /// its file system has it), and a writer on it, direct or `buffered`.
    fn setup(size: u64, buffered: bool) -> (tempfile::TempDir, SequentialWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create_new(&path).unwrap();
        file.set_len(size).unwrap();
        let writer = if buffered {
            SequentialWriter::buffered(file)
        } else {
            SequentialWriter::new(file, &path)
        };
        (dir, writer)
    }

    #[test]
    fn a_piece_too_large_for_the_rest_of_the_buffer_keeps_the_bytes_before_it() {
        let size = 3 * SPAN;
        let data = random(5, size);
        let (dir, mut w) = setup(size as u64, false);
        // A flush leaves a partial block written the ordinary way; the next piece starts in
        // that block and is almost a buffer long; then more after it.
        let cuts = [0, 1000, 1000 + SPAN - 100, 2 * SPAN + 5, size];
        for (i, pair) in cuts.windows(2).enumerate() {
            let (at, end) = (pair[0], pair[1]);
            w.write_at(&data[at..end], at as u64).unwrap();
            if i == 0 {
                w.flush().unwrap();
            }
        }
        w.flush().unwrap();
        assert!(contents(&dir) == data);
    }

    /// A file system that opens with O_DIRECT but refuses the writes (another alignment).
    #[test]
    fn a_refused_direct_write_falls_back_without_losing_a_byte() {
        let data = random(4, (12 << 20) + 77);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create_new(&path).unwrap();
        file.set_len(data.len() as u64).unwrap();
        let refusing = Direct::start(file.try_clone().unwrap(), |_, _, _| {
            Err(io::Error::from(io::ErrorKind::InvalidInput))
        })
        .unwrap();
        let mut w = SequentialWriter::with(file, Some(refusing));
        let all = pieces(data.len());
        let (first, rest) = all.split_at(all.len() / 2);
        // Past the first buffer (so a job is refused while more is gathered), then a piece
        // from before, then the rest.
        for &(at, len) in first.iter().skip(1) {
            w.write_at(&data[at..at + len], at as u64).unwrap();
        }
        let (at, len) = first[0];
        w.write_at(&data[at..at + len], at as u64).unwrap();
        assert!(!w.is_direct());
        for &(at, len) in rest {
            w.write_at(&data[at..at + len], at as u64).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.in_file_below().unwrap(), u64::MAX);
        assert!(contents(&dir) == data);
    }

    fn contents(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join("f")).unwrap()
    }

    /// Pieces of 1 B to 300 KiB (chunk-like, never aligned), covering `len` bytes.
    fn pieces(len: usize) -> Vec<(usize, usize)> {
        let (mut out, mut at, mut n) = (Vec::new(), 0, 0usize);
        while at < len {
            n += 1;
            let size = [1, 4095, 4097, 65_537, 300_000, 17][n % 6].min(len - at);
            out.push((at, size));
            at += size;
        }
        out
    }

    #[test]
    fn pieces_in_order_with_a_flush_per_batch_give_the_file() {
        for buffered in [false, true] {
            let data = random(1, (40 << 20) + 123);
            let (dir, mut w) = setup(data.len() as u64, buffered);
            for batch in pieces(data.len()).chunks(50) {
                for &(at, len) in batch {
                    w.write_at(&data[at..at + len], at as u64).unwrap();
                }
                w.flush().unwrap();
            }
            assert!(contents(&dir) == data, "buffered: {buffered}");
            // So that the test sees the direct path run where it can.
            if !buffered && local_block_file_system(dir.path()) {
                assert!(
                    w.is_direct(),
                    "O_DIRECT refused where the file system has it"
                );
            }
            if w.is_direct() {
                // All but the last partial block, some of it written twice.
                assert!(w.direct_bytes() >= (data.len() / ALIGN * ALIGN) as u64);
            } else {
                assert_eq!(w.direct_bytes(), 0);
            }
        }
    }

    #[test]
    fn pieces_out_of_order_late_and_missing_land_where_they_belong() {
        let data = random(2, 30 << 20);
        let (dir, mut w) = setup(data.len() as u64, false);
        let all = pieces(data.len());
        let mut expected = vec![0u8; data.len()];
        let mut late = Vec::new();
        for (b, batch) in all.chunks(40).enumerate() {
            // Backwards within a batch; every 7th piece never comes, every 5th comes a
            // batch late (after the writer went past it).
            for (i, &(at, len)) in batch.iter().enumerate().rev() {
                if i % 7 == 3 {
                    continue;
                }
                if i % 5 == 1 {
                    late.push((at, len));
                    continue;
                }
                w.write_at(&data[at..at + len], at as u64).unwrap();
                expected[at..at + len].copy_from_slice(&data[at..at + len]);
            }
            w.flush().unwrap();
            if b % 2 == 1 {
                for (at, len) in late.drain(..) {
                    w.write_at(&data[at..at + len], at as u64).unwrap();
                    expected[at..at + len].copy_from_slice(&data[at..at + len]);
                }
            }
        }
        for (at, len) in late.drain(..) {
            w.write_at(&data[at..at + len], at as u64).unwrap();
            expected[at..at + len].copy_from_slice(&data[at..at + len]);
        }
        w.flush().unwrap();
        assert!(contents(&dir) == expected);
    }

    #[test]
    fn a_jump_past_the_span_and_back_keeps_every_byte() {
        let size = 3 * SPAN + 5000;
        let data = random(3, size);
        let (dir, mut w) = setup(size as u64, false);
        let mut expected = vec![0u8; size];
        // Near the start, far ahead (past the span), then between the two, then the end.
        for (at, len) in [
            (10, 70_000),
            (2 * SPAN + 77, 90_001),
            (SPAN, 5),
            (size - 4999, 4999),
        ] {
            w.write_at(&data[at..at + len], at as u64).unwrap();
            expected[at..at + len].copy_from_slice(&data[at..at + len]);
        }
        w.flush().unwrap();
        assert!(contents(&dir) == expected);
    }
}
