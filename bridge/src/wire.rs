//! The JSON bodies of the API (`docs/bridge-api.yaml`), and the checks every field gets.
//!
//! Requests deny unknown fields: a client that sends something the bridge would silently drop
//! learns at once. Field checks return [`Failure::Invalid`] naming the field.

use data_encoding::BASE64;
use harp_protocol::ids::DeviceId;
use serde::{Deserialize, Serialize};

use crate::rules::Failure;

/// Largest request body.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest sealed Automerge change.
pub const MAX_CHANGE: usize = 1024 * 1024;
/// Most addresses a device publishes.
pub const MAX_ADDRESSES: usize = 16;

/// `GET /capabilities` (and `capabilities.harpbridge` in `/ocs/v2.php/cloud/capabilities`).
#[derive(Debug, Serialize)]
pub struct Capabilities {
    /// Always 1.
    pub api_version: u32,
    /// The caller's user id (what device registrations sign).
    pub user: String,
    /// The server-wide default versioning mode.
    pub versioning: &'static str,
    /// Whether `/index.php/login/v2` works here.
    pub login_flow_v2: bool,
    /// Size limits.
    pub limits: Limits,
    /// The C2SP verifier key of the bridge's checkpoint signatures.
    pub log_key: String,
}

/// Size limits the bridge enforces.
#[derive(Debug, Serialize)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest sealed change.
    pub max_change_bytes: usize,
    /// Most addresses per device.
    pub max_addresses: usize,
}

/// `POST /devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    /// Base32 Ed25519 public key.
    pub device_id: String,
    /// Shown to the user.
    pub name: String,
    /// Base64 X25519 public key folder keys are wrapped to.
    pub x25519_public: String,
    /// Base64 Ed25519 signature (see the spec).
    pub signature: String,
}

/// A device as the API shows it.
#[derive(Debug, Serialize)]
pub struct Device {
    /// Base32 device id.
    pub device_id: String,
    /// Its user.
    pub user: String,
    /// Its name.
    pub name: String,
    /// Base64 X25519 public key.
    pub x25519_public: String,
    /// Current (unexpired) addresses.
    pub addresses: Vec<String>,
    /// When they expire, Unix seconds.
    pub addresses_expire: Option<i64>,
}

/// `PUT /devices/{id}/addresses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// Multiaddrs.
    pub addresses: Vec<String>,
    /// Lifetime, 30 to 3600 seconds.
    pub ttl_seconds: i64,
}

/// `POST /folders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderCreation {
    /// 32 hex.
    pub folder_id: String,
    /// Shown to users.
    pub label: String,
    /// `plaintext` or `encrypted`.
    pub index_mode: String,
    /// `crdt` or `server_authoritative`; default: the server's.
    #[serde(default)]
    pub versioning: Option<String>,
    /// The folder key wrapped for the creating device.
    pub wrapped_key: WrappedKey,
}

/// A folder as the API shows it.
#[derive(Debug, Serialize)]
pub struct Folder {
    /// 32 hex.
    pub folder_id: String,
    /// Label.
    pub label: String,
    /// Owner's user id.
    pub owner: String,
    /// `plaintext` or `encrypted`.
    pub index_mode: String,
    /// `crdt` or `server_authoritative`.
    pub versioning: String,
    /// Members (owner included) and their devices.
    pub members: Vec<Member>,
}

/// One member of a folder.
#[derive(Debug, Serialize)]
pub struct Member {
    /// User id.
    pub user: String,
    /// Their registered devices.
    pub devices: Vec<String>,
}

/// `POST /folders/{id}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The user to share with.
    pub user: String,
}

/// A folder key wrapped for one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// The recipient device.
    pub device_id: String,
    /// Base64, 32 bytes.
    pub ephemeral_public: String,
    /// Base64, 24 bytes.
    pub nonce: String,
    /// Base64, 48 bytes.
    pub ciphertext: String,
    /// The member device that wrapped it.
    pub wrapped_by: String,
    /// Base64, 64 bytes, by `wrapped_by`.
    pub signature: String,
}

/// `POST /folders/{id}/changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChanges {
    /// The uploading device (one of the caller's).
    pub device: String,
    /// Base64 sealed changes.
    pub changes: Vec<String>,
}

