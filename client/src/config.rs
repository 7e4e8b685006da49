//! Where Harp keeps its state, and the configuration file.
//!
//! - **Config dir** (`$XDG_CONFIG_HOME/harp`, else `~/.config/harp`): `config.toml`, the device
//!   key `device.key` and one `folders/<id>.key` per folder, all written atomically and 0600.
//! - **Data dir** (`$XDG_DATA_HOME/harp`, else `~/.local/share/harp`): the SQLite index. Never
//!   inside a synced folder.
//! - **Inside each synced folder**, `.harp/` holds the versions store and temp files; the scanner
//!   never syncs it.
//!
//! Every config key is documented on its field; unknown keys are an error (a typo must not be
//! silently ignored).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use harp_protocol::ids::FolderId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors reading or writing Harp's configuration and keys.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, from the TOML parser.
        message: String,
    },
    /// `harp init` has not been run.
    #[error("Harp is not set up here: run `harp init` first ({0} is missing)")]
    NotInitialised(PathBuf),
    /// No folder matches.
    #[error("no folder {0:?}: `harp folder list` shows the folders")]
    NoSuchFolder(String),
    /// A folder is configured twice.
    #[error("{0} is already a Harp folder")]
    FolderExists(PathBuf),
    /// No home directory to put state in.
    #[error("cannot find a home directory: set HOME or XDG_CONFIG_HOME and XDG_DATA_HOME")]
    NoHome,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directories Harp keeps its state in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// Config, device key, folder keys.
    pub config: PathBuf,
    /// The index.
    pub data: PathBuf,
}

impl Dirs {
    /// The XDG directories of the current user.
    pub fn from_env() -> Result<Self, Error> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = |var: &str, fallback: &str| -> Result<PathBuf, Error> {
            match std::env::var_os(var) {
                Some(v) if !v.is_empty() => Ok(PathBuf::from(v).join("harp")),
                _ => home
                    .as_ref()
                    .map(|h| h.join(fallback).join("harp"))
                    .ok_or(Error::NoHome),
            }
        };
        Ok(Self {
            config: xdg("XDG_CONFIG_HOME", ".config")?,
            data: xdg("XDG_DATA_HOME", ".local/share")?,
        })
    }

    /// `config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }

    /// The device's Ed25519 key.
    pub fn device_key(&self) -> PathBuf {
        self.config.join("device.key")
    }

    /// A folder's key.
    pub fn folder_key(&self, id: &FolderId) -> PathBuf {
        self.config.join("folders").join(format!("{id}.key"))
    }

    /// A folder's key epochs after the first (`harp_protocol::epoch`; [`crate::keyring`]).
    pub fn folder_epochs(&self, id: &FolderId) -> PathBuf {
        self.config.join("folders").join(format!("{id}.epochs"))
    }

    /// A folder's trust policy (`harp folder policy`; see `harp_protocol::policy`).
    pub fn folder_policy(&self, id: &FolderId) -> PathBuf {
        self.config.join("folders").join(format!("{id}.policy"))
    }

    /// The key and state of this machine's witness (`harp witness`).
    pub fn witness(&self) -> PathBuf {
        self.data.join("witness")
    }

    /// The SQLite index.
    pub fn index(&self) -> PathBuf {
        self.data.join("index.sqlite3")
    }

    /// The socket of the running daemon's control API (0600, in the data dir).
    pub fn control_socket(&self) -> PathBuf {
        self.data.join("control.sock")
    }
}

/// How old versions of files are kept (see [`crate::store`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Versioning {
    /// Keep the newest `keep` versions of each file.
    Simple {
        /// How many versions to keep per file.
        keep: u32,
    },
    /// Keep one version per hour for a day, per day for a month, per week after that, and
    /// none older than `max_age_days` (0: keep forever).
    Staggered {
        /// The oldest version kept, in days.
        max_age_days: u32,
    },
}

impl Default for Versioning {
    fn default() -> Self {
        Versioning::Staggered { max_age_days: 365 }
    }
}

