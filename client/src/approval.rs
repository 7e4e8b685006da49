//! Device approval: which of the devices a bridge lists this device trusts.
//!
//! A bridge says which devices are members of a folder. A hostile bridge (or a stolen
//! account) could list a device it controls, which would then get the folder key from the
//! devices that wrap it, be served chunks and metadata, and have its chain entries accepted.
//! With `device_approval = "manual"` in `config.toml`, a device the bridge lists is trusted
//! only once approved here (`harp device approve <id>`, after comparing the id with what
//! `harp init` prints on the new device, as one compares a Syncthing device id). Until then it
//! waits: no key is wrapped for it, it is not dialled, not served, and its chain entries are
//! not accepted; `harp device list` shows it with the folders it was listed for. With
//! `"bridge"` (the default) every listed device is trusted at once: the bridge's accounts
//! are then the trust root, as the threat model says.
//!
//! A device approved as an **introducer** (`harp device approve ID --introducer`) vouches for
//! the devices it approves itself: every device in manual mode publishes signed introductions
//! of the devices approved on it, and withdrawals of those it forgets
//! (`harp_protocol::intro`), through the change streams of the folders it syncs, and a device
//! listed by the bridge that an introducer approved here vouches for is trusted here too.
//!
//! Files in the data dir, each written by one side only, so neither can undo the other:
//! `approved-devices.json` by `harp device`; `waiting-devices.json` and
//! `introduced-devices.json` by the daemon's bridge link (every full pass). `harp device approve|forget` asks a running daemon's link for a full
//! pass at once (control socket, `bridge_refresh`), so a change takes effect within a second.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use harp_protocol::ids::DeviceId;
use serde::{Deserialize, Serialize};

use crate::config::{self, Dirs};

/// Which devices listed by the bridge this device trusts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every device the bridge lists.
    #[default]
    Bridge,
    /// Only devices approved on this device.
    Manual,
}

/// A device approved on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approved {
    /// When, in ms since the Unix epoch.
    pub approved_ms: i64,
    /// Whether the devices it vouches for are trusted here too (`harp device approve
    /// --introducer`; see `harp_protocol::intro`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub introducer: bool,
}

/// A device trusted here because an introducer approved here vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introduced {
    /// The introducer.
    pub by: String,
    /// When it vouched, by its clock (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A device the bridge lists that is not approved here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The bridge user it belongs to, as the bridge says.
    pub user: String,
    /// The folders (labels) it is listed as a member of.
    pub folders: BTreeSet<String>,
    /// When this device first saw it listed, in ms since the Unix epoch.
    pub first_seen_ms: i64,
}

/// Why an approval file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The file is not what this module writes.
    #[error("{path}: {message}", path = .0.display(), message = .1)]
    Malformed(PathBuf, String),
}

fn approved_file(dirs: &Dirs) -> PathBuf {
    dirs.data.join("approved-devices.json")
}

fn waiting_file(dirs: &Dirs) -> PathBuf {
    dirs.data.join("waiting-devices.json")
}

fn introduced_file(dirs: &Dirs) -> PathBuf {
    dirs.data.join("introduced-devices.json")
}

fn read<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Malformed(path.to_owned(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::Malformed(path.to_owned(), e.to_string())),
    }
}

fn write(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Malformed(path.to_owned(), e.to_string()))?;
    Ok(config::write_private(path, &bytes)?)
}

/// The devices approved on this device.
pub fn approved(dirs: &Dirs) -> Result<BTreeMap<DeviceId, Approved>, Error> {
    let raw: BTreeMap<String, Approved> = read(&approved_file(dirs))?;
    raw.into_iter()
        .map(|(id, a)| {
            id.parse::<DeviceId>()
                .map(|d| (d, a))
                .map_err(|e| Error::Malformed(approved_file(dirs), format!("{id}: {e}")))
        })
        .collect()
}

fn save_approved(dirs: &Dirs, approved: &BTreeMap<DeviceId, Approved>) -> Result<(), Error> {
    let raw: BTreeMap<String, &Approved> =
        approved.iter().map(|(d, a)| (d.to_string(), a)).collect();
    write(&approved_file(dirs), &raw)
}

