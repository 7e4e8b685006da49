//! Encrypted blobs: the format of file chunks and manifest nodes on the wire and at rest.
//!
//! ```text
//! offset  size  field
//! 0       1     version = 0x01
//! 1       1     kind: 0x01 data chunk, 0x02 manifest node, 0x03 manifest record
//! 2       24    nonce = first 24 bytes of keyed BLAKE3(nonce key of the kind, plaintext)
//! 26      n     XChaCha20-Poly1305(key of the kind, nonce, aad = bytes 0..2, plaintext)
//! 26+n    16    Poly1305 tag
//! ```
//!
//! The nonce is *synthetic* (derived from the plaintext under a folder secret), so equal
//! plaintexts inside a folder give byte-equal blobs: devices dedup chunks without sharing
//! plaintext hashes, and a chunk can be re-encrypted from the file on demand instead of being
//! stored twice. The blob's id ([`ChunkId`]) is the plain BLAKE3 hash of all its bytes, so a
//! relay or any peer can check a blob against the id it asked for without a key; a key holder
//! then authenticates it with the AEAD and re-derives the nonce from the plaintext (the SIV
//! check), so a blob that decrypts is also the canonical one.
//!
//! What an outsider learns: blob sizes (plaintext + 42 bytes) and which blobs are equal inside
//! one folder. Keyed chunk boundaries (see [`crate::keys::FolderKeys::gear_table`]) keep sizes
//! from fingerprinting known files.

use chacha20::cipher::consts::U10;
use chacha20::cipher::generic_array::GenericArray;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use thiserror::Error;

use crate::codec::DecodeError;
use crate::ids::ChunkId;
use crate::keys::{FolderKeys, SecretKey};

/// Version byte of the blob format.
pub const BLOB_VERSION: u8 = 1;
/// Bytes a blob adds to its plaintext: version, kind, nonce, tag.
pub const BLOB_OVERHEAD: usize = 2 + 24 + 16;
/// The largest plaintext a blob may carry (the chunker's maximum chunk size is below it).
pub const MAX_BLOB_PLAINTEXT: usize = 1 << 20;
/// The largest blob on the wire.
pub const MAX_BLOB_LEN: usize = MAX_BLOB_PLAINTEXT + BLOB_OVERHEAD;

/// What a blob holds; each kind has its own keys, so one can never be opened as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlobKind {
    /// A content-defined chunk of a file.
    Chunk = 1,
    /// A node of a file version's manifest tree.
    ManifestNode = 2,
    /// A manifest record (size, mode, mtime, content root) of a file version.
    ManifestRecord = 3,
}

impl BlobKind {
    fn from_u8(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            1 => Ok(Self::Chunk),
            2 => Ok(Self::ManifestNode),
            3 => Ok(Self::ManifestRecord),
            tag => Err(DecodeError::UnknownTag {
                what: "blob kind",
                tag,
            }),
        }
    }

    fn keys(self, keys: &FolderKeys) -> (&SecretKey, &SecretKey) {
        match self {
            BlobKind::Chunk => (&keys.chunk_nonce, &keys.chunk_encryption),
            BlobKind::ManifestNode | BlobKind::ManifestRecord => {
                (&keys.manifest_nonce, &keys.manifest_encryption)
            }
        }
    }
}

/// Why a blob was refused. Every variant but [`BlobError::TooLarge`] on sealing means the
/// blob came from a faulty or hostile party.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The blob's bytes do not hash to the id it was asked for.
    #[error("blob does not match its id: expected {expected}, got {actual}")]
    IdMismatch {
        /// The id that was asked for.
        expected: ChunkId,
        /// The hash of the bytes that arrived.
        actual: ChunkId,
    },
    /// The header is malformed or too short.
    #[error("malformed blob: {0}")]
    Malformed(#[from] DecodeError),
    /// The blob is of another kind than expected.
    #[error("blob is a {actual:?}, expected a {expected:?}")]
    WrongKind {
        /// The kind asked for.
        expected: BlobKind,
        /// The kind in the header.
        actual: BlobKind,
    },
    /// The AEAD tag does not verify: wrong folder key, or tampered bytes.
    #[error("blob failed authentication (wrong folder or tampered)")]
    Authentication,
    /// The blob decrypts but its nonce is not the one its plaintext gives: a key holder made
    /// a non-canonical blob.
    #[error("blob nonce is not derived from its plaintext")]
    NonceMismatch,
    /// The plaintext is larger than [`MAX_BLOB_PLAINTEXT`].
    #[error("blob plaintext of {0} bytes exceeds the maximum")]
    TooLarge(usize),
}

