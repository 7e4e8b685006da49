//! This device: its identity, its configuration and its folders, as the commands open them.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use harp_protocol::ids::{DeviceId, FolderId};
use harp_protocol::keys::FolderKey;
use thiserror::Error;

use crate::config::{self, Config, Dirs, FolderConfig, Versioning};
use crate::index::{self, Index};
use crate::scan::{self, Folder};

/// Errors opening or changing this device's setup.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Config or key files.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The index.
    #[error(transparent)]
    Index(#[from] index::Error),
    /// A folder path cannot be used.
    #[error("{path}: {reason}")]
    BadFolder {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be a folder.
        reason: String,
    },
    /// No randomness for a new key.
    #[error("no randomness available: {0}")]
    Random(String),
}

type Result<T> = std::result::Result<T, Error>;

fn random32() -> Result<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| Error::Random(e.to_string()))?;
    Ok(b)
}

/// This device, opened.
#[derive(Debug)]
pub struct Node {
    /// Where its state is.
    pub dirs: Dirs,
    /// `config.toml`.
    pub config: Config,
    /// Its Ed25519 key: it signs chain entries, and is its libp2p identity.
    pub device: SigningKey,
}

impl Node {
    /// Sets this device up: a new device key and config, unless they exist (then they are
    /// opened as they are: `init` never replaces an identity).
    pub fn init(dirs: Dirs, device_name: &str) -> Result<(Self, bool)> {
        let key_path = dirs.device_key();
        let created = !key_path.exists();
        if created {
            config::write_secret(&key_path, &random32()?)?;
        }
        if !dirs.config_file().exists() {
            Config::new(device_name.to_owned()).save(&dirs)?;
        }
        Ok((Self::open(dirs)?, created))
    }

    /// Opens the device set up by [`Node::init`].
    pub fn open(dirs: Dirs) -> Result<Self> {
        let config = Config::load(&dirs)?;
        let key_path = dirs.device_key();
        if !key_path.exists() {
            return Err(config::Error::NotInitialised(key_path).into());
        }
        let device = SigningKey::from_bytes(&config::read_secret(&key_path)?);
        Ok(Self {
            dirs,
            config,
            device,
        })
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::of_signing_key(&self.device)
    }

    /// Opens the index.
    pub fn index(&self) -> Result<Index> {
        Ok(Index::open(&self.dirs.index())?)
    }

    /// Adds a folder at `path` (created if missing) with a new random id and key.
    pub fn add_folder(&mut self, path: &Path, label: Option<&str>) -> Result<FolderConfig> {
        let mut id = [0u8; 16];
        id.copy_from_slice(&random32()?[..16]);
        let key = random32()?;
        self.add_folder_with(path, label, FolderId::from_bytes(id), key, Vec::new())
    }

    /// Adds a folder another device shared: its id and key are given.
    pub fn add_folder_with(
        &mut self,
        path: &Path,
        label: Option<&str>,
        id: FolderId,
        key: [u8; 32],
        members: Vec<String>,
    ) -> Result<FolderConfig> {
        let bad = |reason: &str| Error::BadFolder {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        // Check everything before creating anything: a refused folder leaves no trace.
        let root =
            resolve_future_path(path).map_err(|e| bad(&format!("cannot resolve it: {e}")))?;
        if root.exists() && !root.is_dir() {
            return Err(bad("not a directory"));
        }
        for f in &self.config.folders {
            if f.id == id {
                return Err(bad(&format!(
                    "this device already syncs that folder, at {}",
                    f.path.display()
                )));
            }
            if f.path == root {
                return Err(config::Error::FolderExists(root).into());
            }
            if root.starts_with(&f.path) || f.path.starts_with(&root) {
                return Err(bad(&format!(
                    "overlaps the folder {} ({}): folders cannot be nested",
                    f.label,
                    f.path.display()
                )));
            }
        }
        if root.starts_with(&self.dirs.config) || root.starts_with(&self.dirs.data) {
            return Err(bad("is inside Harp's own state directories"));
        }
        fs::create_dir_all(&root).map_err(|e| bad(&format!("cannot create it: {e}")))?;
        config::write_secret(&self.dirs.folder_key(&id), &key)?;
        fs::create_dir_all(root.join(scan::MARKER_DIR))
            .map_err(|e| bad(&format!("cannot create .harp: {e}")))?;
        let label = label
            .map(str::to_owned)
            .or_else(|| root.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| id.to_string());
        let folder = FolderConfig {
            id,
            path: root,
            label,
            versioning: Versioning::default(),
            members,
            direction: Default::default(),
            paused: false,
        };
        self.config.folders.push(folder.clone());
        self.config.save(&self.dirs)?;
        Ok(folder)
    }

    /// A configured folder with its keys, ready to scan.
    pub fn open_folder(&self, cfg: &FolderConfig) -> Result<Folder> {
        let key = FolderKey::from_bytes(config::read_secret(&self.dirs.folder_key(&cfg.id))?);
        Ok(Folder::new(cfg.id, cfg.path.clone(), key.schedule()))
    }

    /// The folder holding `path` (a path as the user typed it) and the path inside it, in the
    /// form the index stores.
    pub fn locate(&self, path: &Path) -> Result<(&FolderConfig, String)> {
        let abs = if path.is_absolute() {
            path.to_owned()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::BadFolder {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?
                .join(path)
        };
        // Resolve the parent (the file itself may be gone: it can have versions).
        let resolved = match (abs.parent(), abs.file_name()) {
            (Some(parent), Some(name)) => fs::canonicalize(parent)
                .map(|p| p.join(name))
                .unwrap_or(abs.clone()),
            _ => abs.clone(),
        };
        let (folder, rel) = self
            .config
            .folder_of(&resolved)
            .ok_or_else(|| Error::BadFolder {
                path: path.to_owned(),
                reason: "is not inside any Harp folder (`harp folder list` shows them)".to_owned(),
            })?;
        let rel = rel
            .to_str()
            .ok_or_else(|| Error::BadFolder {
                path: path.to_owned(),
                reason: "the name is not valid UTF-8".to_owned(),
            })?
            .to_owned();
        use unicode_normalization::UnicodeNormalization;
        Ok((folder, rel.nfc().collect()))
    }
}

/// The absolute, symlink-free form of `path`, which may not exist yet: its longest existing
/// ancestor canonicalised, with the rest appended.
fn resolve_future_path(path: &Path) -> std::io::Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(base) => {
                return Ok(rest
                    .iter()
                    .rev()
                    .fold(base, |acc: PathBuf, part| acc.join(part)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(e);
                };
                if name == ".." || name == "." {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "use a path without . or ..",
                    ));
                }
                rest.push(name.to_owned());
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}
