//! Blob buffers, kept for the next blob instead of freed.
//!
//! A blob in flight (a chunk of up to 256 KiB, a manifest node of up to 1 MiB) is born on
//! one thread and dies on another: a hashing thread seals it and the task that sent it on a
//! lane frees it; a lane task reads it and the thread that wrote its plaintext into the file
//! frees it. The daemon fixes glibc's mmap threshold for the sake of its peak RSS
//! (`cli::daemon`), which also fixes the trim threshold at 128 KiB: glibc hands the free top
//! of an arena back to the kernel as soon as it passes that, so each burst of freed blobs was
//! given back and the next blobs faulted in and zeroed fresh pages. For a new 1 GiB file that
//! was about a fifth of both daemons' CPU time, and the fresh pages evicted what the hashing
//! and the ciphers had in cache (`docs/benchmarks.md`, session 20).
//!
//! So the places where blobs are born take a buffer here ([`take`]) and the places where
//! they die give it back ([`give`]). A blob that dies anywhere else is simply freed. The
//! pool keeps at most [`KEEP_BYTES`] of capacity; a buffer holds only bytes that were
//! already in this process, and every taker overwrites what it uses (a `Vec` never exposes
//! its spare capacity).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Capacity the pool keeps at most: a backstop. Blobs come and go in batches (a fetch asks for
/// up to 128 chunks at a time, an early transfer's outbox holds up to 16 MiB), and kept
/// buffers must cover a batch, or the rest of it faults in fresh pages again: with 4 MiB kept,
/// a third of those page faults were left. The pool never holds more than was in flight at
/// once (32 MB at the end of a 1 GiB early transfer), and what a transfer leaves is dropped
/// once the daemon is quiet ([`release_if_idle`]), so it does not add to the next peak.
pub const KEEP_BYTES: usize = 64 << 20;

/// Buffers smaller than the smallest chunk but a file's last (a small file's blob) are not
/// kept: glibc serves them from bins it does not trim, and keeping thousands of them after a
/// burst of small files would only hold memory.
pub const MIN_KEPT: usize = 16 << 10;

/// Buffers larger than this (a manifest node's blob fits) are not kept.
pub const MAX_KEPT: usize = (1 << 20) + (4 << 10);

/// Free buffers by capacity (with a serial number, for equal capacities).
struct Pool {
    free: BTreeMap<(usize, u64), Vec<u8>>,
    bytes: usize,
    serial: u64,
    /// When a buffer was last taken or given.
    used: Option<Instant>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: BTreeMap::new(),
    bytes: 0,
    serial: 0,
    used: None,
});

fn pool() -> MutexGuard<'static, Pool> {
    // A poisoned pool is still a set of empty buffers.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An empty buffer with room for at least `capacity` bytes: the smallest kept one that
/// fits, or a new one.
pub fn take(capacity: usize) -> Vec<u8> {
    if (MIN_KEPT..=MAX_KEPT).contains(&capacity) {
        let mut pool = pool();
        pool.used = Some(Instant::now());
        let fit = pool.free.range((capacity, 0)..).next().map(|(k, _)| *k);
        if let Some(buf) = fit.and_then(|key| pool.free.remove(&key)) {
            pool.bytes -= buf.capacity();
            return buf;
        }
    }
    Vec::with_capacity(capacity)
}

/// Keeps `buf` for a later [`take`], if the pool has room (it makes room by dropping smaller
/// buffers, which fit fewer blobs).
pub fn give(mut buf: Vec<u8>) {
    let capacity = buf.capacity();
    if !(MIN_KEPT..=MAX_KEPT).contains(&capacity) {
        return;
    }
    buf.clear();
    let mut pool = pool();
    pool.used = Some(Instant::now());
    while pool.bytes + capacity > KEEP_BYTES {
        match pool.free.first_key_value().map(|(k, _)| *k) {
            Some(key) if key.0 < capacity => {
                if let Some(dropped) = pool.free.remove(&key) {
                    pool.bytes -= dropped.capacity();
                }
            }
            _ => return,
        }
    }
    pool.serial += 1;
    pool.bytes += capacity;
    let key = (capacity, pool.serial);
    pool.free.insert(key, buf);
}

/// Drops every kept buffer if none was taken or given for `idle`: the daemon calls this every
/// second, so what a transfer left is given back once blobs stop moving. Returns the
/// capacity dropped.
pub fn release_if_idle(idle: Duration) -> usize {
    let mut pool = pool();
    if pool.bytes == 0 || pool.used.is_some_and(|t| t.elapsed() < idle) {
        return 0;
    }
    let dropped = pool.bytes;
    pool.free.clear();
    pool.bytes = 0;
    dropped
}

/// Capacity kept now (for tests).
#[cfg(test)]
fn kept_bytes() -> usize {
    pool().bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool is one per process: these checks run as one test (nextest gives each test a
    /// process of its own, so no other test's blobs come and go meanwhile).
    #[test]
    fn buffers_are_reused_best_fit_bounded_and_dropped_when_idle() {
        // A kept buffer comes back empty, the smallest one that fits.
        let mut big = Vec::with_capacity(200 << 10);
        big.extend_from_slice(&[7u8; 100]);
        let big_ptr = big.as_ptr();
        give(big);
        let small = Vec::<u8>::with_capacity(64 << 10);
        let small_ptr = small.as_ptr();
        give(small);
        let got = take(50 << 10);
        assert_eq!(got.as_ptr(), small_ptr, "best fit: the 64 KiB buffer");
        assert!(got.is_empty());
        let got2 = take(100 << 10);
        assert_eq!(got2.as_ptr(), big_ptr);
        assert!(got2.is_empty() && got2.capacity() >= 100 << 10);
        // Nothing kept fits: a new buffer.
        let fresh = take(300 << 10);
        assert!(fresh.capacity() >= 300 << 10);
        assert_eq!(kept_bytes(), 0);

        // Too small or too large: not kept.
        give(Vec::with_capacity(1 << 10));
        give(Vec::with_capacity(2 << 20));
        assert_eq!(kept_bytes(), 0);

        // Bounded: the pool never holds more than KEEP_BYTES, and keeps larger buffers first.
        for _ in 0..(KEEP_BYTES / (64 << 10)) + 10 {
            give(Vec::with_capacity(64 << 10));
        }
        assert!(kept_bytes() <= KEEP_BYTES);
        assert!(kept_bytes() > KEEP_BYTES - (64 << 10));
        give(Vec::with_capacity(256 << 10));
        assert!(kept_bytes() <= KEEP_BYTES);
        assert!(
            take(200 << 10).capacity() >= 256 << 10,
            "the larger buffer was kept"
        );

        // Kept while blobs move; dropped once none moved for the idle time.
        assert_eq!(release_if_idle(Duration::from_secs(60)), 0);
        assert!(kept_bytes() > 0);
        std::thread::sleep(Duration::from_millis(20));
        let kept = kept_bytes();
        assert_eq!(release_if_idle(Duration::from_millis(10)), kept);
        assert_eq!(kept_bytes(), 0);
        assert!(
            take(64 << 10).capacity() >= 64 << 10,
            "a new buffer once released"
        );
    }
}