/// Which way changes flow through a folder on this device (Syncthing's folder types).
///
/// The direction is this device's own choice: other devices neither know nor check it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Changes made here are sent, other devices' changes are applied.
    #[default]
    SendReceive,
    /// Changes made here are sent; other devices' changes are not applied here (the folder
    /// is the source: `harp folder override` makes its versions win where others changed
    /// a file).
    SendOnly,
    /// Other devices' changes are applied; changes made here are not sent (kept here, and
    /// listed: `harp folder revert` puts the folder back as the others have it).
    ReceiveOnly,
}

impl Direction {
    /// Whether changes made here are sent.
    pub fn sends(self) -> bool {
        self != Direction::ReceiveOnly
    }

    /// Whether other devices' changes are applied here.
    pub fn receives(self) -> bool {
        self != Direction::SendOnly
    }

    /// The name in config.toml and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Direction::SendReceive => "send_receive",
            Direction::SendOnly => "send_only",
            Direction::ReceiveOnly => "receive_only",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.replace('-', "_").as_str() {
            "send_receive" => Ok(Direction::SendReceive),
            "send_only" => Ok(Direction::SendOnly),
            "receive_only" => Ok(Direction::ReceiveOnly),
            _ => Err(format!(
                "{s:?} is not a direction: send_receive, send_only or receive_only"
            )),
        }
    }
}

/// One synced folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// The folder's id (its key is in `folders/<id>.key`).
    #[serde(with = "display_fromstr")]
    pub id: FolderId,
    /// Absolute path of the folder on this device.
    pub path: PathBuf,
    /// A name for people.
    pub label: String,
    /// How old versions are kept.
    #[serde(default)]
    pub versioning: Versioning,
    /// Other devices allowed to fetch this folder's chunks (this device always may).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Which way changes flow here (default: both).
    #[serde(default, skip_serializing_if = "is_send_receive")]
    pub direction: Direction,
    /// Paused: neither scanned nor synced (`harp folder pause` / `resume`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

fn is_send_receive(d: &Direction) -> bool {
    *d == Direction::SendReceive
}

fn default_web_listen() -> String {
    "127.0.0.1:7384".to_owned()
}

/// A peer device and where to reach it (until the bridge publishes addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The device id.
    pub device: String,
    /// Its addresses (multiaddrs; a relayed one ends in `/p2p-circuit/p2p/<peer id>`).
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A name for this device, shown to other devices.
    pub device_name: String,
    /// How many threads hash and encrypt file contents at once. Users of weak machines set 2
    /// (or 1); the default is the number of cores, at most 4.
    #[serde(default = "default_hashing_threads")]
    pub hashing_threads: usize,
    /// Seconds between full rescans of every folder, a safety net behind the file watcher.
    #[serde(default = "default_rescan_interval")]
    pub rescan_interval_secs: u64,
    /// Milliseconds the watcher waits for a burst of changes to settle before scanning.
    #[serde(default = "default_watch_delay")]
    pub watch_delay_ms: u64,
    /// Addresses the daemon listens on (multiaddrs).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Public relays to reserve a slot on (multiaddrs ending in `/p2p/<relay id>`), so that
    /// peers behind other NATs can reach this device.
    #[serde(default)]
    pub relays: Vec<String>,
    /// Find peers on the local network with mDNS.
    #[serde(default = "default_true")]
    pub mdns: bool,
    /// Try to turn relayed connections into direct ones (hole punching).
    #[serde(default = "default_true")]
    pub hole_punching: bool,
    /// Where the daemon serves Prometheus metrics (`/metrics`), e.g. `127.0.0.1:9464`; unset:
    /// not served. Metrics hold counts only, no names; keep it on loopback anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Where the daemon serves the local web UI and its REST API (loopback only; a token
    /// guards the API: `harp ui` prints the address with it). Empty: not served. Port 0 picks
    /// a free port (`harp status` shows it).
    #[serde(default = "default_web_listen")]
    pub web_listen: String,
    /// The most file data (chunk bytes) per second the daemon sends to peers, in KiB; 0: no
    /// limit.
    #[serde(default)]
    pub max_send_kib_per_sec: u64,
    /// The most file data per second the daemon receives from peers, in KiB; 0: no limit.
    #[serde(default)]
    pub max_recv_kib_per_sec: u64,
    /// Move file data to and from peers with a direct connection over a bulk lane: a TCP
    /// connection of its own, keyed over the libp2p connection and sealed with AES-256-GCM,
    /// which costs a third of the CPU of libp2p's streams. Where no lane can be had
    /// (relayed peers, a firewall) the data goes over libp2p as before.
    #[serde(default = "default_true")]
    pub bulk_lanes: bool,
    /// Offer large new files (64 MiB and up) to direct member peers while they are still
    /// being scanned, so their chunks move as they are cut instead of after the scan; and take
    /// such offers from peers (staged in the folder's temp area until the file's record
    /// arrives). Off: new files move after their scan, as other changes do.
    #[serde(default = "default_true")]
    pub early_transfer: bool,
    /// The TCP port bulk lanes are served on, on the IP of the first `listen` address; 0: any
    /// free port (peers learn it over libp2p). Set one to open it in a firewall.
    #[serde(default)]
    pub bulk_lane_port: u16,
    /// Which devices a bridge lists this device trusts: `"bridge"` (every one it lists) or
    /// `"manual"` (only those approved here with `harp device approve`; see
    /// [`crate::approval`]).
    #[serde(default)]
    pub device_approval: crate::approval::Mode,
    /// Known peers and their addresses.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// The synced folders.
    #[serde(default, rename = "folder")]
    pub folders: Vec<FolderConfig>,
}