/// Approves `device` (as an introducer or not); returns whether anything changed.
pub fn approve(
    dirs: &Dirs,
    device: DeviceId,
    now_ms: i64,
    introducer: bool,
) -> Result<bool, Error> {
    let mut all = approved(dirs)?;
    let before = all.get(&device).cloned();
    let a = all.entry(device).or_insert(Approved {
        approved_ms: now_ms,
        introducer,
    });
    a.introducer = introducer;
    let changed = before.as_ref() != Some(a);
    save_approved(dirs, &all)?;
    Ok(changed)
}

/// The devices trusted here through introductions, as the daemon last wrote them.
pub fn introduced(dirs: &Dirs) -> Result<BTreeMap<String, Introduced>, Error> {
    read(&introduced_file(dirs))
}

/// Records the devices trusted through introductions now (the daemon's bridge link).
pub fn set_introduced(dirs: &Dirs, introduced: &BTreeMap<String, Introduced>) -> Result<(), Error> {
    if introduced.is_empty() && !introduced_file(dirs).exists() {
        return Ok(());
    }
    write(&introduced_file(dirs), introduced)
}

/// The devices that `statements` make trusted here: for each device, the latest statement
/// of an introducer approved here *as an introducer* vouches for it. (Introductions do not
/// chain: a device trusted only through one is no introducer here.)
pub fn vouched<'a>(
    approved: &BTreeMap<DeviceId, Approved>,
    statements: impl IntoIterator<Item = &'a harp_protocol::intro::Introduction>,
) -> BTreeMap<DeviceId, Introduced> {
    let mut latest: BTreeMap<(DeviceId, DeviceId), &harp_protocol::intro::Introduction> =
        BTreeMap::new();
    for s in statements {
        if !approved.get(&s.introducer).is_some_and(|a| a.introducer) {
            continue;
        }
        let slot = latest.entry((s.introducer, s.device)).or_insert(s);
        if s.at_ms > slot.at_ms {
            *slot = s;
        }
    }
    let mut out = BTreeMap::new();
    for ((by, device), s) in latest {
        if s.trusted {
            out.entry(device).or_insert(Introduced {
                by: by.to_string(),
                at_ms: s.at_ms,
            });
        }
    }
    out
}

/// Withdraws the approval of `device`; returns whether it was approved.
pub fn forget(dirs: &Dirs, device: &DeviceId) -> Result<bool, Error> {
    let mut all = approved(dirs)?;
    let was = all.remove(device).is_some();
    save_approved(dirs, &all)?;
    Ok(was)
}

/// The devices waiting for approval, as the daemon last wrote them, less those approved here
/// since (the daemon rewrites the list only at the end of its next bridge pass).
pub fn waiting(dirs: &Dirs) -> Result<BTreeMap<String, Waiting>, Error> {
    let mut waiting: BTreeMap<String, Waiting> = read(&waiting_file(dirs))?;
    let approved = approved(dirs)?;
    waiting.retain(|d, _| !approved.keys().any(|a| a.to_string() == *d));
    Ok(waiting)
}

/// Records the devices waiting for approval now (the daemon's bridge link, each full pass).
pub fn set_waiting(dirs: &Dirs, waiting: &BTreeMap<String, Waiting>) -> Result<(), Error> {
    if waiting.is_empty() && !waiting_file(dirs).exists() {
        return Ok(());
    }
    write(&waiting_file(dirs), waiting)
}

