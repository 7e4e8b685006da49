//! Watching a folder: scan when something changes, and now and then anyway.
//!
//! File-system events (inotify on Linux, through `notify`) only say *that* something changed
//! somewhere: after a burst of events settles for the configured delay, a scan runs, and since
//! the scanner skips unchanged files cheaply, a full scan is simple and correct. Events can be
//! lost (queue overflow, network file systems), so a periodic full rescan runs regardless as
//! a safety net. Events inside `.harp/` (Harp's own versions and temp files) are ignored.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use notify::{EventKind, RecursiveMode, Watcher};

use super::{Error, Folder, MARKER_DIR, Options, Summary, scan};
use crate::index::Index;

/// When to scan.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time after the last event before a scan.
    pub settle: Duration,
    /// Time between full rescans when no event comes.
    pub rescan_every: Duration,
}

/// How often the loop looks at its stop flag while idle.
const POLL: Duration = Duration::from_millis(100);

fn relevant(event: &notify::Event, marker: &Path) -> bool {
    let kind_matters = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    );
    kind_matters && (event.paths.is_empty() || event.paths.iter().any(|p| !p.starts_with(marker)))
}

/// The step a worker runs after each scan: see [`run`].
type Step<'a> = dyn FnMut(&mut Index, Option<&Result<Summary, Error>>) -> Option<Duration> + 'a;

/// Why a folder's worker woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed on disk: scan (after the burst settles), then step.
    Disk,
    /// Something else needs a step (a peer's changes arrived): step without scanning.
    Other,
}

/// A wake-up channel for [`run`]: give the sender to whoever may need the worker.
pub fn channel() -> (mpsc::SyncSender<Wake>, mpsc::Receiver<Wake>) {
    // A few pending wakes are all the loop needs to know.
    mpsc::sync_channel(4)
}

/// Scans `folder` once, then again after every settled burst of changes and every
/// `rescan_every`, until `stop` is set. Each scan's outcome goes to `report`; a failed scan
/// (a vanished root, say) is reported and retried at the next trigger, never fatal.
pub fn watch(
    index: &mut Index,
    folder: &Folder,
    device: &SigningKey,
    opts: &Options<'_>,
    timing: Timing,
    stop: &AtomicBool,
    mut report: impl FnMut(&Result<Summary, Error>),
) -> Result<(), Error> {
    run(
        index,
        folder,
        device,
        opts,
        timing,
        (stop, &AtomicBool::new(false)),
        channel(),
        |_, scanned| {
            if let Some(r) = scanned {
                report(r);
            }
            None
        },
    )
}

