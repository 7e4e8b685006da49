//! Key epochs: what a folder's members rotate when a device leaves.
//!
//! What the bridge keeps under a folder's keys is its metadata: the sealed document changes
//! (names, sizes, content roots) and the search tokens. A device that leaves a folder (its
//! user is removed, or the device is revoked or no longer trusted) keeps every key it had, and
//! whoever runs the bridge still holds what the bridge stores. So once a member device sees
//! that a device which could hold the current key is no longer a member, it starts a new
//! **epoch**: a random secret, granted only to the remaining member devices, which seals
//! every change and makes every search token from then on. Earlier epochs stay readable by
//! those who had them; a new member gets the newest epoch, and from it every earlier one.
//!
//! Epoch 0 is the folder key itself (the sealing of [`crate::wrap`]), so folders that never
//! rotated read as before.
//!
//! The content keys (chunks, manifests, tags, chain seed, path commitments) do not rotate:
//! blobs never rest outside members' devices and travel only to members, inside Noise or TLS,
//! so a removed device cannot obtain new ones to decrypt; a new content key would instead give
//! every chunk a new id (no deduplication across the rotation, every file sent again).
//!
//! # Formats
//!
//! A change sealed in epoch n ≥ 1: `"HEK1" ‖ key id [8] ‖ nonce [24] ‖ XChaCha20-Poly1305(
//! B3d(CHANGE_CONTEXT, secret), nonce, aad = folder ‖ key id, change)`. The key id is
//! `B3d(KEY_ID_CONTEXT, secret)[..8]`: two devices that rotate at once make two epochs n,
//! both readable; writers use the one with the lower id.
//!
//! A **grant** (carried in the bridge's change stream, which stores it as opaque bytes):
//! `"HEG1" ‖ folder [16] ‖ epoch u32 ‖ key id [8] ‖ granted_by [32] ‖ count u16 ‖ count ×
//! (recipient [32] ‖ ephemeral X25519 public [32] ‖ nonce [24] ‖ wrapped secret [48]) ‖
//! has_previous u8 ‖ [previous epoch u32 ‖ previous key id [8] ‖ nonce [24] ‖ previous secret
//! sealed under this one [48]] ‖ Ed25519 signature [64]` by `granted_by` of everything before
//! it, after the domain string `"harp key grant v1\0"`. Each secret is wrapped like a folder key
//! ([`crate::wrap`]: ephemeral-static X25519) but under its own context and with the folder,
//! epoch, key id and recipient as associated data, so a wrapped secret cannot pass for a folder
//! key or for another epoch's.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{DeviceId, FolderId};
use crate::keys::FolderKey;
use crate::wrap::{self, WrapError, x25519_public};

/// Context of an epoch's change-sealing key.
pub const CHANGE_CONTEXT: &str = "harp 2026-11-22 epoch change key v1";
/// Context of an epoch's search-token key.
pub const SEARCH_CONTEXT: &str = "harp 2026-11-22 epoch search key v1";
/// Context of an epoch's key id.
pub const KEY_ID_CONTEXT: &str = "harp 2026-11-22 epoch key id v1";
/// Context of the key that wraps an epoch secret for one device.
pub const GRANT_WRAP_CONTEXT: &str = "harp 2026-11-22 epoch grant wrap v1";
/// Context of the key (derived from an epoch's secret) that seals the previous epoch's secret.
pub const PREVIOUS_CONTEXT: &str = "harp 2026-11-22 epoch previous key v1";

/// First bytes of a change sealed in an epoch ≥ 1.
pub const SEALED_MAGIC: &[u8; 4] = b"HEK1";
/// First bytes of a grant.
pub const GRANT_MAGIC: &[u8; 4] = b"HEG1";
/// The most recipients one grant may carry.
pub const MAX_RECIPIENTS: usize = 4096;

/// An epoch's key id.
pub type KeyId = [u8; 8];

/// Why an epoch's change or grant could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EpochError {
    /// Sealed in an epoch whose key this device does not hold (yet).
    #[error("sealed under key {} of an epoch this device does not hold", hex(.0))]
    UnknownKey(KeyId),
    /// Wrapping or sealing failed to open.
    #[error(transparent)]
    Wrap(#[from] WrapError),
    /// The grant does not decode.
    #[error("malformed grant: {0}")]
    Malformed(#[from] DecodeError),
    /// A secret opened but is not the one the grant names.
    #[error("the grant's secret does not match its key id")]
    WrongKey,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One epoch's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochKey {
    /// 0 for the folder key, then one more per rotation.
    pub epoch: u32,
    /// The secret (for epoch 0, the folder key's bytes).
    pub secret: [u8; 32],
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochKey({}, {})", self.epoch, hex(&self.id()))
    }
}

