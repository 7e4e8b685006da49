//! Version proofs, format v1: a self-contained file that shows a file version is the result
//! of a legitimate, signed sequence of operations, checkable offline.
//!
//! ```text
//! magic     8   "HARPPRF" 0x01 (the last byte is the format version)
//! folder    16
//! file      16
//! genesis   32  h0 of the file's chain
//! count     u32 number of entries (1 ..= MAX_PROOF_ENTRIES); the proven version is the last
//! entries   count × 218  the chain from seq 1 (see `chain`)
//! sections  u8  number of sections (≤ MAX_SECTIONS), then each: tag u8 | len u32 | bytes
//! ```
//!
//! Sections carry what later formats add without changing the core: a transparency-log
//! inclusion proof (tag 1), the log checkpoint it leads to (tag 2) and witness cosignatures
//! (tag 3). A v1 verifier fails closed on a section it cannot check rather than skipping it:
//! a proof never claims more than its verifier checked.
//!
//! What verification establishes: every entry is signed by its author over its predecessor,
//! the sequence is consecutive from 1 and every operation was legal. With the folder's chain
//! seed (members have it) it also checks the genesis link, which no server can forge; with a
//! list of trusted devices it also checks every author is one of them.

use thiserror::Error;

use crate::chain::{self, ChainError, ENTRY_LEN, Entry, Op};
use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{ChainHash, ContentRoot, DeviceId, FileId, FolderId};
use crate::keys::SecretKey;

/// The magic bytes of proof format v1.
pub const MAGIC_V1: [u8; 8] = *b"HARPPRF\x01";
/// The most entries a proof may carry.
pub const MAX_PROOF_ENTRIES: usize = 1_000_000;
/// The most sections a proof may carry.
pub const MAX_SECTIONS: usize = 16;
/// The largest section.
pub const MAX_SECTION_LEN: usize = 64 * 1024;

/// Section tags reserved for the transparency log and witnesses.
pub mod section {
    /// An inclusion proof of the chain head in the folder's transparency log.
    pub const LOG_INCLUSION: u8 = 1;
    /// The signed checkpoint the inclusion proof leads to.
    pub const CHECKPOINT: u8 = 2;
    /// A witness cosignature of the checkpoint.
    pub const COSIGNATURE: u8 = 3;
}

/// A parsed proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The folder.
    pub folder: FolderId,
    /// The file.
    pub file: FileId,
    /// The chain's genesis link.
    pub genesis: ChainHash,
    /// The chain from seq 1 to the proven version.
    pub entries: Vec<Entry>,
    /// Extension sections as `(tag, bytes)`.
    pub sections: Vec<(u8, Vec<u8>)>,
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The bytes are not a Harp proof.
    #[error("not a Harp proof (bad magic)")]
    BadMagic,
    /// The proof is malformed.
    #[error("malformed proof: {0}")]
    Decode(#[from] DecodeError),
    /// The chain in the proof is not valid.
    #[error("{0}")]
    Chain(#[from] ChainError),
    /// The proof carries a section this verifier cannot check.
    #[error("proof carries section {0}, which this verifier cannot check")]
    UnsupportedSection(u8),
    /// The version asked for is not in the chain.
    #[error("version {asked} does not exist (the chain has {len} entries)")]
    NoSuchVersion {
        /// The version asked for.
        asked: u64,
        /// How many entries the chain has.
        len: u64,
    },
}

impl ProofError {
    /// A stable, machine-readable name for the error (used by the golden vectors).
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::BadMagic => "bad_magic",
            ProofError::Decode(e) => e.code(),
            ProofError::Chain(e) => e.code(),
            ProofError::UnsupportedSection(_) => "unsupported_section",
            ProofError::NoSuchVersion { .. } => "no_such_version",
        }
    }
}

/// What the verifier knows besides the proof.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    /// The folder's chain seed: when given, the genesis link is checked.
    pub chain_seed: Option<&'a SecretKey>,
    /// The devices allowed to author entries: when given, every author must be one.
    pub trusted_devices: Option<&'a [DeviceId]>,
}

/// What a valid proof establishes about the proven version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The folder.
    pub folder: FolderId,
    /// The file.
    pub file: FileId,
    /// The proven version's sequence number.
    pub seq: u64,
    /// Its operation.
    pub op: Op,
    /// Its content root.
    pub content_root: ContentRoot,
    /// Its size.
    pub size: u64,
    /// Its author.
    pub author: DeviceId,
    /// Its timestamp (author's clock).
    pub timestamp_ms: u64,
    /// The chain head after it.
    pub head: ChainHash,
    /// Whether the genesis link was checked against the chain seed.
    pub genesis_checked: bool,
    /// Whether every author was checked against trusted devices.
    pub authors_checked: bool,
}