fn default_listen() -> Vec<String> {
    vec![
        "/ip4/0.0.0.0/udp/0/quic-v1".to_owned(),
        "/ip4/0.0.0.0/tcp/0".to_owned(),
    ]
}

fn default_true() -> bool {
    true
}

fn default_hashing_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4)
}

fn default_rescan_interval() -> u64 {
    3600
}

fn default_watch_delay() -> u64 {
    1000
}

impl Config {
    /// A fresh config for a device called `device_name`.
    pub fn new(device_name: String) -> Self {
        Self {
            device_name,
            hashing_threads: default_hashing_threads(),
            rescan_interval_secs: default_rescan_interval(),
            watch_delay_ms: default_watch_delay(),
            listen: default_listen(),
            relays: Vec::new(),
            mdns: true,
            hole_punching: true,
            metrics_listen: None,
            web_listen: default_web_listen(),
            max_send_kib_per_sec: 0,
            max_recv_kib_per_sec: 0,
            bulk_lanes: true,
            early_transfer: true,
            bulk_lane_port: 0,
            device_approval: crate::approval::Mode::Bridge,
            peers: Vec::new(),
            folders: Vec::new(),
        }
    }

    /// Reads `config.toml`.
    pub fn load(dirs: &Dirs) -> Result<Self, Error> {
        let path = dirs.config_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialised(path));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| Error::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.hashing_threads = config.hashing_threads.clamp(1, 256);
        Ok(config)
    }

    /// Writes `config.toml` atomically.
    pub fn save(&self, dirs: &Dirs) -> Result<(), Error> {
        let path = dirs.config_file();
        let text = toml::to_string_pretty(self).map_err(|e| Error::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_private(&path, text.as_bytes())
    }

    /// The folder named by `name`: its id (or a unique prefix of it), its label, or its path.
    pub fn folder(&self, name: &str) -> Result<&FolderConfig, Error> {
        let as_path = fs::canonicalize(name).ok();
        let matches: Vec<&FolderConfig> = self
            .folders
            .iter()
            .filter(|f| {
                f.label == name
                    || (name.len() >= 4 && f.id.to_string().starts_with(name))
                    || as_path.as_deref() == Some(f.path.as_path())
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            _ => Err(Error::NoSuchFolder(name.to_owned())),
        }
    }

    /// The folder that contains `path` (an absolute, canonical path), and `path` relative to it.
    pub fn folder_of(&self, path: &Path) -> Option<(&FolderConfig, PathBuf)> {
        self.folders.iter().find_map(|f| {
            path.strip_prefix(&f.path)
                .ok()
                .map(|rel| (f, rel.to_path_buf()))
        })
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600, creating the
/// parent directory (0700) if needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a file that holds secrets, refusing it if others may read it.
pub fn read_private(path: &Path) -> Result<Vec<u8>, Error> {
    let meta = fs::metadata(path).map_err(io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Invalid {
            path: path.to_owned(),
            message: "a key file must not be readable by others: chmod 600 it".to_owned(),
        });
    }
    fs::read(path).map_err(io(path))
}

/// Reads a 32-byte secret stored as hex by [`write_secret`], checking it is not readable by
/// others.
pub fn read_secret(path: &Path) -> Result<[u8; 32], Error> {
    let text = String::from_utf8(read_private(path)?).map_err(|_| Error::Invalid {
        path: path.to_owned(),
        message: "expected 64 hex digits".to_owned(),
    })?;
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Error::Invalid {
            path: path.to_owned(),
            message: "expected 64 hex digits".to_owned(),
        })
}

/// Stores a 32-byte secret as hex, 0600.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), Error> {
    let text = data_encoding::HEXLOWER.encode(secret) + "\n";
    write_private(path, text.as_bytes())
}

