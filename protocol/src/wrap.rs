//! What travels through the bridge, sealed so the bridge learns nothing it should not:
//!
//! - a folder key **wrapped** to one device's X25519 key (ephemeral-static X25519, BLAKE3 key
//!   derivation, XChaCha20-Poly1305 with the folder id as associated data), signed by the
//!   member device that wrapped it, so the recipient knows who vouched for the key;
//! - a folder document change **sealed** with a key derived from the folder key (random
//!   192-bit nonce; the folder id as associated data);
//! - the signed message of a **device registration**.
//!
//! Randomness (ephemeral keys, nonces) is passed in: this crate does no IO.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::ids::{DeviceId, FolderId};
use crate::keys::FolderKey;

/// Context of the key that wraps a folder key.
pub const WRAP_CONTEXT: &str = "harp 2026-11-22 folder key wrap v1";
/// Context of the key that seals folder document changes for the bridge.
pub const CHANGE_CONTEXT: &str = "harp 2026-11-22 metadata change key v1";

/// Why something could not be unwrapped or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WrapError {
    /// The wrapping device's signature does not verify.
    #[error("the wrapped key's signature does not verify")]
    BadSignature,
    /// The wrapping device is not one the caller trusts for this folder.
    #[error("the key was wrapped by {0}, not a member device")]
    UntrustedWrapper(DeviceId),
    /// The key was wrapped to another device.
    #[error("the key was wrapped for another device")]
    WrongRecipient,
    /// Decryption failed: wrong key, or tampered bytes.
    #[error("cannot decrypt (wrong key or tampered)")]
    Decrypt,
    /// Too short to hold a nonce and a tag.
    #[error("sealed change is truncated")]
    Truncated,
}

/// A folder key wrapped for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The device it is for.
    pub recipient: DeviceId,
    /// The ephemeral X25519 public key.
    pub ephemeral_public: [u8; 32],
    /// XChaCha20 nonce.
    pub nonce: [u8; 24],
    /// The 32-byte key and the 16-byte tag.
    pub ciphertext: [u8; 48],
    /// The member device that wrapped it.
    pub wrapped_by: DeviceId,
    /// `wrapped_by`'s signature of [`wrap_message`].
    pub signature: [u8; 64],
}

/// The X25519 public key of a secret.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*secret, x25519_dalek::X25519_BASEPOINT_BYTES)
}

fn wrap_cipher(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut material = Vec::with_capacity(96);
    material.extend_from_slice(shared);
    material.extend_from_slice(ephemeral);
    material.extend_from_slice(recipient);
    XChaCha20Poly1305::new(&blake3::derive_key(WRAP_CONTEXT, &material).into())
}

/// The message `wrapped_by` signs.
pub fn wrap_message(
    folder: &FolderId,
    recipient: &DeviceId,
    ephemeral: &[u8; 32],
    nonce: &[u8; 24],
    ciphertext: &[u8; 48],
) -> Vec<u8> {
    let mut m = b"harp bridge wrap v1\0".to_vec();
    m.extend_from_slice(folder.as_bytes());
    m.extend_from_slice(recipient.as_bytes());
    m.extend_from_slice(ephemeral);
    m.extend_from_slice(nonce);
    m.extend_from_slice(ciphertext);
    m
}

/// Wraps `key` for `recipient` (whose X25519 public key is `recipient_x25519`), signed by
/// `wrapper`. `ephemeral_secret` and `nonce` must be fresh random bytes.
pub fn wrap(
    folder: &FolderId,
    key: &FolderKey,
    recipient: &DeviceId,
    recipient_x25519: &[u8; 32],
    wrapper: &SigningKey,
    ephemeral_secret: [u8; 32],
    nonce: [u8; 24],
) -> WrappedKey {
    let ephemeral_public = x25519_public(&ephemeral_secret);
    let shared = x25519_dalek::x25519(ephemeral_secret, *recipient_x25519);
    let sealed = wrap_cipher(&shared, &ephemeral_public, recipient_x25519)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key.as_bytes(),
                aad: folder.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut ciphertext = [0u8; 48];
    if sealed.len() == 48 {
        ciphertext.copy_from_slice(&sealed);
    }
    let signature = wrapper
        .sign(&wrap_message(
            folder,
            recipient,
            &ephemeral_public,
            &nonce,
            &ciphertext,
        ))
        .to_bytes();
    WrappedKey {
        recipient: *recipient,
        ephemeral_public,
        nonce,
        ciphertext,
        wrapped_by: DeviceId::of_signing_key(wrapper),
        signature,
    }
}