impl EpochKey {
    /// Epoch 0: the folder key.
    pub fn zero(folder_key: &FolderKey) -> Self {
        Self {
            epoch: 0,
            secret: *folder_key.as_bytes(),
        }
    }

    /// Its id (public: sealed changes carry it).
    pub fn id(&self) -> KeyId {
        let full = blake3::derive_key(KEY_ID_CONTEXT, &self.secret);
        let mut id = [0u8; 8];
        id.copy_from_slice(&full[..8]);
        id
    }

    fn change_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&blake3::derive_key(CHANGE_CONTEXT, &self.secret).into())
    }

    /// Seals one document change in this epoch (`nonce` fresh and random).
    pub fn seal_change(&self, folder: &FolderId, change: &[u8], nonce: [u8; 24]) -> Vec<u8> {
        if self.epoch == 0 {
            return wrap::seal_change(&FolderKey::from_bytes(self.secret), folder, change, nonce);
        }
        let id = self.id();
        let mut out = SEALED_MAGIC.to_vec();
        out.extend_from_slice(&id);
        out.extend_from_slice(&nonce);
        out.extend(
            self.change_cipher()
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: change,
                        aad: &[folder.as_bytes(), &id[..]].concat(),
                    },
                )
                .unwrap_or_default(),
        );
        out
    }

    /// The search tokens of `text` in this epoch ([`wrap::search_tokens`] under its secret).
    pub fn search_tokens(&self, text: &str) -> Vec<[u8; 16]> {
        if self.epoch == 0 {
            return wrap::search_tokens(&FolderKey::from_bytes(self.secret), text);
        }
        let key = FolderKey::from_bytes(blake3::derive_key(SEARCH_CONTEXT, &self.secret));
        wrap::search_tokens(&key, text)
    }
}

/// The epochs of a folder a device holds.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<EpochKey>,
}

impl Keyring {
    /// A ring with epoch 0 only.
    pub fn new(folder_key: &FolderKey) -> Self {
        Self {
            keys: vec![EpochKey::zero(folder_key)],
        }
    }

    /// Adds an epoch; `false` if it was there already.
    pub fn insert(&mut self, key: EpochKey) -> bool {
        if self.keys.iter().any(|k| k.secret == key.secret) {
            return false;
        }
        self.keys.push(key);
        true
    }

    /// The epoch new changes are sealed in: the highest, and of two made at once the one with
    /// the lower id (every device picks the same).
    pub fn current(&self) -> &EpochKey {
        // `keys` always holds epoch 0.
        let mut best = &self.keys[0];
        for k in &self.keys[1..] {
            if (k.epoch, std::cmp::Reverse(k.id())) > (best.epoch, std::cmp::Reverse(best.id())) {
                best = k;
            }
        }
        best
    }

    /// The epoch with key id `id`.
    pub fn get(&self, id: &KeyId) -> Option<&EpochKey> {
        self.keys.iter().find(|k| &k.id() == id)
    }

    /// Every epoch held, epoch 0 first.
    pub fn keys(&self) -> &[EpochKey] {
        &self.keys
    }

    /// Opens a change sealed in any epoch this ring holds.
    pub fn open_change(&self, folder: &FolderId, sealed: &[u8]) -> Result<Vec<u8>, EpochError> {
        const HEAD: usize = 4 + 8 + 24;
        if sealed.len() >= HEAD + 16 && sealed.starts_with(SEALED_MAGIC) {
            let mut id = [0u8; 8];
            id.copy_from_slice(&sealed[4..12]);
            let opened = self.get(&id).map(|k| {
                k.change_cipher()
                    .decrypt(
                        XNonce::from_slice(&sealed[12..HEAD]),
                        Payload {
                            msg: &sealed[HEAD..],
                            aad: &[folder.as_bytes(), &id[..]].concat(),
                        },
                    )
                    .ok()
            });
            if let Some(Some(change)) = opened {
                return Ok(change);
            }
            // One legacy change in 2^32 starts with the magic by chance: try it as one.
            return match wrap::open_change(&self.zero(), folder, sealed) {
                Ok(change) => Ok(change),
                Err(_) if opened.is_none() => Err(EpochError::UnknownKey(id)),
                Err(e) => Err(e.into()),
            };
        }
        Ok(wrap::open_change(&self.zero(), folder, sealed)?)
    }