/// Serde through `Display` and `FromStr`, for ids in TOML and JSON.
pub(crate) mod display_fromstr {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of `config.toml` (with every optional part present) is described in
    /// `docs/config.md`.
    #[test]
    fn every_config_key_is_documented() {
        let mut c = Config::new("laptop".into());
        c.metrics_listen = Some("127.0.0.1:9464".into());
        c.peers.push(PeerConfig {
            device: "d".into(),
            addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
        });
        c.folders.push(FolderConfig {
            id: FolderId::from_bytes([1; 16]),
            path: "/f".into(),
            label: "f".into(),
            versioning: Versioning::default(),
            members: vec!["d".into()],
            direction: Direction::ReceiveOnly,
            paused: true,
        });
        let value = toml::Value::try_from(&c).unwrap();
        let mut keys = Vec::new();
        fn walk(v: &toml::Value, keys: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        keys.push(k.clone());
                        walk(v, keys);
                    }
                }
                toml::Value::Array(a) => a.iter().for_each(|v| walk(v, keys)),
                _ => {}
            }
        }
        walk(&value, &mut keys);
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md"),
        )
        .unwrap();
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !doc.contains(&format!("`{k}`")) && !doc.contains(&format!("{k} =")))
            .collect();
        assert!(keys.len() >= 20, "{keys:?}");
        assert!(missing.is_empty(), "not in docs/config.md: {missing:?}");
    }

    #[test]
    fn config_round_trips_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            config: dir.path().join("c"),
            data: dir.path().join("d"),
        };
        assert!(matches!(Config::load(&dirs), Err(Error::NotInitialised(_))));
        let mut c = Config::new("laptop".into());
        c.folders.push(FolderConfig {
            id: FolderId::from_bytes([1; 16]),
            path: "/tmp/x".into(),
            label: "x".into(),
            versioning: Versioning::Simple { keep: 5 },
            members: vec![],
            direction: Direction::SendOnly,
            paused: false,
        });
        c.save(&dirs).unwrap();
        let mode = fs::metadata(dirs.config_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Config::load(&dirs).unwrap(), c);
        let text = fs::read_to_string(dirs.config_file()).unwrap();
        fs::write(dirs.config_file(), text + "hashing_thread = 2\n").unwrap();
        let err = Config::load(&dirs).unwrap_err().to_string();
        assert!(err.contains("hashing_thread"), "{err}");
    }

    #[test]
    fn secrets_refuse_loose_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_secret(&path, &[7; 32]).unwrap();
        assert_eq!(read_secret(&path).unwrap(), [7; 32]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            read_secret(&path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
    }
}
