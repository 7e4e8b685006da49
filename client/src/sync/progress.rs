//! How far the sync round running now has got, for `harp status` and the web UI.
//!
//! A round can take minutes (a large file from a slow peer, thousands of new files), and the
//! folder's status is otherwise written once per round: without this, a folder busy with
//! 10 GB looks idle until it is done. The round counts its actions and the bytes of the
//! versions it installs; the applier adds what each install writes (fetched or copied from a
//! local file, as Syncthing counts "pulled" and "copied"), and each action done. Readers take
//! a [`Snapshot`] from another thread; the counters are relaxed atomics, so a snapshot may mix
//! two moments, never anything worse.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The live counters of one folder's sync rounds (one at a time: the folder's worker runs them).
#[derive(Debug, Default)]
pub struct Progress {
    running: AtomicBool,
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    /// The path of the action being carried out, and when the round began.
    now: Mutex<(String, Option<Instant>)>,
}

/// What a round had done when it was looked at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// Actions in the round: installs, publishes, conflict copies, moves aside...
    pub files_total: u64,
    /// Actions carried out (done or put off).
    pub files_done: u64,
    /// Bytes of the versions the round installs.
    pub bytes_total: u64,
    /// Bytes written so far, fetched or copied from local files.
    pub bytes_done: u64,
    /// The path the round is at.
    pub current: String,
    /// Seconds since the round began to carry out its actions.
    pub elapsed_secs: f64,
}

impl Snapshot {
    /// Seconds left at the rate so far, once there is a rate to go by.
    pub fn eta_secs(&self) -> Option<f64> {
        if self.bytes_done == 0 || self.elapsed_secs < 0.5 || self.bytes_total <= self.bytes_done {
            return None;
        }
        let rate = self.bytes_done as f64 / self.elapsed_secs;
        Some((self.bytes_total - self.bytes_done) as f64 / rate)
    }
}

/// Clears the counters when the round ends, however it ends.
pub(crate) struct Running<'a>(&'a Progress);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Relaxed);
    }
}

impl Progress {
    fn now(&self) -> std::sync::MutexGuard<'_, (String, Option<Instant>)> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A round begins to carry out `files` actions that install `bytes`.
    pub(crate) fn begin(&self, files: u64, bytes: u64) -> Running<'_> {
        self.files_total.store(files, Ordering::Relaxed);
        self.files_done.store(0, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        *self.now() = (String::new(), Some(Instant::now()));
        self.running.store(true, Ordering::Relaxed);
        Running(self)
    }

    /// The round is at `path`.
    pub(crate) fn at(&self, path: &str) {
        let mut now = self.now();
        now.0.clear();
        now.0.push_str(path);
    }

    /// One action is carried out.
    pub(crate) fn did_one(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    /// An install wrote `bytes` more.
    pub(crate) fn wrote(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The round running now, if one is.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.running.load(Ordering::Relaxed) {
            return None;
        }
        let (current, started) = self.now().clone();
        let total = self.bytes_total.load(Ordering::Relaxed);
        Some(Snapshot {
            files_total: self.files_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_total: total,
            // A build retried within the round writes its bytes again.
            bytes_done: self.bytes_done.load(Ordering::Relaxed).min(total),
            current,
            elapsed_secs: started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_shows_while_it_runs_and_not_after() {
        let p = Progress::default();
        assert_eq!(p.snapshot(), None);
        {
            let _running = p.begin(3, 1000);
            p.at("a.txt");
            p.wrote(400);
            p.did_one();
            let s = p.snapshot().unwrap();
            assert_eq!(
                (s.files_total, s.files_done, s.bytes_total, s.bytes_done),
                (3, 1, 1000, 400)
            );
            assert_eq!(s.current, "a.txt");
            p.wrote(900);
            assert_eq!(
                p.snapshot().unwrap().bytes_done,
                1000,
                "never past the total"
            );
        }
        assert_eq!(p.snapshot(), None);
        // The next round starts from nothing.
        let _running = p.begin(1, 10);
        assert_eq!(p.snapshot().unwrap().bytes_done, 0);
    }

    #[test]
    fn time_left_comes_from_the_rate_so_far() {
        let s = Snapshot {
            files_total: 1,
            files_done: 0,
            bytes_total: 300,
            bytes_done: 100,
            current: String::new(),
            elapsed_secs: 2.0,
        };
        assert_eq!(s.eta_secs(), Some(4.0));
        assert_eq!(
            Snapshot {
                bytes_done: 0,
                ..s.clone()
            }
            .eta_secs(),
            None
        );
        assert_eq!(
            Snapshot {
                elapsed_secs: 0.1,
                ..s
            }
            .eta_secs(),
            None
        );
    }
}
