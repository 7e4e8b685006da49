//! `harp daemon`: this device, running.
//!
//! It runs the network node (listening, relay reservations, known peers, mDNS), serves every
//! folder's chunks to the folder's member devices, runs one worker thread per folder that
//! scans (watcher plus periodic rescan) and runs sync rounds ([`crate::sync`]) in turn with its
//! own index connection, keeps the folder documents in sync with connected members
//! ([`crate::net::meta`]), and answers a local control API. One daemon runs per data dir (a
//! lock file); it clears what a killed daemon left in the folders' temp areas.
//!
//! # Control API
//! A Unix socket in the data dir (`control.sock`, mode 0600: only this user). One request per
//! connection: a line of JSON with a `cmd`, answered by a line of JSON.
//!
//! | `cmd` | request fields | answer |
//! |---|---|---|
//! | `status` | | `device_id`, `peer_id`, `listen` addresses, `folders` (each with `sync`: state `idle`, `scanning` or `syncing` (with `progress`), `waiting` or `paused`, files, conflicts, what waits and why; `incoming`: new files another device is still scanning, staged here ahead of their records, with bytes done and total) |
//! | `peers` | | `peers`: device, direct, connections, rtt_ms, bytes_in, bytes_out, bulk_lane_bytes; `direct_ratio` |
//! | `bridge_refresh` | | `linked` (whether a bridge link runs); asks it for a full pass now (membership, keys, device approvals) |
//! | `fetch` | `folder`, `ids` (hex), `peers` (device ids) | fetched, bytes, missing, unfetched, failed_peers |
//! | `direction` | `folder` (id or label), `direction` (`send_receive`, `send_only`, `receive_only`; `-` for `_` too) | `direction`; the folder's worker applies it from its next round |
//! | `pause` | `folder`, `paused` (bool) | `paused`; resuming scans what changed meanwhile, then runs a round |
//! | `rescan` | `folder` | `rescan: true`; the worker scans the whole folder now, then runs a round (refused while paused) |
//! | `force` | `folder`, `force` (`revert` on a receive-only folder, `override` on a send-only one) | the report of the round the folder's worker runs for it (after a scan); refused while paused or in another direction |
//!
//! `fetch` moves blobs into memory and checks them, nothing more: it is how tests and
//! `harp bench` drive the chunk exchange between real processes.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use harp_protocol::ids::{ChunkId, DeviceId, FolderId};
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{Notify, mpsc};

use crate::folder_status::FolderStatus;
use crate::index::Index;
use crate::members::Members;
use crate::net::{self, Handle, chunks, meta, source::LocalSource};
use crate::node::Node;
use crate::scan::{
    self,
    watch::{Timing, Wake},
};
use crate::sync::apply::{self, Fetcher, sync_once};
use crate::sync::doc::FolderDoc;
use crate::sync::plan::Force;

/// The largest control request accepted.
const MAX_REQUEST: usize = 4 << 20;

