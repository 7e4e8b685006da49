//! The daemon's link to the bridge: one thread that keeps the bridge and this device in step.
//!
//! Each pass (every few seconds, a full one every [`FULL_EVERY`]):
//! - **rendezvous**: registers the device, publishes its listen addresses (with a TTL), and
//!   dials member devices it is not connected to at the addresses the bridge has for them;
//! - **membership**: every device of every member of a folder becomes a member device here
//!   (their chain entries are accepted, they may fetch chunks); the folder key is wrapped for
//!   member devices that may not have it yet;
//! - **metadata**: folder document changes this device has and the bridge lacks are sealed
//!   and uploaded; changes after the last cursor are downloaded, opened and applied, so a new
//!   or long-offline device catches up with no peer online;
//! - **chains**: chain links not yet sent are appended (in `server_authoritative` folders as
//!   a compare-and-swap on the head).
//!
//! The bridge is never on the data path: a failing bridge only delays discovery and metadata.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use harp_protocol::ids::{ChainHash, DeviceId, FolderId};
use harp_protocol::keys::FolderKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use harp_protocol::epoch::{EpochError, EpochKey, Grant, Keyring};
use harp_protocol::intro::Introduction;

use super::{Appended, Client, Error};
use crate::members::Members;
use crate::net::{self, Handle};
use crate::sync::doc::FolderDoc;

/// How often the local part of a pass runs: uploads when there are local changes (no request
/// otherwise). Peers exchange metadata directly and at once; the bridge path is for devices
/// that were offline, so its delay costs little.
const PASS_EVERY: Duration = Duration::from_secs(5);
/// How often membership, keys, addresses and dials are refreshed, and changes downloaded.
/// (A Nextcloud answers each request with a full PHP bootstrap: idle devices must be quiet.)
pub const FULL_EVERY: Duration = Duration::from_secs(30);