/// Unwraps a key meant for `me` (holding `my_x25519_secret`): the signature of a device
/// `trusted` accepts must verify before anything is decrypted.
pub fn unwrap(
    folder: &FolderId,
    w: &WrappedKey,
    me: &DeviceId,
    my_x25519_secret: &[u8; 32],
    trusted: impl Fn(&DeviceId) -> bool,
) -> Result<FolderKey, WrapError> {
    if w.recipient != *me {
        return Err(WrapError::WrongRecipient);
    }
    if !trusted(&w.wrapped_by) {
        return Err(WrapError::UntrustedWrapper(w.wrapped_by));
    }
    let key =
        VerifyingKey::from_bytes(w.wrapped_by.as_bytes()).map_err(|_| WrapError::BadSignature)?;
    let msg = wrap_message(
        folder,
        &w.recipient,
        &w.ephemeral_public,
        &w.nonce,
        &w.ciphertext,
    );
    key.verify_strict(&msg, &Signature::from_bytes(&w.signature))
        .map_err(|_| WrapError::BadSignature)?;
    let shared = x25519_dalek::x25519(*my_x25519_secret, w.ephemeral_public);
    if shared == [0u8; 32] {
        return Err(WrapError::Decrypt);
    }
    let mine = x25519_public(my_x25519_secret);
    let plain = wrap_cipher(&shared, &w.ephemeral_public, &mine)
        .decrypt(
            XNonce::from_slice(&w.nonce),
            Payload {
                msg: &w.ciphertext,
                aad: folder.as_bytes(),
            },
        )
        .map_err(|_| WrapError::Decrypt)?;
    let bytes: [u8; 32] = plain.try_into().map_err(|_| WrapError::Decrypt)?;
    Ok(FolderKey::from_bytes(bytes))
}

fn change_cipher(key: &FolderKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&blake3::derive_key(CHANGE_CONTEXT, key.as_bytes()).into())
}

/// Seals one folder document change: `nonce ‖ ciphertext ‖ tag`.
pub fn seal_change(key: &FolderKey, folder: &FolderId, change: &[u8], nonce: [u8; 24]) -> Vec<u8> {
    let mut out = nonce.to_vec();
    out.extend(
        change_cipher(key)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: change,
                    aad: folder.as_bytes(),
                },
            )
            .unwrap_or_default(),
    );
    out
}

/// Opens a sealed change.
pub fn open_change(
    key: &FolderKey,
    folder: &FolderId,
    sealed: &[u8],
) -> Result<Vec<u8>, WrapError> {
    if sealed.len() < 24 + 16 {
        return Err(WrapError::Truncated);
    }
    let (nonce, body) = sealed.split_at(24);
    change_cipher(key)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: folder.as_bytes(),
            },
        )
        .map_err(|_| WrapError::Decrypt)
}

/// Context of the key search tokens are made with.
pub const SEARCH_CONTEXT: &str = "harp 2026-11-22 search token key v1";

/// The search tokens of a text (a path, or a query) for a folder whose bridge index is
/// encrypted: its words (letters and digits, lower-cased, two characters or more, at most 64
/// distinct), each the first 16 bytes of `B3k(B3d(SEARCH_CONTEXT, folder key), word)` (128
/// bits: tokens are compared for equality, never attacked for collisions). Members find a file
/// by any of its words; the bridge sees only which files share a word.
pub fn search_tokens(key: &FolderKey, text: &str) -> Vec<[u8; 16]> {
    let token_key = blake3::derive_key(SEARCH_CONTEXT, key.as_bytes());
    let lower = text.to_lowercase();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if word.chars().count() < 2 || !seen.insert(word) {
            continue;
        }
        let mut token = [0u8; 16];
        token.copy_from_slice(&blake3::keyed_hash(&token_key, word.as_bytes()).as_bytes()[..16]);
        out.push(token);
        if out.len() == 64 {
            break;
        }
    }
    out
}