fn parse_addrs(list: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    list.iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("{what}: {a:?} is not a multiaddr"))
        })
        .collect()
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(node: Node) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&node)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let c = &node.config;
    let net_config = net::Config {
        listen: parse_addrs(&c.listen, "listen")?,
        relays: parse_addrs(&c.relays, "relays")?,
        mdns: c.mdns,
        relay_server: false,
        hole_punching: c.hole_punching,
        idle_timeout: Duration::from_secs(120),
        max_send_bytes_per_sec: c.max_send_kib_per_sec.saturating_mul(1024),
        max_recv_bytes_per_sec: c.max_recv_kib_per_sec.saturating_mul(1024),
        bulk_lanes: c.bulk_lanes,
        bulk_lane_port: c.bulk_lane_port,
    };
    let (handle, event_loop) = {
        let _in_runtime = runtime.enter();
        net::start(net::keypair(node.device.to_bytes())?, &net_config)?
    };
    runtime.spawn(event_loop.run());

    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(Notify::new());
    // Large new files offered while they are scanned, and offers taken (crate::early).
    let outbox = Arc::new(crate::early::Outbox::default());
    let staging = Arc::new(crate::early::Staging::default());
    let mut statuses = Vec::new();
    let mut shared = HashMap::new();
    let mut workers = Vec::new();
    let mut link_folders = Vec::new();
    let mut folder_metrics = Vec::new();
    let creds = crate::bridge::Credentials::load(&node.dirs)?;
    let me = node.device_id();
    for f in &c.folders {
        let mut set: HashSet<DeviceId> = [me].into();
        for m in &f.members {
            set.insert(
                m.parse()
                    .with_context(|| format!("folder {}: member {m:?}", f.label))?,
            );
        }
        let members = Members::new(set.clone());
        // Whose chain entries are accepted: every device that ever was a member (a revoked
        // device's past versions stay valid history), while `members` is who is served now.
        let signers = Members::new(set);
        let doc_path = node
            .dirs
            .data
            .join("docs")
            .join(format!("{}.automerge", f.id));
        let doc = Arc::new(Mutex::new(FolderDoc::open(&doc_path)?));
        let status = Arc::new(FolderStatus::new(json!({"state": "starting"})));
        if c.early_transfer {
            status.show_incoming(staging.clone(), f.id);
        }
        let wakes = scan::watch::channel();
        if f.paused {
            status.set(json!({"state": "paused"}));
        }
        let control = FolderControl {
            direction: Arc::new(Mutex::new(f.direction)),
            paused: Arc::new(AtomicBool::new(f.paused)),
            forced: Arc::default(),
            wake: wakes.0.clone(),
        };
        statuses.push((f.id, status.clone(), control.clone()));
        let wake_tx = wakes.0.clone();
        let link_wake = wakes.0.clone();
        let ordering = crate::bridge::link::Ordered::default();
        let orderer = creds.as_ref().map(|c| crate::bridge::link::Orderer {
            client: crate::bridge::Client::new(c),
            folder: f.id,
            ordering: ordering.clone(),
        });
        link_folders.push(crate::bridge::link::LinkFolder {
            id: f.id,
            label: f.label.clone(),
            key: harp_protocol::keys::FolderKey::from_bytes(crate::config::read_secret(
                &node.dirs.folder_key(&f.id),
            )?),
            doc: doc.clone(),
            members: members.clone(),
            signers: signers.clone(),
            wake: Box::new(move || {
                let _ = link_wake.try_send(Wake::Other);
            }),
            ordering,
        });
        shared.insert(
            f.id,
            meta::SharedFolder {
                doc: doc.clone(),
                members: members.clone(),
                on_change: Box::new(move || {
                    let _ = wake_tx.try_send(Wake::Other);
                }),
            },
        );
        workers.push(start_worker(
            &node,
            f,
            Worker {
                doc,
                status,
                members,
                signers,
                metrics: {
                    let m = Arc::new(crate::metrics::FolderMetrics::new(&f.label));
                    folder_metrics.push(m.clone());
                    m
                },
                orderer,
                handle: handle.clone(),
                runtime: runtime.handle().clone(),
                pushed: pushed.clone(),
                stop: stop.clone(),
                control,
                early: c.early_transfer.then(|| (outbox.clone(), staging.clone())),
            },
            wakes,
        )?);
    }
    let shared: meta::Folders = Arc::new(shared);
    let bridge = crate::bridge::link::LinkHandle::default();
    let book = net::checkpoints::Book::default();
    match creds {
        Some(creds) => {
            let link = crate::bridge::link::Link {
                client: crate::bridge::Client::new(&creds),
                state_dir: node.dirs.data.join("bridge"),
                device: node.device.clone(),
                x25519_secret: crate::bridge::x25519_secret(&node.dirs)?,
                name: c.device_name.clone(),
                handle: handle.clone(),
                runtime: runtime.handle().clone(),
                folders: link_folders,
                stop: stop.clone(),
                status: bridge.status.clone(),
                refresh: bridge.refresh.clone(),
                credentials: creds.clone(),
                dirs: node.dirs.clone(),
                book: book.clone(),
                device_approval: c.device_approval,
            };
            workers.push(
                std::thread::Builder::new()
                    .name("harp-bridge-link".into())
                    .spawn(move || link.run())?,
            );
        }
        None => drop(link_folders),
    }
    runtime.spawn(net::checkpoints::serve(
        handle.clone(),
        shared.clone(),
        book,
    ));
    let result = runtime.block_on(serve(
        &node,
        handle,
        shared,
        pushed,
        statuses,
        bridge,
        folder_metrics,
        c.early_transfer.then_some((outbox, staging)),
    ));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    result
}

/// Removes what a killed daemon left in the folder's temp area: only one daemon runs per data
/// dir (see [`lock_data_dir`]), so nothing in it is in use.
fn clear_temp_area(folder: &scan::Folder) {
    let dir = crate::store::temp_dir(folder);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.map_while(Result::ok) {
        let path = e.path();
        let removed = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(err) = removed {
            tracing::warn!("cannot remove the leftover {}: {err}", path.display());
        }
    }
}

/// Takes the data dir's daemon lock (held until the process ends): a second daemon on the
/// same data would race the first one's index, documents and temp files.
pub(crate) fn lock_data_dir(node: &Node) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&node.dirs.data)?;
    let path = node.dirs.data.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another harp daemon is running on {} (stop it first)",
            node.dirs.data.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// What a folder's worker thread needs besides the folder.
