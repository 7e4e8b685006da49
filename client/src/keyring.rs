//! A folder's key epochs on this device (`harp_protocol::epoch`): epoch 0 is the folder key,
//! in its own file; the epochs that rotations added are in `folders/<id>.epochs` beside it
//! (JSON, mode 0600), written before any grant of a new epoch leaves this device, so a crash
//! never leaves the bridge holding an epoch that no device kept.

use harp_protocol::epoch::{EpochKey, Keyring};
use harp_protocol::ids::FolderId;
use harp_protocol::keys::FolderKey;
use serde::{Deserialize, Serialize};

use crate::config::{self, Dirs};

#[derive(Serialize, Deserialize)]
struct Stored {
    epoch: u32,
    /// Hex.
    secret: String,
}

/// The ring of folder `id` whose key is `folder_key`: epoch 0 and every epoch stored.
pub fn load(dirs: &Dirs, id: &FolderId, folder_key: &FolderKey) -> Result<Keyring, config::Error> {
    let mut ring = Keyring::new(folder_key);
    let path = dirs.folder_epochs(id);
    if !path.exists() {
        return Ok(ring);
    }
    let text = config::read_private(&path)?;
    let bad = |message: String| config::Error::Invalid {
        path: path.clone(),
        message,
    };
    let stored: Vec<Stored> = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    for s in stored {
        let secret = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.secret.as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad(format!("epoch {}: not a 32-byte hex secret", s.epoch)))?;
        ring.insert(EpochKey {
            epoch: s.epoch,
            secret,
        });
    }
    Ok(ring)
}

/// Stores every epoch of `ring` after the first.
pub fn save(dirs: &Dirs, id: &FolderId, ring: &Keyring) -> Result<(), config::Error> {
    let stored: Vec<Stored> = ring.keys()[1..]
        .iter()
        .map(|k| Stored {
            epoch: k.epoch,
            secret: data_encoding::HEXLOWER.encode(&k.secret),
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&stored).unwrap_or_default();
    config::write_private(&dirs.folder_epochs(id), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_kept_across_loads_in_a_private_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            config: tmp.path().join("config"),
            data: tmp.path().join("data"),
        };
        let id = FolderId::from_bytes([1; 16]);
        let key = FolderKey::from_bytes([2; 32]);
        let mut ring = load(&dirs, &id, &key).unwrap();
        assert_eq!(ring.keys().len(), 1);
        ring.insert(EpochKey {
            epoch: 1,
            secret: [3; 32],
        });
        save(&dirs, &id, &ring).unwrap();
        let again = load(&dirs, &id, &key).unwrap();
        assert_eq!(again.keys(), ring.keys());
        assert_eq!(again.current().epoch, 1);
        // Readable by others: refused, like a key file.
        let path = dirs.folder_epochs(&id);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(load(&dirs, &id, &key).is_err());
    }
}