/// One stored change.
#[derive(Debug, Serialize)]
pub struct StoredChange {
    /// Its position.
    pub cursor: i64,
    /// Who uploaded it.
    pub device: String,
    /// Base64 sealed change.
    pub change: String,
}

/// `GET /folders/{id}/changes`.
#[derive(Debug, Serialize)]
pub struct ChangePage {
    /// Oldest first.
    pub changes: Vec<StoredChange>,
    /// The cursor to ask after, or `None` when nothing more is stored now.
    pub next: Option<i64>,
}

/// `POST /folders/{id}/files/{file}/entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// 64 hex.
    pub prev: String,
    /// Base64, 218 bytes.
    pub entry: String,
    /// 64 hex.
    pub head: String,
    /// `server_authoritative`: the head the writer built on (`None`: no entry yet).
    #[serde(default)]
    pub expected_head: Option<String>,
}

/// A stored chain link.
#[derive(Debug, Clone, Serialize)]
pub struct ChainLink {
    /// Position.
    pub seq: u64,
    /// 64 hex.
    pub prev: String,
    /// Base64 entry.
    pub entry: String,
    /// 64 hex.
    pub head: String,
    /// Its leaf in the folder's transparency log.
    pub log_index: Option<u64>,
}

/// `POST /folders/{id}/checkpoint/cosignatures`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCosignature {
    /// The checkpoint size it cosigns.
    pub size: u64,
    /// The C2SP cosignature line.
    pub cosignature: String,
}

/// `PUT /folders/{id}/index`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexUpdate {
    /// Entries to upsert.
    pub entries: Vec<IndexEntry>,
}

/// One file in the search index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// 32 hex.
    pub file_id: String,
    /// Plaintext path (plaintext folders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Keyed hashes of words (32 hex each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    /// Bytes.
    pub size: i64,
    /// Modification time.
    pub mtime_ms: i64,
    /// Deleted.
    pub deleted: bool,
}

/// Parses a JSON body, mapping every error to `invalid`.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    if body.len() > MAX_BODY {
        return Err(Failure::TooLarge(format!(
            "the body is over {MAX_BODY} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| Failure::Invalid(format!("body: {e}")))
}

/// A device id in its canonical text form (52 lowercase base32).
pub fn device_id(field: &str, s: &str) -> Result<DeviceId, Failure> {
    if s.len() != 52
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(Failure::Invalid(format!("{field}: not a device id")));
    }
    s.parse()
        .map_err(|_| Failure::Invalid(format!("{field}: not a device id")))
}

/// A lowercase hex id of `N` bytes.
pub fn hex_id<const N: usize>(field: &str, s: &str) -> Result<[u8; N], Failure> {
    let bad = || Failure::Invalid(format!("{field}: expected {} lowercase hex digits", N * 2));
    if s.len() != N * 2
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    let v = data_encoding::HEXLOWER
        .decode(s.as_bytes())
        .map_err(|_| bad())?;
    v.try_into().map_err(|_| bad())
}

/// Standard padded base64 of exactly `N` bytes.
pub fn b64_exact<const N: usize>(field: &str, s: &str) -> Result<[u8; N], Failure> {
    let v = b64(field, s, N)?;
    v.try_into()
        .map_err(|_| Failure::Invalid(format!("{field}: expected {N} bytes")))
}

/// Standard padded base64 of at most `max` bytes.
pub fn b64(field: &str, s: &str, max: usize) -> Result<Vec<u8>, Failure> {
    if s.len() > max.div_ceil(3) * 4 {
        return Err(Failure::TooLarge(format!("{field}: over {max} bytes")));
    }
    BASE64
        .decode(s.as_bytes())
        .map_err(|_| Failure::Invalid(format!("{field}: not base64")))
}

/// A short human text: `1..=max` characters, no control characters.
pub fn text(field: &str, s: &str, max: usize) -> Result<(), Failure> {
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(Failure::Invalid(format!(
            "{field}: 1 to {max} characters, no control characters"
        )));
    }
    Ok(())
}

/// Base64 for output.
pub fn to_b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}