struct Worker {
    doc: Arc<Mutex<FolderDoc>>,
    /// What `harp status` shows of this folder.
    status: Arc<FolderStatus>,
    members: Members,
    /// Devices whose chain entries are accepted (members past and present).
    signers: Members,
    /// This folder's counters for `/metrics`.
    metrics: Arc<crate::metrics::FolderMetrics>,
    /// The bridge as the orderer of `server_authoritative` folders (when logged in).
    orderer: Option<crate::bridge::link::Orderer>,
    handle: Handle,
    runtime: tokio::runtime::Handle,
    /// Notified when this device published changes (peers are due a session).
    pushed: Arc<Notify>,
    stop: Arc<AtomicBool>,
    /// The folder's direction and the forced rounds asked for (the control socket's side).
    control: FolderControl,
    /// Where this device's offered blobs wait and peers' offered files are staged, unless
    /// `early_transfer` is off.
    early: Option<(Arc<crate::early::Outbox>, Arc<crate::early::Staging>)>,
}

/// Forced rounds asked for, each with where its report goes.
type ForcedRounds = Arc<Mutex<Vec<(Force, tokio::sync::oneshot::Sender<Value>)>>>;

/// What the control socket changes of a running folder worker.
#[derive(Clone)]
struct FolderControl {
    /// The folder's direction here (`harp folder direction` changes it live).
    direction: Arc<Mutex<crate::config::Direction>>,
    /// Paused: neither scanned nor synced (`harp folder pause`, `resume`).
    paused: Arc<AtomicBool>,
    /// Forced rounds asked for (`harp folder revert`, `override`), each with where its
    /// report goes.
    forced: ForcedRounds,
    /// Wakes the worker.
    wake: std::sync::mpsc::SyncSender<Wake>,
}