/// The message a device signs to register with a bridge as `user`.
pub fn registration_message(user: &str, device: &DeviceId, x25519_public: &[u8; 32]) -> Vec<u8> {
    let mut m = b"harp bridge device v1\0".to_vec();
    m.extend_from_slice(user.as_bytes());
    m.push(0);
    m.extend_from_slice(device.as_bytes());
    m.extend_from_slice(x25519_public);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (FolderId, FolderKey, SigningKey, SigningKey, [u8; 32]) {
        (
            FolderId::from_bytes([1; 16]),
            FolderKey::from_bytes([9; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
            [4; 32],
        )
    }

    #[test]
    fn a_wrapped_key_opens_for_its_device_only_and_only_from_a_trusted_wrapper() {
        let (folder, key, alice, bob, bob_x) = setup();
        let bob_id = DeviceId::of_signing_key(&bob);
        let alice_id = DeviceId::of_signing_key(&alice);
        let w = wrap(
            &folder,
            &key,
            &bob_id,
            &x25519_public(&bob_x),
            &alice,
            [5; 32],
            [6; 24],
        );
        let got = unwrap(&folder, &w, &bob_id, &bob_x, |d| *d == alice_id);
        assert_eq!(got.map(|k| *k.as_bytes()), Ok(*key.as_bytes()));
        // Not for Alice; not from a stranger; not for another folder; not tampered.
        assert_eq!(
            unwrap(&folder, &w, &alice_id, &bob_x, |_| true).err(),
            Some(WrapError::WrongRecipient)
        );
        assert_eq!(
            unwrap(&folder, &w, &bob_id, &bob_x, |_| false).err(),
            Some(WrapError::UntrustedWrapper(alice_id))
        );
        let other = FolderId::from_bytes([7; 16]);
        assert_eq!(
            unwrap(&other, &w, &bob_id, &bob_x, |_| true).err(),
            Some(WrapError::BadSignature)
        );
        let mut t = w.clone();
        t.ciphertext[0] ^= 1;
        assert_eq!(
            unwrap(&folder, &t, &bob_id, &bob_x, |_| true).err(),
            Some(WrapError::BadSignature)
        );
        // Re-signed by the wrapper but still tampered: decryption refuses it.
        t.signature = alice
            .sign(&wrap_message(
                &folder,
                &bob_id,
                &t.ephemeral_public,
                &t.nonce,
                &t.ciphertext,
            ))
            .to_bytes();
        assert_eq!(
            unwrap(&folder, &t, &bob_id, &bob_x, |_| true).err(),
            Some(WrapError::Decrypt)
        );
        // The wrong secret cannot open it.
        assert_eq!(
            unwrap(&folder, &w, &bob_id, &[8; 32], |_| true).err(),
            Some(WrapError::Decrypt)
        );
    }

    #[test]
    fn search_tokens_are_per_word_case_blind_and_per_folder() {
        let (_, key, ..) = setup();
        let path = search_tokens(&key, "Photos/Summer 2026/Beach-Day.JPG");
        assert_eq!(path.len(), 6, "photos, summer, 2026, beach, day, jpg");
        let query = search_tokens(&key, "beach SUMMER");
        assert!(query.iter().all(|t| path.contains(t)));
        assert!(
            search_tokens(&key, "a/b/c").is_empty(),
            "one-letter words are not indexed"
        );
        let other = FolderKey::from_bytes([1; 32]);
        assert!(
            search_tokens(&other, "beach")
                .iter()
                .all(|t| !path.contains(t))
        );
        assert_eq!(search_tokens(&key, &"word ".repeat(100)).len(), 1);
    }

    #[test]
    fn sealed_changes_open_with_the_folder_key_only() {
        let (folder, key, ..) = setup();
        let sealed = seal_change(&key, &folder, b"an automerge change", [1; 24]);
        assert_eq!(
            open_change(&key, &folder, &sealed).as_deref(),
            Ok(&b"an automerge change"[..])
        );
        let other = FolderKey::from_bytes([1; 32]);
        assert_eq!(
            open_change(&other, &folder, &sealed),
            Err(WrapError::Decrypt)
        );
        assert_eq!(
            open_change(&key, &FolderId::from_bytes([0; 16]), &sealed),
            Err(WrapError::Decrypt)
        );
        assert_eq!(
            open_change(&key, &folder, &sealed[..30]),
            Err(WrapError::Truncated)
        );
        let mut t = sealed.clone();
        t[30] ^= 1;
        assert_eq!(open_change(&key, &folder, &t), Err(WrapError::Decrypt));
    }
}