/// Splits the devices a bridge lists for a folder into those trusted here (approved, or
/// vouched for by an introducer approved here) and those waiting. `me` is always trusted.
pub fn split(
    mode: Mode,
    approved: &BTreeMap<DeviceId, Approved>,
    vouched: &BTreeMap<DeviceId, Introduced>,
    me: &DeviceId,
    listed: impl IntoIterator<Item = DeviceId>,
) -> (Vec<DeviceId>, Vec<DeviceId>) {
    listed.into_iter().partition(|d| {
        mode == Mode::Bridge || d == me || approved.contains_key(d) || vouched.contains_key(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8) -> DeviceId {
        DeviceId::of_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]))
    }

    #[test]
    fn only_approved_devices_are_trusted_in_manual_mode_and_approvals_persist() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            config: dir.path().join("c"),
            data: dir.path().join("d"),
        };
        let (me, a, b) = (dev(1), dev(2), dev(3));
        let none = approved(&dirs).unwrap();
        assert!(none.is_empty());
        assert_eq!(
            split(Mode::Bridge, &none, &BTreeMap::new(), &me, [me, a, b]),
            (vec![me, a, b], vec![])
        );
        assert_eq!(
            split(Mode::Manual, &none, &BTreeMap::new(), &me, [me, a, b]),
            (vec![me], vec![a, b])
        );
        assert!(approve(&dirs, b, 5, false).unwrap());
        assert!(!approve(&dirs, b, 9, false).unwrap());
        let now = approved(&dirs).unwrap();
        assert_eq!(now[&b].approved_ms, 5);
        assert_eq!(
            split(Mode::Manual, &now, &BTreeMap::new(), &me, [me, a, b]),
            (vec![me, b], vec![a])
        );
        assert!(forget(&dirs, &b).unwrap());
        assert!(!forget(&dirs, &b).unwrap());
        assert!(approved(&dirs).unwrap().is_empty());
        // Waiting devices round-trip; a damaged file is an error, not an empty list.
        let w = BTreeMap::from([(
            a.to_string(),
            Waiting {
                user: "eve".into(),
                folders: BTreeSet::from(["docs".to_owned()]),
                first_seen_ms: 7,
            },
        )]);
        set_waiting(&dirs, &w).unwrap();
        assert_eq!(waiting(&dirs).unwrap(), w);
        // Approved here, it waits no more, before the daemon rewrites the list.
        approve(&dirs, a, 11, false).unwrap();
        assert!(waiting(&dirs).unwrap().is_empty());
        assert!(forget(&dirs, &a).unwrap());
        assert_eq!(waiting(&dirs).unwrap(), w);
        std::fs::write(approved_file(&dirs), b"{not json").unwrap();
        assert!(matches!(approved(&dirs), Err(Error::Malformed(..))));
    }

    #[test]
    fn an_introducer_approved_here_vouches_by_its_latest_word_and_others_do_not() {
        use harp_protocol::intro::Introduction;
        let key = |n: u8| ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
        let (me, laptop, phone, stranger) = (dev(1), dev(2), dev(3), dev(4));
        let (laptop_key, stranger_key) = (key(2), key(4));
        let approved = BTreeMap::from([
            (
                laptop,
                Approved {
                    approved_ms: 1,
                    introducer: true,
                },
            ),
            (
                stranger,
                Approved {
                    approved_ms: 1,
                    introducer: false,
                },
            ),
        ]);
        let vouch = Introduction::make(&laptop_key, phone, true, 10);
        let withdraw = Introduction::make(&laptop_key, phone, false, 20);
        // Approved, but not as an introducer: its word counts for nothing here.
        let by_stranger = Introduction::make(&stranger_key, dev(5), true, 10);
        let v = vouched(&approved, [&vouch, &by_stranger]);
        assert_eq!(v.keys().collect::<Vec<_>>(), [&phone]);
        assert_eq!(v[&phone].by, laptop.to_string());
        assert_eq!(
            split(Mode::Manual, &approved, &v, &me, [phone, dev(5)]),
            (vec![phone], vec![dev(5)])
        );
        // The latest statement counts, in whatever order they arrive: a replayed vouch does
        // not undo a withdrawal.
        assert!(vouched(&approved, [&vouch, &withdraw]).is_empty());
        assert!(vouched(&approved, [&withdraw, &vouch]).is_empty());
        // An introducer forgotten here vouches for nothing.
        let mut less = approved.clone();
        less.remove(&laptop);
        assert!(vouched(&less, [&vouch]).is_empty());
    }
}