impl FolderControl {
    fn direction(&self) -> crate::config::Direction {
        *self.direction.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How soon a round that had to put work off runs again.
const RETRY_DEFERRED: Duration = Duration::from_secs(2);
/// Rounds in a row while each one changes something (a conflict copy, then its install...).
const MAX_ROUNDS: usize = 4;

/// Starts the thread that scans and syncs one folder (scans and sync rounds never overlap).
fn start_worker(
    node: &Node,
    cfg: &crate::config::FolderConfig,
    w: Worker,
    wakes: (
        std::sync::mpsc::SyncSender<Wake>,
        std::sync::mpsc::Receiver<Wake>,
    ),
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let folder = node.open_folder(cfg)?;
    clear_temp_area(&folder);
    let mut index = Index::open(&node.dirs.index())?;
    // Before the first scan, which would take an edit cut short for a local one.
    crate::sync::apply::recover_edits_in_place(&index, &folder);
    let device = node.device.clone();
    let timing = Timing {
        settle: Duration::from_millis(node.config.watch_delay_ms),
        rescan_every: Duration::from_secs(node.config.rescan_interval_secs.max(1)),
    };
    let threads_n = node.config.hashing_threads;
    let label = cfg.label.clone();
    Ok(std::thread::Builder::new()
        .name(format!("harp-folder-{label}"))
        .spawn(move || {
            let offering = w.early.as_ref().map(|(outbox, _)| {
                let control = w.control.clone();
                crate::early::Offering {
                    folder: folder.id,
                    outbox: outbox.clone(),
                    handle: w.handle.clone(),
                    runtime: w.runtime.clone(),
                    members: w.members.clone(),
                    sending: Arc::new(move || {
                        !control.paused.load(Ordering::Relaxed)
                            && control.direction() != crate::config::Direction::ReceiveOnly
                    }),
                }
            });
            let opts = scan::Options {
                threads: threads_n,
                progress: Some(&w.status.scan),
                early: offering.as_ref().map(|o| o as &dyn scan::OfferNewFiles),
            };
            let fetcher = NetFetcher {
                handle: w.handle.clone(),
                runtime: w.runtime.clone(),
                folder: folder.id,
                members: w.members.clone(),
                staging: w.early.as_ref().map(|(_, s)| s.clone()),
            };
            let result = scan::watch::run(
                &mut index,
                &folder,
                &device,
                &opts,
                timing,
                (&w.stop, &w.control.paused),
                wakes,
                |index, scanned| {
                    match scanned {
                        Some(Ok(s)) => {
                            w.metrics.scanned(Some(s.elapsed));
                            w.status.scanned();
                        }
                        Some(Err(_)) => w.metrics.scanned(None),
                        None => {}
                    }
                    match scanned {
                        Some(Ok(s)) if s.created + s.modified + s.renamed + s.deleted > 0 => {
                            tracing::info!(
                                folder = %label,
                                "scanned: {} new, {} modified, {} renamed, {} deleted",
                                s.created,
                                s.modified,
                                s.renamed,
                                s.deleted
                            )
                        }
                        Some(Ok(_)) | None => {}
                        Some(Err(e)) => {
                            tracing::error!(folder = %label, "scan failed: {e}");
                            show_error(&w, format!("scan failed: {e}"));
                            // Never sync on top of a folder that could not be read.
                            return Some(RETRY_DEFERRED);
                        }
                    }
                    sync_rounds(index, &folder, &device, &w, &fetcher, &label)
                },
            );
            if let Err(e) = result {
                tracing::error!(folder = %label, "folder worker stopped: {e}");
            }
        })?)
}

/// Shows in the folder's status (`harp status`, the web UI) why it is stuck, until a round
/// goes through again (a full disk under the index, an unreadable folder...): a folder that
/// only logs its failures looks idle.
fn show_error(w: &Worker, error: String) {
    w.status.edit(|status| {
        if !status.is_object() {
            *status = json!({});
        }
        status["state"] = json!("error");
        status["error"] = json!(error);
    });
}

/// Sync rounds until nothing changes; saves the document and tells peers.
fn sync_rounds(
    index: &mut Index,
    folder: &scan::Folder,
    device: &ed25519_dalek::SigningKey,
    w: &Worker,
    fetcher: &NetFetcher,
    label: &str,
) -> Option<Duration> {
    let members = w.signers.snapshot();
    let direction = w.control.direction();
    let mut ctx = apply::Context {
        folder,
        device,
        members: &members,
        fetcher,
        authority: w
            .orderer
            .as_ref()
            .map(|o| o as &dyn crate::sync::apply::Authority),
        direction,
        force: None,
        progress: Some(&w.status.sync),
    };
    // Forced rounds first (after the scan that ran before this call), each answered.
    let forced = std::mem::take(&mut *w.control.forced.lock().unwrap_or_else(|e| e.into_inner()));
    let mut forced = forced.into_iter();
    let mut retry = None;
    for _ in 0..MAX_ROUNDS + forced.len() {
        let asked = forced.next();
        ctx.force = asked.as_ref().map(|(f, _)| *f);
        let heads = w.doc.lock().unwrap_or_else(|e| e.into_inner()).heads();
        let result = sync_once(index, &w.doc, &ctx);
        if let Some((_, tx)) = asked {
            let _ = tx.send(match &result {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => json!({"error": e.to_string()}),
            });
        }
        let report = match result {
            Ok(r) => {
                w.metrics.synced(&r);
                r
            }
            Err(e) => {
                tracing::error!(folder = %label, "sync round failed: {e}");
                show_error(w, format!("sync round failed: {e}"));
                return Some(RETRY_DEFERRED);
            }
        };
        // (The round saved the document itself, before recording what depends on it.)
        let doc_changed = w.doc.lock().unwrap_or_else(|e| e.into_inner()).heads() != heads;
        if doc_changed {
            w.pushed.notify_one();
        }
        if report.changed() {
            tracing::info!(
                folder = %label,
                "synced: {} published, {} installed, {} conflicts, {} bytes fetched, {} reused",
                report.published,
                report.installed,
                report.conflicts,
                report.fetched_bytes,
                report.reused_bytes
            );
        }
        retry = (!report.deferred.is_empty()).then_some(RETRY_DEFERRED);
        let (files, conflicts) = index.counts(&folder.id).unwrap_or_default();
        w.status.set(json!({
            "state": if w.control.paused.load(Ordering::Relaxed) {
                "paused"
            } else if report.deferred.is_empty() {
                "idle"
            } else {
                "waiting"
            },
            "files": files,
            "conflicts": conflicts,
            "last_round_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            "published": report.published,
            "installed": report.installed,
            "fetched_bytes": report.fetched_bytes,
            "waiting": report.deferred.iter().take(20).map(|(path, why)| json!({"path": path, "why": why})).collect::<Vec<_>>(),
            "waiting_total": report.deferred.len(),
            "not_here": report.refused.iter().take(20).map(|(path, why)| json!({"path": path, "why": why})).collect::<Vec<_>>(),
            "direction": direction.name(),
            "held_back": report.held_back.iter().take(20).collect::<Vec<_>>(),
            "held_back_total": report.held_back.len(),
        }));
        if !report.changed() && ctx.force.is_none() {
            break;
        }
    }
    retry
}

/// Takes member peers' offers of large new files for the folders here ([`crate::early`]).
struct EarlyReceiver {
    staging: Arc<crate::early::Staging>,
    folders: HashMap<FolderId, (Arc<scan::Folder>, Members, FolderControl)>,
    /// Its own connection, to see whether a path holds a file here.
    index: Mutex<Index>,
    handle: Handle,
    runtime: tokio::runtime::Handle,
}

impl net::early::EarlySink for EarlyReceiver {
    fn begin(
        &self,
        peer: PeerId,
        device: DeviceId,
        folder: FolderId,
        path: &str,
        size: u64,
    ) -> Option<Box<dyn net::early::EarlyFile>> {
        let (f, members, control) = self.folders.get(&folder)?;
        let decline = |why: &str| {
            tracing::debug!(%peer, path, "early offer declined: {why}");
            None
        };
        if !members.contains(&device) {
            return decline("not a member of the folder");
        }
        if control.paused.load(Ordering::Relaxed)
            || control.direction() == crate::config::Direction::SendOnly
        {
            return decline("the folder takes no changes here now");
        }
        if let Err(why) = harp_protocol::record::check_path(path) {
            return decline(why);
        }
        if size < crate::early::MIN_SIZE {
            return decline("a small file");
        }
        let row = self
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .file(&folder, path);
        match row {
            Ok(None) => {}
            Ok(Some(r)) if r.deleted => {}
            Ok(Some(_)) => return decline("a file is there"),
            Err(_) => return decline("the index cannot say what is there"),
        }
        if std::fs::symlink_metadata(f.root.join(path)).is_ok() {
            return decline("something is there on disk");
        }
        let room = crate::store::free_bytes(&f.root).unwrap_or(0);
        if room < size.saturating_add(crate::early::MIN_SIZE) {
            return decline("not enough free space");
        }
        self.staging.begin(
            peer,
            path,
            size,
            crate::early::StageWork {
                folder: f.clone(),
                fetcher: Box::new(crate::early::PeerFetcher {
                    handle: self.handle.clone(),
                    runtime: self.runtime.clone(),
                    peer,
                    folder,
                }),
            },
        )
    }
}

/// Fetches blobs of one folder from its connected member peers.
struct NetFetcher {
    handle: Handle,
    runtime: tokio::runtime::Handle,
    folder: FolderId,
    members: Members,
    /// Files peers offered early, staged here.
    staging: Option<Arc<crate::early::Staging>>,
}

impl Fetcher for NetFetcher {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(harp_protocol::blob::CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        let peers: Vec<PeerId> = match self.runtime.block_on(self.handle.peers()) {
            Ok(p) => p
                .into_iter()
                .filter(|p| p.device.is_some_and(|d| self.members.contains(&d)))
                .map(|p| p.peer)
                .collect(),
            Err(_) => Vec::new(),
        };
        chunks::fetch_blocking(&self.runtime, &self.handle, &peers, self.folder, ids, sink)
    }

    fn take_staged(&self, path: &str, size: u64) -> Option<crate::early::Staged> {
        self.staging.as_ref()?.take(&self.folder, path, size)
    }
}

#[allow(clippy::too_many_arguments)] // the daemon's parts, each handed over once
async fn serve(
    node: &Node,
    handle: Handle,
    shared: meta::Folders,
    pushed: Arc<Notify>,
    statuses: Vec<(FolderId, Arc<FolderStatus>, FolderControl)>,
    bridge: crate::bridge::link::LinkHandle,
    folder_metrics: Vec<Arc<crate::metrics::FolderMetrics>>,
    early: Option<(Arc<crate::early::Outbox>, Arc<crate::early::Staging>)>,
) -> anyhow::Result<()> {
    let c = &node.config;
    let me = node.device_id();
    let mut folders = Vec::new();
    // The folders that take offers of large new files (crate::early), with early transfer on.
    let mut offered = HashMap::new();
    for f in &c.folders {
        let members = shared
            .get(&f.id)
            .map(|s| s.members.clone())
            .unwrap_or_default();
        if early.is_some()
            && let Some((_, _, control)) = statuses.iter().find(|(id, _, _)| *id == f.id)
        {
            let folder = Arc::new(node.open_folder(f)?);
            offered.insert(f.id, (folder, members.clone(), control.clone()));
        }
        folders.push((node.open_folder(f)?, members));
    }
    let mut source = LocalSource::new(Index::open(&node.dirs.index())?.with_cache_mib(4)?, folders);
    if let Some((outbox, staging)) = early {
        source = source.with_outbox(outbox);
        let receiver = EarlyReceiver {
            staging,
            folders: offered,
            index: Mutex::new(Index::open(&node.dirs.index())?),
            handle: handle.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        tokio::spawn(net::early::serve(handle.clone(), Arc::new(receiver)));
    }
    tokio::spawn(chunks::serve(handle.clone(), Arc::new(source)));
    tokio::spawn(release_idle_buffers());
    let sessions = meta::Sessions::default();
    tokio::spawn(meta::serve(
        handle.clone(),
        shared.clone(),
        sessions.clone(),
    ));
    tokio::spawn(meta::keep_in_sync(handle.clone(), shared, pushed, sessions));

    for p in &c.peers {
        let device: DeviceId = p
            .device
            .parse()
            .with_context(|| format!("peer {:?}", p.device))?;
        let peer = net::peer_of(&device).context("peer id")?;
        let addrs = parse_addrs(&p.addresses, "peer addresses")?;
        for a in &addrs {
            handle.add_address(peer, a.clone()).await?;
        }
        tokio::spawn(keep_connected(
            handle.clone(),
            peer,
            net::in_dial_order(addrs),
        ));
    }

    if let Some(addr) = &c.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics_listen {addr}"))?;
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        let (h, folders) = (handle.clone(), Arc::new(folder_metrics));
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (h, folders) = (h.clone(), folders.clone());
                async move {
                    let peers = h.peers().await.unwrap_or_default();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        crate::metrics::render(&h.stats, &peers, &folders),
                    )
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("metrics server stopped: {e}");
            }
        });
    }

    let (statuses, controls): (Vec<_>, HashMap<_, _>) = statuses
        .into_iter()
        .map(|(id, status, control)| ((id, status), (id, control)))
        .unzip();
    let actions = {
        let folders: HashMap<FolderId, (FolderControl, Arc<FolderStatus>)> = statuses
            .iter()
            .filter_map(|(id, s)| Some((*id, (controls.get(id)?.clone(), s.clone()))))
            .collect();
        let dirs = node.dirs.clone();
        let actions: crate::web::FolderActions = Arc::new(move |id: &FolderId, action| {
            let Some((control, status)) = folders.get(id) else {
                return Err(crate::web::ActionError::NotRunning);
            };
            let paused = match action {
                crate::web::FolderAction::Rescan => {
                    return rescan(control).map_err(crate::web::ActionError::Refused);
                }
                crate::web::FolderAction::Pause(paused) => paused,
            };
            set_paused(control, Some(status), paused);
            // Kept in the config too, as `harp folder pause` does, so a restart keeps it.
            let saved = crate::config::Config::load(&dirs).and_then(|mut c| {
                if let Some(f) = c.folders.iter_mut().find(|f| f.id == *id) {
                    f.paused = paused;
                }
                c.save(&dirs)
            });
            if let Err(e) = saved {
                tracing::warn!("folder paused or resumed, but not saved in the config: {e}");
            }
            Ok(())
        });
        actions
    };
    let web = start_web(node, &handle, me, &bridge.status, &statuses, actions).await;

    let socket = node.dirs.control_socket();
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    // Tell whoever started us that we are up, and where we listen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for a in handle.listen_addrs().await? {
        println!(
            "listening on {}",
            a.with(libp2p::core::multiaddr::Protocol::P2p(handle.peer_id))
        );
    }
    println!("daemon ready: device {me}, control {}", socket.display());

    let state = Arc::new(State {
        handle,
        device: me,
        web,
        bridge,
        controls,
        folders: c
            .folders
            .iter()
            .map(|f| {
                let status = statuses
                    .iter()
                    .find(|(id, _)| *id == f.id)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default();
                (
                    json!({"id": f.id.to_string(), "label": f.label, "path": f.path}),
                    status,
                )
            })
            .collect(),
    });
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            r = &mut shutdown => { r?; break; }
            conn = listener.accept() => {
                let (stream, _) = conn?;
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = control(stream, &state).await {
                        tracing::warn!("control request failed: {e}");
                    }
                });
            }
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Starts the web UI on `web_listen`, if set; its address. A port in use is a warning, not a
/// failure: the daemon's work does not depend on it.
async fn start_web(
    node: &Node,
    handle: &Handle,
    me: DeviceId,
    bridge: &Arc<Mutex<Value>>,
    statuses: &[(FolderId, Arc<FolderStatus>)],
    actions: crate::web::FolderActions,
) -> Option<String> {
    let addr = node.config.web_listen.trim();
    if addr.is_empty() {
        return None;
    }
    let token = match crate::web::token(&node.dirs) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("web UI not started: {e:#}");
            return None;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("web UI not started: web_listen {addr}: {e}");
            return None;
        }
    };
    let url = format!("http://{}/", listener.local_addr().ok()?);
    let folders = node
        .config
        .folders
        .iter()
        .map(|f| {
            let status = statuses
                .iter()
                .find(|(id, _)| *id == f.id)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            (f.clone(), status)
        })
        .collect();
    let api = Arc::new(crate::web::Api::new(
        handle.clone(),
        me,
        bridge.clone(),
        folders,
        node.dirs.clone(),
        token,
        actions,
    ));
    println!("web UI on {url} (`harp ui` prints it with its token)");
    tokio::spawn(async move {
        if let Err(e) = crate::web::serve(api, listener).await {
            tracing::error!("{e:#}");
        }
    });
    Some(url)
}