/// [`FULL_EVERY`], or `HARP_BRIDGE_POLL_SECS` (for tests that cannot wait 30 s per step).
fn full_every() -> Duration {
    std::env::var("HARP_BRIDGE_POLL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(FULL_EVERY, Duration::from_secs)
}
/// How long published addresses stay valid; they are republished well before.
const ADDRESS_TTL: u64 = 600;
/// Most bytes of sealed changes in one upload request.
const UPLOAD_BATCH_BYTES: usize = 8 << 20;

/// The link as the rest of the daemon sees it: what `harp status` shows of it, and a flag
/// that asks it for a full pass now (`harp device approve|forget` set it through the control
/// socket, so that an approval takes effect at once, not at the next 30 s pass).
#[derive(Debug, Clone, Default)]
pub struct LinkHandle {
    /// What `harp status` shows of the bridge (null: not logged in).
    pub status: Arc<Mutex<Value>>,
    /// Set: do a full pass now.
    pub refresh: Arc<AtomicBool>,
}

/// A folder as the link sees it.
pub struct LinkFolder {
    /// Its id.
    pub id: FolderId,
    /// Label, for the bridge and logs.
    pub label: String,
    /// Its key (wrapped for members; seals changes).
    pub key: FolderKey,
    /// Its document.
    pub doc: Arc<Mutex<FolderDoc>>,
    /// Its member devices now (set from the bridge): who is served.
    pub members: Members,
    /// Every device that was a member (grown from the bridge): whose chain entries count.
    pub signers: Members,
    /// Wakes the folder's worker (document changed).
    pub wake: Box<dyn Fn() + Send + Sync>,
    /// The folder's versioning as the bridge says (shared with the worker's [`Orderer`]).
    pub ordering: Ordered,
}

/// What a folder's versioning is known to be: shared by the link (which learns it) and the
/// folder's worker (which claims links when the bridge orders them).
#[derive(Debug, Clone, Default)]
pub struct Ordered(Arc<std::sync::atomic::AtomicU8>);

impl Ordered {
    const UNKNOWN: u8 = 0;
    const CRDT: u8 = 1;
    const SERVER: u8 = 2;

    fn set(&self, server_authoritative: bool) {
        let v = if server_authoritative {
            Self::SERVER
        } else {
            Self::CRDT
        };
        self.0.store(v, AtomicOrdering::Relaxed);
    }

    fn get(&self) -> Option<bool> {
        match self.0.load(AtomicOrdering::Relaxed) {
            Self::UNKNOWN => None,
            v => Some(v == Self::SERVER),
        }
    }
}

/// The bridge as the orderer of a `server_authoritative` folder: claims a file's next chain
/// link by compare-and-swap (see [`crate::sync::apply::Authority`]).
pub struct Orderer {
    /// The bridge.
    pub client: Client,
    /// The folder.
    pub folder: FolderId,
    /// Its versioning, as the link learnt it.
    pub ordering: Ordered,
}

impl crate::sync::apply::Authority for Orderer {
    fn orders(&self) -> bool {
        if let Some(known) = self.ordering.get() {
            return known;
        }
        // Not learnt yet (the link's first pass is under way): ask once. A bridge that cannot
        // be reached leaves the folder unordered for now: offline-first beats blocking.
        match self.client.folder(&self.folder) {
            Ok(Some(info)) => {
                let ordered = info.versioning == "server_authoritative";
                self.ordering.set(ordered);
                ordered
            }
            Ok(None) | Err(_) => false,
        }
    }

    fn claim(
        &self,
        file: &harp_protocol::ids::FileId,
        prev: &ChainHash,
        entry: &harp_protocol::chain::Entry,
        head: &ChainHash,
    ) -> Result<crate::sync::apply::Claim, String> {
        use crate::sync::apply::Claim;
        let expected = (entry.seq > 1).then_some(*prev);
        match self.client.append_entry(
            &self.folder,
            file,
            prev,
            &entry.encode(),
            head,
            expected.as_ref(),
        ) {
            Ok(Appended::Stored) => Ok(Claim::Accepted),
            Ok(Appended::HeadMoved(now)) => Ok(Claim::Lost(now)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What the link remembers per folder across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FolderState {
    /// The last change cursor read.
    cursor: i64,
    /// Document heads the bridge is known to have everything before.
    synced_heads: Vec<String>,
    /// Chain links already appended.
    links_sent: HashSet<String>,
    /// Search index entries sent: file id → digest of the record they describe.
    #[serde(default)]
    indexed: HashMap<String, String>,
    /// The folder's versioning as last learnt (`server_authoritative` or not).
    #[serde(default)]
    server_authoritative: Option<bool>,
    /// The Automerge actors this device wrote as (one per daemon start): each device uploads
    /// its own changes only, so the bridge holds every change once.
    my_actors: HashSet<String>,
    /// The newest checkpoint of the folder's log this device accepted: size, root (base64).
    /// Every later one must extend it (a consistency proof), or the bridge rewrote history.
    #[serde(default)]
    checkpoint: Option<(u64, String)>,
    /// Per witness of the folder's policy: the size it last cosigned, as far as this device
    /// knows (the `old` of its next `add-checkpoint`; a 409 corrects it).
    #[serde(default)]
    witnessed: HashMap<String, u64>,
    /// The member devices that may hold the current key epoch (set at the first pass, then
    /// kept by rotations and grants): one that stops being a member starts a new epoch.
    #[serde(default)]
    key_holders: Option<std::collections::BTreeSet<String>>,
    /// Every key grant seen in the change stream (hex): each carries the epoch before its own,
    /// so a device that gets a newer epoch later walks back through them.
    #[serde(default)]
    grants: Vec<String>,
    /// The cursor to read changes again from once a grant brings the key they need.
    #[serde(default)]
    reread_from: Option<i64>,
    /// Introductions seen in the change stream (hex; signatures checked).
    #[serde(default)]
    introductions: Vec<String>,
    /// What this device last said in this folder's stream about each device it approved:
    /// trusted (true) or withdrawn (false).
    #[serde(default)]
    introduced: HashMap<String, bool>,
}

/// Everything the link thread needs.
pub struct Link {
    /// The bridge.
    pub client: Client,
    /// Where state is kept (`<data>/bridge/`).
    pub state_dir: PathBuf,
    /// This device.
    pub device: SigningKey,
    /// Its X25519 secret.
    pub x25519_secret: [u8; 32],
    /// Its name.
    pub name: String,
    /// The network.
    pub handle: Handle,
    /// The daemon's runtime.
    pub runtime: tokio::runtime::Handle,
    /// The folders.
    pub folders: Vec<LinkFolder>,
    /// Set when the daemon stops.
    pub stop: Arc<AtomicBool>,
    /// What `harp status` shows of the bridge.
    pub status: Arc<Mutex<Value>>,
    /// The login (its pinned log key; saved once learnt).
    pub credentials: super::Credentials,
    /// Where the login is saved.
    pub dirs: crate::config::Dirs,
    /// The checkpoints this device and its peers accepted (exchanged peer to peer).
    pub book: net::checkpoints::Book,
    /// Which listed devices are trusted (config `device_approval`).
    pub device_approval: crate::approval::Mode,
    /// Set by the daemon's control API: do a full pass now.
    pub refresh: Arc<AtomicBool>,
}

struct Progress {
    registered: bool,
    published: Option<(Vec<String>, Instant)>,
    wrapped: HashSet<(FolderId, DeviceId)>,
    on_bridge: HashSet<FolderId>,
    states: HashMap<FolderId, FolderState>,
    last_links_heads: HashMap<FolderId, Vec<automerge::ChangeHash>>,
    last_index_heads: HashMap<FolderId, Vec<automerge::ChangeHash>>,
    authoritative: HashSet<FolderId>,
    plaintext_index: HashSet<FolderId>,
    refused_links: HashSet<String>,
    conflicts: u64,
    /// The bridge's checkpoint key: (name, key).
    log_key: Option<(String, ed25519_dalek::VerifyingKey)>,
    /// Per folder: the log as last checked ("verified at size N", or what is wrong).
    logs: HashMap<FolderId, Value>,
    /// Another device's checkpoint already found consistent: (its size, this device's size).
    peer_checked: HashMap<(FolderId, DeviceId), (u64, u64)>,
    /// Devices approved here (read at each full pass; see [`crate::approval`]).
    approved: std::collections::BTreeMap<DeviceId, crate::approval::Approved>,
    /// Devices listed by the bridge and not approved, found in this full pass.
    waiting: std::collections::BTreeMap<String, crate::approval::Waiting>,
    /// Each folder's key epochs ([`crate::keyring`]).
    rings: HashMap<FolderId, Keyring>,
    /// Devices trusted here through introductions (`device_approval = "manual"`).
    vouched: std::collections::BTreeMap<DeviceId, crate::approval::Introduced>,
}

impl Link {
    /// Runs until `stop`.
    pub fn run(self) {
        let mut p = Progress {
            registered: false,
            published: None,
            wrapped: HashSet::new(),
            on_bridge: HashSet::new(),
            states: self
                .folders
                .iter()
                .map(|f| {
                    let mut s = self.load_state(&f.id);
                    if let Some(known) = s.server_authoritative {
                        f.ordering.set(known);
                    }
                    let actor = f.doc.lock().unwrap_or_else(|e| e.into_inner()).actor();
                    if s.my_actors.insert(actor) {
                        self.save_state(&f.id, &s);
                    }
                    (f.id, s)
                })
                .collect(),
            last_links_heads: HashMap::new(),
            last_index_heads: HashMap::new(),
            authoritative: HashSet::new(),
            plaintext_index: HashSet::new(),
            refused_links: HashSet::new(),
            conflicts: 0,
            log_key: None,
            logs: HashMap::new(),
            peer_checked: HashMap::new(),
            approved: Default::default(),
            waiting: Default::default(),
            rings: self
                .folders
                .iter()
                .map(|f| {
                    let ring =
                        crate::keyring::load(&self.dirs, &f.id, &f.key).unwrap_or_else(|e| {
                            // Epoch 0 still reads and writes; the link says what is wrong.
                            tracing::error!(folder = %f.label, "key epochs: {e}");
                            Keyring::new(&f.key)
                        });
                    (f.id, ring)
                })
                .collect(),
            vouched: Default::default(),
        };
        let mut last_full: Option<Instant> = None;
        while !self.stop.load(AtomicOrdering::Relaxed) {
            let asked = self.refresh.swap(false, AtomicOrdering::Relaxed);
            let full = asked || last_full.is_none_or(|t| t.elapsed() >= full_every());
            let outcome = self.pass(&mut p, full);
            let state = match &outcome {
                Ok(()) => "linked".to_owned(),
                Err(e) => {
                    tracing::warn!("bridge: {e}");
                    format!("error: {e}")
                }
            };
            if full && outcome.is_ok() {
                last_full = Some(Instant::now());
            }
            *self.status.lock().unwrap_or_else(|e| e.into_inner()) = json!({
                "url": self.client.base(),
                "user": self.client.user,
                "state": state,
                "server_authoritative_conflicts": p.conflicts,
                "device_approval": self.device_approval,
                "waiting_devices": p.waiting.keys().collect::<Vec<_>>(),
                "logs": self
                    .folders
                    .iter()
                    .filter_map(|f| p.logs.get(&f.id).map(|v| (f.label.clone(), v.clone())))
                    .collect::<serde_json::Map<String, Value>>(),
                "key_epochs": self
                    .folders
                    .iter()
                    .filter_map(|f| p.rings.get(&f.id).map(|r| (f.label.clone(), json!(r.current().epoch))))
                    .collect::<serde_json::Map<String, Value>>(),
            });
            let until = Instant::now()
                + if outcome.is_ok() {
                    PASS_EVERY
                } else {
                    full_every() / 4
                };
            while Instant::now() < until
                && !self.stop.load(AtomicOrdering::Relaxed)
                && !self.refresh.load(AtomicOrdering::Relaxed)
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn state_path(&self, id: &FolderId) -> PathBuf {
        self.state_dir.join(format!("{id}.json"))
    }

    fn load_state(&self, id: &FolderId) -> FolderState {
        std::fs::read(self.state_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, id: &FolderId, s: &FolderState) {
        let path = self.state_path(id);
        let result = serde_json::to_vec(s)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::config::write_private(&path, &b).map_err(std::io::Error::other));
        if let Err(e) = result {
            tracing::warn!("bridge: saving {}: {e}", path.display());
        }
    }

    fn me(&self) -> DeviceId {
        DeviceId::of_signing_key(&self.device)
    }

    fn pass(&self, p: &mut Progress, full: bool) -> Result<(), Error> {
        if !p.registered {
            // Registered already (by `harp login`) with this key: nothing to send.
            let x = harp_protocol::wrap::x25519_public(&self.x25519_secret);
            let known = match self.client.device(&self.me()) {
                Ok(d) => d.x25519 == x,
                Err(e) if e.status() == Some(404) => false,
                Err(e) => return Err(e),
            };
            if !known {
                self.client
                    .register(&self.device, &self.x25519_secret, &self.name)?;
                tracing::info!(
                    "bridge: device registered with {} as {}",
                    self.client.base(),
                    self.client.user
                );
            }
            p.registered = true;
        }
        if full {
            self.publish(p)?;
            p.approved = match crate::approval::approved(&self.dirs) {
                Ok(a) => a,
                Err(e) => {
                    // Fail closed: nobody but this device is approved until the file reads.
                    tracing::error!("device approvals: {e}");
                    Default::default()
                }
            };
            p.waiting.clear();
            if self.device_approval == crate::approval::Mode::Manual {
                let statements: Vec<Introduction> = p
                    .states
                    .values()
                    .flat_map(|s| &s.introductions)
                    .filter_map(|h| data_encoding::HEXLOWER.decode(h.as_bytes()).ok())
                    .filter_map(|b| Introduction::decode(&b).ok())
                    .collect();
                let me = self.me();
                p.vouched = crate::approval::vouched(&p.approved, &statements);
                // This device, and devices approved here directly, need no introduction.
                p.vouched
                    .retain(|d, _| *d != me && !p.approved.contains_key(d));
                let file = p
                    .vouched
                    .iter()
                    .map(|(d, i)| (d.to_string(), i.clone()))
                    .collect();
                if let Err(e) = crate::approval::set_introduced(&self.dirs, &file) {
                    tracing::error!("device approvals: {e}");
                }
            }
        }
        for f in &self.folders {
            if full {
                self.membership(p, f)?;
            }
            if !p.on_bridge.contains(&f.id) {
                continue;
            }
            if full {
                self.download(p, f)?;
                self.audit_log(p, f)?;
            }
            if full && self.device_approval == crate::approval::Mode::Manual {
                self.introduce(p, f)?;
            }
            self.upload(p, f)?;
            self.send_links(p, f)?;
            self.send_index(p, f)?;
        }
        if full && self.device_approval == crate::approval::Mode::Manual {
            let before = crate::approval::waiting(&self.dirs).unwrap_or_default();
            for (id, w) in p.waiting.iter_mut() {
                match before.get(id) {
                    Some(old) => w.first_seen_ms = old.first_seen_ms,
                    None => tracing::warn!(
                        "bridge: device {id} of user {} is listed for {:?} and waits for approval here (harp device approve {id})",
                        w.user,
                        w.folders
                    ),
                }
            }
            if let Err(e) = crate::approval::set_waiting(&self.dirs, &p.waiting) {
                tracing::error!("device approvals: {e}");
            }
        }
        Ok(())
    }

    fn publish(&self, p: &mut Progress) -> Result<(), Error> {
        let mut addrs: Vec<String> = self
            .runtime
            .block_on(self.handle.listen_addrs())
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.to_string())
            .filter(|a| !a.contains("/0.0.0.0/") && !a.contains("/::/"))
            .map(|a| {
                if a.contains("/p2p/") {
                    a
                } else {
                    format!("{a}/p2p/{}", self.handle.peer_id)
                }
            })
            .collect();
        addrs.sort();
        addrs.dedup();
        let due = match &p.published {
            Some((prev, at)) => {
                *prev != addrs || at.elapsed() >= Duration::from_secs(ADDRESS_TTL / 2)
            }
            None => true,
        };
        if due && !addrs.is_empty() {
            self.client
                .publish_addresses(&self.me(), &addrs, ADDRESS_TTL)?;
            p.published = Some((addrs, Instant::now()));
        }
        Ok(())
    }

    fn membership(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        let info = match self.client.folder(&f.id)? {
            Some(i) => i,
            None => {
                // Not on the bridge yet (a folder made before logging in): put it there,
                // owned by this user, with the key wrapped for this device.
                let own = super::wrap_for(
                    &f.id,
                    &f.key,
                    &self.me(),
                    &harp_protocol::wrap::x25519_public(&self.x25519_secret),
                    &self.device,
                )?;
                match self.client.create_folder(&f.id, &f.label, false, &own) {
                    Ok(()) => tracing::info!(folder = %f.label, "bridge: folder created"),
                    Err(e) if e.status() == Some(409) => {
                        tracing::warn!(folder = %f.label, "bridge: the folder belongs to another user who has not shared it with {}", self.client.user);
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                match self.client.folder(&f.id)? {
                    Some(i) => i,
                    None => return Ok(()),
                }
            }
        };
        p.on_bridge.insert(f.id);
        if info.plaintext_index {
            p.plaintext_index.insert(f.id);
        } else {
            p.plaintext_index.remove(&f.id);
        }
        let ordered = info.versioning == "server_authoritative";
        f.ordering.set(ordered);
        if ordered {
            p.authoritative.insert(f.id);
        } else {
            p.authoritative.remove(&f.id);
        }
        let state = p.states.entry(f.id).or_default();
        if state.server_authoritative != Some(ordered) {
            state.server_authoritative = Some(ordered);
            self.save_state(&f.id, state);
        }
        let me = self.me();
        // The bridge is the authority on a folder it holds: its members' devices, and this
        // one. A revoked device, or one of a user the folder is no longer shared with, stops
        // being served at once (its sessions and chunk requests are refused).
        // Only devices trusted here count (`device_approval`); the others wait for approval.
        let (devices, waiting) = crate::approval::split(
            self.device_approval,
            &p.approved,
            &p.vouched,
            &me,
            info.devices.iter().map(|(_, d)| *d),
        );
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for d in &waiting {
            let user = info
                .devices
                .iter()
                .find(|(_, x)| x == d)
                .map(|(u, _)| u.clone())
                .unwrap_or_default();
            let w = p
                .waiting
                .entry(d.to_string())
                .or_insert_with(|| crate::approval::Waiting {
                    user,
                    folders: Default::default(),
                    first_seen_ms: now_ms,
                });
            w.folders.insert(f.label.clone());
        }
        f.signers.extend(devices.iter().copied());
        let (added, removed) = f
            .members
            .replace(devices.iter().copied().chain([me]).collect());
        for d in added {
            tracing::info!(folder = %f.label, "bridge: {d} is a member device now");
        }
        for d in removed {
            tracing::warn!(folder = %f.label, "bridge: {d} is no longer a member device");
        }
        self.keep_epoch(p, f, &info, &devices)?;
        let peers = self
            .runtime
            .block_on(self.handle.peers())
            .unwrap_or_default();
        let owner = info.owner == self.client.user;
        for (user, d) in info
            .devices
            .iter()
            .filter(|(_, d)| *d != me && devices.contains(d))
        {
            // The owner's devices give the key to every member device; a member's devices to
            // that member's other devices (a new laptop can start while the owner is away).
            let should_wrap =
                (owner || *user == self.client.user) && !p.wrapped.contains(&(f.id, *d));
            let connected =
                net::peer_of(d).is_some_and(|peer| peers.iter().any(|x| x.peer == peer));
            if !should_wrap && connected {
                continue;
            }
            let device = match self.client.device(d) {
                Ok(x) => x,
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(e),
            };
            if should_wrap {
                let w = super::wrap_for(&f.id, &f.key, d, &device.x25519, &self.device)?;
                self.client.put_key(&f.id, &w)?;
                p.wrapped.insert((f.id, *d));
            }
            if !connected {
                self.dial(d, &device.addresses);
            }
        }
        Ok(())
    }

    /// Keeps the folder's key epoch to its member devices (`harp_protocol::epoch`): when a
    /// device that may hold the current epoch is no longer a member (its user left or was
    /// removed, it was revoked, or it is no longer approved here), a new epoch is made and
    /// granted to the member devices that remain; a member device new since then is granted
    /// the current epoch (and through it the earlier ones) by the devices that also wrap the
    /// folder key for it. Two devices that rotate at once make two epochs: both are granted
    /// and readable, and everyone writes with the same one ([`Keyring::current`]).
    fn keep_epoch(
        &self,
        p: &mut Progress,
        f: &LinkFolder,
        info: &super::FolderInfo,
        devices: &[DeviceId],
    ) -> Result<(), Error> {
        use std::collections::BTreeSet;
        let me = self.me();
        let current: BTreeSet<DeviceId> = devices.iter().copied().chain([me]).collect();
        let state = p.states.entry(f.id).or_default();
        let holders: BTreeSet<DeviceId> = match &state.key_holders {
            Some(h) => h.iter().filter_map(|d| d.parse().ok()).collect(),
            // The first pass: whoever is a member now may hold the key. (A device removed
            // before this device ever linked is not known to it.)
            None => current.clone(),
        };
        let ring = p.rings.entry(f.id).or_insert_with(|| Keyring::new(&f.key));
        let gone: Vec<DeviceId> = holders.difference(&current).copied().collect();
        let newcomers: Vec<DeviceId> = current.difference(&holders).copied().collect();
        let grant = if !gone.is_empty() {
            let previous = ring.current().clone();
            let key = EpochKey {
                epoch: previous.epoch + 1,
                secret: super::new_secret()?,
            };
            let to = self.recipients(current.iter())?;
            let g = Grant::make(
                &f.id,
                &key,
                Some(&previous),
                &to,
                &self.device,
                &mut super::GrantRandom::new()?,
            );
            // Kept on disk before it is used or the grant leaves: the bridge never holds an
            // epoch no device kept.
            let mut next = ring.clone();
            next.insert(key);
            crate::keyring::save(&self.dirs, &f.id, &next)?;
            *ring = next;
            tracing::warn!(
                folder = %f.label,
                "bridge: {} no longer a member device: the folder's metadata key is now epoch {}",
                gone.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                ring.current().epoch
            );
            Some(g)
        } else if !newcomers.is_empty() && ring.current().epoch > 0 {
            let owner = info.owner == self.client.user;
            let mine: Vec<&DeviceId> = newcomers
                .iter()
                .filter(|d| {
                    owner
                        || info
                            .devices
                            .iter()
                            .any(|(u, x)| x == *d && *u == self.client.user)
                })
                .collect();
            if mine.is_empty() {
                None
            } else {
                let key = ring.current().clone();
                let previous = ring
                    .keys()
                    .iter()
                    .filter(|k| k.epoch + 1 == key.epoch)
                    .min_by_key(|k| k.id())
                    .cloned();
                let to = self.recipients(mine.into_iter())?;
                Some(Grant::make(
                    &f.id,
                    &key,
                    previous.as_ref(),
                    &to,
                    &self.device,
                    &mut super::GrantRandom::new()?,
                ))
            }
        } else {
            None
        };
        if let Some(g) = grant {
            let bytes = g.encode();
            self.client
                .append_changes(&f.id, &me, std::slice::from_ref(&bytes))?;
            state.grants.push(data_encoding::HEXLOWER.encode(&bytes));
        }
        let holders: BTreeSet<String> = current.iter().map(ToString::to_string).collect();
        if state.key_holders.as_ref() != Some(&holders) {
            state.key_holders = Some(holders);
            self.save_state(&f.id, state);
        }
        Ok(())
    }

    /// Says in the folder's change stream, signed, which devices are approved here, and
    /// which no longer are (`harp_protocol::intro`): devices that approved this one as an
    /// introducer trust them too.
    fn introduce(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        let state = p.states.entry(f.id).or_default();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut say = Vec::new();
        for d in p.approved.keys() {
            if state.introduced.get(&d.to_string()) != Some(&true) {
                say.push(Introduction::make(&self.device, *d, true, now_ms));
            }
        }
        for (d, trusted) in &state.introduced {
            let Ok(id) = d.parse::<DeviceId>() else {
                continue;
            };
            if *trusted && !p.approved.contains_key(&id) {
                say.push(Introduction::make(&self.device, id, false, now_ms));
            }
        }
        if say.is_empty() {
            return Ok(());
        }
        let bytes: Vec<Vec<u8>> = say.iter().map(Introduction::encode).collect();
        self.client.append_changes(&f.id, &self.me(), &bytes)?;
        for s in &say {
            state.introduced.insert(s.device.to_string(), s.trusted);
        }
        self.save_state(&f.id, state);
        Ok(())
    }

    /// The X25519 keys of `devices`, as the bridge lists them (a device it no longer knows is
    /// left out: it is not a member).
    fn recipients<'a>(
        &self,
        devices: impl Iterator<Item = &'a DeviceId>,
    ) -> Result<Vec<(DeviceId, [u8; 32])>, Error> {
        let mut out = Vec::new();
        for d in devices {
            if *d == self.me() {
                out.push((*d, harp_protocol::wrap::x25519_public(&self.x25519_secret)));
                continue;
            }
            match self.client.device(d) {
                Ok(info) => out.push((*d, info.x25519)),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn dial(&self, device: &DeviceId, addresses: &[String]) {
        let Some(peer) = net::peer_of(device) else {
            return;
        };
        let addrs = net::in_dial_order(addresses.iter().filter_map(|a| a.parse().ok()).collect());
        if addrs.is_empty() {
            return;
        }
        let handle = self.handle.clone();
        self.runtime.spawn(async move {
            for a in &addrs {
                let _ = handle.add_address(peer, a.clone()).await;
            }
            for a in addrs {
                match tokio::time::timeout(Duration::from_secs(8), handle.dial(a.clone())).await {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => tracing::debug!(%peer, %a, "bridge address did not answer: {e}"),
                    Err(_) => tracing::debug!(%peer, %a, "dial timed out"),
                }
            }
        });
    }

    fn download(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        let state = p.states.entry(f.id).or_default();
        let ring = p.rings.entry(f.id).or_insert_with(|| Keyring::new(&f.key));
        let mut applied = 0usize;
        loop {
            let (changes, next) = self.client.read_changes(&f.id, state.cursor)?;
            if changes.is_empty() {
                break;
            }
            let mut raw = Vec::new();
            let mut new_keys = false;
            for (cursor, sealed) in &changes {
                if Grant::is_grant(sealed) {
                    new_keys |= self.take_grant(f, ring, state, sealed);
                    continue;
                }
                if Introduction::is_introduction(sealed) {
                    match Introduction::decode(sealed) {
                        Ok(_) => {
                            let hex = data_encoding::HEXLOWER.encode(sealed);
                            if !state.introductions.contains(&hex) {
                                state.introductions.push(hex);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(folder = %f.label, cursor, "bridge: introduction refused: {e}")
                        }
                    }
                    continue;
                }
                match ring.open_change(&f.id, sealed) {
                    Ok(c) => raw.push(c),
                    Err(EpochError::UnknownKey(_)) => {
                        // Its grant may come later in the stream (a device that joined after
                        // the rotation is granted the epoch when a member sees it): read it
                        // again then.
                        if state.reread_from.is_none() {
                            tracing::info!(folder = %f.label, cursor, "bridge: changes sealed in a key epoch this device does not hold yet; read again once it is granted");
                        }
                        let at = cursor - 1;
                        state.reread_from = Some(state.reread_from.map_or(at, |r| r.min(at)));
                    }
                    Err(e) => {
                        tracing::warn!(folder = %f.label, cursor, "bridge: a change does not open: {e}")
                    }
                }
            }
            let last = changes.last().map_or(state.cursor, |(c, _)| *c);
            {
                let mut doc = f.doc.lock().unwrap_or_else(|e| e.into_inner());
                let before = doc.heads();
                doc.apply_changes(raw)
                    .map_err(|e| Error::Malformed(e.to_string()))?;
                if doc.heads() != before {
                    applied += 1;
                }
            }
            state.cursor = last;
            if new_keys {
                if let Err(e) = crate::keyring::save(&self.dirs, &f.id, ring) {
                    tracing::error!(folder = %f.label, "key epochs: {e}");
                }
                tracing::info!(folder = %f.label, epoch = ring.current().epoch, "bridge: key epoch granted");
                if let Some(at) = state.reread_from.take() {
                    state.cursor = state.cursor.min(at);
                    continue;
                }
            }
            if next.is_none() {
                break;
            }
        }
        self.save_state(&f.id, state);
        if applied > 0 {
            tracing::debug!(folder = %f.label, "bridge: document changes downloaded");
            (f.wake)();
        }
        Ok(())
    }

    /// Takes a key grant from the change stream: the epoch it gives this device, and every
    /// earlier epoch the grants seen so far lead back to. Returns whether a key was added.
    fn take_grant(
        &self,
        f: &LinkFolder,
        ring: &mut Keyring,
        state: &mut FolderState,
        bytes: &[u8],
    ) -> bool {
        let grant = match Grant::decode(bytes) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(folder = %f.label, "bridge: a key grant does not decode: {e}");
                return false;
            }
        };
        // Granted by a device that is or was a member of the folder (as the bridge lists
        // them, and approved here): the rule a wrapped folder key is taken by.
        let trusted = |d: &DeviceId| f.signers.contains(d) || f.members.contains(d);
        if let Err(e) = grant.verify(&f.id, trusted) {
            tracing::warn!(folder = %f.label, "bridge: key grant refused: {e}");
            return false;
        }
        let hex = data_encoding::HEXLOWER.encode(bytes);
        if !state.grants.contains(&hex) {
            state.grants.push(hex);
        }
        let mut added = false;
        match grant.secret_for(&self.me(), &self.x25519_secret) {
            Ok(Some(k)) => added |= ring.insert(k),
            Ok(None) => {}
            Err(e) => tracing::warn!(folder = %f.label, "bridge: key grant refused: {e}"),
        }
        // Walk back: any grant of an epoch held here opens the epoch before it.
        let grants: Vec<Grant> = state
            .grants
            .iter()
            .filter_map(|h| data_encoding::HEXLOWER.decode(h.as_bytes()).ok())
            .filter_map(|b| Grant::decode(&b).ok())
            .collect();
        added |= ring.walk_back(&grants);
        added
    }

    fn upload(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        let state = p.states.entry(f.id).or_default();
        let synced: Vec<automerge::ChangeHash> = state
            .synced_heads
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        let (changes, heads) = f
            .doc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changes_after(&synced, &state.my_actors);
        if changes.is_empty() {
            if heads != synced {
                state.synced_heads = heads.iter().map(ToString::to_string).collect();
                self.save_state(&f.id, state);
            }
            return Ok(());
        }
        let me = self.me();
        let key = match p.rings.get(&f.id) {
            Some(r) => r.current().clone(),
            None => EpochKey::zero(&f.key),
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (_, c) in &changes {
            let sealed = super::seal_change(&key, &f.id, c)?;
            bytes += sealed.len();
            batch.push(sealed);
            if batch.len() == 256 || bytes >= UPLOAD_BATCH_BYTES {
                self.client.append_changes(&f.id, &me, &batch)?;
                batch.clear();
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.client.append_changes(&f.id, &me, &batch)?;
        }
        state.synced_heads = heads.iter().map(ToString::to_string).collect();
        self.save_state(&f.id, state);
        tracing::debug!(folder = %f.label, "bridge: {} document changes uploaded", changes.len());
        Ok(())
    }

    fn send_links(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        let (links, heads) = {
            let mut doc = f.doc.lock().unwrap_or_else(|e| e.into_inner());
            let heads = doc.heads();
            if p.last_links_heads.get(&f.id) == Some(&heads) {
                return Ok(());
            }
            (doc.links(), heads)
        };
        let authoritative = p.authoritative.contains(&f.id);
        let state = p.states.entry(f.id).or_default();
        let mut sent = 0;
        for (head, prev, entry) in links {
            let key = head.to_hex();
            if state.links_sent.contains(&key) || p.refused_links.contains(&key) {
                continue;
            }
            let expected: Option<ChainHash> = (authoritative && entry.seq > 1).then_some(prev);
            match self.client.append_entry(
                &f.id,
                &entry.file,
                &prev,
                &entry.encode(),
                &head,
                expected.as_ref(),
            ) {
                Ok(Appended::Stored) => {
                    state.links_sent.insert(key);
                    sent += 1;
                }
                Ok(Appended::HeadMoved(now)) => {
                    p.conflicts += 1;
                    p.refused_links.insert(key);
                    tracing::warn!(
                        folder = %f.label,
                        file = %entry.file,
                        "bridge: server_authoritative: the file's head moved to {} first; this version stays local",
                        now.map(|h| h.to_hex()).unwrap_or_default()
                    );
                }
                Err(Error::Refused {
                    status: 422,
                    message,
                    ..
                }) => {
                    tracing::warn!(folder = %f.label, file = %entry.file, "bridge refused a chain link: {message}");
                    p.refused_links.insert(key);
                }
                Err(e) => return Err(e),
            }
        }
        if sent > 0 {
            self.save_state(&f.id, state);
        }
        p.last_links_heads.insert(f.id, heads);
        Ok(())
    }

    /// Sends the search index entries of the files whose last version this device wrote (each
    /// device indexes its own changes, so every file is indexed once): names in plaintext
    /// folders, keyed word tokens in encrypted ones.
    fn send_index(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        let me = self.me();
        let epoch = match p.rings.get(&f.id) {
            Some(r) => r.current().clone(),
            None => EpochKey::zero(&f.key),
        };
        let (files, heads, authors) = {
            let mut doc = f.doc.lock().unwrap_or_else(|e| e.into_inner());
            let heads = doc.heads();
            if p.last_index_heads.get(&f.id) == Some(&heads) {
                return Ok(());
            }
            let files = doc.files();
            let authors: HashMap<ChainHash, DeviceId> = files
                .values()
                .flatten()
                .filter_map(|r| {
                    doc.entry(&r.chain_head)
                        .map(|(_, e)| (r.chain_head, e.author))
                })
                .collect();
            (files, heads, authors)
        };
        let plaintext = p.plaintext_index.contains(&f.id);
        let state = p.states.entry(f.id).or_default();
        let mut entries = Vec::new();
        let mut sent = Vec::new();
        for (id, values) in &files {
            // Concurrent values: the one furthest along its chain (ties: the larger digest).
            let Some(r) = values.iter().max_by_key(|r| (r.seq, r.digest())) else {
                continue;
            };
            if r.kind == harp_protocol::manifest::EntryKind::Directory
                || authors.get(&r.chain_head) != Some(&me)
            {
                continue;
            }
            let digest = data_encoding::HEXLOWER.encode(&r.digest().0);
            let key = id.to_hex();
            if state.indexed.get(&key) == Some(&digest) {
                continue;
            }
            let mut e = json!({
                "file_id": key,
                "size": r.size,
                "mtime_ms": r.mtime_ns / 1_000_000,
                "deleted": r.deleted,
            });
            if plaintext {
                e["name"] = json!(r.path);
            } else {
                e["tokens"] = json!(
                    epoch
                        .search_tokens(&r.path)
                        .iter()
                        .map(|t| data_encoding::HEXLOWER.encode(t))
                        .collect::<Vec<_>>()
                );
            }
            entries.push(e);
            sent.push((key, digest));
        }
        if !entries.is_empty() {
            self.client.put_index(&f.id, &entries)?;
            state.indexed.extend(sent);
            self.save_state(&f.id, state);
            tracing::debug!(folder = %f.label, "bridge: {} search index entries sent", entries.len());
        }
        p.last_index_heads.insert(f.id, heads);
        Ok(())
    }

    /// The pinned checkpoint key, learnt from the bridge on first use (and saved with the
    /// login) when the login did not pin one.
    fn log_key(
        &self,
        p: &mut Progress,
    ) -> Result<Option<(String, ed25519_dalek::VerifyingKey)>, Error> {
        if p.log_key.is_none() {
            let text = match &self.credentials.log_key {
                Some(k) => Some(k.clone()),
                None => {
                    let learnt = self.client.log_key()?;
                    if let Some(k) = &learnt {
                        let mut creds = self.credentials.clone();
                        creds.log_key = Some(k.clone());
                        creds.save(&self.dirs)?;
                        tracing::info!("bridge: pinned its checkpoint key {k}");
                    }
                    learnt
                }
            };
            p.log_key = text.as_deref().and_then(parse_verifier_key);
        }
        Ok(p.log_key.clone())
    }

    /// Checks the folder log's newest checkpoint: signed by the pinned key, for this folder,
    /// and an extension of the last one accepted (a consistency proof). A rollback, a rewritten
    /// history or a bad signature is an alarm: logged, shown by `harp status`, and the
    /// checkpoint is not accepted.
    fn audit_log(&self, p: &mut Progress, f: &LinkFolder) -> Result<(), Error> {
        use harp_protocol::tlog::{self, Checkpoint, Note};
        let Some((name, key)) = self.log_key(p)? else {
            return Ok(());
        };
        let (_, text) = match self.client.checkpoint(&f.id) {
            Ok(c) => c,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        let alarm = |p: &mut Progress, why: String| -> Result<(), Error> {
            tracing::error!(folder = %f.label, "the bridge's log of this folder: {why}");
            p.logs
                .insert(f.id, json!({ "state": "alarm", "problem": why }));
            Ok(())
        };
        let checked = Note::parse(&text)
            .and_then(|n| n.verified_by(&name, &key).map(str::to_owned))
            .and_then(|body| Checkpoint::parse(&body));
        let cp = match checked {
            Ok(cp) if cp.origin == format!("harp/{}", f.id) => cp,
            Ok(cp) => {
                return alarm(p, format!("a checkpoint of another log ({})", cp.origin));
            }
            Err(e) => return alarm(p, format!("a checkpoint that does not verify: {e}")),
        };
        let state = p.states.entry(f.id).or_default();
        if let Some((size, root_b64)) = &state.checkpoint {
            let old_root: tlog::Hash = match data_encoding::BASE64
                .decode(root_b64.as_bytes())
                .ok()
                .and_then(|b| b.try_into().ok())
            {
                Some(r) => r,
                None => return Ok(()),
            };
            let problem = if cp.size < *size {
                Some(format!("rolled back from {size} entries to {}", cp.size))
            } else if cp.size == *size {
                (cp.root != old_root).then(|| format!("two different logs of {size} entries"))
            } else {
                let proof = self.client.consistency(&f.id, *size, cp.size)?;
                tlog::verify_consistency(*size, cp.size, &proof, &old_root, &cp.root)
                    .err()
                    .map(|e| format!("not an extension of the {size} entries accepted before: {e}"))
            };
            if let Some(why) = problem {
                return alarm(p, why);
            }
        }
        let root = data_encoding::BASE64.encode(&cp.root);
        if state.checkpoint.as_ref() != Some(&(cp.size, root.clone())) {
            state.checkpoint = Some((cp.size, root));
            self.save_state(&f.id, state);
        }
        if let Some(why) = self.exchange_checkpoints(p, f, &cp, &text, &name, &key)? {
            return alarm(p, why);
        }
        p.logs
            .insert(f.id, json!({ "state": "verified", "size": cp.size }));
        self.witness(p, f, &cp, &text)
    }

    /// Tells the folder's connected member devices which checkpoint this device accepted and
    /// hears theirs (`/harp/checkpoints/1`, peer to peer), then checks each: it must be this
    /// one, or be proven by the bridge to extend it or to be extended by it. A bridge that
    /// shows two devices two histories cannot prove that: a split view.
    fn exchange_checkpoints(
        &self,
        p: &mut Progress,
        f: &LinkFolder,
        cp: &harp_protocol::tlog::Checkpoint,
        text: &str,
        name: &str,
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<Option<String>, Error> {
        use harp_protocol::tlog::{self, Checkpoint, Note, VerifierKey};
        let me = self.me();
        if let Ok(note) = Note::parse(text) {
            // Only the bridge's own signature line: cosignatures are not the point here.
            let id = VerifierKey::log(name, key).id();
            if let Some((_, _, payload)) = note
                .signatures
                .iter()
                .find(|(n, i, _)| n == name && *i == id)
            {
                let mut bytes = id.to_vec();
                bytes.extend_from_slice(payload);
                let own = format!(
                    "{}\n\u{2014} {name} {}\n",
                    note.body,
                    data_encoding::BASE64.encode(&bytes)
                );
                self.book.set_mine(&f.id, &own);
            }
        }
        let peers = self
            .runtime
            .block_on(self.handle.peers())
            .unwrap_or_default();
        for peer in peers {
            if !peer
                .device
                .is_some_and(|d| d != me && f.members.contains(&d))
            {
                continue;
            }
            let result = self.runtime.block_on(net::checkpoints::exchange(
                &self.handle,
                &self.book,
                peer.peer,
                f.id,
            ));
            if let Err(e) = result {
                tracing::debug!(folder = %f.label, peer = %peer.peer, "checkpoint exchange: {e}");
            }
        }
        for (device, note_text) in self.book.theirs(&f.id) {
            if device == me {
                continue;
            }
            let peer = match Note::parse(&note_text)
                .and_then(|n| n.verified_by(name, key).map(str::to_owned))
                .and_then(|body| Checkpoint::parse(&body))
            {
                Ok(c) if c.origin == cp.origin => c,
                Ok(_) | Err(_) => {
                    tracing::warn!(folder = %f.label, "device {device} recorded a checkpoint that is not this log's, signed by the bridge");
                    continue;
                }
            };
            if p.peer_checked.get(&(f.id, device)) == Some(&(peer.size, cp.size)) {
                continue;
            }
            let (small, big) = if peer.size <= cp.size {
                (&peer, cp)
            } else {
                (cp, &peer)
            };
            let consistent = if small.size == big.size {
                small.root == big.root
            } else {
                match self.client.consistency(&f.id, small.size, big.size) {
                    Ok(proof) => tlog::verify_consistency(
                        small.size,
                        big.size,
                        &proof,
                        &small.root,
                        &big.root,
                    )
                    .is_ok(),
                    Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => false,
                    Err(e) => return Err(e),
                }
            };
            if !consistent {
                return Ok(Some(format!(
                    "split view: device {device} was shown a log of {} entries, and this device one of {} that the bridge cannot prove to be the same history",
                    peer.size, cp.size
                )));
            }
            p.peer_checked.insert((f.id, device), (peer.size, cp.size));
        }
        Ok(None)
    }

    /// Has the folder policy's witnesses cosign the accepted checkpoint `cp` (signed note
    /// `text`) and stores their cosignatures on the bridge, so proofs carry them. A witness
    /// that refuses because the checkpoint does not extend what it cosigned has been shown
    /// another history of this log (a split view): an alarm.
    fn witness(
        &self,
        p: &mut Progress,
        f: &LinkFolder,
        cp: &harp_protocol::tlog::Checkpoint,
        text: &str,
    ) -> Result<(), Error> {
        use crate::witness::{Submitted, submit};
        let policy = match crate::trust::load(&self.dirs, &f.id) {
            Ok(policy) => policy,
            Err(e) => {
                tracing::warn!(folder = %f.label, "the folder's policy: {e:#}");
                return Ok(());
            }
        };
        if policy.witnesses.is_empty() {
            return Ok(());
        }
        let Ok(note) = harp_protocol::tlog::Note::parse(text) else {
            return Ok(());
        };
        let mut cosigned = Vec::new();
        let mut alarm = None;
        for w in &policy.witnesses {
            let name = &w.key.name;
            if note.cosigned_by(name, &w.key.key).is_ok() {
                cosigned.push(name.clone());
                continue;
            }
            let Some(url) = &w.url else { continue };
            let state = p.states.entry(f.id).or_default();
            let mut old = state
                .witnessed
                .get(name)
                .copied()
                .filter(|&s| s <= cp.size)
                .unwrap_or(0);
            for attempt in 0..2 {
                let proof = if old == 0 || old == cp.size {
                    Vec::new()
                } else {
                    self.client.consistency(&f.id, old, cp.size)?
                };
                match submit(url, old, &proof, text) {
                    Ok(Submitted::Cosigned(line)) => {
                        let line = line.trim_end_matches('\n');
                        let valid = harp_protocol::tlog::Note::parse(&format!("{text}{line}\n"))
                            .and_then(|n| n.cosigned_by(name, &w.key.key))
                            .is_ok();
                        if !valid || line.contains('\n') {
                            tracing::warn!(folder = %f.label, "witness {name} answered with no valid cosignature");
                            break;
                        }
                        self.client.add_cosignature(&f.id, cp.size, line)?;
                        state.witnessed.insert(name.clone(), cp.size);
                        self.save_state(&f.id, state);
                        tracing::info!(folder = %f.label, size = cp.size, "cosigned by witness {name}");
                        cosigned.push(name.clone());
                        break;
                    }
                    Ok(Submitted::Conflict(latest)) if attempt == 0 && latest <= cp.size => {
                        old = latest;
                    }
                    Ok(Submitted::Conflict(latest)) => {
                        // It cosigned more than the bridge shows this device: another device
                        // was shown a newer checkpoint since; the next pass catches up.
                        tracing::info!(folder = %f.label, "witness {name} is at {latest} entries, this device at {}", cp.size);
                        break;
                    }
                    Ok(Submitted::Refused(422, why)) => {
                        alarm = Some(format!(
                            "witness {name} refuses the checkpoint of {} entries: it does not extend the history the witness cosigned ({})",
                            cp.size,
                            why.trim()
                        ));
                        break;
                    }
                    Ok(Submitted::Refused(status, why)) => {
                        tracing::warn!(folder = %f.label, "witness {name} refused ({status}): {}", why.trim());
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(folder = %f.label, "witness {name}: {e}");
                        break;
                    }
                }
            }
        }
        let mut status = json!({
            "state": "verified",
            "size": cp.size,
            "cosigned_by": cosigned,
            "quorum": policy.quorum,
        });
        if let Some(why) = alarm {
            tracing::error!(folder = %f.label, "the bridge's log of this folder: {why}");
            status = json!({ "state": "alarm", "problem": why });
        }
        p.logs.insert(f.id, status);
        Ok(())
    }
}

/// Parses a log's C2SP verifier key.
fn parse_verifier_key(s: &str) -> Option<(String, ed25519_dalek::VerifyingKey)> {
    harp_protocol::tlog::VerifierKey::parse(s)
        .ok()
        .filter(|k| k.kind == harp_protocol::tlog::KEY_ED25519)
        .map(|k| (k.name, k.key))
}
