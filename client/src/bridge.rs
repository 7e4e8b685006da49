//! The device's side of the metadata bridge (`docs/bridge-api.yaml`): credentials, Login
//! Flow v2, and a blocking HTTP client for every call the daemon and the CLI make.
//!
//! The same client talks to the Nextcloud app and to `harp-bridge`. Every request sends
//! `OCS-APIRequest: true` and HTTP Basic with the app password. Calls are blocking (`ureq`):
//! the daemon makes them from its bridge thread, never from the network event loop.
//!
//! What the bridge is trusted with: addresses (hints: peers authenticate by key), membership
//! (who may fetch and sign), sealed changes and chain entries (it cannot read or forge them).
//! What it is not: folder keys travel wrapped to a device's X25519 key and signed by a member
//! device ([`harp_protocol::wrap`]).

pub mod link;

use std::path::Path;
use std::time::Duration;

use data_encoding::{BASE64, HEXLOWER};
use ed25519_dalek::{Signer, SigningKey};
use harp_protocol::ids::{ChainHash, DeviceId, FileId, FolderId};
use harp_protocol::wrap::{self, WrappedKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{self, Dirs};

/// The API prefix (as in Nextcloud).
pub const PREFIX: &str = "/ocs/v2.php/apps/harpbridge/api/v1";

/// Why a bridge call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bridge could not be reached, or the answer could not be read.
    #[error("bridge unreachable: {0}")]
    Transport(String),
    /// The bridge answered with an error status.
    #[error("bridge refused ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The API error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("bridge answered something malformed: {0}")]
    Malformed(String),
    /// Local state (credentials, keys).
    #[error(transparent)]
    Config(#[from] config::Error),
}

impl Error {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A bridge account: stored 0600 in the config directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Base URL (`https://cloud.example.org`, or `http://127.0.0.1:8780` for harp-bridge).
    pub url: String,
    /// Login name.
    pub user: String,
    /// App password.
    pub app_password: String,
    /// The bridge's checkpoint key (C2SP verifier key), pinned at login: a bridge that later
    /// signs with another key is not believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
}

impl Credentials {
    fn path(dirs: &Dirs) -> std::path::PathBuf {
        dirs.config.join("bridge.json")
    }

    /// The stored credentials, if this device is logged in.
    pub fn load(dirs: &Dirs) -> Result<Option<Self>> {
        let path = Self::path(dirs);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Malformed(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Transport(format!("{}: {e}", path.display()))),
        }
    }

    /// Stores them (0600).
    pub fn save(&self, dirs: &Dirs) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Malformed(e.to_string()))?;
        config::write_private(&Self::path(dirs), &text)?;
        Ok(())
    }
}

/// This device's X25519 secret (folder keys are wrapped to its public half), made on first use.
pub fn x25519_secret(dirs: &Dirs) -> Result<[u8; 32]> {
    let path = dirs.config.join("x25519.key");
    if !path.exists() {
        config::write_secret(&path, &random()?)?;
    }
    Ok(config::read_secret(&path)?)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| Error::Transport(format!("random: {e}")))?;
    Ok(b)
}

/// A device as the bridge describes it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Its id.
    pub id: DeviceId,
    /// Its user.
    pub user: String,
    /// Its X25519 public key.
    pub x25519: [u8; 32],
    /// Where it can be reached now.
    pub addresses: Vec<String>,
}

/// A folder as the bridge describes it.
#[derive(Debug, Clone)]
pub struct FolderInfo {
    /// Its id.
    pub id: FolderId,
    /// Label.
    pub label: String,
    /// Owner's user id.
    pub owner: String,
    /// `crdt` or `server_authoritative`.
    pub versioning: String,
    /// Whether the search index holds plaintext names (else keyed word tokens).
    pub plaintext_index: bool,
    /// Every member's devices, with their users.
    pub devices: Vec<(String, DeviceId)>,
}