    /// Adds every epoch that `grants` lead back to from the epochs held: each grant of an
    /// epoch held here opens the one before it, whoever it was granted to. Returns whether
    /// any was added. (Grants must have been [`Grant::verify`]'d.)
    pub fn walk_back(&mut self, grants: &[Grant]) -> bool {
        let mut added = false;
        loop {
            let mut more = false;
            for g in grants {
                let Some(key) = self.get(&g.key_id).cloned() else {
                    continue;
                };
                if let Ok(Some(previous)) = g.previous_with(&key) {
                    more |= self.insert(previous);
                }
            }
            added |= more;
            if !more {
                return added;
            }
        }
    }

    fn zero(&self) -> FolderKey {
        FolderKey::from_bytes(self.keys[0].secret)
    }
}

/// An epoch's secret wrapped for one device: the device, the ephemeral X25519 public key, the
/// nonce, the wrapped secret and its tag.
pub type Wrapped = (DeviceId, [u8; 32], [u8; 24], [u8; 48]);

/// A grant of one epoch to member devices (see the module docs for its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The folder.
    pub folder: FolderId,
    /// The epoch granted.
    pub epoch: u32,
    /// Its key id.
    pub key_id: KeyId,
    /// The member device that made the epoch (or passes it on) and signed the grant.
    pub granted_by: DeviceId,
    /// Per recipient device: ephemeral X25519 public key, nonce, wrapped secret.
    pub to: Vec<Wrapped>,
    /// The previous epoch's secret sealed under this one: epoch, key id, nonce, sealed.
    pub previous: Option<(u32, KeyId, [u8; 24], [u8; 48])>,
    /// `granted_by`'s signature.
    pub signature: [u8; 64],
}

/// Fresh random bytes for one grant: an ephemeral X25519 secret and a nonce per recipient,
/// and a nonce for the previous secret.
pub trait GrantRandom {
    /// 32 random bytes.
    fn bytes32(&mut self) -> [u8; 32];
    /// 24 random bytes.
    fn bytes24(&mut self) -> [u8; 24];
}

fn wrap_cipher(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> XChaCha20Poly1305 {
    let material = [&shared[..], ephemeral, recipient].concat();
    XChaCha20Poly1305::new(&blake3::derive_key(GRANT_WRAP_CONTEXT, &material).into())
}

fn wrap_aad(folder: &FolderId, epoch: u32, id: &KeyId, recipient: &DeviceId) -> Vec<u8> {
    [
        &folder.as_bytes()[..],
        &epoch.to_be_bytes(),
        id,
        recipient.as_bytes(),
    ]
    .concat()
}

fn previous_cipher(secret: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&blake3::derive_key(PREVIOUS_CONTEXT, secret).into())
}

fn previous_aad(folder: &FolderId, new_id: &KeyId, epoch: u32, id: &KeyId) -> Vec<u8> {
    [&folder.as_bytes()[..], new_id, &epoch.to_be_bytes(), id].concat()
}

fn seal48(cipher: &XChaCha20Poly1305, nonce: &[u8; 24], msg: &[u8; 32], aad: &[u8]) -> [u8; 48] {
    let sealed = cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg, aad })
        .unwrap_or_default();
    let mut out = [0u8; 48];
    if sealed.len() == 48 {
        out.copy_from_slice(&sealed);
    }
    out
}

fn open32(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; 24],
    sealed: &[u8; 48],
    aad: &[u8],
) -> Result<[u8; 32], WrapError> {
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .map_err(|_| WrapError::Decrypt)?;
    plain.try_into().map_err(|_| WrapError::Decrypt)
}

