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
//! Sections carry what the core does not: tag 1 is the proven link's place in the folder's
//! transparency log, a C2SP tlog-proof (text: index, inclusion hashes, and the checkpoint the
//! bridge signed with any witness cosignatures, see [`crate::tlog::LogProof`]). Tags 2 and 3
//! stay reserved. A verifier fails closed on a section it cannot check rather than skipping
//! it (an older one refuses tag 1): a proof never claims more than its verifier checked.
//!
//! What verification establishes: every entry is signed by its author over its predecessor,
//! the sequence is consecutive from 1 and every operation was legal. With the folder's chain
//! seed (members have it) it also checks the genesis link, which no server can forge; with a
//! list of trusted devices it also checks every author is one of them. With a log section it
//! checks the proven link (`file ‖ seq ‖ head`) is a leaf of the checkpoint's tree; with the
//! log's key, that the bridge signed that checkpoint; with witnesses and a quorum, that at
//! least that many of them cosigned it (each cosignature says the witness saw no other
//! history of this log up to that size).

use thiserror::Error;

use crate::chain::{self, ChainError, ENTRY_LEN, Entry, Op};
use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{ChainHash, ContentRoot, DeviceId, FileId, FolderId};
use crate::keys::SecretKey;
use crate::tlog::{self, Checkpoint, LogError, LogProof, Note, VerifierKey};

/// The magic bytes of proof format v1.
pub const MAGIC_V1: [u8; 8] = *b"HARPPRF\x01";
/// The most entries a proof may carry.
pub const MAX_PROOF_ENTRIES: usize = 1_000_000;
/// The most sections a proof may carry.
pub const MAX_SECTIONS: usize = 16;
/// The largest section.
pub const MAX_SECTION_LEN: usize = 64 * 1024;

/// Section tags.
pub mod section {
    /// The proven link's inclusion in the folder's transparency log, with the checkpoint and
    /// its cosignatures: a C2SP tlog-proof (UTF-8 text).
    pub const LOG_PROOF: u8 = 1;
    /// Reserved (a checkpoint apart from its inclusion proof).
    pub const CHECKPOINT: u8 = 2;
    /// Reserved (a cosignature apart from its checkpoint).
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
    /// The log section is malformed, or its inclusion proof or signature does not hold.
    #[error("transparency log: {0}")]
    Log(#[from] LogError),
    /// Two log sections.
    #[error("the proof carries section {0} twice")]
    DuplicateSection(u8),
    /// The policy asks for a log checkpoint (a log key or witnesses) and the proof has none.
    #[error(
        "the policy asks for a logged, checkpointed version and the proof carries no log section"
    )]
    NoLogProof,
    /// The checkpoint is of another folder's log.
    #[error("the checkpoint is of log {0}, not this folder's")]
    WrongLog(String),
    /// A cosignature by a witness of the policy that does not verify.
    #[error("the cosignature of witness {0} does not verify")]
    BadCosignature(String),
    /// Fewer than the quorum of the policy's witnesses cosigned, and lines by witnesses the
    /// policy does not name are there instead.
    #[error(
        "cosigned by {name}, a witness the policy does not name; {got} of the {need} cosignatures it asks for"
    )]
    UnknownWitness {
        /// The name on an unknown cosignature line.
        name: String,
        /// Valid cosignatures by the policy's witnesses.
        got: usize,
        /// The quorum.
        need: usize,
    },
    /// Fewer than the quorum of the policy's witnesses cosigned.
    #[error("{got} of the {need} witness cosignatures the policy asks for")]
    TooFewCosignatures {
        /// Valid cosignatures by the policy's witnesses.
        got: usize,
        /// The quorum.
        need: usize,
    },
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
            ProofError::Log(e) => e.code(),
            ProofError::DuplicateSection(_) => "duplicate_section",
            ProofError::NoLogProof => "no_log_proof",
            ProofError::WrongLog(_) => "wrong_log",
            ProofError::BadCosignature(_) => "bad_cosignature",
            ProofError::UnknownWitness { .. } => "unknown_witness",
            ProofError::TooFewCosignatures { .. } => "too_few_cosignatures",
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
    /// The key of the folder log's checkpoints: when given, the proof must carry a log section
    /// whose checkpoint it signed.
    pub log_key: Option<&'a VerifierKey>,
    /// The witnesses whose cosignatures count.
    pub witnesses: &'a [VerifierKey],
    /// How many of them must have cosigned the checkpoint (0: none needed).
    pub quorum: usize,
}