/// A folder's worker loop: like [`watch`], and after every scan (and every [`Wake::Other`])
/// it calls `step` with the index and the scan's outcome (`None`: no scan ran). `step` may ask
/// to be called again after a while (work it had to put off). Scans and steps never overlap.
/// While `paused` is set nothing is scanned or stepped (wake it with [`Wake::Disk`] when
/// clearing it: the scan then catches up).
#[allow(clippy::too_many_arguments)]
pub fn run(
    index: &mut Index,
    folder: &Folder,
    device: &SigningKey,
    opts: &Options<'_>,
    timing: Timing,
    (stop, paused): (&AtomicBool, &AtomicBool),
    (tx, rx): (mpsc::SyncSender<Wake>, mpsc::Receiver<Wake>),
    mut step: impl FnMut(&mut Index, Option<&Result<Summary, Error>>) -> Option<Duration>,
) -> Result<(), Error> {
    let marker = folder.root.join(MARKER_DIR);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wake = match res {
            Ok(event) => relevant(&event, &marker),
            // An error (such as an overflowed queue) may hide changes: scan.
            Err(_) => true,
        };
        if wake {
            let _ = tx.try_send(Wake::Disk);
        }
    })
    .map_err(|e| Error::Setup(format!("cannot watch {}: {e}", folder.root.display())))?;
    watcher
        .watch(&folder.root, RecursiveMode::Recursive)
        .map_err(|e| Error::Setup(format!("cannot watch {}: {e}", folder.root.display())))?;
    // Nor are they delivered: every write into a temp file there (a whole file being
    // installed) would otherwise be an event for this thread to read and drop (0.17 CPU s
    // per GiB received, measured in session 17). A `.harp` made again later is watched
    // again, and its events are still dropped by `relevant`.
    let _ = watcher.unwatch(&folder.root.join(MARKER_DIR));

    // A scan, then a step; returns when to step again and when to scan next. A failed scan
    // (a full disk under the index, an unreadable folder) is tried again at the step's retry
    // time, not at the next periodic rescan: the changes it missed have no event left to
    // bring them back.
    let scan_and_step = |index: &mut Index, step: &mut Step<'_>| {
        if paused.load(Ordering::Relaxed) {
            return (None, Instant::now() + timing.rescan_every);
        }
        let r = scan(index, folder, device, opts);
        let retry = step(index, Some(&r));
        let now = Instant::now();
        let next_scan = match (&r, retry) {
            (Err(_), Some(d)) => now + d,
            _ => now + timing.rescan_every,
        };
        (retry.map(|d| now + d), next_scan)
    };
    let (mut retry_at, mut next_rescan) = scan_and_step(index, &mut step);
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(POLL) {
            Ok(Wake::Disk) => {
                // Let the burst settle: wait until no disk event came for `settle`.
                // (An `Other` wake in the burst is served by the step after the scan.)
                loop {
                    match rx.recv_timeout(timing.settle) {
                        Ok(_) if !stop.load(Ordering::Relaxed) => continue,
                        _ => break,
                    }
                }
                (retry_at, next_rescan) = scan_and_step(index, &mut step);
            }
            Ok(Wake::Other) if !paused.load(Ordering::Relaxed) => {
                retry_at = step(index, None).map(|d| Instant::now() + d);
            }
            Ok(Wake::Other) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if now >= next_rescan {
                    (retry_at, next_rescan) = scan_and_step(index, &mut step);
                } else if retry_at.is_some_and(|t| now >= t) && !paused.load(Ordering::Relaxed) {
                    retry_at = step(index, None).map(|d| Instant::now() + d);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Setup("the file watcher stopped".to_owned()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn changes_are_scanned_after_they_settle_and_harp_s_own_files_are_not_events() {
        let (dir, folder) = crate::testutil::temp_folder();
        let root = folder.root.clone();
        let db = dir.path().join("index.sqlite3");
        let mut index = Index::open(&db).unwrap();
        let device = SigningKey::from_bytes(&[3; 32]);
        let stop = AtomicBool::new(false);
        let scans = Mutex::new(Vec::new());
        let timing = Timing {
            settle: Duration::from_millis(500),
            rescan_every: Duration::from_secs(3600),
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                watch(
                    &mut index,
                    &folder,
                    &device,
                    &Options {
                        threads: 1,
                        progress: None,
                        early: None,
                    },
                    timing,
                    &stop,
                    |r| {
                        scans
                            .lock()
                            .unwrap()
                            .push(r.as_ref().map(|s| s.created).map_err(|e| e.to_string()));
                    },
                )
                .unwrap();
            });
            let wait_for = |n: usize| {
                let deadline = Instant::now() + Duration::from_secs(20);
                while scans.lock().unwrap().len() < n {
                    assert!(
                        Instant::now() < deadline,
                        "no scan after {n}: {:?}",
                        scans.lock().unwrap()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            wait_for(1);
            // A burst of writes gives one scan once it settles.
            for i in 0..5 {
                std::fs::write(root.join(format!("n{i}.txt")), b"new").unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
            wait_for(2);
            // Writes inside .harp wake nothing.
            std::fs::write(root.join(".harp/scratch"), b"x").unwrap();
            std::thread::sleep(Duration::from_millis(1200));
            stop.store(true, Ordering::Relaxed);
        });
        let scans = scans.into_inner().unwrap();
        assert_eq!(scans, vec![Ok(0), Ok(5)]);
        let index = Index::open(&db).unwrap();
        assert_eq!(index.files(&folder.id).unwrap().len(), 5);
    }
}