impl Grant {
    /// Grants `key` to `recipients` (device, X25519 public key), with `previous` (the epoch
    /// it follows) sealed under it, signed by `granter`.
    pub fn make(
        folder: &FolderId,
        key: &EpochKey,
        previous: Option<&EpochKey>,
        recipients: &[(DeviceId, [u8; 32])],
        granter: &SigningKey,
        random: &mut impl GrantRandom,
    ) -> Self {
        let key_id = key.id();
        let to = recipients
            .iter()
            .map(|(device, x25519)| {
                let ephemeral_secret = random.bytes32();
                let ephemeral = x25519_public(&ephemeral_secret);
                let shared = x25519_dalek::x25519(ephemeral_secret, *x25519);
                let nonce = random.bytes24();
                let aad = wrap_aad(folder, key.epoch, &key_id, device);
                let cipher = wrap_cipher(&shared, &ephemeral, x25519);
                (
                    *device,
                    ephemeral,
                    nonce,
                    seal48(&cipher, &nonce, &key.secret, &aad),
                )
            })
            .collect();
        let previous = previous.map(|p| {
            let nonce = random.bytes24();
            let aad = previous_aad(folder, &key_id, p.epoch, &p.id());
            let sealed = seal48(&previous_cipher(&key.secret), &nonce, &p.secret, &aad);
            (p.epoch, p.id(), nonce, sealed)
        });
        let mut grant = Self {
            folder: *folder,
            epoch: key.epoch,
            key_id,
            granted_by: DeviceId::of_signing_key(granter),
            to,
            previous,
            signature: [0; 64],
        };
        grant.signature = granter.sign(&grant.signed_message()).to_bytes();
        grant
    }

    fn body(&self) -> Writer {
        let mut w = Writer::with_capacity(128 + 136 * self.to.len());
        w.raw(GRANT_MAGIC)
            .raw(self.folder.as_bytes())
            .u32(self.epoch)
            .raw(&self.key_id)
            .raw(self.granted_by.as_bytes())
            .u16(u16::try_from(self.to.len()).unwrap_or(u16::MAX));
        for (device, ephemeral, nonce, sealed) in &self.to {
            w.raw(device.as_bytes())
                .raw(ephemeral)
                .raw(nonce)
                .raw(sealed);
        }
        match &self.previous {
            None => {
                w.u8(0);
            }
            Some((epoch, id, nonce, sealed)) => {
                w.u8(1).u32(*epoch).raw(id).raw(nonce).raw(sealed);
            }
        }
        w
    }

    fn signed_message(&self) -> Vec<u8> {
        [&b"harp key grant v1\0"[..], &self.body().into_vec()].concat()
    }

