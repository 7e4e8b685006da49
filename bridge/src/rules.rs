//! The rules of the bridge: who sees what, what is checked before anything is stored.
//!
//! Every operation takes the authenticated caller and answers either a value or a
//! [`Failure`] that maps one-to-one onto the API's error codes. Visibility is a single rule:
//! a user sees a folder when they are a member of it (the owner is a member), and anything
//! not visible answers exactly like something that does not exist.
//!
//! The bridge never holds a folder key, so chain entries are checked as far as that allows
//! (format, place, link hash, author membership, signature), never from the genesis.

use std::sync::{Mutex, MutexGuard};

use ed25519_dalek::{Signature, VerifyingKey};
use harp_protocol::chain::{self, ENTRY_LEN, Entry};
use harp_protocol::ids::{ChainHash, DeviceId};
use harp_protocol::tlog;
use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use crate::wire::{self, MAX_ADDRESSES, MAX_CHANGE};

/// Why a request was refused. Each variant is one API error code.
#[derive(Debug, Error)]
pub enum Failure {
    /// No or wrong credentials (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Missing, or not visible to the caller (404).
    #[error("{0}")]
    NotFound(String),
    /// A malformed field, or a check that failed (422).
    #[error("{0}")]
    Invalid(String),
    /// Over a size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Already exists differently (409).
    #[error("{0}")]
    Conflict(String),
    /// `server_authoritative`: the file's head moved (409 with the current head).
    #[error("the head moved")]
    HeadMoved {
        /// The current head, if any.
        head: Option<ChainHash>,
        /// Its seq.
        seq: Option<u64>,
    },
    /// Too many failed attempts (429).
    #[error("too many attempts, wait a minute")]
    RateLimited,
    /// The bridge's own failure (500); details are logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Internal(format!("database: {e}"))
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// A chain link as stored: seq, prev, entry, head.
type StoredLink = (i64, Vec<u8>, Vec<u8>, Vec<u8>);

/// How a folder decides between concurrent versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Devices merge; the bridge stores every branch.
    Crdt,
    /// The bridge serialises each file's chain (compare-and-swap on its head).
    ServerAuthoritative,
}

impl Versioning {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Versioning::Crdt => "crdt",
            Versioning::ServerAuthoritative => "server_authoritative",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "crdt" => Some(Versioning::Crdt),
            "server_authoritative" => Some(Versioning::ServerAuthoritative),
            _ => None,
        }
    }
}

/// Most devices per user, folders per user, members per folder.
const MAX_DEVICES: i64 = 64;
const MAX_FOLDERS: i64 = 4096;
const MAX_MEMBERS: i64 = 256;

/// The signed message of a device registration.
pub fn registration_message(user: &str, device: &DeviceId, x25519: &[u8; 32]) -> Vec<u8> {
    let mut m = b"harp bridge device v1\0".to_vec();
    m.extend_from_slice(user.as_bytes());
    m.push(0);
    m.extend_from_slice(device.as_bytes());
    m.extend_from_slice(x25519);
    m
}

/// The signed message of a wrapped folder key.
pub fn wrap_message(
    folder: &[u8; 16],
    device: &DeviceId,
    ephemeral: &[u8; 32],
    nonce: &[u8; 24],
    ciphertext: &[u8; 48],
) -> Vec<u8> {
    let mut m = b"harp bridge wrap v1\0".to_vec();
    m.extend_from_slice(folder);
    m.extend_from_slice(device.as_bytes());
    m.extend_from_slice(ephemeral);
    m.extend_from_slice(nonce);
    m.extend_from_slice(ciphertext);
    m
}

fn verify(device: &DeviceId, msg: &[u8], sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(device.as_bytes())
        .is_ok_and(|k| k.verify_strict(msg, &Signature::from_bytes(sig)).is_ok())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn not_found() -> Failure {
    Failure::NotFound("no such folder".into())
}

/// The bridge: one database, the server-wide default versioning, and the key that signs the
/// folders' log checkpoints.
pub struct Bridge {
    conn: Mutex<Connection>,
    versioning: Versioning,
    log_key: ed25519_dalek::SigningKey,
    log_name: String,
    /// Each folder's log, loaded on first use (locked after `conn`, never before).
    trees: Mutex<std::collections::HashMap<String, tlog::Tree>>,
}

/// The origin line of a folder's log.
pub fn log_origin(folder: &str) -> String {
    format!("harp/{folder}")
}

fn setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

/// What `harp-bridge status` prints.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    /// Default versioning.
    pub versioning: &'static str,
    /// Users.
    pub users: i64,
    /// Devices.
    pub devices: i64,
    /// Folders.
    pub folders: i64,
    /// Stored changes.
    pub changes: i64,
    /// Stored chain entries.
    pub entries: i64,
}

/// What `harp-bridge verify` found.
#[derive(Debug, serde::Serialize)]
pub struct ChainReport {
    /// The file.
    pub file_id: String,
    /// Entries stored.
    pub entries: usize,
    /// Heads without a successor (more than one: a fork, normal in `crdt` folders).
    pub tips: Vec<String>,
    /// The highest seq.
    pub last_seq: u64,
}

