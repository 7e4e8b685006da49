//! The key schedule: every secret a folder uses, derived from its one 256-bit folder key.
//!
//! Each derived key comes from BLAKE3's `derive_key` with its own context string, so that no
//! two uses ever share a key (domain separation) and a new use can be added without touching
//! the others. The context strings are part of the protocol (`docs/protocol.md`) and fixed
//! forever; a new format gets new strings.
//!
//! | key | context string | used for |
//! |---|---|---|
//! | chunk nonce key | `harp 2026-11-21 chunk nonce key v1` | synthetic nonce of a data chunk: keyed BLAKE3 of its plaintext |
//! | chunker key | `harp 2026-11-21 chunker gear key v1` | seeds FastCDC's gear table, so chunk sizes do not fingerprint content |
//! | chunk encryption key | `harp 2026-11-21 chunk encryption key v1` | XChaCha20-Poly1305 key of data chunks |
//! | manifest nonce key | `harp 2026-11-21 manifest nonce key v1` | synthetic nonce of a manifest node |
//! | manifest key | `harp 2026-11-21 manifest encryption key v1` | XChaCha20-Poly1305 key of manifest nodes and records |
//! | name key | `harp 2026-11-21 path commitment key v1` | keyed BLAKE3 of paths in chain entries |
//! | chain seed | `harp 2026-11-21 chain seed v1` | the secret in every file's chain genesis `h0` |

use zeroize::Zeroize;

use crate::ids::PathCommitment;

/// Context strings of the key schedule, fixed forever (see the module docs).
pub mod context {
    /// Keyed BLAKE3 of a data chunk's plaintext, the source of its synthetic nonce.
    pub const CHUNK_NONCE: &str = "harp 2026-11-21 chunk nonce key v1";
    /// Seed of the keyed FastCDC gear table.
    pub const CHUNKER: &str = "harp 2026-11-21 chunker gear key v1";
    /// XChaCha20-Poly1305 key of data chunks.
    pub const CHUNK_ENCRYPTION: &str = "harp 2026-11-21 chunk encryption key v1";
    /// Keyed BLAKE3 of a manifest node's plaintext, the source of its synthetic nonce.
    pub const MANIFEST_NONCE: &str = "harp 2026-11-21 manifest nonce key v1";
    /// XChaCha20-Poly1305 key of manifest nodes and manifest records.
    pub const MANIFEST_ENCRYPTION: &str = "harp 2026-11-21 manifest encryption key v1";
    /// Keyed BLAKE3 of a path, committed to in chain entries.
    pub const PATH_COMMITMENT: &str = "harp 2026-11-21 path commitment key v1";
    /// Secret input of every chain's genesis hash.
    pub const CHAIN_SEED: &str = "harp 2026-11-21 chain seed v1";
}

/// A 256-bit secret. Zeroed on drop, compared in constant time; its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        // Constant time: no early exit on the first differing byte.
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for SecretKey {}

impl SecretKey {
    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes. Handle with care.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A folder's root secret: 256 random bits, held only by the folder's member devices (the
/// bridge stores it wrapped for each device, never in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct FolderKey(SecretKey);

impl std::fmt::Debug for FolderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderKey(..)")
    }
}

impl FolderKey {
    /// The folder key with these bytes (from a random source, or unwrapped from the bridge).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretKey::from_bytes(bytes))
    }

    /// The key's bytes, for wrapping to another device. Handle with care.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    fn derive(&self, context: &str) -> SecretKey {
        SecretKey(blake3::derive_key(context, self.0.as_bytes()))
    }

    /// Derives every key of the schedule.
    pub fn schedule(&self) -> FolderKeys {
        FolderKeys {
            chunk_nonce: self.derive(context::CHUNK_NONCE),
            chunker: self.derive(context::CHUNKER),
            chunk_encryption: self.derive(context::CHUNK_ENCRYPTION),
            manifest_nonce: self.derive(context::MANIFEST_NONCE),
            manifest_encryption: self.derive(context::MANIFEST_ENCRYPTION),
            path_commitment: self.derive(context::PATH_COMMITMENT),
            chain_seed: self.derive(context::CHAIN_SEED),
        }
    }
}

/// Every key a folder uses, derived from its [`FolderKey`].
#[derive(Debug, Clone)]
pub struct FolderKeys {
    /// Keyed BLAKE3 of a data chunk's plaintext, the source of its synthetic nonce.
    pub chunk_nonce: SecretKey,
    /// Seed of the keyed FastCDC gear table.
    pub chunker: SecretKey,
    /// XChaCha20-Poly1305 key of data chunks.
    pub chunk_encryption: SecretKey,
    /// Keyed BLAKE3 of a manifest node's plaintext, the source of its synthetic nonce.
    pub manifest_nonce: SecretKey,
    /// XChaCha20-Poly1305 key of manifest nodes and records.
    pub manifest_encryption: SecretKey,
    /// Keyed BLAKE3 of paths committed to in chain entries.
    pub path_commitment: SecretKey,
    /// Secret input of every chain's genesis hash.
    pub chain_seed: SecretKey,
}

impl FolderKeys {
    /// The commitment to a path (as the folder stores it: `/`-separated, relative, NFC) that
    /// chain entries carry instead of the name.
    pub fn commit_path(&self, path: &str) -> PathCommitment {
        PathCommitment::from_bytes(
            *blake3::keyed_hash(self.path_commitment.as_bytes(), path.as_bytes()).as_bytes(),
        )
    }

    /// The 256-entry FastCDC gear table for this folder: each entry is 8 bytes of a BLAKE3
    /// output stream keyed with the chunker key. Without the key, chunk boundaries (and so
    /// chunk sizes) reveal nothing about the contents.
    pub fn gear_table(&self) -> [u64; 256] {
        let mut xof = blake3::Hasher::new_keyed(self.chunker.as_bytes())
            .update(b"gear table")
            .finalize_xof();
        let mut bytes = [0u8; 256 * 8];
        xof.fill(&mut bytes);
        let mut table = [0u64; 256];
        for (slot, word) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *slot = u64::from_le_bytes(w);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_derived_key_is_distinct_and_depends_on_the_folder_key() {
        let a = FolderKey::from_bytes([1; 32]).schedule();
        let b = FolderKey::from_bytes([2; 32]).schedule();
        let keys_a = [
            &a.chunk_nonce,
            &a.chunker,
            &a.chunk_encryption,
            &a.manifest_nonce,
            &a.manifest_encryption,
            &a.path_commitment,
            &a.chain_seed,
        ];
        for (i, x) in keys_a.iter().enumerate() {
            for y in &keys_a[i + 1..] {
                assert_ne!(x.as_bytes(), y.as_bytes());
            }
        }
        assert_ne!(a.chain_seed, b.chain_seed);
        assert_ne!(a.gear_table(), b.gear_table());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let key = FolderKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?} {:?}", key.schedule());
        // 0xab is 171: neither the decimal bytes nor an array of them may appear.
        assert!(!shown.contains("171"), "{shown}");
        assert!(!shown.contains('['), "{shown}");
    }
}