/// How long blob buffers are kept without a blob moving ([`crate::buffers`]).
const BUFFERS_IDLE: Duration = Duration::from_secs(1);

/// Gives back the blob buffers a transfer left, once blobs stop moving: they count towards
/// the daemon's memory until then.
async fn release_idle_buffers() {
    let mut every = tokio::time::interval(BUFFERS_IDLE);
    loop {
        every.tick().await;
        let dropped = crate::buffers::release_if_idle(BUFFERS_IDLE);
        if dropped > 0 {
            tracing::debug!("{dropped} bytes of idle blob buffers given back");
        }
    }
}

/// How long one dial attempt may take before the next address is tried.
const DIAL_TIMEOUT: Duration = Duration::from_secs(8);
/// Pause between rounds of dials to a peer that is not connected.
const REDIAL_EVERY: Duration = Duration::from_secs(5);

/// Keeps a connection to a known peer: when none is open, tries its addresses one after the
/// other (concurrent dials through one relay would share, and wait on, one relay connection;
/// so a QUIC path blocked by a firewall would hold back the TCP one), then waits and retries.
async fn keep_connected(handle: Handle, peer: PeerId, addrs: Vec<Multiaddr>) {
    loop {
        let connected = match handle.peers().await {
            Ok(peers) => peers.iter().any(|p| p.peer == peer),
            Err(_) => return,
        };
        if !connected {
            for addr in &addrs {
                match tokio::time::timeout(DIAL_TIMEOUT, handle.dial(addr.clone())).await {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => tracing::warn!(%peer, "cannot reach peer: {e}"),
                    Err(_) => tracing::warn!(%peer, %addr, "dial timed out"),
                }
            }
        }
        tokio::time::sleep(REDIAL_EVERY).await;
    }
}