impl Proof {
    /// A proof of version `seq` (1-based) of `chain`.
    pub fn make(chain: &chain::Chain, seq: u64) -> Result<Self, ProofError> {
        let entries = chain.entries();
        let len = entries.len() as u64;
        if seq == 0 || seq > len {
            return Err(ProofError::NoSuchVersion { asked: seq, len });
        }
        let first = &entries[0];
        Ok(Self {
            folder: first.folder,
            file: first.file,
            genesis: chain.genesis(),
            entries: entries[..seq as usize].to_vec(),
            sections: Vec::new(),
        })
    }

    /// The proof's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(8 + 16 + 16 + 32 + 4 + self.entries.len() * ENTRY_LEN + 1);
        w.raw(&MAGIC_V1)
            .raw(self.folder.as_bytes())
            .raw(self.file.as_bytes())
            .raw(self.genesis.as_bytes())
            .u32(self.entries.len() as u32);
        for e in &self.entries {
            w.raw(&e.encode());
        }
        w.u8(self.sections.len() as u8);
        for (tag, bytes) in &self.sections {
            w.u8(*tag).bytes_u32(bytes);
        }
        w.into_vec()
    }

    /// Parses a proof. Checks the format only; [`Proof::verify`] checks what it claims.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut r = Reader::new(bytes);
        let magic: [u8; 8] = r.array("proof magic")?;
        if magic[..7] != MAGIC_V1[..7] {
            return Err(ProofError::BadMagic);
        }
        if magic[7] != MAGIC_V1[7] {
            return Err(DecodeError::UnknownVersion {
                what: "proof",
                version: magic[7],
            }
            .into());
        }
        let folder = FolderId::from_bytes(r.array("folder id")?);
        let file = FileId::from_bytes(r.array("file id")?);
        let genesis = ChainHash::from_bytes(r.array("genesis")?);
        let n = r.count_u32(MAX_PROOF_ENTRIES, ENTRY_LEN, "proof entries")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(Entry::read(&mut r)?);
        }
        let s = r.count_u8(MAX_SECTIONS, 5, "proof sections")?;
        let mut sections = Vec::with_capacity(s);
        for _ in 0..s {
            let tag = r.u8("section tag")?;
            let body = r.bytes_u32(MAX_SECTION_LEN, "section")?;
            sections.push((tag, body.to_vec()));
        }
        r.finish("proof")?;
        Ok(Self {
            folder,
            file,
            genesis,
            entries,
            sections,
        })
    }

    /// Checks everything the proof claims under `policy`.
    pub fn verify(&self, policy: &Policy<'_>) -> Result<Summary, ProofError> {
        if let Some((tag, _)) = self.sections.first() {
            return Err(ProofError::UnsupportedSection(*tag));
        }
        if let Some(seed) = policy.chain_seed
            && chain::genesis(&self.folder, &self.file, seed) != self.genesis
        {
            return Err(ChainError::BadGenesis.into());
        }
        let verified = chain::verify_chain(&self.folder, &self.file, &self.genesis, &self.entries)?;
        if let Some(trusted) = policy.trusted_devices
            && let Some(e) = self.entries.iter().find(|e| !trusted.contains(&e.author))
        {
            return Err(ChainError::UntrustedAuthor {
                seq: e.seq,
                author: e.author,
            }
            .into());
        }
        let last = self.entries.last().ok_or(ChainError::Empty)?;
        Ok(Summary {
            folder: self.folder,
            file: self.file,
            seq: verified.seq,
            op: last.op,
            content_root: last.content_root,
            size: last.size,
            author: last.author,
            timestamp_ms: last.timestamp_ms,
            head: verified.head,
            genesis_checked: policy.chain_seed.is_some(),
            authors_checked: policy.trusted_devices.is_some(),
        })
    }
}