impl BlobError {
    /// A stable, machine-readable name for the error (used by the golden vectors).
    pub fn code(&self) -> &'static str {
        match self {
            BlobError::IdMismatch { .. } => "id_mismatch",
            BlobError::Malformed(e) => e.code(),
            BlobError::WrongKind { .. } => "wrong_kind",
            BlobError::Authentication => "authentication",
            BlobError::NonceMismatch => "nonce_mismatch",
            BlobError::TooLarge(_) => "too_large",
        }
    }
}

fn synthetic_nonce(nonce_key: &SecretKey, plaintext: &[u8]) -> [u8; 24] {
    let full = blake3::keyed_hash(nonce_key.as_bytes(), plaintext);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&full.as_bytes()[..24]);
    nonce
}

/// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03) on top of ring's ChaCha20-Poly1305:
/// HChaCha20 turns the key and the nonce's first 16 bytes into a subkey, and the nonce's last 8
/// bytes, after four zero bytes, are the IETF nonce. The bytes are those of any XChaCha20-Poly1305
/// (a test checks them against RustCrypto's, and the golden vectors pin them); ring's assembly
/// is what makes it worth the few lines: blobs are the one per-byte cost Harp adds to a transfer.
/// `None` only if ring refuses a 32-byte key, which it never does.
fn xchacha_key(key: &SecretKey, nonce: &[u8; 24]) -> Option<(LessSafeKey, Nonce)> {
    let mut input = [0u8; 16];
    input.copy_from_slice(&nonce[..16]);
    let subkey = chacha20::hchacha::<U10>(
        GenericArray::from_slice(key.as_bytes()),
        GenericArray::from_slice(&input),
    );
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice()).ok()?);
    let mut ietf = [0u8; 12];
    ietf[4..].copy_from_slice(&nonce[16..]);
    Some((key, Nonce::assume_unique_for_key(ietf)))
}

/// A data chunk's **tag**: the keyed BLAKE3 of its plaintext, whose first 24 bytes are the
/// blob's nonce. Sealing is a function of the plaintext, so a chunk whose tag is known maps to
/// the id it had: a rescan that finds a known tag skips the encryption (`harp` keeps tags in
/// its index, beside the ids; they say no more than the nonce each blob carries in the clear).
pub fn chunk_tag(keys: &FolderKeys, plaintext: &[u8]) -> [u8; 32] {
    let (nonce_key, _) = BlobKind::Chunk.keys(keys);
    *blake3::keyed_hash(nonce_key.as_bytes(), plaintext).as_bytes()
}

/// Seals a data chunk and returns its tag ([`chunk_tag`]) too, hashing the plaintext once.
pub fn seal_chunk_tagged(
    keys: &FolderKeys,
    plaintext: &[u8],
) -> Result<([u8; 32], ChunkId, Vec<u8>), BlobError> {
    seal_chunk_tagged_into(keys, plaintext, Vec::new())
}

/// [`seal_chunk_tagged`] into `buf` (cleared first): a caller that keeps buffers for blobs
/// passes one in, with room for what its transport appends after the blob, so the blob is
/// neither allocated here nor copied to be sent.
pub fn seal_chunk_tagged_into(
    keys: &FolderKeys,
    plaintext: &[u8],
    buf: Vec<u8>,
) -> Result<([u8; 32], ChunkId, Vec<u8>), BlobError> {
    let tag = chunk_tag(keys, plaintext);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&tag[..24]);
    let (id, blob) = seal_with_nonce(keys, BlobKind::Chunk, plaintext, nonce, buf)?;
    Ok((tag, id, blob))
}

/// Encrypts `plaintext` into a blob of `kind` and returns it with its id.
pub fn seal(
    keys: &FolderKeys,
    kind: BlobKind,
    plaintext: &[u8],
) -> Result<(ChunkId, Vec<u8>), BlobError> {
    let (nonce_key, _) = kind.keys(keys);
    let nonce = synthetic_nonce(nonce_key, plaintext);
    seal_with_nonce(keys, kind, plaintext, nonce, Vec::new())
}