/// What the log section established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// The proven link's leaf index.
    pub index: u64,
    /// The checkpoint's tree size.
    pub size: u64,
    /// Whether the checkpoint's signature was checked against the policy's log key.
    pub signer_checked: bool,
    /// The policy's witnesses that cosigned, with their timestamps (seconds since the epoch).
    pub cosigned_by: Vec<(String, u64)>,
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
    /// What the log section established, if the proof has one.
    pub log: Option<LogSummary>,
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
        let mut log_section = None;
        for (tag, bytes) in &self.sections {
            match *tag {
                section::LOG_PROOF if log_section.is_some() => {
                    return Err(ProofError::DuplicateSection(*tag));
                }
                section::LOG_PROOF => log_section = Some(bytes),
                other => return Err(ProofError::UnsupportedSection(other)),
            }
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
        let log = match log_section {
            Some(bytes) => Some(self.verify_log(bytes, verified.seq, &verified.head, policy)?),
            None if policy.log_key.is_some() || policy.quorum > 0 => {
                return Err(ProofError::NoLogProof);
            }
            None => None,
        };
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
            log,
        })
    }

    /// Adds the log section: the link after version `seq` of the proven chain is leaf
    /// `index` of `checkpoint`, whose note `note` the bridge signed (with cosignatures).
    pub fn with_log_proof(mut self, proof: &LogProof) -> Self {
        self.sections.retain(|(t, _)| *t != section::LOG_PROOF);
        self.sections
            .push((section::LOG_PROOF, proof.encode().into_bytes()));
        self
    }

    /// The log section, if the proof has one that parses.
    pub fn log_proof(&self) -> Option<Result<LogProof, ProofError>> {
        let (_, bytes) = self
            .sections
            .iter()
            .find(|(t, _)| *t == section::LOG_PROOF)?;
        Some(
            std::str::from_utf8(bytes)
                .map_err(|_| {
                    ProofError::Log(LogError::Malformed {
                        what: "tlog-proof",
                        why: "not UTF-8",
                    })
                })
                .and_then(|text| Ok(LogProof::parse(text)?)),
        )
    }

    fn verify_log(
        &self,
        bytes: &[u8],
        seq: u64,
        head: &ChainHash,
        policy: &Policy<'_>,
    ) -> Result<LogSummary, ProofError> {
        let text = std::str::from_utf8(bytes).map_err(|_| LogError::Malformed {
            what: "tlog-proof",
            why: "not UTF-8",
        })?;
        let proof = LogProof::parse(text)?;
        let note = Note::parse(&proof.checkpoint)?;
        let checkpoint = Checkpoint::parse(&note.body)?;
        if checkpoint.origin != format!("harp/{}", self.folder) {
            return Err(ProofError::WrongLog(checkpoint.origin));
        }
        let leaf = tlog::chain_leaf(&self.file, seq, head);
        tlog::verify_inclusion(
            &leaf,
            proof.index,
            checkpoint.size,
            &proof.hashes,
            &checkpoint.root,
        )?;
        if let Some(key) = policy.log_key {
            note.verified_by(&key.name, &key.key)?;
        }
        let mut cosigned_by = Vec::new();
        for w in policy.witnesses {
            let lines = note
                .signatures
                .iter()
                .filter(|(n, id, _)| *n == w.name && *id == w.id())
                .count();
            if lines == 0 {
                continue;
            }
            let t = note
                .cosigned_by(&w.name, &w.key)
                .map_err(|_| ProofError::BadCosignature(w.name.clone()))?;
            cosigned_by.push((w.name.clone(), t));
        }
        if cosigned_by.len() < policy.quorum {
            let known = |n: &str, id: &[u8; 4]| {
                policy
                    .witnesses
                    .iter()
                    .any(|w| w.name == n && w.id() == *id)
                    || policy.log_key.is_some_and(|k| k.name == n && k.id() == *id)
            };
            let (got, need) = (cosigned_by.len(), policy.quorum);
            // A line of cosignature shape (timestamp ‖ signature) by a key nobody named.
            return Err(
                match note
                    .signatures
                    .iter()
                    .find(|(n, id, p)| p.len() == 72 && !known(n, id))
                {
                    Some((name, _, _)) => ProofError::UnknownWitness {
                        name: name.clone(),
                        got,
                        need,
                    },
                    None => ProofError::TooFewCosignatures { got, need },
                },
            );
        }
        Ok(LogSummary {
            index: proof.index,
            size: checkpoint.size,
            signer_checked: policy.log_key.is_some(),
            cosigned_by,
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
                ..Policy::default()
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
            ..Policy::default()
        };
        assert_eq!(proof.verify(&p).unwrap_err().code(), "bad_genesis");
        let stranger = [DeviceId::from_bytes([1; 32])];
        let p = Policy {
            trusted_devices: Some(&stranger),
            ..Policy::default()
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

    /// A 10-version chain logged among other files' links, a checkpoint signed by the log
    /// and cosigned by `cosigners` of three witnesses, and the proof of the last version.
    struct Logged {
        proof: Proof,
        log: VerifierKey,
        witnesses: Vec<VerifierKey>,
    }

    fn logged(cosigners: &[u8], stranger: bool) -> Logged {
        let (c, _, _) = chain_of(10);
        let log_key = SigningKey::from_bytes(&[40; 32]);
        let mut tree = tlog::Tree::new();
        let mut index = 0;
        let mut head = c.genesis();
        for (i, e) in c.entries().iter().enumerate() {
            // Other files' links between this file's.
            tree.push(tlog::chain_leaf(
                &FileId::from_bytes([9; 16]),
                i as u64 + 1,
                &head,
            ));
            head = chain::link(&head, &e.encode());
            index = tree.push(tlog::chain_leaf(&e.file, e.seq, &head));
        }
        tree.push(tlog::chain_leaf(&FileId::from_bytes([8; 16]), 1, &head));
        let size = tree.size();
        let body = Checkpoint {
            origin: format!("harp/{}", FolderId::from_bytes([1; 16])),
            size,
            root: tree.root(size).unwrap(),
        }
        .body();
        let mut note = tlog::sign_note(&body, "bridge.example", &log_key).unwrap();
        let witness_keys: Vec<SigningKey> = (0..3)
            .map(|i| SigningKey::from_bytes(&[50 + i; 32]))
            .collect();
        for &i in cosigners {
            let name = format!("w{i}.example");
            note.push_str(
                &tlog::cosign(
                    &body,
                    &name,
                    &witness_keys[i as usize],
                    1_700_000_000 + u64::from(i),
                )
                .unwrap(),
            );
        }
        if stranger {
            let k = SigningKey::from_bytes(&[99; 32]);
            note.push_str(&tlog::cosign(&body, "stranger.example", &k, 1_700_000_000).unwrap());
        }
        let proof = Proof::make(&c, 10).unwrap().with_log_proof(&LogProof {
            index,
            hashes: tree.inclusion(index, size).unwrap(),
            checkpoint: note,
        });
        Logged {
            proof,
            log: VerifierKey::log("bridge.example", &log_key.verifying_key()),
            witnesses: witness_keys
                .iter()
                .enumerate()
                .map(|(i, k)| VerifierKey::witness(&format!("w{i}.example"), &k.verifying_key()))
                .collect(),
        }
    }

    #[test]
    fn a_logged_cosigned_proof_verifies_under_its_policy_and_round_trips() {
        let l = logged(&[0, 1, 2], false);
        let back = Proof::decode(&l.proof.encode()).unwrap();
        assert_eq!(back, l.proof);
        let p = Policy {
            log_key: Some(&l.log),
            witnesses: &l.witnesses,
            quorum: 3,
            ..Policy::default()
        };
        let s = back.verify(&p).unwrap();
        let log = s.log.unwrap();
        assert_eq!((log.index, log.size), (19, 21));
        assert!(log.signer_checked);
        assert_eq!(log.cosigned_by.len(), 3);
        assert_eq!(log.cosigned_by[2], ("w2.example".into(), 1_700_000_002));
        // Without a policy the inclusion is still checked, and the summary says the signer
        // was not.
        let s = back.verify(&Policy::default()).unwrap();
        assert!(!s.log.unwrap().signer_checked);
        // The tlog-proof text is the C2SP shape.
        let text = String::from_utf8(back.sections[0].1.clone()).unwrap();
        assert!(
            text.starts_with("c2sp.org/tlog-proof@v1\nindex 19\n"),
            "{text}"
        );
    }

    #[test]
    fn each_log_and_witness_failure_has_its_own_error() {
        let full = logged(&[0, 1, 2], false);
        let policy = |quorum| Policy {
            log_key: Some(&full.log),
            witnesses: &full.witnesses,
            quorum,
            ..Policy::default()
        };
        let code = |l: &Logged, quorum| l.proof.verify(&policy(quorum)).unwrap_err().code();
        assert_eq!(code(&logged(&[0, 1], false), 3), "too_few_cosignatures");
        assert_eq!(code(&logged(&[0], true), 2), "unknown_witness");
        // A stranger's line next to a met quorum is ignored (C2SP signed-note).
        assert!(logged(&[0, 1], true).proof.verify(&policy(2)).is_ok());

        let with = |f: &dyn Fn(&mut LogProof)| {
            let mut lp = full.proof.log_proof().unwrap().unwrap();
            f(&mut lp);
            Logged {
                proof: full.proof.clone().with_log_proof(&lp),
                log: full.log.clone(),
                witnesses: full.witnesses.clone(),
            }
        };
        let tampered_hash = with(&|lp| lp.hashes[1][0] ^= 1);
        assert_eq!(code(&tampered_hash, 0), "not_included");
        let other_index = with(&|lp| lp.index -= 2);
        assert_eq!(code(&other_index, 0), "not_included");
        let short = with(&|lp| {
            lp.hashes.pop();
        });
        assert_eq!(code(&short, 0), "proof_length");
        // A cosignature line of a named witness, one byte of its signature flipped.
        let bad_cosig = with(&|lp| {
            let mut lines: Vec<String> = lp.checkpoint.lines().map(str::to_owned).collect();
            let last = lines.len() - 1;
            let (head, b64) = lines[last].rsplit_once(' ').unwrap();
            let mut bytes = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
            bytes[20] ^= 1;
            lines[last] = format!("{head} {}", data_encoding::BASE64.encode(&bytes));
            lp.checkpoint = lines.join("\n") + "\n";
        });
        assert_eq!(code(&bad_cosig, 2), "bad_cosignature");
        // Another log's key: the bridge's signature is not the one the policy names.
        let other = VerifierKey::log(
            "bridge.example",
            &SigningKey::from_bytes(&[41; 32]).verifying_key(),
        );
        let p = Policy {
            log_key: Some(&other),
            ..Policy::default()
        };
        assert_eq!(
            full.proof.verify(&p).unwrap_err().code(),
            "bad_log_signature"
        );
        // A policy that asks for the log, and a proof without it.
        let bare = Proof {
            sections: Vec::new(),
            ..full.proof.clone()
        };
        assert_eq!(bare.verify(&policy(0)).unwrap_err().code(), "no_log_proof");
        let mut twice = full.proof.clone();
        twice.sections.push(twice.sections[0].clone());
        assert_eq!(
            twice.verify(&Policy::default()).unwrap_err().code(),
            "duplicate_section"
        );
        let mut garbage = full.proof.clone();
        garbage.sections[0].1 = b"c2sp.org/tlog-proof@v1\nindex x\n".to_vec();
        assert_eq!(
            garbage.verify(&Policy::default()).unwrap_err().code(),
            "malformed"
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