struct State {
    handle: Handle,
    device: DeviceId,
    /// The web UI's address, if it is served.
    web: Option<String>,
    /// The bridge link: its status, and the flag that asks it for a full pass.
    bridge: crate::bridge::link::LinkHandle,
    /// Each folder's fixed facts and its live sync status.
    folders: Vec<(Value, Arc<FolderStatus>)>,
    /// Each folder's worker, as the control socket changes it.
    controls: HashMap<FolderId, FolderControl>,
}

async fn control(stream: tokio::net::UnixStream, state: &State) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut r = BufReader::new(r).take(MAX_REQUEST as u64);
    r.read_line(&mut line).await?;
    let answer = match serde_json::from_str::<Value>(&line) {
        Ok(req) => answer(&req, state)
            .await
            .unwrap_or_else(|e| json!({"error": format!("{e:#}")})),
        Err(e) => json!({"error": format!("bad request: {e}")}),
    };
    w.write_all(format!("{answer}\n").as_bytes()).await?;
    Ok(())
}

async fn answer(req: &Value, state: &State) -> anyhow::Result<Value> {
    let h = &state.handle;
    match req["cmd"].as_str() {
        Some("status") => Ok(json!({
            "device_id": state.device.to_string(),
            "peer_id": h.peer_id.to_string(),
            "listen": h.listen_addrs().await?.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "web": state.web,
            "bridge": state.bridge.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            "folders": state.folders.iter().map(|(f, status)| {
                let mut f = f.clone();
                f["sync"] = status.now();
                f
            }).collect::<Vec<_>>(),
        })),
        Some("bridge_refresh") => {
            state.bridge.refresh.store(true, Ordering::Relaxed);
            let linked = !state
                .bridge
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_null();
            Ok(json!({ "linked": linked }))
        }
        Some("peers") => {
            let peers = h.peers().await?;
            let (direct, relayed) = h.stats.direct_and_relayed();
            let total = direct + relayed;
            Ok(json!({
                "peers": peers.iter().map(|p| json!({
                    "device": p.device.map(|d| d.to_string()),
                    "peer_id": p.peer.to_string(),
                    "direct": p.is_direct(),
                    "connections": p.connections.iter().map(|c| json!({"addr": c.addr.to_string(), "relayed": c.relayed})).collect::<Vec<_>>(),
                    "rtt_ms": p.rtt.map(|r| r.as_secs_f64() * 1000.0),
                    "agent": p.agent,
                    "bytes_in": p.bytes_in,
                    "bytes_out": p.bytes_out,
                    "bulk_lane_bytes": p.lane_bytes,
                })).collect::<Vec<_>>(),
                "bytes_direct": direct,
                "bytes_relayed": relayed,
                "direct_ratio": if total == 0 { Value::Null } else { json!(direct as f64 / total as f64) },
            }))
        }
        Some("fetch") => {
            let folder: FolderId = req["folder"]
                .as_str()
                .context("fetch needs folder")?
                .parse()?;
            let ids: Vec<ChunkId> = req["ids"]
                .as_array()
                .context("fetch needs ids")?
                .iter()
                .map(|v| {
                    v.as_str()
                        .context("ids are hex strings")?
                        .parse()
                        .map_err(anyhow::Error::from)
                })
                .collect::<anyhow::Result<_>>()?;
            let peers: Vec<PeerId> = req["peers"]
                .as_array()
                .context("fetch needs peers")?
                .iter()
                .map(|v| {
                    let d: DeviceId = v.as_str().context("peers are device ids")?.parse()?;
                    net::peer_of(&d).context("peer id")
                })
                .collect::<anyhow::Result<_>>()?;
            let (tx, mut rx) = mpsc::channel(64);
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let started = std::time::Instant::now();
            let outcome = chunks::fetch(h, &peers, folder, ids, &tx).await;
            drop(tx);
            let _ = drain.await;
            Ok(json!({
                "fetched": outcome.fetched,
                "bytes": outcome.bytes,
                "seconds": started.elapsed().as_secs_f64(),
                "missing": outcome.missing.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                "unfetched": outcome.unfetched.len(),
                "failed_peers": outcome.failed_peers.iter().map(|(p, e)| json!([p.to_string(), e])).collect::<Vec<_>>(),
            }))
        }
        Some("direction") => {
            let control = folder_control(req, state)?;
            let direction: crate::config::Direction = req["direction"]
                .as_str()
                .context("direction needs a direction")?
                .parse()
                .map_err(anyhow::Error::msg)?;
            *control.direction.lock().unwrap_or_else(|e| e.into_inner()) = direction;
            let _ = control.wake.try_send(Wake::Disk);
            Ok(json!({ "direction": direction.name() }))
        }
        Some("rescan") => {
            let control = folder_control(req, state)?;
            rescan(control).map_err(anyhow::Error::msg)?;
            Ok(json!({ "rescan": true }))
        }
        Some("pause") => {
            let control = folder_control(req, state)?;
            let paused = req["paused"].as_bool().context("pause needs paused")?;
            let status = state
                .folders
                .iter()
                .find(|(f, _)| req["folder"] == f["id"] || req["folder"] == f["label"])
                .map(|(_, s)| s.as_ref());
            set_paused(control, status, paused);
            Ok(json!({ "paused": paused }))
        }
        Some("force") => {
            let control = folder_control(req, state)?;
            let (force, needs) = match req["force"].as_str() {
                Some("revert") => (Force::Revert, crate::config::Direction::ReceiveOnly),
                Some("override") => (Force::Override, crate::config::Direction::SendOnly),
                other => anyhow::bail!("force needs revert or override, not {other:?}"),
            };
            if control.paused.load(Ordering::Relaxed) {
                anyhow::bail!("the folder is paused here: `harp folder resume` it first");
            }
            let direction = control.direction();
            if direction != needs {
                anyhow::bail!(
                    "the folder is {} here: only a {} folder can be {}",
                    direction.name(),
                    needs.name(),
                    if force == Force::Revert {
                        "reverted"
                    } else {
                        "overridden"
                    }
                );
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            control
                .forced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((force, tx));
            // A scan first, so that the round sees the disk as it is now.
            let _ = control.wake.try_send(Wake::Disk);
            tokio::time::timeout(FORCED_ROUND_TIMEOUT, rx)
                .await
                .context("the folder did not run the round in time (still busy?)")?
                .context("the folder worker stopped")
        }
        other => anyhow::bail!("unknown command {other:?}"),
    }
}

/// How long a forced round (`harp folder revert`, `override`) may take to start and finish.
const FORCED_ROUND_TIMEOUT: Duration = Duration::from_secs(600);

/// Pauses or resumes a folder's worker (the control socket's `pause`, the web UI's button).
fn set_paused(control: &FolderControl, status: Option<&FolderStatus>, paused: bool) {
    control.paused.store(paused, Ordering::Relaxed);
    if paused {
        if let Some(status) = status {
            status.set(json!({"state": "paused"}));
        }
    } else {
        // The scan catches up with what changed meanwhile, then a round runs.
        let _ = control.wake.try_send(Wake::Disk);
    }
}

/// Asks a folder's worker for a full scan now (then a round), as the periodic rescan does.
fn rescan(control: &FolderControl) -> Result<(), String> {
    if control.paused.load(Ordering::Relaxed) {
        return Err("the folder is paused here: resume it first".into());
    }
    // A full channel means wakes are pending already: a scan runs anyway.
    let _ = control.wake.try_send(Wake::Disk);
    Ok(())
}

/// The worker of the folder a control request names (by id or label).
fn folder_control<'s>(req: &Value, state: &'s State) -> anyhow::Result<&'s FolderControl> {
    let name = req["folder"]
        .as_str()
        .context("the request needs a folder")?;
    let id = state
        .folders
        .iter()
        .find(|(f, _)| f["id"] == name || f["label"] == name)
        .and_then(|(f, _)| f["id"].as_str()?.parse::<FolderId>().ok())
        .with_context(|| format!("no folder {name:?} runs in this daemon"))?;
    state
        .controls
        .get(&id)
        .with_context(|| format!("no folder {name:?} runs in this daemon"))
}

/// Sends one control request to the running daemon and returns its answer.
pub fn request(socket: &Path, req: &Value) -> anyhow::Result<Value> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "no daemon is running (cannot connect to {}): start it with `harp daemon`",
            socket.display()
        )
    })?;
    s.write_all(format!("{req}\n").as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line).context("the daemon's answer is not JSON")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        anyhow::bail!("daemon: {e}");
    }
    Ok(v)
}