/// One file as the search index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHit {
    /// The file.
    pub file: FileId,
    /// Its size.
    pub size: u64,
    /// Its modification time, ms.
    pub mtime_ms: i64,
    /// Deleted.
    pub deleted: bool,
    /// Its path (plaintext indexes only).
    pub name: Option<String>,
}

/// Sealed changes as read: (cursor, bytes), and the cursor to go on from (`None`: the end).
pub type ChangePage = (Vec<(i64, Vec<u8>)>, Option<i64>);

/// What appending a chain entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, or already stored.
    Stored,
    /// `server_authoritative`: the head moved to this one.
    HeadMoved(Option<ChainHash>),
}

/// A logged-in bridge client.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
    /// Login name.
    pub user: String,
}

impl Client {
    /// A client for `creds`.
    pub fn new(creds: &Credentials) -> Self {
        Self {
            agent: agent(),
            base: creds.url.trim_end_matches('/').to_owned(),
            auth: format!(
                "Basic {}",
                BASE64.encode(format!("{}:{}", creds.user, creds.app_password).as_bytes())
            ),
            user: creds.user.clone(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{PREFIX}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("OCS-APIRequest", "true")
            .header("Accept", "application/json")
            .header("Authorization", &self.auth);
        let bytes = match body {
            Some(v) => {
                req = req.header("Content-Type", "application/json");
                v.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let req = req
            .body(bytes)
            .map_err(|e| Error::Transport(format!("{method} {url}: {e}")))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| Error::Transport(format!("{method} {url}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        let data = serde_json::from_str::<Value>(&text)
            .map(|v| v["ocs"]["data"].clone())
            .unwrap_or(Value::Null);
        if status >= 400 {
            return Err(Error::Refused {
                status,
                code: data["error"].as_str().unwrap_or("").to_owned(),
                message: data["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| text.chars().take(200).collect()),
            });
        }
        Ok((status, data))
    }

    /// The bridge's checkpoint key (C2SP verifier key string), if it has one.
    pub fn log_key(&self) -> Result<Option<String>> {
        let (_, d) = self.call("GET", "/capabilities", None)?;
        Ok(d["log_key"].as_str().map(str::to_owned))
    }

    /// A folder log's newest checkpoint: its size and the signed note.
    pub fn checkpoint(&self, folder: &FolderId) -> Result<(u64, String)> {
        let (_, d) = self.call("GET", &format!("/folders/{folder}/checkpoint"), None)?;
        let size = d["size"]
            .as_u64()
            .ok_or_else(|| Error::Malformed("checkpoint without a size".into()))?;
        let note = d["note"]
            .as_str()
            .ok_or_else(|| Error::Malformed("checkpoint without a note".into()))?;
        Ok((size, note.to_owned()))
    }

    /// The consistency proof of a folder's log from `old` to `new` leaves.
    pub fn consistency(
        &self,
        folder: &FolderId,
        old: u64,
        new: u64,
    ) -> Result<Vec<harp_protocol::tlog::Hash>> {
        let (_, d) = self.call(
            "GET",
            &format!("/folders/{folder}/log/consistency?old={old}&new={new}"),
            None,
        )?;
        proof_hashes(&d)
    }

    /// The inclusion proof of leaf `index` in the folder log's tree of `size` leaves.
    pub fn inclusion(
        &self,
        folder: &FolderId,
        index: u64,
        size: u64,
    ) -> Result<Vec<harp_protocol::tlog::Hash>> {
        let (_, d) = self.call(
            "GET",
            &format!("/folders/{folder}/log/inclusion?index={index}&size={size}"),
            None,
        )?;
        proof_hashes(&d)
    }

    /// Where the bridge logged the link `head` (version `seq` of `file`), if it did.
    pub fn log_index(
        &self,
        folder: &FolderId,
        file: &FileId,
        seq: u64,
        head: &ChainHash,
    ) -> Result<Option<u64>> {
        let (_, d) = self.call(
            "GET",
            &format!("/folders/{folder}/files/{file}/entries?from_seq={seq}&limit=16"),
            None,
        )?;
        let head = head.to_hex();
        Ok(d.as_array()
            .into_iter()
            .flatten()
            .find(|l| l["seq"].as_u64() == Some(seq) && l["head"].as_str() == Some(&head))
            .and_then(|l| l["log_index"].as_u64()))
    }

    /// Stores a witness's cosignature line of the folder log's checkpoint at `size`.
    pub fn add_cosignature(&self, folder: &FolderId, size: u64, line: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/folders/{folder}/checkpoint/cosignatures"),
            Some(&json!({ "size": size, "cosignature": line })),
        )?;
        Ok(())
    }

    /// The caller's user id (what registrations sign).
    pub fn user_id(&self) -> Result<String> {
        let (_, d) = self.call("GET", "/capabilities", None)?;
        d["user"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Malformed("capabilities without user".into()))
    }

    /// Registers this device (idempotent).
    pub fn register(
        &self,
        device: &SigningKey,
        x25519_secret: &[u8; 32],
        name: &str,
    ) -> Result<()> {
        let user = self.user_id()?;
        let id = DeviceId::of_signing_key(device);
        let x = wrap::x25519_public(x25519_secret);
        let sig = device.sign(&wrap::registration_message(&user, &id, &x));
        self.call(
            "POST",
            "/devices",
            Some(&json!({
                "device_id": id.to_base32(),
                "name": name.chars().take(64).collect::<String>(),
                "x25519_public": BASE64.encode(&x),
                "signature": BASE64.encode(&sig.to_bytes()),
            })),
        )?;
        Ok(())
    }

    /// Publishes where this device can be reached for `ttl` seconds.
    pub fn publish_addresses(
        &self,
        device: &DeviceId,
        addresses: &[String],
        ttl: u64,
    ) -> Result<()> {
        let addresses: Vec<&String> = addresses.iter().take(16).collect();
        self.call(
            "PUT",
            &format!("/devices/{}/addresses", device.to_base32()),
            Some(&json!({ "addresses": addresses, "ttl_seconds": ttl.clamp(30, 3600) })),
        )?;
        Ok(())
    }

    /// A device visible to the caller.
    pub fn device(&self, id: &DeviceId) -> Result<DeviceInfo> {
        let (_, d) = self.call("GET", &format!("/devices/{}", id.to_base32()), None)?;
        let x = BASE64
            .decode(d["x25519_public"].as_str().unwrap_or("").as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| Error::Malformed("device without an X25519 key".into()))?;
        Ok(DeviceInfo {
            id: *id,
            user: d["user"].as_str().unwrap_or("").to_owned(),
            x25519: x,
            addresses: d["addresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn folder_of(d: &Value) -> Result<FolderInfo> {
        let id = d["folder_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Malformed("folder without an id".into()))?;
        let mut devices = Vec::new();
        for m in d["members"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let user = m["user"].as_str().unwrap_or("").to_owned();
            for dev in m["devices"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(id) = dev.as_str().and_then(|s| s.parse().ok()) {
                    devices.push((user.clone(), id));
                }
            }
        }
        Ok(FolderInfo {
            id,
            label: d["label"].as_str().unwrap_or("").to_owned(),
            owner: d["owner"].as_str().unwrap_or("").to_owned(),
            versioning: d["versioning"].as_str().unwrap_or("crdt").to_owned(),
            plaintext_index: d["index_mode"] == "plaintext",
            devices,
        })
    }

    /// A folder, if the caller is a member.
    pub fn folder(&self, id: &FolderId) -> Result<Option<FolderInfo>> {
        match self.call("GET", &format!("/folders/{id}"), None) {
            Ok((_, d)) => Ok(Some(Self::folder_of(&d)?)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The caller's folders.
    pub fn folders(&self) -> Result<Vec<FolderInfo>> {
        let (_, d) = self.call("GET", "/folders", None)?;
        d.as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(Self::folder_of)
            .collect()
    }

    /// Creates a folder on the bridge with its key wrapped for this device.
    pub fn create_folder(
        &self,
        id: &FolderId,
        label: &str,
        plaintext_index: bool,
        own_key: &WrappedKey,
    ) -> Result<()> {
        self.call(
            "POST",
            "/folders",
            Some(&json!({
                "folder_id": id.to_string(),
                "label": label.chars().take(128).collect::<String>(),
                "index_mode": if plaintext_index { "plaintext" } else { "encrypted" },
                "wrapped_key": wrapped_json(own_key),
            })),
        )?;
        Ok(())
    }

    /// Shares a folder with another user.
    pub fn add_member(&self, folder: &FolderId, user: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/folders/{folder}/members"),
            Some(&json!({ "user": user })),
        )?;
        Ok(())
    }

    /// Stores a wrapped key.
    pub fn put_key(&self, folder: &FolderId, key: &WrappedKey) -> Result<()> {
        self.call(
            "PUT",
            &format!("/folders/{folder}/keys/{}", key.recipient.to_base32()),
            Some(&wrapped_json(key)),
        )?;
        Ok(())
    }

    /// The folder key wrapped for one of the caller's devices, if there is one yet.
    pub fn get_key(&self, folder: &FolderId, device: &DeviceId) -> Result<Option<WrappedKey>> {
        let d = match self.call(
            "GET",
            &format!("/folders/{folder}/keys/{}", device.to_base32()),
            None,
        ) {
            Ok((_, d)) => d,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = |f: &str| {
            BASE64
                .decode(d[f].as_str().unwrap_or("").as_bytes())
                .unwrap_or_default()
        };
        let dev = |f: &str| -> Result<DeviceId> {
            d[f].as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Malformed(format!("wrapped key: {f}")))
        };
        let bad = |f: &str| Error::Malformed(format!("wrapped key: {f}"));
        Ok(Some(WrappedKey {
            recipient: dev("device_id")?,
            ephemeral_public: bytes("ephemeral_public")
                .try_into()
                .map_err(|_| bad("ephemeral_public"))?,
            nonce: bytes("nonce").try_into().map_err(|_| bad("nonce"))?,
            ciphertext: bytes("ciphertext")
                .try_into()
                .map_err(|_| bad("ciphertext"))?,
            wrapped_by: dev("wrapped_by")?,
            signature: bytes("signature")
                .try_into()
                .map_err(|_| bad("signature"))?,
        }))
    }

    /// Uploads sealed changes; returns the cursor after them.
    pub fn append_changes(
        &self,
        folder: &FolderId,
        device: &DeviceId,
        sealed: &[Vec<u8>],
    ) -> Result<i64> {
        let changes: Vec<String> = sealed.iter().map(|c| BASE64.encode(c)).collect();
        let (_, d) = self.call(
            "POST",
            &format!("/folders/{folder}/changes"),
            Some(&json!({ "device": device.to_base32(), "changes": changes })),
        )?;
        d["cursor"]
            .as_i64()
            .ok_or_else(|| Error::Malformed("no cursor".into()))
    }

    /// Sealed changes after `after`: (cursor, device, bytes), and where to go on from.
    pub fn read_changes(&self, folder: &FolderId, after: i64) -> Result<ChangePage> {
        let (_, d) = self.call(
            "GET",
            &format!("/folders/{folder}/changes?after={after}&limit=500"),
            None,
        )?;
        let mut out = Vec::new();
        for c in d["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let cursor = c["cursor"]
                .as_i64()
                .ok_or_else(|| Error::Malformed("change without a cursor".into()))?;
            let bytes = BASE64
                .decode(c["change"].as_str().unwrap_or("").as_bytes())
                .map_err(|_| Error::Malformed("change is not base64".into()))?;
            out.push((cursor, bytes));
        }
        Ok((out, d["next"].as_i64()))
    }

    /// Appends one chain link (`expected`: the head it builds on, for compare-and-swap).
    pub fn append_entry(
        &self,
        folder: &FolderId,
        file: &FileId,
        prev: &ChainHash,
        entry: &[u8],
        head: &ChainHash,
        expected: Option<&ChainHash>,
    ) -> Result<Appended> {
        let mut body = json!({
            "prev": prev.to_hex(),
            "entry": BASE64.encode(entry),
            "head": head.to_hex(),
        });
        if let Some(h) = expected {
            body["expected_head"] = json!(h.to_hex());
        }
        match self.call(
            "POST",
            &format!("/folders/{folder}/files/{file}/entries"),
            Some(&body),
        ) {
            Ok(_) => Ok(Appended::Stored),
            Err(Error::Refused { status: 409, .. }) => {
                let (_, now) = self.call(
                    "GET",
                    &format!("/folders/{folder}/files/{file}/entries?from_seq=1&limit=1000"),
                    None,
                )?;
                let last = now
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|l| l["head"].as_str())
                    .and_then(|h| HEXLOWER.decode(h.as_bytes()).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(ChainHash::from_bytes);
                Ok(Appended::HeadMoved(last))
            }
            Err(e) => Err(e),
        }
    }
}

/// The `proof` array of an inclusion or consistency answer.
fn proof_hashes(d: &Value) -> Result<Vec<harp_protocol::tlog::Hash>> {
    d["proof"]
        .as_array()
        .ok_or_else(|| Error::Malformed("an answer without a proof".into()))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| HEXLOWER.decode(h.as_bytes()).ok())
                .and_then(|b| <harp_protocol::tlog::Hash>::try_from(b).ok())
                .ok_or_else(|| Error::Malformed("a proof hash is not 64 hex".into()))
        })
        .collect()
}

impl Client {
    /// Upserts search index entries (at most 5000 per call).
    pub fn put_index(&self, folder: &FolderId, entries: &[Value]) -> Result<()> {
        for batch in entries.chunks(5000) {
            self.call(
                "PUT",
                &format!("/folders/{folder}/index"),
                Some(&json!({ "entries": batch })),
            )?;
        }
        Ok(())
    }

    /// Searches a folder's index: by name substring (plaintext) or by tokens (encrypted).
    pub fn search(
        &self,
        folder: &FolderId,
        q: Option<&str>,
        tokens: &[[u8; 16]],
    ) -> Result<Vec<IndexHit>> {
        let mut query: Vec<String> = tokens
            .iter()
            .take(16)
            .map(|t| format!("token={}", HEXLOWER.encode(t)))
            .collect();
        if let Some(q) = q {
            let enc: String = q
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            query.push(format!("q={enc}"));
        }
        let (_, d) = self.call(
            "GET",
            &format!("/folders/{folder}/index?{}", query.join("&")),
            None,
        )?;
        Ok(d.as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|e| {
                Some(IndexHit {
                    file: e["file_id"].as_str()?.parse().ok()?,
                    size: e["size"].as_u64().unwrap_or(0),
                    mtime_ms: e["mtime_ms"].as_i64().unwrap_or(0),
                    deleted: e["deleted"].as_bool().unwrap_or(false),
                    name: e["name"].as_str().map(str::to_owned),
                })
            })
            .collect())
    }
}

fn wrapped_json(k: &WrappedKey) -> Value {
    json!({
        "device_id": k.recipient.to_base32(),
        "ephemeral_public": BASE64.encode(&k.ephemeral_public),
        "nonce": BASE64.encode(&k.nonce),
        "ciphertext": BASE64.encode(&k.ciphertext),
        "wrapped_by": k.wrapped_by.to_base32(),
        "signature": BASE64.encode(&k.signature),
    })
}

/// Wraps `key` for `to` (fresh ephemeral key and nonce), signed by `device`.
pub fn wrap_for(
    folder: &FolderId,
    key: &harp_protocol::keys::FolderKey,
    to: &DeviceId,
    to_x25519: &[u8; 32],
    device: &SigningKey,
) -> Result<WrappedKey> {
    Ok(wrap::wrap(
        folder,
        key,
        to,
        to_x25519,
        device,
        random()?,
        random()?,
    ))
}

/// Seals a document change for the bridge in the folder's current key epoch.
pub fn seal_change(
    key: &harp_protocol::epoch::EpochKey,
    folder: &FolderId,
    change: &[u8],
) -> Result<Vec<u8>> {
    Ok(key.seal_change(folder, change, random()?))
}

/// Fresh randomness for a key grant: a BLAKE3 output stream keyed with 32 bytes from the OS,
/// drawn once (so only that draw can fail).
pub(crate) struct GrantRandom(blake3::OutputReader);

impl GrantRandom {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(
            blake3::Hasher::new_keyed(&random()?)
                .update(b"harp key grant randomness")
                .finalize_xof(),
        ))
    }
}

impl harp_protocol::epoch::GrantRandom for GrantRandom {
    fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.0.fill(&mut b);
        b
    }

    fn bytes24(&mut self) -> [u8; 24] {
        let mut b = [0u8; 24];
        self.0.fill(&mut b);
        b
    }
}

/// A new random epoch secret.
pub(crate) fn new_secret() -> Result<[u8; 32]> {
    random()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .user_agent(concat!("harp/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Nextcloud Login Flow v2: asks the server for a login URL, shows it, and polls until the
/// user has granted access; returns the app password's credentials.
pub fn login_flow(url: &str, show: impl Fn(&str), give_up: Duration) -> Result<Credentials> {
    let base = url.trim_end_matches('/');
    let agent = agent();
    let start = format!("{base}/index.php/login/v2");
    let mut resp = agent
        .post(&start)
        .header("User-Agent", "Harp")
        .send_empty()
        .map_err(|e| Error::Transport(format!("POST {start}: {e}")))?;
    if resp.status().as_u16() != 200 {
        return Err(Error::Refused {
            status: resp.status().as_u16(),
            code: "login_flow".into(),
            message: format!("{start} does not offer Login Flow v2"),
        });
    }
    let v: Value = resp
        .body_mut()
        .read_json()
        .map_err(|e| Error::Malformed(format!("login flow start: {e}")))?;
    let login = v["login"]
        .as_str()
        .ok_or_else(|| Error::Malformed("no login URL".into()))?;
    let token = v["poll"]["token"]
        .as_str()
        .ok_or_else(|| Error::Malformed("no poll token".into()))?;
    let endpoint = v["poll"]["endpoint"]
        .as_str()
        .ok_or_else(|| Error::Malformed("no poll endpoint".into()))?;
    show(login);
    let deadline = std::time::Instant::now() + give_up;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let mut r = match agent
            .post(endpoint)
            .content_type("application/x-www-form-urlencoded")
            .send(format!("token={token}").as_bytes())
        {
            Ok(r) => r,
            Err(e) => return Err(Error::Transport(format!("polling: {e}"))),
        };
        if r.status().as_u16() == 404 {
            continue;
        }
        let v: Value = r
            .body_mut()
            .read_json()
            .map_err(|e| Error::Malformed(format!("login flow poll: {e}")))?;
        let user = v["loginName"]
            .as_str()
            .ok_or_else(|| Error::Malformed("no loginName".into()))?;
        let pw = v["appPassword"]
            .as_str()
            .ok_or_else(|| Error::Malformed("no appPassword".into()))?;
        let server = v["server"].as_str().unwrap_or(base);
        return Ok(Credentials {
            url: server.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            app_password: pw.to_owned(),
            log_key: None,
        });
    }
    Err(Error::Transport("the login was not granted in time".into()))
}

/// Logs in with an app password: checks it against the bridge, registers this device, and
/// stores the credentials.
pub fn login_with_password(
    dirs: &Dirs,
    device: &SigningKey,
    device_name: &str,
    mut creds: Credentials,
) -> Result<String> {
    let client = Client::new(&creds);
    let user = client.user_id()?;
    client.register(device, &x25519_secret(dirs)?, device_name)?;
    creds.log_key = client.log_key()?;
    creds.save(dirs)?;
    Ok(user)
}

/// Whether `path` holds a stored login (for `harp status`).
pub fn logged_in(dirs: &Dirs) -> bool {
    Path::new(&dirs.config.join("bridge.json")).exists()
}