impl Bridge {
    /// A bridge over an open database.
    pub fn new(conn: Connection, versioning: Versioning) -> Result<Self> {
        // The log key is made on first use and kept in the database: checkpoints signed
        // before a restart stay verifiable after it.
        let seed = match setting(&conn, "log_seed")? {
            Some(hex) => wire::hex_id::<32>("log_seed", &hex)
                .map_err(|_| Failure::Internal("the stored log key is damaged".into()))?,
            None => {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed).map_err(|e| Failure::Internal(e.to_string()))?;
                conn.execute(
                    "INSERT INTO settings (key, value) VALUES ('log_seed', ?1)",
                    [data_encoding::HEXLOWER.encode(&seed)],
                )?;
                seed
            }
        };
        let log_name = setting(&conn, "log_name")?.unwrap_or_else(|| "harp-bridge".to_owned());
        Ok(Self {
            conn: Mutex::new(conn),
            versioning,
            log_key: ed25519_dalek::SigningKey::from_bytes(&seed),
            log_name,
            trees: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // --- users and credentials -----------------------------------------------------------

    /// Creates a user; returns a first app password.
    pub fn add_user(&self, user: &str) -> Result<String> {
        wire::text("user", user, 64)?;
        if user.contains(['/', ':', ' ']) {
            return Err(Failure::Invalid("user: no '/', ':' or spaces".into()));
        }
        let db = self.db();
        let added = db.execute(
            "INSERT OR IGNORE INTO users (user_id, created_ms) VALUES (?1, ?2)",
            params![user, now_ms()],
        )?;
        if added == 0 {
            return Err(Failure::Conflict(format!("user {user} exists")));
        }
        drop(db);
        self.add_app_password(user, "first")
    }

    /// Makes a new app password for an existing user.
    pub fn add_app_password(&self, user: &str, label: &str) -> Result<String> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).map_err(|e| Failure::Internal(e.to_string()))?;
        let token = data_encoding::BASE32_NOPAD.encode(&raw).to_lowercase();
        let db = self.db();
        let exists: Option<String> = db
            .query_row(
                "SELECT user_id FROM users WHERE user_id = ?1",
                [user],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(Failure::NotFound(format!("no user {user}")));
        }
        db.execute(
            "INSERT INTO app_passwords (token_hash, user_id, label, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![blake3::hash(token.as_bytes()).as_bytes().as_slice(), user, label, now_ms()],
        )?;
        Ok(token)
    }