    /// The grant's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = self.body();
        w.raw(&self.signature);
        w.into_vec()
    }

    /// Whether `bytes` are a grant (rather than a sealed change).
    pub fn is_grant(bytes: &[u8]) -> bool {
        bytes.starts_with(GRANT_MAGIC)
    }

    /// Decodes a grant (signature not checked: [`Grant::open`] does).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("grant magic")? != *GRANT_MAGIC {
            return Err(DecodeError::Invalid {
                what: "grant",
                reason: "not a grant",
            });
        }
        let folder = FolderId::from_bytes(r.array("folder id")?);
        let epoch = r.u32("epoch")?;
        let key_id = r.array("key id")?;
        let granted_by = DeviceId::from_bytes(r.array("granting device")?);
        let count = usize::from(r.u16("recipients")?);
        if count > MAX_RECIPIENTS {
            return Err(DecodeError::TooLarge {
                what: "recipients",
                len: count as u64,
                max: MAX_RECIPIENTS as u64,
            });
        }
        let mut to = Vec::with_capacity(count);
        for _ in 0..count {
            to.push((
                DeviceId::from_bytes(r.array("recipient")?),
                r.array("ephemeral key")?,
                r.array("nonce")?,
                r.array("wrapped secret")?,
            ));
        }
        let previous = match r.u8("previous")? {
            0 => None,
            1 => Some((
                r.u32("previous epoch")?,
                r.array("previous key id")?,
                r.array("nonce")?,
                r.array("sealed previous")?,
            )),
            _ => {
                return Err(DecodeError::Invalid {
                    what: "grant",
                    reason: "previous flag is not 0 or 1",
                });
            }
        };
        let signature = r.array("signature")?;
        r.finish("grant")?;
        Ok(Self {
            folder,
            epoch,
            key_id,
            granted_by,
            to,
            previous,
            signature,
        })
    }

    /// Checks that the grant is for `folder` and signed by a device `trusted` accepts: before
    /// anything in it is decrypted.
    pub fn verify(
        &self,
        folder: &FolderId,
        trusted: impl Fn(&DeviceId) -> bool,
    ) -> Result<(), EpochError> {
        if self.folder != *folder {
            return Err(WrapError::Decrypt.into());
        }
        if !trusted(&self.granted_by) {
            return Err(WrapError::UntrustedWrapper(self.granted_by).into());
        }
        let key = VerifyingKey::from_bytes(self.granted_by.as_bytes())
            .map_err(|_| WrapError::BadSignature)?;
        key.verify_strict(
            &self.signed_message(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| WrapError::BadSignature)?;
        Ok(())
    }

    /// The epoch's secret as wrapped for `me` ([`Grant::verify`] first): `Ok(None)` if the
    /// grant has nothing for this device. A secret that opens must match the key id.
    pub fn secret_for(
        &self,
        me: &DeviceId,
        my_x25519_secret: &[u8; 32],
    ) -> Result<Option<EpochKey>, EpochError> {
        let Some((_, ephemeral, nonce, sealed)) = self.to.iter().find(|(d, ..)| d == me) else {
            return Ok(None);
        };
        let shared = x25519_dalek::x25519(*my_x25519_secret, *ephemeral);
        if shared == [0u8; 32] {
            return Err(WrapError::Decrypt.into());
        }
        let mine = x25519_public(my_x25519_secret);
        let aad = wrap_aad(&self.folder, self.epoch, &self.key_id, me);
        let secret = open32(&wrap_cipher(&shared, ephemeral, &mine), nonce, sealed, &aad)?;
        let granted = EpochKey {
            epoch: self.epoch,
            secret,
        };
        if granted.id() != self.key_id {
            return Err(EpochError::WrongKey);
        }
        Ok(Some(granted))
    }

    /// The previous epoch the grant carries, opened with the granted epoch's `key` (which a
    /// device may have from this grant or any other): so whoever holds the newest epoch walks
    /// back to every earlier one through the grants in the change stream. `Ok(None)` if the
    /// grant carries none or `key` is not its epoch.
    pub fn previous_with(&self, key: &EpochKey) -> Result<Option<EpochKey>, EpochError> {
        let Some((epoch, id, nonce, sealed)) = &self.previous else {
            return Ok(None);
        };
        if key.id() != self.key_id {
            return Ok(None);
        }
        let aad = previous_aad(&self.folder, &self.key_id, *epoch, id);
        let secret = open32(&previous_cipher(&key.secret), nonce, sealed, &aad)?;
        let p = EpochKey {
            epoch: *epoch,
            secret,
        };
        if p.id() != *id {
            return Err(EpochError::WrongKey);
        }
        Ok(Some(p))
    }

    /// [`Grant::verify`], [`Grant::secret_for`] and [`Grant::previous_with`] in one: the
    /// epoch granted to `me` and the one before, or `Ok(None)` if nothing is for this device.
    pub fn open(
        &self,
        folder: &FolderId,
        me: &DeviceId,
        my_x25519_secret: &[u8; 32],
        trusted: impl Fn(&DeviceId) -> bool,
    ) -> Result<Option<(EpochKey, Option<EpochKey>)>, EpochError> {
        self.verify(folder, trusted)?;
        let Some(granted) = self.secret_for(me, my_x25519_secret)? else {
            return Ok(None);
        };
        let previous = self.previous_with(&granted)?;
        Ok(Some((granted, previous)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl GrantRandom for Counter {
        fn bytes32(&mut self) -> [u8; 32] {
            self.0 = self.0.wrapping_add(1);
            [self.0; 32]
        }
        fn bytes24(&mut self) -> [u8; 24] {
            self.0 = self.0.wrapping_add(1);
            [self.0; 24]
        }
    }

    fn device(n: u8) -> (SigningKey, DeviceId, [u8; 32]) {
        let signing = SigningKey::from_bytes(&[n; 32]);
        let id = DeviceId::of_signing_key(&signing);
        (signing, id, [n.wrapping_add(100); 32])
    }

    const FOLDER: FolderId = FolderId::from_bytes([4; 16]);

    #[test]
    fn changes_sealed_in_an_epoch_open_only_with_that_epoch_and_epoch_zero_is_the_old_format() {
        let folder_key = FolderKey::from_bytes([1; 32]);
        let mut ring = Keyring::new(&folder_key);
        let zero = ring.current().clone();
        assert_eq!(zero.epoch, 0);
        // Epoch 0 seals exactly as before rotation existed.
        assert_eq!(
            zero.seal_change(&FOLDER, b"old", [7; 24]),
            wrap::seal_change(&folder_key, &FOLDER, b"old", [7; 24])
        );
        let one = EpochKey {
            epoch: 1,
            secret: [9; 32],
        };
        let sealed = one.seal_change(&FOLDER, b"after the rotation", [8; 24]);
        assert!(sealed.starts_with(SEALED_MAGIC));
        // A device that kept only the folder key (the one removed) cannot open it.
        assert_eq!(
            ring.open_change(&FOLDER, &sealed),
            Err(EpochError::UnknownKey(one.id()))
        );
        assert!(ring.insert(one.clone()));
        assert!(!ring.insert(one.clone()));
        assert_eq!(ring.current(), &one);
        assert_eq!(
            ring.open_change(&FOLDER, &sealed).unwrap(),
            b"after the rotation"
        );
        // Old changes still open; another folder's or a tampered one does not.
        let old = zero.seal_change(&FOLDER, b"old", [7; 24]);
        assert_eq!(ring.open_change(&FOLDER, &old).unwrap(), b"old");
        let other = FolderId::from_bytes([5; 16]);
        assert!(ring.open_change(&other, &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(ring.open_change(&FOLDER, &flipped).is_err());
        // Search tokens differ per epoch.
        assert_ne!(zero.search_tokens("report"), one.search_tokens("report"));
        assert_eq!(
            zero.search_tokens("report"),
            wrap::search_tokens(&folder_key, "report")
        );
    }

    #[test]
    fn of_two_epochs_made_at_once_every_device_writes_with_the_same() {
        let mut a = Keyring::new(&FolderKey::from_bytes([1; 32]));
        let mut b = a.clone();
        let (x, y) = (
            EpochKey {
                epoch: 1,
                secret: [2; 32],
            },
            EpochKey {
                epoch: 1,
                secret: [3; 32],
            },
        );
        a.insert(x.clone());
        a.insert(y.clone());
        b.insert(y);
        b.insert(x);
        assert_eq!(a.current(), b.current());
        assert_eq!(
            a.current().id(),
            a.keys()[1..].iter().map(EpochKey::id).min().unwrap()
        );
    }

    #[test]
    fn a_grant_gives_the_epoch_and_the_one_before_to_its_recipients_only() {
        let (alice, alice_id, alice_x) = device(1);
        let (_, bob_id, bob_x) = device(2);
        let (_, carol_id, carol_x) = device(3);
        let zero = EpochKey::zero(&FolderKey::from_bytes([1; 32]));
        let one = EpochKey {
            epoch: 1,
            secret: [9; 32],
        };
        let recipients = [
            (alice_id, x25519_public(&alice_x)),
            (bob_id, x25519_public(&bob_x)),
        ];
        let grant = Grant::make(
            &FOLDER,
            &one,
            Some(&zero),
            &recipients,
            &alice,
            &mut Counter(0),
        );
        let bytes = grant.encode();
        assert!(Grant::is_grant(&bytes));
        let decoded = Grant::decode(&bytes).unwrap();
        assert_eq!(decoded, grant);
        let members = |d: &DeviceId| *d == alice_id || *d == bob_id;
        let (got, previous) = decoded
            .open(&FOLDER, &bob_id, &bob_x, members)
            .unwrap()
            .unwrap();
        assert_eq!(got, one);
        assert_eq!(previous, Some(zero.clone()));
        // Whoever holds epoch 1 by other means opens the previous one from any grant of it.
        assert_eq!(decoded.previous_with(&one).unwrap(), Some(zero.clone()));
        assert_eq!(decoded.previous_with(&zero).unwrap(), None);
        // Carol (removed) finds nothing for her.
        assert_eq!(
            decoded.open(&FOLDER, &carol_id, &carol_x, members).unwrap(),
            None
        );
        // Bob's entry does not open with another device's secret.
        assert!(decoded.open(&FOLDER, &bob_id, &carol_x, members).is_err());
        // A granter who is not a member, another folder, a tampered grant: refused.
        assert!(matches!(
            decoded.open(&FOLDER, &bob_id, &bob_x, |d| *d == bob_id),
            Err(EpochError::Wrap(WrapError::UntrustedWrapper(_)))
        ));
        assert!(
            decoded
                .open(&FolderId::from_bytes([6; 16]), &bob_id, &bob_x, members)
                .is_err()
        );
        let mut tampered = bytes.clone();
        tampered[30] ^= 1;
        let tampered = Grant::decode(&tampered).unwrap();
        assert_eq!(
            tampered.open(&FOLDER, &bob_id, &bob_x, members),
            Err(EpochError::Wrap(WrapError::BadSignature))
        );
        // Garbage and truncations decode to errors, never panics.
        for cut in 0..bytes.len() {
            assert!(Grant::decode(&bytes[..cut]).is_err());
        }
        assert!(!Grant::is_grant(&one.seal_change(&FOLDER, b"x", [1; 24])));
    }

    #[test]
    fn a_device_granted_only_the_newest_epoch_walks_back_to_every_earlier_one() {
        let (alice, alice_id, alice_x) = device(1);
        let (_, dan_id, dan_x) = device(4);
        let folder_key = FolderKey::from_bytes([1; 32]);
        let e0 = EpochKey::zero(&folder_key);
        let e1 = EpochKey {
            epoch: 1,
            secret: [11; 32],
        };
        let e2 = EpochKey {
            epoch: 2,
            secret: [12; 32],
        };
        let alice_only = [(alice_id, x25519_public(&alice_x))];
        // Two rotations granted to Alice alone, then epoch 2 granted to Dan, who joined later,
        // with only epoch 1 inside.
        let g1 = Grant::make(
            &FOLDER,
            &e1,
            Some(&e0),
            &alice_only,
            &alice,
            &mut Counter(0),
        );
        let g2 = Grant::make(
            &FOLDER,
            &e2,
            Some(&e1),
            &alice_only,
            &alice,
            &mut Counter(50),
        );
        let to_dan = Grant::make(
            &FOLDER,
            &e2,
            Some(&e1),
            &[(dan_id, x25519_public(&dan_x))],
            &alice,
            &mut Counter(100),
        );
        let mut dan = Keyring::new(&folder_key);
        let (got, _) = to_dan
            .open(&FOLDER, &dan_id, &dan_x, |_| true)
            .unwrap()
            .unwrap();
        dan.insert(got);
        assert!(dan.walk_back(&[g1.clone(), g2.clone(), to_dan.clone()]));
        assert_eq!(dan.keys().len(), 3);
        assert!(dan.get(&e1.id()).is_some());
        assert_eq!(dan.current(), &e2);
        assert!(
            !dan.walk_back(&[g1.clone(), g2, to_dan]),
            "nothing more to add"
        );
        // Carol, removed before epoch 1, holds epoch 0 only: the grants lead her nowhere.
        let mut carol = Keyring::new(&folder_key);
        assert!(!carol.walk_back(&[g1]));
        assert_eq!(carol.keys().len(), 1);
    }

    #[test]
    fn a_grant_whose_secret_is_not_its_key_id_is_refused() {
        let (alice, _, _) = device(1);
        let (_, bob_id, bob_x) = device(2);
        let one = EpochKey {
            epoch: 1,
            secret: [9; 32],
        };
        let mut grant = Grant::make(
            &FOLDER,
            &one,
            None,
            &[(bob_id, x25519_public(&bob_x))],
            &alice,
            &mut Counter(0),
        );
        // The granter claims another key id (and signs it): the secret does not match it.
        grant.key_id = [0; 8];
        grant.to[0].3 = {
            let e = x25519_public(&[1; 32]);
            let shared = x25519_dalek::x25519([1; 32], x25519_public(&bob_x));
            let aad = wrap_aad(&FOLDER, 1, &[0; 8], &bob_id);
            grant.to[0].1 = e;
            seal48(
                &wrap_cipher(&shared, &e, &x25519_public(&bob_x)),
                &grant.to[0].2,
                &one.secret,
                &aad,
            )
        };
        grant.signature = alice.sign(&grant.signed_message()).to_bytes();
        assert_eq!(
            grant.open(&FOLDER, &bob_id, &bob_x, |_| true),
            Err(EpochError::WrongKey)
        );
    }
}