fn seal_with_nonce(
    keys: &FolderKeys,
    kind: BlobKind,
    plaintext: &[u8],
    nonce: [u8; 24],
    mut buf: Vec<u8>,
) -> Result<(ChunkId, Vec<u8>), BlobError> {
    // One buffer, encrypted in place: header, nonce, then the plaintext turned ciphertext,
    // then the tag (no second copy of a chunk on the hot path).
    buf.clear();
    buf.reserve(BLOB_OVERHEAD + plaintext.len());
    buf.extend_from_slice(&[0; BLOB_HEADER_LEN]);
    buf.extend_from_slice(plaintext);
    let blob = seal_in_place(keys, kind, buf, nonce)?;
    Ok((ChunkId::of_ciphertext(&blob), blob))
}

/// Seals `buf[BLOB_HEADER_LEN..]` in place under `nonce`: writes the header and the nonce in
/// front, encrypts, appends the tag.
fn seal_in_place(
    keys: &FolderKeys,
    kind: BlobKind,
    mut buf: Vec<u8>,
    nonce: [u8; 24],
) -> Result<Vec<u8>, BlobError> {
    let len = buf.len().saturating_sub(BLOB_HEADER_LEN);
    if len > MAX_BLOB_PLAINTEXT || buf.len() < BLOB_HEADER_LEN {
        return Err(BlobError::TooLarge(len));
    }
    let (_, enc_key) = kind.keys(keys);
    let header = [BLOB_VERSION, kind as u8];
    // Sealing fails only for plaintexts beyond ChaCha20's 256 GiB limit, excluded above.
    let too_large = || BlobError::TooLarge(len);
    let (cipher, aead_nonce) = xchacha_key(enc_key, &nonce).ok_or_else(too_large)?;
    buf[..2].copy_from_slice(&header);
    buf[2..BLOB_HEADER_LEN].copy_from_slice(&nonce);
    let tag = cipher
        .seal_in_place_separate_tag(aead_nonce, Aad::from(header), &mut buf[BLOB_HEADER_LEN..])
        .map_err(|_| too_large())?;
    buf.extend_from_slice(tag.as_ref());
    Ok(buf)
}

/// Bytes of a blob before its ciphertext: version, kind, nonce.
pub const BLOB_HEADER_LEN: usize = 2 + 24;

/// Seals the data chunk a caller read into `buf[BLOB_HEADER_LEN..]` (so the chunk is never
/// copied; give `buf` 16 bytes of spare capacity for the tag) in place, **if** it is the chunk
/// whose tag starts with `nonce`. Sealing is a function of the plaintext, so the blob is then
/// byte for byte the one recorded with that nonce, and its id needs no second hash: this is
/// how a device re-makes a chunk it indexed for a peer. `Ok(None)`: the bytes are another
/// chunk now (the file changed since it was indexed).
pub fn seal_chunk_in(
    keys: &FolderKeys,
    buf: Vec<u8>,
    nonce: &[u8; 24],
) -> Result<Option<Vec<u8>>, BlobError> {
    let Some(plaintext) = buf.get(BLOB_HEADER_LEN..) else {
        return Ok(None);
    };
    let (nonce_key, _) = BlobKind::Chunk.keys(keys);
    if &synthetic_nonce(nonce_key, plaintext) != nonce {
        return Ok(None);
    }
    seal_in_place(keys, BlobKind::Chunk, buf, *nonce).map(Some)
}

/// Checks that `blob` is the one named `id`, without any key: what a relay or a receiver does
/// before spending time on decryption.
pub fn check_id(id: &ChunkId, blob: &[u8]) -> Result<(), BlobError> {
    let actual = ChunkId::of_ciphertext(blob);
    if &actual == id {
        Ok(())
    } else {
        Err(BlobError::IdMismatch {
            expected: *id,
            actual,
        })
    }
}

/// A blob whose bytes hash to its id. [`CheckedBlob::check`] is the only way to make one, so
/// code that holds one need not hash it again: the receiver checks each blob once, as it comes
/// off the wire, and opens it later without a second BLAKE3 pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBlob {
    id: ChunkId,
    bytes: Vec<u8>,
}

impl CheckedBlob {
    /// Checks `bytes` against `id` ([`check_id`]).
    pub fn check(id: ChunkId, bytes: Vec<u8>) -> Result<Self, BlobError> {
        check_id(&id, &bytes)?;
        Ok(Self { id, bytes })
    }