/// Parses and verifies proof bytes in one step.
pub fn verify(bytes: &[u8], policy: &Policy<'_>) -> Result<Summary, ProofError> {
    Proof::decode(bytes)?.verify(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Chain, Change};
    use crate::ids::PathCommitment;
    use ed25519_dalek::SigningKey;

    fn chain_of(n: u8) -> (Chain, SecretKey, SigningKey) {
        let seed = SecretKey::from_bytes([11; 32]);
        let key = SigningKey::from_bytes(&[12; 32]);
        let mut c = Chain::new(
            FolderId::from_bytes([1; 16]),
            FileId::from_bytes([2; 16]),
            &seed,
        );
        for i in 0..n {
            let op = if i == 0 { Op::Create } else { Op::Modify };
            c.append(
                &key,
                Change {
                    op,
                    content_root: ContentRoot::from_bytes([i; 32]),
                    size: u64::from(i),
                    path: PathCommitment::from_bytes([0; 32]),
                    timestamp_ms: 1000 + u64::from(i),
                },
            )
            .unwrap();
        }
        (c, seed, key)
    }

    #[test]
    fn a_ten_version_proof_round_trips_and_verifies_under_a_full_policy() {
        let (c, seed, key) = chain_of(10);
        let proof = Proof::make(&c, 10).unwrap();
        let bytes = proof.encode();
        assert_eq!(bytes.len(), 8 + 16 + 16 + 32 + 4 + 10 * ENTRY_LEN + 1);
        let trusted = [DeviceId::of_signing_key(&key)];
        let s = verify(
            &bytes,
            &Policy {
                chain_seed: Some(&seed),
                trusted_devices: Some(&trusted),
            },
        )
        .unwrap();
        assert_eq!((s.seq, s.op, s.head), (10, Op::Modify, c.head()));
        assert!(s.genesis_checked && s.authors_checked);
        // An older version proves too, and reports that version.
        let s3 = Proof::make(&c, 3)
            .unwrap()
            .verify(&Policy::default())
            .unwrap();
        assert_eq!(s3.seq, 3);
        assert!(!s3.genesis_checked);
        assert_eq!(Proof::make(&c, 11).unwrap_err().code(), "no_such_version");
    }

    #[test]
    fn policy_violations_are_named() {
        let (c, _, _) = chain_of(3);
        let proof = Proof::make(&c, 3).unwrap();
        let wrong_seed = SecretKey::from_bytes([0; 32]);
        let p = Policy {
            chain_seed: Some(&wrong_seed),
            trusted_devices: None,
        };
        assert_eq!(proof.verify(&p).unwrap_err().code(), "bad_genesis");
        let stranger = [DeviceId::from_bytes([1; 32])];
        let p = Policy {
            chain_seed: None,
            trusted_devices: Some(&stranger),
        };
        assert_eq!(proof.verify(&p).unwrap_err().code(), "untrusted_author");
        let mut with_section = proof.clone();
        with_section
            .sections
            .push((section::COSIGNATURE, vec![1, 2, 3]));
        let back = Proof::decode(&with_section.encode()).unwrap();
        assert_eq!(back, with_section);
        assert_eq!(
            back.verify(&Policy::default()).unwrap_err().code(),
            "unsupported_section"
        );
    }

    #[test]
    fn malformed_proofs_fail_cleanly() {
        let (c, _, _) = chain_of(2);
        let bytes = Proof::make(&c, 2).unwrap().encode();
        assert_eq!(
            verify(b"nope", &Policy::default()).unwrap_err().code(),
            "truncated"
        );
        assert_eq!(
            verify(b"NOTAPROOF", &Policy::default()).unwrap_err().code(),
            "bad_magic"
        );
        for cut in [8, 50, 72, 76, 100, bytes.len() - 1] {
            assert_eq!(
                verify(&bytes[..cut], &Policy::default())
                    .unwrap_err()
                    .code(),
                "truncated",
                "cut at {cut}"
            );
        }
        let mut huge = bytes.clone();
        huge[72..76].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            verify(&huge, &Policy::default()).unwrap_err().code(),
            "too_large"
        );
        let mut v2 = bytes.clone();
        v2[7] = 2;
        assert_eq!(
            verify(&v2, &Policy::default()).unwrap_err().code(),
            "unknown_version"
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_random_and_mutated_proofs_never_panics(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..800),
            pos in 0usize..1000,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let _ = verify(&data, &Policy::default());
            let (c, _, _) = chain_of(2);
            let mut bytes = Proof::make(&c, 2).unwrap().encode();
            let i = pos % bytes.len();
            let changed = bytes[i] != byte;
            bytes[i] = byte;
            // Any single-byte change must be caught (or, if the byte is equal, still verify).
            proptest::prop_assert_eq!(verify(&bytes, &Policy::default()).is_err(), changed);
        }
    }
}
