//! A folder's status as `harp status` and the web UI show it: what its worker's last round
//! left (idle, waiting and on what, paused, an error), with what runs now on top: a scan or a
//! sync round and how far it has got.
//!
//! The worker writes the last round's status once per round, which is enough for a folder
//! at rest; the live part is read from the counters the scanner ([`scan::Progress`]) and the
//! applier ([`sync::progress::Progress`]) update as they go, so a folder busy with a large
//! file shows "syncing, 40 %" instead of looking idle until it is done.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use harp_protocol::ids::FolderId;
use serde_json::{Value, json};

use crate::{scan, sync};

/// One folder's status, shared by its worker and the readers (control socket, web API).
#[derive(Debug, Default)]
pub struct FolderStatus {
    last: Mutex<Value>,
    /// When the last scan that went through ended (unix ms; 0: none yet).
    last_scan_ms: AtomicI64,
    /// The scan running now.
    pub scan: scan::Progress,
    /// The sync round running now.
    pub sync: sync::progress::Progress,
    /// Where files offered early for this folder are staged ([`crate::early`]), once the
    /// daemon says.
    early: std::sync::OnceLock<(std::sync::Arc<crate::early::Staging>, FolderId)>,
}

impl FolderStatus {
    /// A status that says `last` until the worker writes another.
    pub fn new(last: Value) -> Self {
        Self {
            last: Mutex::new(last),
            ..Self::default()
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Value> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the last round (or a pause, or a failure) left to show.
    pub fn set(&self, last: Value) {
        *self.last() = last;
    }

    /// Changes what the last round left.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        f(&mut self.last());
    }

    /// Shows the files `staging` holds for `folder` as `incoming` from now on.
    pub fn show_incoming(&self, staging: std::sync::Arc<crate::early::Staging>, folder: FolderId) {
        let _ = self.early.set((staging, folder));
    }

    /// Notes that a scan went through just now.
    pub fn scanned(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.last_scan_ms.store(now, Ordering::Relaxed);
    }

    /// The status to show now: `state` is `scanning` or `syncing` (with `progress`) while
    /// one runs, else what the last round left; `last_scan_ms` once a scan went through.
    pub fn now(&self) -> Value {
        let mut v = self.last().clone();
        if !v.is_object() {
            v = json!({});
        }
        let scanned = self.last_scan_ms.load(Ordering::Relaxed);
        if scanned > 0 {
            v["last_scan_ms"] = json!(scanned);
        }
        if let Some(s) = self.sync.snapshot() {
            v["state"] = json!("syncing");
            v["progress"] = json!(s);
            v["progress"]["eta_secs"] = json!(s.eta_secs());
        } else if let Some(s) = self.scan.snapshot() {
            v["state"] = json!("scanning");
            v["progress"] = json!(s);
        }
        // New files another device is still scanning, coming in ahead of their records.
        if let Some((staging, folder)) = self.early.get() {
            let incoming = staging.incoming(folder);
            if !incoming.is_empty() {
                v["incoming"] = incoming
                    .into_iter()
                    .map(|(path, done, total)| {
                        json!({"path": path, "bytes_done": done, "bytes_total": total})
                    })
                    .collect();
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_round_shows_over_the_last_one_and_goes_when_it_ends() {
        let s = FolderStatus::new(json!({"state": "idle", "files": 3}));
        assert_eq!(s.now()["state"], "idle");
        {
            let _round = s.sync.begin(2, 100);
            s.sync.wrote(25);
            let now = s.now();
            assert_eq!(now["state"], "syncing");
            assert_eq!(now["files"], 3, "the last round's figures stay");
            assert_eq!(now["progress"]["bytes_done"], 25);
            assert_eq!(now["progress"]["bytes_total"], 100);
        }
        assert_eq!(s.now()["state"], "idle");
        assert!(s.now().get("progress").is_none());
        {
            let _scan = s.scan.begin();
            assert_eq!(s.now()["state"], "scanning");
        }
        s.set(json!({"state": "paused"}));
        assert_eq!(s.now(), json!({"state": "paused"}));
        // A scan that went through shows when, over whatever the round left.
        s.scanned();
        let at = s.now()["last_scan_ms"].as_i64().unwrap();
        assert!(at > 1_700_000_000_000, "{at}");
        s.set(json!({"state": "idle"}));
        assert_eq!(s.now()["last_scan_ms"], at);
    }
}