    /// The id the bytes hash to.
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// The blob's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The blob's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The nonce the blob carries in the clear (`None` if it is too short to hold one). Once
    /// a data chunk's blob has opened, this is the first 24 bytes of its [`chunk_tag`]:
    /// opening checks exactly that.
    pub fn nonce(&self) -> Option<[u8; 24]> {
        self.bytes.get(2..26)?.try_into().ok()
    }

    /// Authenticates and decrypts the blob and checks that it is canonical ([`open`] without
    /// hashing it again).
    pub fn open(&self, keys: &FolderKeys, kind: BlobKind) -> Result<Vec<u8>, BlobError> {
        open_unchecked_id(keys, kind, &self.bytes)
    }

    /// [`open`](Self::open), decrypting in the blob's own buffer instead of a copy of it.
    pub fn into_plaintext(self, keys: &FolderKeys, kind: BlobKind) -> Result<Plaintext, BlobError> {
        let mut buf = self.bytes;
        let (nonce, cipher, aead_nonce) = check_header(keys, kind, &buf)?;
        let header = [buf[0], buf[1]];
        let len = cipher
            .open_in_place(aead_nonce, Aad::from(header), &mut buf[BLOB_HEADER_LEN..])
            .map_err(|_| BlobError::Authentication)?
            .len();
        buf.truncate(BLOB_HEADER_LEN + len);
        let (nonce_key, _) = kind.keys(keys);
        if synthetic_nonce(nonce_key, &buf[BLOB_HEADER_LEN..]) != nonce {
            return Err(BlobError::NonceMismatch);
        }
        Ok(Plaintext(buf))
    }
}

/// A blob's plaintext, decrypted where the blob arrived ([`CheckedBlob::into_plaintext`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    /// The buffer the blob arrived in, to keep for the next one (its bytes are of no use:
    /// the plaintext after the blob's header).
    pub fn into_buffer(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.get(BLOB_HEADER_LEN..).unwrap_or_default()
    }
}

/// Checks a blob's length, version and kind; returns its nonce and the cipher to open it.
fn check_header(
    keys: &FolderKeys,
    kind: BlobKind,
    blob: &[u8],
) -> Result<([u8; 24], LessSafeKey, Nonce), BlobError> {
    if blob.len() < BLOB_OVERHEAD {
        return Err(DecodeError::Truncated {
            what: "blob",
            needed: BLOB_OVERHEAD - blob.len(),
        }
        .into());
    }
    if blob.len() > MAX_BLOB_LEN {
        return Err(DecodeError::TooLarge {
            what: "blob",
            len: blob.len() as u64,
            max: MAX_BLOB_LEN as u64,
        }
        .into());
    }
    if blob[0] != BLOB_VERSION {
        return Err(DecodeError::UnknownVersion {
            what: "blob",
            version: blob[0],
        }
        .into());
    }
    let actual = BlobKind::from_u8(blob[1])?;
    if actual != kind {
        return Err(BlobError::WrongKind {
            expected: kind,
            actual,
        });
    }
    let (_, enc_key) = kind.keys(keys);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&blob[2..BLOB_HEADER_LEN]);
    let (cipher, aead_nonce) = xchacha_key(enc_key, &nonce).ok_or(BlobError::Authentication)?;
    Ok((nonce, cipher, aead_nonce))
}

/// Checks `blob` against `id`, authenticates and decrypts it, and checks that it is canonical.
pub fn open(
    keys: &FolderKeys,
    kind: BlobKind,
    id: &ChunkId,
    blob: &[u8],
) -> Result<Vec<u8>, BlobError> {
    check_id(id, blob)?;
    open_unchecked_id(keys, kind, blob)
}