    /// The user an app password belongs to, if it is theirs.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<String> {
        let hash = blake3::hash(password.as_bytes());
        let owner: Option<String> = self
            .db()
            .query_row(
                "SELECT user_id FROM app_passwords WHERE token_hash = ?1",
                [hash.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        match owner {
            Some(o) if o == user => Ok(o),
            _ => Err(Failure::Unauthorized),
        }
    }

    /// Whether a user exists.
    pub fn user_exists(&self, user: &str) -> Result<bool> {
        Ok(self
            .db()
            .query_row("SELECT 1 FROM users WHERE user_id = ?1", [user], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// `GET /capabilities`.
    pub fn capabilities(&self, user: &str, login_flow: bool) -> wire::Capabilities {
        wire::Capabilities {
            api_version: 1,
            user: user.to_owned(),
            versioning: self.versioning.name(),
            login_flow_v2: login_flow,
            limits: wire::Limits {
                max_body_bytes: wire::MAX_BODY,
                max_change_bytes: MAX_CHANGE,
                max_addresses: MAX_ADDRESSES,
            },
            log_key: tlog::verifier_key(&self.log_name, &self.log_key.verifying_key()),
        }
    }

    // --- devices -------------------------------------------------------------------------

    fn device_row(db: &Connection, device: &str) -> Result<Option<(wire::Device, i64)>> {
        let now_s = now_ms() / 1000;
        Ok(db
            .query_row(
                "SELECT device_id, user_id, name, x25519_public, addresses, addresses_expire, created_ms
                 FROM devices WHERE device_id = ?1",
                [device],
                |r| {
                    let expire: Option<i64> = r.get(5)?;
                    let live = expire.is_some_and(|e| e > now_s);
                    let addresses: String = r.get(4)?;
                    let x: Vec<u8> = r.get(3)?;
                    Ok((
                        wire::Device {
                            device_id: r.get(0)?,
                            user: r.get(1)?,
                            name: r.get(2)?,
                            x25519_public: wire::to_b64(&x),
                            addresses: if live {
                                serde_json::from_str(&addresses).unwrap_or_default()
                            } else {
                                Vec::new()
                            },
                            addresses_expire: if live { expire } else { None },
                        },
                        r.get(6)?,
                    ))
                },
            )
            .optional()?)
    }

    /// `GET /devices`.
    pub fn list_devices(&self, user: &str) -> Result<Vec<wire::Device>> {
        self.all_devices(Some(user))
    }

    /// `POST /devices`: the device and whether it was new.
    pub fn register_device(
        &self,
        user: &str,
        reg: &wire::DeviceRegistration,
    ) -> Result<(wire::Device, bool)> {
        let device = wire::device_id("device_id", &reg.device_id)?;
        wire::text("name", &reg.name, 64)?;
        let x: [u8; 32] = wire::b64_exact("x25519_public", &reg.x25519_public)?;
        let sig: [u8; 64] = wire::b64_exact("signature", &reg.signature)?;
        if !verify(&device, &registration_message(user, &device, &x), &sig) {
            return Err(Failure::Invalid(
                "signature: does not verify for this user, device and key".into(),
            ));
        }
        let db = self.db();
        if let Some((d, _)) = Self::device_row(&db, &reg.device_id)? {
            if d.user != user || d.x25519_public != wire::to_b64(&x) {
                return Err(Failure::Conflict(
                    "this device id is registered with another user or key".into(),
                ));
            }
            db.execute(
                "UPDATE devices SET name = ?2 WHERE device_id = ?1",
                params![reg.device_id, reg.name],
            )?;
            let (d, _) = Self::device_row(&db, &reg.device_id)?
                .ok_or_else(|| Failure::Internal("device vanished".into()))?;
            return Ok((d, false));
        }
        let count: i64 = db.query_row(
            "SELECT count(*) FROM devices WHERE user_id = ?1",
            [user],
            |r| r.get(0),
        )?;
        if count >= MAX_DEVICES {
            return Err(Failure::Invalid(format!(
                "at most {MAX_DEVICES} devices per user"
            )));
        }
        db.execute(
            "INSERT INTO devices (device_id, user_id, name, x25519_public, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![reg.device_id, user, reg.name, x.as_slice(), now_ms()],
        )?;
        let (d, _) = Self::device_row(&db, &reg.device_id)?
            .ok_or_else(|| Failure::Internal("device vanished".into()))?;
        Ok((d, true))
    }

    /// Whether `viewer` may see `owner`'s devices: themselves, or a folder in common.
    fn sees_user(db: &Connection, viewer: &str, owner: &str) -> Result<bool> {
        if viewer == owner {
            return Ok(true);
        }
        Ok(db
            .query_row(
                "SELECT 1 FROM members a JOIN members b ON a.folder_id = b.folder_id
                 WHERE a.user_id = ?1 AND b.user_id = ?2 LIMIT 1",
                [viewer, owner],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// `GET /devices/{id}`.
    pub fn get_device(&self, user: &str, device: &str) -> Result<wire::Device> {
        let missing = || Failure::NotFound("no such device".into());
        let db = self.db();
        let (d, _) = Self::device_row(&db, device)?.ok_or_else(missing)?;
        if !Self::sees_user(&db, user, &d.user)? {
            return Err(missing());
        }
        Ok(d)
    }

    /// `DELETE /devices/{id}`.
    pub fn revoke_device(&self, user: &str, device: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute(
            "DELETE FROM devices WHERE device_id = ?1 AND user_id = ?2",
            [device, user],
        )?;
        if n == 0 {
            return Err(Failure::NotFound("no such device".into()));
        }
        tx.execute("DELETE FROM wrapped_keys WHERE device_id = ?1", [device])?;
        tx.commit()?;
        Ok(())
    }

    /// `PUT /devices/{id}/addresses`.
    pub fn publish_addresses(&self, user: &str, device: &str, a: &wire::Addresses) -> Result<()> {
        if a.addresses.len() > MAX_ADDRESSES {
            return Err(Failure::Invalid(format!(
                "addresses: at most {MAX_ADDRESSES}"
            )));
        }
        for addr in &a.addresses {
            if !(4..=256).contains(&addr.len())
                || !addr.starts_with('/')
                || !addr.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(Failure::Invalid(format!(
                    "addresses: {addr:?} is not a multiaddr"
                )));
            }
        }
        if !(30..=3600).contains(&a.ttl_seconds) {
            return Err(Failure::Invalid("ttl_seconds: 30 to 3600".into()));
        }
        let json =
            serde_json::to_string(&a.addresses).map_err(|e| Failure::Internal(e.to_string()))?;
        let n = self.db().execute(
            "UPDATE devices SET addresses = ?3, addresses_expire = ?4 WHERE device_id = ?1 AND user_id = ?2",
            params![device, user, json, now_ms() / 1000 + a.ttl_seconds],
        )?;
        if n == 0 {
            return Err(Failure::NotFound("no such device".into()));
        }
        Ok(())
    }

    // --- folders -------------------------------------------------------------------------

    fn is_member(db: &Connection, folder: &str, user: &str) -> Result<bool> {
        Ok(db
            .query_row(
                "SELECT 1 FROM members WHERE folder_id = ?1 AND user_id = ?2",
                [folder, user],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The folder's row if `user` may see it; `not_found` otherwise.
    fn visible(
        db: &Connection,
        folder: &str,
        user: &str,
    ) -> Result<(String, String, String, Versioning)> {
        if !Self::is_member(db, folder, user)? {
            return Err(not_found());
        }
        db.query_row(
            "SELECT owner, label, index_mode, versioning FROM folders WHERE folder_id = ?1",
            [folder],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?)),
        )
        .optional()?
        .map(|(o, l, i, v)| (o, l, i, Versioning::parse(&v).unwrap_or(Versioning::Crdt)))
        .ok_or_else(not_found)
    }

    fn folder_view(db: &Connection, folder: &str, user: &str) -> Result<wire::Folder> {
        let (owner, label, index_mode, versioning) = Self::visible(db, folder, user)?;
        let users: Vec<String> = db
            .prepare("SELECT user_id FROM members WHERE folder_id = ?1 ORDER BY user_id")?
            .query_map([folder], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut members = Vec::new();
        let mut devices = db.prepare(
            "SELECT device_id FROM devices WHERE user_id = ?1 ORDER BY created_ms, device_id",
        )?;
        for u in users {
            let d: Vec<String> = devices
                .query_map([&u], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            members.push(wire::Member {
                user: u,
                devices: d,
            });
        }
        Ok(wire::Folder {
            folder_id: folder.to_owned(),
            label,
            owner,
            index_mode,
            versioning: versioning.name().to_owned(),
            members,
        })
    }

    /// `GET /folders`.
    pub fn list_folders(&self, user: &str) -> Result<Vec<wire::Folder>> {
        let db = self.db();
        let ids: Vec<String> = db
            .prepare("SELECT folder_id FROM members WHERE user_id = ?1 ORDER BY folder_id")?
            .query_map([user], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.iter()
            .map(|f| Self::folder_view(&db, f, user))
            .collect()
    }

    /// `GET /folders/{id}`.
    pub fn get_folder(&self, user: &str, folder: &str) -> Result<wire::Folder> {
        Self::folder_view(&self.db(), folder, user)
    }

    /// `POST /folders`.
    pub fn create_folder(&self, user: &str, c: &wire::FolderCreation) -> Result<wire::Folder> {
        let folder: [u8; 16] = wire::hex_id("folder_id", &c.folder_id)?;
        wire::text("label", &c.label, 128)?;
        if c.index_mode != "plaintext" && c.index_mode != "encrypted" {
            return Err(Failure::Invalid(
                "index_mode: plaintext or encrypted".into(),
            ));
        }
        let versioning = match &c.versioning {
            None => self.versioning,
            Some(v) => Versioning::parse(v).ok_or_else(|| {
                Failure::Invalid("versioning: crdt or server_authoritative".into())
            })?,
        };
        let mut db = self.db();
        let tx = db.transaction()?;
        let key = Self::check_wrapped_key(&tx, user, &folder, &c.wrapped_key, true)?;
        if key.0 != key.1 {
            return Err(Failure::Invalid(
                "wrapped_key: the creating device wraps the key for itself".into(),
            ));
        }
        let count: i64 = tx.query_row(
            "SELECT count(*) FROM folders WHERE owner = ?1",
            [user],
            |r| r.get(0),
        )?;
        if count >= MAX_FOLDERS {
            return Err(Failure::Invalid(format!(
                "at most {MAX_FOLDERS} folders per user"
            )));
        }
        let added = tx.execute(
            "INSERT OR IGNORE INTO folders (folder_id, owner, label, index_mode, versioning, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![c.folder_id, user, c.label, c.index_mode, versioning.name(), now_ms()],
        )?;
        if added == 0 {
            return Err(Failure::Conflict("a folder with this id exists".into()));
        }
        tx.execute(
            "INSERT INTO members (folder_id, user_id) VALUES (?1, ?2)",
            [&c.folder_id, user],
        )?;
        Self::store_wrapped_key(&tx, &c.folder_id, &c.wrapped_key)?;
        let view = Self::folder_view(&tx, &c.folder_id, user)?;
        tx.commit()?;
        Ok(view)
    }

    /// `POST /folders/{id}/members`: whether the user was new.
    pub fn add_member(&self, user: &str, folder: &str, new: &wire::NewMember) -> Result<bool> {
        let db = self.db();
        let (owner, ..) = Self::visible(&db, folder, user)?;
        let missing = || Failure::NotFound("no such folder or user".into());
        if owner != user {
            return Err(missing());
        }
        if new.user.is_empty() || new.user.len() > 64 {
            return Err(Failure::Invalid("user: 1 to 64 bytes".into()));
        }
        let exists = db
            .query_row(
                "SELECT 1 FROM users WHERE user_id = ?1",
                [&new.user],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Err(missing());
        }
        let count: i64 = db.query_row(
            "SELECT count(*) FROM members WHERE folder_id = ?1",
            [folder],
            |r| r.get(0),
        )?;
        if count >= MAX_MEMBERS {
            return Err(Failure::Invalid(format!("at most {MAX_MEMBERS} members")));
        }
        Ok(db.execute(
            "INSERT OR IGNORE INTO members (folder_id, user_id) VALUES (?1, ?2)",
            [folder, &new.user],
        )? == 1)
    }

    /// `DELETE /folders/{id}/members/{user}`.
    pub fn remove_member(&self, user: &str, folder: &str, who: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let (owner, ..) = Self::visible(&tx, folder, user)?;
        if user != owner && user != who {
            return Err(not_found());
        }
        if who == owner {
            return Err(Failure::Invalid(
                "the owner cannot leave their folder".into(),
            ));
        }
        let n = tx.execute(
            "DELETE FROM members WHERE folder_id = ?1 AND user_id = ?2",
            [folder, who],
        )?;
        if n == 0 {
            return Err(Failure::NotFound("no such member".into()));
        }
        tx.execute(
            "DELETE FROM wrapped_keys WHERE folder_id = ?1
             AND device_id IN (SELECT device_id FROM devices WHERE user_id = ?2)",
            [folder, who],
        )?;
        tx.commit()?;
        Ok(())
    }

    // --- wrapped keys --------------------------------------------------------------------

    /// Checks a wrapped key: the recipient belongs to a member (or, at creation, to the
    /// caller), `wrapped_by` is one of the caller's devices, and its signature verifies.
    /// Returns (recipient, wrapper).
    fn check_wrapped_key(
        db: &Connection,
        user: &str,
        folder: &[u8; 16],
        k: &wire::WrappedKey,
        creating: bool,
    ) -> Result<(String, String)> {
        let device = wire::device_id("device_id", &k.device_id)?;
        let by = wire::device_id("wrapped_by", &k.wrapped_by)?;
        let eph: [u8; 32] = wire::b64_exact("ephemeral_public", &k.ephemeral_public)?;
        let nonce: [u8; 24] = wire::b64_exact("nonce", &k.nonce)?;
        let ct: [u8; 48] = wire::b64_exact("ciphertext", &k.ciphertext)?;
        let sig: [u8; 64] = wire::b64_exact("signature", &k.signature)?;
        let owner_of = |d: &str| -> Result<Option<String>> {
            Ok(db
                .query_row(
                    "SELECT user_id FROM devices WHERE device_id = ?1",
                    [d],
                    |r| r.get(0),
                )
                .optional()?)
        };
        if owner_of(&k.wrapped_by)?.as_deref() != Some(user) {
            return Err(Failure::Invalid(
                "wrapped_by: not a registered device of the caller".into(),
            ));
        }
        let folder_hex = data_encoding::HEXLOWER.encode(folder);
        let recipient_ok = match owner_of(&k.device_id)? {
            None => false,
            Some(u) if creating => u == user,
            Some(u) => Self::is_member(db, &folder_hex, &u)?,
        };
        if !recipient_ok {
            return Err(Failure::NotFound(
                "no such device among the folder's members".into(),
            ));
        }
        if !verify(&by, &wrap_message(folder, &device, &eph, &nonce, &ct), &sig) {
            return Err(Failure::Invalid("signature: does not verify".into()));
        }
        Ok((k.device_id.clone(), k.wrapped_by.clone()))
    }

    fn store_wrapped_key(db: &Connection, folder: &str, k: &wire::WrappedKey) -> Result<()> {
        let dec = |s: &str| {
            data_encoding::BASE64
                .decode(s.as_bytes())
                .unwrap_or_default()
        };
        db.execute(
            "INSERT OR REPLACE INTO wrapped_keys
             (folder_id, device_id, ephemeral_public, nonce, ciphertext, wrapped_by, signature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                folder,
                k.device_id,
                dec(&k.ephemeral_public),
                dec(&k.nonce),
                dec(&k.ciphertext),
                k.wrapped_by,
                dec(&k.signature)
            ],
        )?;
        Ok(())
    }

    /// `PUT /folders/{id}/keys/{device}`.
    pub fn put_wrapped_key(
        &self,
        user: &str,
        folder: &str,
        device: &str,
        k: &wire::WrappedKey,
    ) -> Result<()> {
        let db = self.db();
        Self::visible(&db, folder, user)?;
        if k.device_id != device {
            return Err(Failure::Invalid("device_id: differs from the path".into()));
        }
        let f: [u8; 16] = wire::hex_id("folder_id", folder)?;
        Self::check_wrapped_key(&db, user, &f, k, false)?;
        Self::store_wrapped_key(&db, folder, k)
    }

    /// `GET /folders/{id}/keys/{device}`.
    pub fn get_wrapped_key(
        &self,
        user: &str,
        folder: &str,
        device: &str,
    ) -> Result<wire::WrappedKey> {
        let db = self.db();
        Self::visible(&db, folder, user)?;
        db.query_row(
            "SELECT k.device_id, k.ephemeral_public, k.nonce, k.ciphertext, k.wrapped_by, k.signature
             FROM wrapped_keys k JOIN devices d ON d.device_id = k.device_id
             WHERE k.folder_id = ?1 AND k.device_id = ?2 AND d.user_id = ?3",
            [folder, device, user],
            |r| {
                Ok(wire::WrappedKey {
                    device_id: r.get(0)?,
                    ephemeral_public: wire::to_b64(&r.get::<_, Vec<u8>>(1)?),
                    nonce: wire::to_b64(&r.get::<_, Vec<u8>>(2)?),
                    ciphertext: wire::to_b64(&r.get::<_, Vec<u8>>(3)?),
                    wrapped_by: r.get(4)?,
                    signature: wire::to_b64(&r.get::<_, Vec<u8>>(5)?),
                })
            },
        )
        .optional()?
        .ok_or_else(|| Failure::NotFound("no key for that device".into()))
    }

    // --- changes -------------------------------------------------------------------------

    /// `POST /folders/{id}/changes`: the cursor of the last one stored.
    pub fn append_changes(&self, user: &str, folder: &str, c: &wire::NewChanges) -> Result<i64> {
        if c.changes.is_empty() || c.changes.len() > 256 {
            return Err(Failure::Invalid("changes: 1 to 256".into()));
        }
        let blobs = c
            .changes
            .iter()
            .map(|s| wire::b64("changes", s, MAX_CHANGE))
            .collect::<Result<Vec<_>>>()?;
        if blobs.iter().any(|b| b.len() > MAX_CHANGE) {
            return Err(Failure::TooLarge(format!(
                "changes: each at most {MAX_CHANGE} bytes"
            )));
        }
        if blobs.iter().any(Vec::is_empty) {
            return Err(Failure::Invalid("changes: an empty change".into()));
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        Self::visible(&tx, folder, user)?;
        let mine = tx
            .query_row(
                "SELECT 1 FROM devices WHERE device_id = ?1 AND user_id = ?2",
                [&c.device, user],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !mine {
            return Err(Failure::Invalid(
                "device: not a device of the caller".into(),
            ));
        }
        let mut last = 0;
        for b in &blobs {
            tx.execute(
                "INSERT INTO changes (folder_id, device_id, change) VALUES (?1, ?2, ?3)",
                params![folder, c.device, b],
            )?;
            last = tx.last_insert_rowid();
        }
        tx.commit()?;
        Ok(last)
    }

    /// `GET /folders/{id}/changes`.
    pub fn read_changes(
        &self,
        user: &str,
        folder: &str,
        after: i64,
        limit: i64,
    ) -> Result<wire::ChangePage> {
        if !(1..=1000).contains(&limit) || after < 0 {
            return Err(Failure::Invalid("after ≥ 0, limit 1 to 1000".into()));
        }
        let db = self.db();
        Self::visible(&db, folder, user)?;
        let changes: Vec<wire::StoredChange> = db
            .prepare(
                "SELECT cursor, device_id, change FROM changes
                 WHERE folder_id = ?1 AND cursor > ?2 ORDER BY cursor LIMIT ?3",
            )?
            .query_map(params![folder, after, limit], |r| {
                Ok(wire::StoredChange {
                    cursor: r.get(0)?,
                    device: r.get(1)?,
                    change: wire::to_b64(&r.get::<_, Vec<u8>>(2)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let next = if changes.len() as i64 == limit {
            changes.last().map(|c| c.cursor)
        } else {
            None
        };
        Ok(wire::ChangePage { changes, next })
    }

    // --- chain entries -------------------------------------------------------------------

    fn link_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<wire::ChainLink> {
        let seq: i64 = r.get(0)?;
        Ok(wire::ChainLink {
            seq: u64::try_from(seq).unwrap_or(0),
            prev: data_encoding::HEXLOWER.encode(&r.get::<_, Vec<u8>>(1)?),
            entry: wire::to_b64(&r.get::<_, Vec<u8>>(2)?),
            head: data_encoding::HEXLOWER.encode(&r.get::<_, Vec<u8>>(3)?),
            log_index: r
                .get::<_, Option<i64>>(4)?
                .and_then(|i| u64::try_from(i).ok()),
        })
    }

    /// `GET /folders/{id}/files/{file}/entries`.
    pub fn read_entries(
        &self,
        user: &str,
        folder: &str,
        file: &str,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<wire::ChainLink>> {
        if !(1..=1000).contains(&limit) || from_seq < 1 {
            return Err(Failure::Invalid("from_seq ≥ 1, limit 1 to 1000".into()));
        }
        wire::hex_id::<16>("file_id", file)?;
        let db = self.db();
        Self::visible(&db, folder, user)?;
        Ok(db
            .prepare(
                "SELECT seq, prev, entry, head, log_index FROM entries
                 WHERE folder_id = ?1 AND file_id = ?2 AND seq >= ?3 ORDER BY seq, head LIMIT ?4",
            )?
            .query_map(params![folder, file, from_seq, limit], Self::link_of)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// `POST /folders/{id}/files/{file}/entries`: the stored link and whether it was new.
    pub fn append_entry(
        &self,
        user: &str,
        folder: &str,
        file: &str,
        e: &wire::NewEntry,
    ) -> Result<(wire::ChainLink, bool)> {
        let folder_bytes: [u8; 16] = wire::hex_id("folder_id", folder)?;
        let file_bytes: [u8; 16] = wire::hex_id("file_id", file)?;
        let prev = ChainHash::from_bytes(wire::hex_id("prev", &e.prev)?);
        let head = ChainHash::from_bytes(wire::hex_id("head", &e.head)?);
        let expected = match &e.expected_head {
            Some(h) => Some(ChainHash::from_bytes(wire::hex_id("expected_head", h)?)),
            None => None,
        };
        let raw: [u8; ENTRY_LEN] = wire::b64_exact("entry", &e.entry).map_err(|_| {
            Failure::Invalid("malformed: the entry is not 218 bytes of base64".into())
        })?;
        let entry =
            Entry::decode(&raw).map_err(|err| Failure::Invalid(format!("malformed: {err}")))?;

        let mut db = self.db();
        let tx = db.transaction()?;
        let (_, _, _, versioning) = Self::visible(&tx, folder, user)?;
        if entry.folder.as_bytes() != &folder_bytes || entry.file.as_bytes() != &file_bytes {
            return Err(Failure::Invalid(
                "wrong_file: the entry names another folder or file".into(),
            ));
        }
        if entry.seq == 0 {
            return Err(Failure::Invalid("seq_gap: seq starts at 1".into()));
        }
        if chain::link(&prev, &raw) != head {
            return Err(Failure::Invalid(
                "wrong_head: head is not SHA3-256(prev ‖ entry)".into(),
            ));
        }
        let select = "SELECT seq, prev, entry, head, log_index FROM entries WHERE folder_id = ?1 AND file_id = ?2";
        if let Some(link) = tx
            .query_row(
                &format!("{select} AND head = ?3"),
                params![folder, file, head.as_bytes().as_slice()],
                Self::link_of,
            )
            .optional()?
        {
            return Ok((link, false));
        }
        let author_user: Option<String> = tx
            .query_row(
                "SELECT d.user_id FROM devices d JOIN members m ON m.user_id = d.user_id
                 WHERE d.device_id = ?1 AND m.folder_id = ?2",
                params![entry.author.to_base32(), folder],
                |r| r.get(0),
            )
            .optional()?;
        if author_user.is_none() {
            return Err(Failure::Invalid(
                "unknown_author: the author is not a device of a member".into(),
            ));
        }
        entry
            .verify_signature(&prev)
            .map_err(|_| Failure::Invalid("bad_signature: the signature does not verify".into()))?;
        if versioning == Versioning::ServerAuthoritative {
            let current = tx
                .query_row(
                    &format!("{select} ORDER BY seq DESC LIMIT 1"),
                    params![folder, file],
                    Self::link_of,
                )
                .optional()?;
            let current_head = current
                .as_ref()
                .and_then(|l| wire::hex_id::<32>("head", &l.head).ok())
                .map(ChainHash::from_bytes);
            if current_head != expected {
                return Err(Failure::HeadMoved {
                    head: current_head,
                    seq: current.map(|l| l.seq),
                });
            }
            let want = current.map_or(1, |l| l.seq + 1);
            if entry.seq != want {
                return Err(Failure::Invalid(format!("seq_gap: the next seq is {want}")));
            }
        }
        if entry.seq > 1 {
            let seq_before = i64::try_from(entry.seq - 1)
                .map_err(|_| Failure::Invalid("seq_gap: seq too large".into()))?;
            let known = tx
                .query_row(
                    "SELECT 1 FROM entries WHERE folder_id = ?1 AND file_id = ?2 AND head = ?3 AND seq = ?4",
                    params![folder, file, prev.as_bytes().as_slice(), seq_before],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !known {
                return Err(Failure::Invalid(
                    "wrong_link: prev is not a stored head of the entry before".into(),
                ));
            }
        } else if let Some(other) = tx
            .query_row(
                "SELECT prev FROM entries WHERE folder_id = ?1 AND file_id = ?2 AND seq = 1 LIMIT 1",
                params![folder, file],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?
            && other != prev.as_bytes()
        {
            // Every first entry of one file starts from the same genesis.
            return Err(Failure::Invalid(
                "wrong_link: another genesis than the stored first entry's".into(),
            ));
        }
        let seq = i64::try_from(entry.seq)
            .map_err(|_| Failure::Invalid("seq_gap: seq too large".into()))?;
        let leaf = tlog::chain_leaf(&entry.file, entry.seq, &head);
        let log_index: i64 = tx.query_row(
            "SELECT count(*) FROM log_leaves WHERE folder_id = ?1",
            [folder],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO log_leaves (folder_id, idx, hash) VALUES (?1, ?2, ?3)",
            params![folder, log_index, leaf.as_slice()],
        )?;
        tx.execute(
            "INSERT INTO entries (folder_id, file_id, seq, prev, entry, head, log_index) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                folder,
                file,
                seq,
                prev.as_bytes().as_slice(),
                raw.as_slice(),
                head.as_bytes().as_slice(),
                log_index
            ],
        )?;
        tx.commit()?;
        if let Some(tree) = self.trees_lock().get_mut(folder) {
            tree.push(leaf);
        }
        Ok((
            wire::ChainLink {
                seq: entry.seq,
                prev: prev.to_hex(),
                entry: e.entry.clone(),
                head: head.to_hex(),
                log_index: u64::try_from(log_index).ok(),
            },
            true,
        ))
    }

    // --- transparency log ----------------------------------------------------------------

    fn trees_lock(&self) -> MutexGuard<'_, std::collections::HashMap<String, tlog::Tree>> {
        self.trees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the folder's log (loaded from the database on first use). The caller holds
    /// the database lock, so no append can slip in between.
    fn with_tree<T>(
        &self,
        db: &Connection,
        folder: &str,
        f: impl FnOnce(&tlog::Tree) -> T,
    ) -> Result<T> {
        let mut trees = self.trees_lock();
        if !trees.contains_key(folder) {
            let mut tree = tlog::Tree::new();
            let mut stmt =
                db.prepare("SELECT hash FROM log_leaves WHERE folder_id = ?1 ORDER BY idx")?;
            for h in stmt.query_map([folder], |r| r.get::<_, Vec<u8>>(0))? {
                let h: tlog::Hash = h?
                    .try_into()
                    .map_err(|_| Failure::Internal("a damaged log leaf".into()))?;
                tree.push(h);
            }
            trees.insert(folder.to_owned(), tree);
        }
        let tree = trees
            .get(folder)
            .ok_or_else(|| Failure::Internal("the log vanished".into()))?;
        Ok(f(tree))
    }

    /// `GET /folders/{id}/checkpoint`: the size and the signed note (with stored cosignatures).
    pub fn checkpoint(&self, user: &str, folder: &str) -> Result<(u64, String)> {
        let db = self.db();
        Self::visible(&db, folder, user)?;
        let (size, root) = self.with_tree(&db, folder, |t| (t.size(), t.root(t.size())))?;
        let root = root.map_err(|e| Failure::Internal(e.to_string()))?;
        let body = tlog::Checkpoint {
            origin: log_origin(folder),
            size,
            root,
        }
        .body();
        let mut note = tlog::sign_note(&body, &self.log_name, &self.log_key)
            .map_err(|e| Failure::Internal(e.to_string()))?;
        let lines: Vec<String> = db
            .prepare(
                "SELECT line FROM cosignatures WHERE folder_id = ?1 AND size = ?2 ORDER BY name",
            )?
            .query_map(
                params![folder, i64::try_from(size).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        for l in lines {
            note.push_str(&l);
        }
        Ok((size, note))
    }

    /// `POST /folders/{id}/checkpoint/cosignatures`.
    pub fn add_cosignature(
        &self,
        user: &str,
        folder: &str,
        c: &wire::NewCosignature,
    ) -> Result<()> {
        let bad = |why: &str| Failure::Invalid(format!("cosignature: {why}"));
        let line = c.cosignature.trim_end_matches('\n');
        if line.len() > 512 || line.contains('\n') {
            return Err(bad("one line of at most 512 bytes"));
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| bad("a C2SP signature line starts with an em dash and a space"))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| bad("no key name"))?;
        if name.is_empty() || name.contains('+') || name.chars().any(char::is_control) {
            return Err(bad("bad key name"));
        }
        let bytes = data_encoding::BASE64
            .decode(b64.as_bytes())
            .map_err(|_| bad("not base64"))?;
        if bytes.len() != 4 + 8 + 64 {
            return Err(bad("not key id, timestamp and an Ed25519 signature"));
        }
        let db = self.db();
        Self::visible(&db, folder, user)?;
        let size = self.with_tree(&db, folder, tlog::Tree::size)?;
        if c.size > size {
            return Err(Failure::Invalid(format!("size: the log has {size} leaves")));
        }
        let size = i64::try_from(c.size).map_err(|_| bad("size too large"))?;
        let count: i64 = db.query_row(
            "SELECT count(*) FROM cosignatures WHERE folder_id = ?1 AND size = ?2 AND NOT (name = ?3 AND key_id = ?4)",
            params![folder, size, name, &bytes[..4]],
            |r| r.get(0),
        )?;
        if count >= 16 {
            return Err(Failure::Invalid(
                "at most 16 cosignatures per checkpoint".into(),
            ));
        }
        db.execute(
            "INSERT OR REPLACE INTO cosignatures (folder_id, size, name, key_id, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![folder, size, name, &bytes[..4], format!("{line}\n")],
        )?;
        Ok(())
    }

    /// `GET /folders/{id}/log/inclusion`.
    pub fn inclusion(
        &self,
        user: &str,
        folder: &str,
        index: u64,
        size: u64,
    ) -> Result<Vec<String>> {
        let db = self.db();
        Self::visible(&db, folder, user)?;
        self.with_tree(&db, folder, |t| t.inclusion(index, size))?
            .map(|p| {
                p.iter()
                    .map(|h| data_encoding::HEXLOWER.encode(h))
                    .collect()
            })
            .map_err(|e| Failure::Invalid(e.to_string()))
    }

    /// `GET /folders/{id}/log/consistency`.
    pub fn consistency(&self, user: &str, folder: &str, old: u64, new: u64) -> Result<Vec<String>> {
        let db = self.db();
        Self::visible(&db, folder, user)?;
        self.with_tree(&db, folder, |t| t.consistency(old, new))?
            .map(|p| {
                p.iter()
                    .map(|h| data_encoding::HEXLOWER.encode(h))
                    .collect()
            })
            .map_err(|e| Failure::Invalid(e.to_string()))
    }

    // --- search index --------------------------------------------------------------------

    /// `PUT /folders/{id}/index`.
    pub fn put_index(&self, user: &str, folder: &str, u: &wire::IndexUpdate) -> Result<()> {
        if u.entries.len() > 5000 {
            return Err(Failure::TooLarge("entries: at most 5000".into()));
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let (_, _, index_mode, _) = Self::visible(&tx, folder, user)?;
        let plaintext = index_mode == "plaintext";
        for e in &u.entries {
            wire::hex_id::<16>("file_id", &e.file_id)?;
            match (&e.name, plaintext) {
                (Some(_), false) => {
                    return Err(Failure::Invalid(
                        "name: this folder's index is encrypted; send tokens".into(),
                    ));
                }
                (None, true) => {
                    return Err(Failure::Invalid(
                        "name: required in a folder with a plaintext index".into(),
                    ));
                }
                (Some(name), true)
                    if name.is_empty() || name.len() > 4096 || name.contains('\0') =>
                {
                    return Err(Failure::Invalid("name: 1 to 4096 bytes".into()));
                }
                _ => {}
            }
            if plaintext && !e.tokens.is_empty() {
                return Err(Failure::Invalid(
                    "tokens: only in a folder with an encrypted index".into(),
                ));
            }
            if e.tokens.len() > 64 {
                return Err(Failure::Invalid("tokens: at most 64".into()));
            }
            for t in &e.tokens {
                wire::hex_id::<16>("tokens", t)?;
            }
            if e.size < 0 {
                return Err(Failure::Invalid("size: not negative".into()));
            }
            tx.execute(
                "INSERT OR REPLACE INTO index_entries (folder_id, file_id, name, tokens, size, mtime_ms, deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![folder, e.file_id, e.name, e.tokens.join(" "), e.size, e.mtime_ms, e.deleted],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// `GET /folders/{id}/index`: names containing `q` (plaintext folders, any case), and/or
    /// entries holding every token.
    pub fn search_index(
        &self,
        user: &str,
        folder: &str,
        q: Option<&str>,
        tokens: &[String],
    ) -> Result<Vec<wire::IndexEntry>> {
        if q.is_some_and(|q| q.len() > 256) || tokens.len() > 16 {
            return Err(Failure::Invalid(
                "q: at most 256 bytes; token: at most 16".into(),
            ));
        }
        for t in tokens {
            wire::hex_id::<16>("token", t)?;
        }
        let db = self.db();
        let (_, _, index_mode, _) = Self::visible(&db, folder, user)?;
        let plaintext = index_mode == "plaintext";
        if q.is_some() && !plaintext {
            return Err(Failure::Invalid(
                "q: this folder's index is encrypted; search by token".into(),
            ));
        }
        if !tokens.is_empty() && plaintext {
            return Err(Failure::Invalid(
                "token: this folder's index holds names; search by q".into(),
            ));
        }
        let mut sql = "SELECT file_id, name, tokens, size, mtime_ms, deleted FROM index_entries WHERE folder_id = ?1".to_owned();
        let mut args: Vec<String> = vec![folder.to_owned()];
        if let Some(q) = q {
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(format!("%{escaped}%"));
            sql.push_str(&format!(" AND name LIKE ?{} ESCAPE '\\'", args.len()));
        }
        for t in tokens {
            args.push(t.clone());
            sql.push_str(&format!(
                " AND instr(' ' || tokens || ' ', ' ' || ?{} || ' ') > 0",
                args.len()
            ));
        }
        sql.push_str(" ORDER BY name, file_id LIMIT 500");
        Ok(db
            .prepare(&sql)?
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                let tokens: String = r.get(2)?;
                Ok(wire::IndexEntry {
                    file_id: r.get(0)?,
                    name: r.get(1)?,
                    tokens: tokens.split_whitespace().map(str::to_owned).collect(),
                    size: r.get(3)?,
                    mtime_ms: r.get(4)?,
                    deleted: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    // --- administration ------------------------------------------------------------------

    /// Counts for `harp-bridge status`.
    pub fn status(&self) -> Result<Status> {
        let db = self.db();
        let count = |table: &str| -> Result<i64> {
            Ok(db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
        };
        Ok(Status {
            versioning: self.versioning.name(),
            users: count("users")?,
            devices: count("devices")?,
            folders: count("folders")?,
            changes: count("changes")?,
            entries: count("entries")?,
        })
    }

    /// Every device, or one user's, for `harp-bridge devices`.
    pub fn all_devices(&self, user: Option<&str>) -> Result<Vec<wire::Device>> {
        let db = self.db();
        let ids: Vec<String> = db
            .prepare(
                "SELECT device_id FROM devices WHERE ?1 IS NULL OR user_id = ?1
                 ORDER BY user_id, created_ms, device_id",
            )?
            .query_map([user], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for id in ids {
            if let Some((d, _)) = Self::device_row(&db, &id)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Checks a file's stored chain: every link hash, every signature over its `prev`, every
    /// `prev` a stored head of the entry before (all but the genesis, which needs the folder
    /// secret). `path` is a plaintext index name or a 32-hex file id.
    pub fn verify_file(&self, user: &str, folder: &str, path: &str) -> Result<ChainReport> {
        let db = self.db();
        Self::visible(&db, folder, user)?;
        let file: String = if wire::hex_id::<16>("file", path).is_ok() {
            path.to_owned()
        } else {
            db.query_row(
                "SELECT file_id FROM index_entries WHERE folder_id = ?1 AND name = ?2",
                [folder, path],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Failure::NotFound(format!("no file {path} in the index")))?
        };
        let rows: Vec<StoredLink> = db
            .prepare("SELECT seq, prev, entry, head, log_index FROM entries WHERE folder_id = ?1 AND file_id = ?2 ORDER BY seq")?
            .query_map([folder, &file], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let log_indices: Vec<Option<i64>> = db
            .prepare(
                "SELECT log_index FROM entries WHERE folder_id = ?1 AND file_id = ?2 ORDER BY seq",
            )?
            .query_map([folder, &file], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let file_bytes = harp_protocol::ids::FileId::from_bytes(wire::hex_id::<16>("file", &file)?);
        let log_size = self.with_tree(&db, folder, tlog::Tree::size)?;
        if rows.is_empty() {
            return Err(Failure::NotFound(format!("no chain entries for {file}")));
        }
        let mut heads: std::collections::HashMap<Vec<u8>, i64> = Default::default();
        let mut has_child: std::collections::HashSet<Vec<u8>> = Default::default();
        let mut last = 0u64;
        for (seq, prev, raw, head) in &rows {
            let entry = Entry::decode(raw)
                .map_err(|e| Failure::Invalid(format!("seq {seq}: malformed: {e}")))?;
            let prev_hash = ChainHash::from_bytes(
                prev.as_slice()
                    .try_into()
                    .map_err(|_| Failure::Invalid(format!("seq {seq}: bad prev")))?,
            );
            if chain::link(&prev_hash, raw).as_bytes().as_slice() != head.as_slice() {
                return Err(Failure::Invalid(format!("seq {seq}: wrong_head")));
            }
            if i64::try_from(entry.seq).ok() != Some(*seq) {
                return Err(Failure::Invalid(format!("seq {seq}: seq_gap")));
            }
            entry
                .verify_signature(&prev_hash)
                .map_err(|_| Failure::Invalid(format!("seq {seq}: bad_signature")))?;
            if *seq > 1 {
                if heads.get(prev) != Some(&(seq - 1)) {
                    return Err(Failure::Invalid(format!("seq {seq}: wrong_link")));
                }
                has_child.insert(prev.clone());
            }
            heads.insert(head.clone(), *seq);
            last = last.max(entry.seq);
        }
        // Every link is the leaf of the folder's log it was given when stored.
        for ((seq, _, _, head), idx) in rows.iter().zip(&log_indices) {
            let Some(idx) = idx else { continue };
            let head = ChainHash::from_bytes(
                head.as_slice()
                    .try_into()
                    .map_err(|_| Failure::Invalid(format!("seq {seq}: bad head")))?,
            );
            let want = tlog::chain_leaf(&file_bytes, u64::try_from(*seq).unwrap_or(0), &head);
            let leaf: Option<Vec<u8>> = db
                .query_row(
                    "SELECT hash FROM log_leaves WHERE folder_id = ?1 AND idx = ?2",
                    params![folder, idx],
                    |r| r.get(0),
                )
                .optional()?;
            let in_tree = u64::try_from(*idx).is_ok_and(|i| i < log_size);
            if !in_tree || leaf.as_deref() != Some(want.as_slice()) {
                return Err(Failure::Invalid(format!(
                    "seq {seq}: not_in_log (leaf {idx} of the folder's log is not this link)"
                )));
            }
        }
        let mut tips: Vec<String> = heads
            .keys()
            .filter(|h| !has_child.contains(*h))
            .map(|h| data_encoding::HEXLOWER.encode(h))
            .collect();
        tips.sort();
        Ok(ChainReport {
            file_id: file,
            entries: rows.len(),
            tips,
            last_seq: last,
        })
    }
}
