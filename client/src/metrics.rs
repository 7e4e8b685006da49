//! Prometheus metrics of a running daemon (`metrics_listen` in `config.toml`, path `/metrics`).
//!
//! Counts only (no file names): chunk bytes over direct and relayed connections and the share
//! that went direct, blobs verified and rejected, connected peers by path, and per folder the
//! scans (count, total and last duration), sync rounds, versions published and installed,
//! conflict copies, bytes fetched and reused.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::net::{PeerInfo, Stats};
use crate::sync::apply::Report;

/// One folder's counters, updated by its worker.
#[derive(Debug, Default)]
pub struct FolderMetrics {
    /// The folder's label (the metric label).
    pub label: String,
    scans: AtomicU64,
    scan_failures: AtomicU64,
    scan_nanos: AtomicU64,
    last_scan_nanos: AtomicU64,
    rounds: AtomicU64,
    published: AtomicU64,
    installed: AtomicU64,
    conflicts: AtomicU64,
    fetched_bytes: AtomicU64,
    early_bytes: AtomicU64,
    reused_bytes: AtomicU64,
}

impl FolderMetrics {
    /// Counters for a folder.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            ..Self::default()
        }
    }

    /// A scan finished (`None`: it failed).
    pub fn scanned(&self, took: Option<Duration>) {
        match took {
            Some(d) => {
                let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                self.scans.fetch_add(1, Relaxed);
                self.scan_nanos.fetch_add(nanos, Relaxed);
                self.last_scan_nanos.store(nanos, Relaxed);
            }
            None => {
                self.scan_failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// A sync round finished.
    pub fn synced(&self, r: &Report) {
        self.rounds.fetch_add(1, Relaxed);
        self.published.fetch_add(r.published, Relaxed);
        self.installed.fetch_add(r.installed, Relaxed);
        self.conflicts.fetch_add(r.conflicts, Relaxed);
        self.fetched_bytes.fetch_add(r.fetched_bytes, Relaxed);
        self.early_bytes.fetch_add(r.early_bytes, Relaxed);
        self.reused_bytes.fetch_add(r.reused_bytes, Relaxed);
    }
}

/// A label value, escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics in Prometheus' text format (version 0.0.4).
pub fn render(
    stats: &Stats,
    peers: &[PeerInfo],
    folders: &[std::sync::Arc<FolderMetrics>],
) -> String {
    let mut out = String::new();
    let (direct, relayed) = stats.direct_and_relayed();
    family(
        &mut out,
        "harp_chunk_bytes_total",
        "counter",
        "Chunk bytes exchanged with peers, by connection path.",
    );
    let _ = writeln!(out, "harp_chunk_bytes_total{{path=\"direct\"}} {direct}");
    let _ = writeln!(out, "harp_chunk_bytes_total{{path=\"relayed\"}} {relayed}");
    family(
        &mut out,
        "harp_direct_ratio",
        "gauge",
        "Share of chunk bytes that went over direct connections (NaN before any).",
    );
    let total = direct + relayed;
    if total == 0 {
        let _ = writeln!(out, "harp_direct_ratio NaN");
    } else {
        let _ = writeln!(out, "harp_direct_ratio {}", direct as f64 / total as f64);
    }
    family(
        &mut out,
        "harp_bulk_lane_bytes_total",
        "counter",
        "Chunk bytes (both ways) that went over bulk lanes rather than libp2p streams; direct only.",
    );
    let _ = writeln!(out, "harp_bulk_lane_bytes_total {}", stats.lane_bytes());
    let (verified, rejected) = stats.verified_and_rejected();
    family(
        &mut out,
        "harp_chunks_verified_total",
        "counter",
        "Blobs received from peers that matched their id.",
    );
    let _ = writeln!(out, "harp_chunks_verified_total {verified}");
    family(
        &mut out,
        "harp_chunks_rejected_total",
        "counter",
        "Blobs received from peers that did not match their id (the peer was disconnected).",
    );
    let _ = writeln!(out, "harp_chunks_rejected_total {rejected}");
    let direct_peers = peers.iter().filter(|p| p.is_direct()).count();
    family(
        &mut out,
        "harp_peers",
        "gauge",
        "Connected peers, by whether a direct connection exists.",
    );
    let _ = writeln!(out, "harp_peers{{path=\"direct\"}} {direct_peers}");
    let _ = writeln!(
        out,
        "harp_peers{{path=\"relayed\"}} {}",
        peers.len() - direct_peers
    );

    type Get = fn(&FolderMetrics) -> u64;
    let per_folder: [(&str, &str, &str, Get); 10] = [
        ("harp_scans_total", "counter", "Completed scans.", |m| {
            m.scans.load(Relaxed)
        }),
        (
            "harp_scan_failures_total",
            "counter",
            "Scans that failed.",
            |m| m.scan_failures.load(Relaxed),
        ),
        (
            "harp_sync_rounds_total",
            "counter",
            "Sync rounds run.",
            |m| m.rounds.load(Relaxed),
        ),
        (
            "harp_versions_published_total",
            "counter",
            "Local versions put into the folder document.",
            |m| m.published.load(Relaxed),
        ),
        (
            "harp_versions_installed_total",
            "counter",
            "Remote versions installed (content, renames, deletes).",
            |m| m.installed.load(Relaxed),
        ),
        (
            "harp_conflicts_total",
            "counter",
            "Conflict copies made.",
            |m| m.conflicts.load(Relaxed),
        ),
        (
            "harp_fetched_bytes_total",
            "counter",
            "File bytes written from chunks fetched from peers.",
            |m| m.fetched_bytes.load(Relaxed),
        ),
        (
            "harp_early_bytes_total",
            "counter",
            "Of the fetched bytes, those fetched while the sending device was still scanning \
             the new file (early transfer).",
            |m| m.early_bytes.load(Relaxed),
        ),
        (
            "harp_reused_bytes_total",
            "counter",
            "File bytes written from chunks found locally.",
            |m| m.reused_bytes.load(Relaxed),
        ),
        (
            "harp_scan_seconds_total",
            "counter",
            "Time spent scanning.",
            |m| m.scan_nanos.load(Relaxed),
        ),
    ];
    for (name, kind, help, get) in per_folder {
        family(&mut out, name, kind, help);
        for m in folders {
            let v = get(m);
            if name == "harp_scan_seconds_total" {
                let _ = writeln!(
                    out,
                    "{name}{{folder=\"{}\"}} {}",
                    label(&m.label),
                    v as f64 / 1e9
                );
            } else {
                let _ = writeln!(out, "{name}{{folder=\"{}\"}} {v}", label(&m.label));
            }
        }
    }
    family(
        &mut out,
        "harp_last_scan_seconds",
        "gauge",
        "Duration of the folder's last scan.",
    );
    for m in folders {
        let _ = writeln!(
            out,
            "harp_last_scan_seconds{{folder=\"{}\"}} {}",
            label(&m.label),
            m.last_scan_nanos.load(Relaxed) as f64 / 1e9
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_holds_every_family_with_escaped_labels() {
        let stats = Stats::default();
        let f = std::sync::Arc::new(FolderMetrics::new("My \"docs\""));
        f.scanned(Some(Duration::from_millis(1500)));
        f.synced(&Report {
            published: 2,
            conflicts: 1,
            fetched_bytes: 10,
            ..Report::default()
        });
        stats.checked(true);
        stats.checked(false);
        let text = render(&stats, &[], std::slice::from_ref(&f));
        assert!(text.contains("harp_bulk_lane_bytes_total 0\n"), "{text}");
        assert!(text.contains("harp_direct_ratio NaN"), "{text}");
        assert!(text.contains("harp_chunks_rejected_total 1"), "{text}");
        assert!(
            text.contains("harp_conflicts_total{folder=\"My \\\"docs\\\"\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("harp_last_scan_seconds{folder=\"My \\\"docs\\\"\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("harp_versions_published_total{folder=\"My \\\"docs\\\"\"} 2"),
            "{text}"
        );
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
        // Lane bytes count as direct chunk bytes too, in one place.
        let peer = libp2p::PeerId::random();
        stats.count_lane(&peer, 7, true);
        stats.count_lane(&peer, 5, false);
        assert_eq!(stats.lane_bytes_of(&peer), 12);
        assert_eq!(stats.of(&peer), (7, 5));
        let text = render(&stats, &[], &[f]);
        assert!(text.contains("harp_bulk_lane_bytes_total 12\n"), "{text}");
        assert!(text.contains("harp_direct_ratio 1\n"), "{text}");
    }
}
