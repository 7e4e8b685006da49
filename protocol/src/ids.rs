//! Identifiers: folders, files, devices, chunks, content roots and chain hashes.
//!
//! Each is a newtype over a fixed-size byte array so that a chunk id can never be passed where a
//! chain hash is expected. Display is lowercase hex for hashes and random ids and unpadded
//! lowercase base32 (RFC 4648) for device ids, which people read and compare; parsing accepts
//! both forms for every id (the lengths differ, so there is no ambiguity).

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, HEXLOWER_PERMISSIVE};
use thiserror::Error;

/// Why a textual id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what}: expected {len} bytes as hex or base32")]
pub struct ParseIdError {
    what: &'static str,
    len: usize,
}

fn parse_bytes<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], ParseIdError> {
    let err = ParseIdError { what, len: N };
    let s = s.trim();
    let decoded = if s.len() == N * 2 {
        HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(|_| err.clone())?
    } else {
        BASE32_NOPAD
            .decode(s.to_ascii_uppercase().as_bytes())
            .map_err(|_| err.clone())?
    };
    decoded.try_into().map_err(|_| err)
}

macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident, $len:expr, $what:expr, $display:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// The id with these bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The id's bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                data_encoding::HEXLOWER.encode(&self.0)
            }

            /// Unpadded lowercase base32 (RFC 4648 alphabet).
            pub fn to_base32(&self) -> String {
                BASE32_NOPAD.encode(&self.0).to_ascii_lowercase()
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.$display())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let s = self.$display();
                write!(f, "{}({})", stringify!($name), &s[..12.min(s.len())])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_bytes::<$len>(s, $what).map(Self)
            }
        }
    };
}

byte_id!(
    /// A folder: 128 random bits chosen when the folder is created.
    FolderId, 16, "folder id", to_hex
);
byte_id!(
    /// A file inside a folder: 128 random bits chosen when the file is first seen. It stays the
    /// same across renames, which is what lets a rename be a chain entry rather than a
    /// delete and a create.
    FileId, 16, "file id", to_hex
);
byte_id!(
    /// A device: its Ed25519 public key, which is also its libp2p identity
    /// (see [`DeviceId::to_peer_id_bytes`]).
    DeviceId, 32, "device id", to_base32
);
byte_id!(
    /// An encrypted blob (a file chunk or a manifest node): the plain BLAKE3 hash of its
    /// ciphertext, so that anyone can check a blob against its id without a key.
    ChunkId, 32, "chunk id", to_hex
);
byte_id!(
    /// The content of a file version: the [`ChunkId`] of the root node of its manifest tree.
    ContentRoot, 32, "content root", to_hex
);
byte_id!(
    /// A link of a file's hash chain: SHA3-256 over the previous link and an entry.
    ChainHash, 32, "chain hash", to_hex
);
byte_id!(
    /// A commitment to a file's path inside its folder: keyed BLAKE3 under the folder's name
    /// key, so that chain entries bind names without showing them to the bridge.
    PathCommitment, 32, "path commitment", to_hex
);

impl ChunkId {
    /// The id of `ciphertext`: its plain BLAKE3 hash.
    pub fn of_ciphertext(ciphertext: &[u8]) -> Self {
        Self(*blake3::hash(ciphertext).as_bytes())
    }
}

impl From<ChunkId> for ContentRoot {
    fn from(id: ChunkId) -> Self {
        Self(id.0)
    }
}

impl From<ContentRoot> for ChunkId {
    fn from(root: ContentRoot) -> Self {
        Self(root.0)
    }
}

/// The protobuf prefix of an Ed25519 public key in libp2p's key encoding:
/// field 1 (`KeyType`) = 1 (Ed25519), field 2 (`Data`) of 32 bytes.
const LIBP2P_ED25519_KEY_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x20];

/// Length of a libp2p peer id for an Ed25519 key: an identity multihash (code 0, length 36)
/// of the 36-byte protobuf key encoding.
pub const PEER_ID_LEN: usize = 38;

impl DeviceId {
    /// The Ed25519 public key, if these bytes are a valid curve point.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, ParseIdError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| ParseIdError {
            what: "device id (not an Ed25519 public key)",
            len: 32,
        })
    }

    /// The device id of a signing key.
    pub fn of_signing_key(key: &ed25519_dalek::SigningKey) -> Self {
        Self(key.verifying_key().to_bytes())
    }

    /// The bytes of the libp2p `PeerId` of this device: `0x00 0x24` (identity multihash of 36
    /// bytes) followed by the protobuf-encoded Ed25519 public key.
    pub fn to_peer_id_bytes(&self) -> [u8; PEER_ID_LEN] {
        let mut out = [0u8; PEER_ID_LEN];
        out[0] = 0x00;
        out[1] = 0x24;
        out[2..6].copy_from_slice(&LIBP2P_ED25519_KEY_PREFIX);
        out[6..].copy_from_slice(&self.0);
        out
    }

    /// The device id behind libp2p `PeerId` bytes, if the peer id is an Ed25519 identity.
    pub fn from_peer_id_bytes(bytes: &[u8]) -> Result<Self, ParseIdError> {
        let err = ParseIdError {
            what: "peer id (not an Ed25519 identity multihash)",
            len: PEER_ID_LEN,
        };
        if bytes.len() != PEER_ID_LEN || bytes[..2] != [0x00, 0x24] {
            return Err(err);
        }
        if bytes[2..6] != LIBP2P_ED25519_KEY_PREFIX {
            return Err(err);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[6..]);
        Ok(Self(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn device_id_displays_as_base32_and_parses_both_forms() {
        let id = DeviceId::from_bytes([7u8; 32]);
        let b32 = id.to_string();
        assert_eq!(b32.len(), 52);
        assert_eq!(b32, b32.to_ascii_lowercase());
        assert_eq!(b32.parse::<DeviceId>().unwrap(), id);
        assert_eq!(id.to_hex().parse::<DeviceId>().unwrap(), id);
        assert_eq!(b32.to_ascii_uppercase().parse::<DeviceId>().unwrap(), id);
    }

    #[test]
    fn wrong_lengths_and_alphabets_are_rejected() {
        assert!("abcd".parse::<ChunkId>().is_err());
        assert!("zz".repeat(32).parse::<ChunkId>().is_err());
        assert!("00".repeat(16).parse::<ChunkId>().is_err());
        assert!("00".repeat(16).parse::<FolderId>().is_ok());
    }

    #[test]
    fn peer_id_bytes_round_trip_and_reject_other_key_types() {
        let id = DeviceId::from_bytes([9u8; 32]);
        let p = id.to_peer_id_bytes();
        assert_eq!(&p[..6], &[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
        assert_eq!(DeviceId::from_peer_id_bytes(&p).unwrap(), id);
        let mut secp = p;
        secp[3] = 0x02; // KeyType Secp256k1
        assert!(DeviceId::from_peer_id_bytes(&secp).is_err());
        assert!(DeviceId::from_peer_id_bytes(&p[..37]).is_err());
    }

    proptest! {
        #[test]
        fn text_round_trips(bytes in any::<[u8; 32]>()) {
            let id = ChainHash::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<ChainHash>().unwrap(), id);
            prop_assert_eq!(id.to_base32().parse::<ChainHash>().unwrap(), id);
            let dev = DeviceId::from_bytes(bytes);
            prop_assert_eq!(dev.to_string().parse::<DeviceId>().unwrap(), dev);
        }

        #[test]
        fn parsing_random_text_never_panics(s in ".{0,80}") {
            let _ = s.parse::<DeviceId>();
            let _ = s.parse::<FolderId>();
        }
    }
}