/// Authenticates and decrypts a blob whose id is not known (or was checked already).
pub fn open_unchecked_id(
    keys: &FolderKeys,
    kind: BlobKind,
    blob: &[u8],
) -> Result<Vec<u8>, BlobError> {
    let (nonce, cipher, aead_nonce) = check_header(keys, kind, blob)?;
    // Decrypted in place in one copy of ciphertext and tag; the tag is cut off after.
    let mut plaintext = blob[BLOB_HEADER_LEN..].to_vec();
    let len = cipher
        .open_in_place(aead_nonce, Aad::from([blob[0], blob[1]]), &mut plaintext)
        .map_err(|_| BlobError::Authentication)?
        .len();
    plaintext.truncate(len);
    let (nonce_key, _) = kind.keys(keys);
    if synthetic_nonce(nonce_key, &plaintext) != nonce {
        return Err(BlobError::NonceMismatch);
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_tagged_seal_is_the_plain_seal_and_its_tag_starts_with_the_nonce() {
        let keys = crate::keys::FolderKey::from_bytes([5; 32]).schedule();
        let data = b"some chunk of a file".repeat(100);
        let (tag, id, blob) = seal_chunk_tagged(&keys, &data).unwrap();
        let checked = CheckedBlob::check(id, blob.clone()).unwrap();
        assert_eq!(checked.nonce().unwrap()[..], tag[..24]);
        assert_eq!(
            CheckedBlob::check(ChunkId::of_ciphertext(b"x"), b"x".to_vec())
                .unwrap()
                .nonce(),
            None
        );
        assert_eq!(
            seal(&keys, BlobKind::Chunk, &data).unwrap(),
            (id, blob.clone())
        );
        assert_eq!(&blob[2..26], &tag[..24]);
        assert_eq!(tag, chunk_tag(&keys, &data));
        assert_ne!(chunk_tag(&keys, b"other"), tag);
    }

    use super::*;
    use crate::keys::FolderKey;
    use proptest::prelude::*;

    fn keys() -> FolderKeys {
        FolderKey::from_bytes([42; 32]).schedule()
    }

    #[test]
    fn equal_plaintexts_give_equal_blobs_and_other_folders_differ() {
        let k = keys();
        let (id1, b1) = seal(&k, BlobKind::Chunk, b"hello").unwrap();
        let (id2, b2) = seal(&k, BlobKind::Chunk, b"hello").unwrap();
        assert_eq!((id1, &b1), (id2, &b2));
        let other = FolderKey::from_bytes([43; 32]).schedule();
        let (id3, _) = seal(&other, BlobKind::Chunk, b"hello").unwrap();
        assert_ne!(id1, id3);
        assert_eq!(b1.len(), 5 + BLOB_OVERHEAD);
    }

    #[test]
    fn tampering_is_caught_at_each_layer() {
        let k = keys();
        let (id, blob) = seal(&k, BlobKind::Chunk, &[7u8; 1000]).unwrap();
        assert_eq!(
            open(&k, BlobKind::Chunk, &id, &blob).unwrap(),
            vec![7u8; 1000]
        );

        let mut flipped = blob.clone();
        flipped[500] ^= 1;
        assert!(matches!(
            open(&k, BlobKind::Chunk, &id, &flipped),
            Err(BlobError::IdMismatch { .. })
        ));
        assert_eq!(
            open_unchecked_id(&k, BlobKind::Chunk, &flipped),
            Err(BlobError::Authentication)
        );
        let other = FolderKey::from_bytes([1; 32]).schedule();
        assert_eq!(
            open(&other, BlobKind::Chunk, &id, &blob),
            Err(BlobError::Authentication)
        );
        assert!(matches!(
            open(&k, BlobKind::ManifestNode, &id, &blob),
            Err(BlobError::WrongKind { .. })
        ));
    }

    #[test]
    fn blobs_are_byte_for_byte_rustcrypto_xchacha20_poly1305() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let k = keys();
        for len in [0usize, 1, 63, 64, 65, 1000, 65_536, 100_003] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (_, blob) = seal(&k, BlobKind::Chunk, &data).unwrap();
            let cipher = XChaCha20Poly1305::new(k.chunk_encryption.as_bytes().into());
            let reference = cipher
                .encrypt(
                    XNonce::from_slice(&blob[2..26]),
                    Payload {
                        msg: &data,
                        aad: &blob[..2],
                    },
                )
                .unwrap();
            assert_eq!(&blob[26..], &reference[..], "length {len}");
        }
    }

    #[test]
    fn a_non_canonical_nonce_is_refused_even_with_the_key() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let k = keys();
        let plaintext = b"same bytes, other nonce";
        let nonce = [9u8; 24];
        let header = [BLOB_VERSION, BlobKind::Chunk as u8];
        let cipher = XChaCha20Poly1305::new(k.chunk_encryption.as_bytes().into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .unwrap();
        let blob = [&header[..], &nonce, &sealed].concat();
        assert_eq!(
            open_unchecked_id(&k, BlobKind::Chunk, &blob),
            Err(BlobError::NonceMismatch)
        );
    }

    #[test]
    fn a_checked_blob_exists_only_for_matching_bytes_and_opens_like_open() {
        let k = keys();
        let (id, blob) = seal(&k, BlobKind::Chunk, b"checked once").unwrap();
        let checked = CheckedBlob::check(id, blob.clone()).unwrap();
        assert_eq!(checked.id(), id);
        assert_eq!(
            checked.open(&k, BlobKind::Chunk).unwrap(),
            open(&k, BlobKind::Chunk, &id, &blob).unwrap()
        );
        let mut flipped = blob;
        flipped[30] ^= 1;
        assert!(matches!(
            CheckedBlob::check(id, flipped),
            Err(BlobError::IdMismatch { .. })
        ));
    }

    #[test]
    fn a_blob_opened_in_its_own_buffer_is_opened_like_open_and_refused_alike() {
        let k = keys();
        for len in [0usize, 1, 1000, 65_537] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let (id, blob) = seal(&k, BlobKind::Chunk, &data).unwrap();
            let plain = CheckedBlob::check(id, blob).unwrap();
            assert_eq!(
                &*plain.into_plaintext(&k, BlobKind::Chunk).unwrap(),
                &data[..]
            );
        }
        let (_, blob) = seal(&k, BlobKind::Chunk, b"tampered with").unwrap();
        let checked = |b: Vec<u8>| CheckedBlob::check(ChunkId::of_ciphertext(&b), b).unwrap();
        let mut flipped = blob.clone();
        flipped[30] ^= 1;
        assert_eq!(
            checked(flipped).into_plaintext(&k, BlobKind::Chunk),
            Err(BlobError::Authentication)
        );
        assert!(matches!(
            checked(blob.clone()).into_plaintext(&k, BlobKind::ManifestNode),
            Err(BlobError::WrongKind { .. })
        ));
        assert!(matches!(
            checked(blob[..20].to_vec()).into_plaintext(&k, BlobKind::Chunk),
            Err(BlobError::Malformed(_))
        ));
        // A key holder's blob under a nonce its plaintext does not give.
        let sealed = seal_in_place(
            &k,
            BlobKind::Chunk,
            [&[0; 26][..], b"tampered with"].concat(),
            [9; 24],
        )
        .unwrap();
        assert_eq!(
            checked(sealed).into_plaintext(&k, BlobKind::Chunk),
            Err(BlobError::NonceMismatch)
        );
    }

    #[test]
    fn a_chunk_read_in_place_seals_to_the_recorded_blob_only_if_its_nonce_matches() {
        let k = keys();
        for len in [0usize, 1, 4096, 65_537] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let (tag, _, blob) = seal_chunk_tagged(&k, &data).unwrap();
            let nonce: [u8; 24] = tag[..24].try_into().unwrap();
            let mut buf = Vec::with_capacity(BLOB_OVERHEAD + len);
            buf.extend_from_slice(&[0xEE; BLOB_HEADER_LEN]);
            buf.extend_from_slice(&data);
            assert_eq!(
                seal_chunk_in(&k, buf.clone(), &nonce).unwrap(),
                Some(blob.clone())
            );
            // The file changed: one byte differs, so the nonce does, and nothing is sealed.
            if len > 0 {
                let mut changed = buf;
                changed[BLOB_HEADER_LEN + len / 2] ^= 1;
                assert_eq!(seal_chunk_in(&k, changed, &nonce).unwrap(), None);
            }
        }
        assert_eq!(seal_chunk_in(&k, vec![0; 3], &[0; 24]).unwrap(), None);
        let big = vec![0u8; BLOB_HEADER_LEN + MAX_BLOB_PLAINTEXT + 1];
        let n = synthetic_nonce(&k.chunk_nonce, &big[BLOB_HEADER_LEN..]);
        assert_eq!(
            seal_chunk_in(&k, big, &n),
            Err(BlobError::TooLarge(MAX_BLOB_PLAINTEXT + 1))
        );
    }

    #[test]
    fn oversized_plaintext_is_refused() {
        let big = vec![0u8; MAX_BLOB_PLAINTEXT + 1];
        assert_eq!(
            seal(&keys(), BlobKind::Chunk, &big),
            Err(BlobError::TooLarge(MAX_BLOB_PLAINTEXT + 1))
        );
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let k = keys();
            let (id, blob) = seal(&k, BlobKind::Chunk, &data).unwrap();
            prop_assert_eq!(open(&k, BlobKind::Chunk, &id, &blob).unwrap(), data);
        }

        #[test]
        fn opening_random_bytes_fails_cleanly(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = keys();
            prop_assert!(open_unchecked_id(&k, BlobKind::Chunk, &data).is_err());
        }
    }
}
