//! Per-file hash chains: the signed, ordered history of a file's versions.
//!
//! ```text
//! h0 = SHA3-256("harp chain genesis v1" 0x00 ‖ folder id ‖ file id ‖ chain seed)
//! hn = SHA3-256(h(n-1) ‖ entry n)                      (entry n: its 218 canonical bytes)
//! signature n = Ed25519(author, "harp chain entry v1" 0x00 ‖ h(n-1) ‖ entry n bytes 0..154)
//! ```
//!
//! Entry, 218 bytes, big-endian:
//!
//! ```text
//! offset size field
//! 0      1    version = 1
//! 1      16   folder id
//! 17     16   file id
//! 33     8    seq (1 for the first entry, +1 each entry)
//! 41     1    op: 1 create, 2 modify, 3 rename, 4 delete
//! 42     32   content root (all zero for delete)
//! 74     8    size in bytes (0 for delete)
//! 82     32   path commitment (keyed BLAKE3 of the path; the path before deletion for delete)
//! 114    32   author device id (Ed25519 public key)
//! 146    8    timestamp, milliseconds since the Unix epoch (author's clock, informative)
//! 154    64   Ed25519 signature
//! ```
//!
//! The chain seed is a folder secret, so only members can start a chain: a server without
//! the key cannot forge `h0`, and every later link needs a member device's signature over the
//! previous link, so it cannot splice, reorder or replay entries either.
//!
//! Operations follow a small state machine: a file is *absent* before seq 1 and after a
//! delete, *present* otherwise; `create` needs absent, `modify`/`rename`/`delete` need
//! present.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use sha3::{Digest, Sha3_256};
use thiserror::Error;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{ChainHash, ContentRoot, DeviceId, FileId, FolderId, PathCommitment};
use crate::keys::SecretKey;

/// Version byte of chain entries.
pub const ENTRY_VERSION: u8 = 1;
/// Length of an encoded entry.
pub const ENTRY_LEN: usize = 218;
/// Length of the signed part of an entry (everything before the signature).
const SIGNED_LEN: usize = 154;
const GENESIS_DOMAIN: &[u8] = b"harp chain genesis v1\0";
const SIGNATURE_DOMAIN: &[u8] = b"harp chain entry v1\0";

/// What a chain entry did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// The file came into being (first entry, or after a delete).
    Create = 1,
    /// The file's content changed.
    Modify = 2,
    /// The file moved to another path (its content root stays, or changes too).
    Rename = 3,
    /// The file was deleted (the old version stays in the versions store).
    Delete = 4,
}

impl Op {
    fn from_u8(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            1 => Ok(Op::Create),
            2 => Ok(Op::Modify),
            3 => Ok(Op::Rename),
            4 => Ok(Op::Delete),
            tag => Err(DecodeError::UnknownTag {
                what: "chain op",
                tag,
            }),
        }
    }

    /// The lowercase name used in output and vectors.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Modify => "modify",
            Op::Rename => "rename",
            Op::Delete => "delete",
        }
    }
}

/// One entry of a file's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The folder the file is in.
    pub folder: FolderId,
    /// The file.
    pub file: FileId,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// What happened.
    pub op: Op,
    /// The new content (zero for delete).
    pub content_root: ContentRoot,
    /// The new size (0 for delete).
    pub size: u64,
    /// Commitment to the file's path after the operation.
    pub path: PathCommitment,
    /// The device that made the change and signed the entry.
    pub author: DeviceId,
    /// When, by the author's clock, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The author's signature over the previous link and the fields above.
    pub signature: [u8; 64],
}

/// The fields of an entry before it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub op: Op,
    /// The new content (ignored and zeroed for delete).
    pub content_root: ContentRoot,
    /// The new size (ignored and zeroed for delete).
    pub size: u64,
    /// Commitment to the file's path after the operation.
    pub path: PathCommitment,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Why a chain (or one entry) is not valid. Each variant names what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// An entry's bytes are malformed.
    #[error("malformed chain entry: {0}")]
    Decode(#[from] DecodeError),
    /// The chain has no entries.
    #[error("the chain has no entries")]
    Empty,
    /// The genesis hash is not the one the folder's chain seed gives.
    #[error("genesis hash does not match the folder's chain seed")]
    BadGenesis,
    /// An entry belongs to another folder or file.
    #[error("entry {seq} belongs to another folder or file")]
    WrongFile {
        /// The entry's sequence number.
        seq: u64,
    },
    /// Sequence numbers are not consecutive (dropped, reordered or replayed entries).
    #[error("expected entry {expected}, found entry {found}")]
    SeqGap {
        /// The sequence number that should come next.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// The operation is not allowed in the file's state (modify after delete, ...).
    #[error("entry {seq}: {op} is not allowed when the file is {state}")]
    IllegalOp {
        /// The entry's sequence number.
        seq: u64,
        /// Its operation's name.
        op: &'static str,
        /// `absent` or `present`.
        state: &'static str,
    },
    /// A delete entry carries content.
    #[error("entry {seq}: a delete carries a content root or size")]
    DeleteWithContent {
        /// The entry's sequence number.
        seq: u64,
    },
    /// The author's key is not a valid Ed25519 key.
    #[error("entry {seq}: author {author} is not a valid Ed25519 key")]
    BadAuthorKey {
        /// The entry's sequence number.
        seq: u64,
        /// The author named.
        author: DeviceId,
    },
    /// The signature does not verify: the entry was changed, moved, or not signed by its author.
    #[error("entry {seq}: signature by {author} does not verify")]
    BadSignature {
        /// The entry's sequence number.
        seq: u64,
        /// The author named.
        author: DeviceId,
    },
    /// The chain's last link is not the head that was claimed.
    #[error("chain head {computed} is not the claimed head {claimed}")]
    HeadMismatch {
        /// The head that was claimed.
        claimed: ChainHash,
        /// The head the entries give.
        computed: ChainHash,
    },
    /// An author is not among the devices the verifier trusts.
    #[error("entry {seq}: author {author} is not a trusted device")]
    UntrustedAuthor {
        /// The entry's sequence number.
        seq: u64,
        /// The author named.
        author: DeviceId,
    },
}

impl ChainError {
    /// A stable, machine-readable name for the error (used by the golden vectors).
    pub fn code(&self) -> &'static str {
        match self {
            ChainError::Decode(e) => e.code(),
            ChainError::Empty => "empty",
            ChainError::BadGenesis => "bad_genesis",
            ChainError::WrongFile { .. } => "wrong_file",
            ChainError::SeqGap { .. } => "seq_gap",
            ChainError::IllegalOp { .. } => "illegal_op",
            ChainError::DeleteWithContent { .. } => "delete_with_content",
            ChainError::BadAuthorKey { .. } => "bad_author_key",
            ChainError::BadSignature { .. } => "bad_signature",
            ChainError::HeadMismatch { .. } => "head_mismatch",
            ChainError::UntrustedAuthor { .. } => "untrusted_author",
        }
    }
}

/// The genesis link `h0` of a file's chain.
pub fn genesis(folder: &FolderId, file: &FileId, chain_seed: &SecretKey) -> ChainHash {
    let mut h = Sha3_256::new();
    h.update(GENESIS_DOMAIN);
    h.update(folder.as_bytes());
    h.update(file.as_bytes());
    h.update(chain_seed.as_bytes());
    ChainHash::from_bytes(h.finalize().into())
}

/// The link after `prev` for an entry's canonical bytes.
pub fn link(prev: &ChainHash, entry_bytes: &[u8]) -> ChainHash {
    let mut h = Sha3_256::new();
    h.update(prev.as_bytes());
    h.update(entry_bytes);
    ChainHash::from_bytes(h.finalize().into())
}

fn signed_message(prev: &ChainHash, signed: &[u8]) -> Vec<u8> {
    [SIGNATURE_DOMAIN, prev.as_bytes(), signed].concat()
}

impl Entry {
    fn encode_signed_part(&self, w: &mut Writer) {
        w.u8(ENTRY_VERSION)
            .raw(self.folder.as_bytes())
            .raw(self.file.as_bytes())
            .u64(self.seq)
            .u8(self.op as u8)
            .raw(self.content_root.as_bytes())
            .u64(self.size)
            .raw(self.path.as_bytes())
            .raw(self.author.as_bytes())
            .u64(self.timestamp_ms);
    }

    /// The entry's canonical 218 bytes.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut w = Writer::with_capacity(ENTRY_LEN);
        self.encode_signed_part(&mut w);
        w.raw(&self.signature);
        let mut out = [0u8; ENTRY_LEN];
        out.copy_from_slice(w.as_slice());
        out
    }

    /// Decodes one entry from exactly [`ENTRY_LEN`] bytes. Checks the format, not the
    /// signature (that needs the previous link: see [`verify_chain`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let e = Self::read(&mut r)?;
        r.finish("chain entry")?;
        Ok(e)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("chain entry version")?;
        if version != ENTRY_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "chain entry",
                version,
            });
        }
        Ok(Self {
            folder: FolderId::from_bytes(r.array("folder id")?),
            file: FileId::from_bytes(r.array("file id")?),
            seq: r.u64("seq")?,
            op: Op::from_u8(r.u8("op")?)?,
            content_root: ContentRoot::from_bytes(r.array("content root")?),
            size: r.u64("size")?,
            path: PathCommitment::from_bytes(r.array("path commitment")?),
            author: DeviceId::from_bytes(r.array("author")?),
            timestamp_ms: r.u64("timestamp")?,
            signature: r.array("signature")?,
        })
    }

    /// Checks the author's signature of this entry as the successor of `prev`.
    pub fn verify_signature(&self, prev: &ChainHash) -> Result<(), ChainError> {
        let key = self
            .author
            .verifying_key()
            .map_err(|_| ChainError::BadAuthorKey {
                seq: self.seq,
                author: self.author,
            })?;
        let bytes = self.encode();
        let msg = signed_message(prev, &bytes[..SIGNED_LEN]);
        key.verify(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| ChainError::BadSignature {
                seq: self.seq,
                author: self.author,
            })
    }
}

/// A file's chain as its writer keeps it: the entries and the current head.
#[derive(Debug, Clone)]
pub struct Chain {
    folder: FolderId,
    file: FileId,
    genesis: ChainHash,
    entries: Vec<Entry>,
    head: ChainHash,
}

impl Chain {
    /// A new, empty chain for a file.
    pub fn new(folder: FolderId, file: FileId, chain_seed: &SecretKey) -> Self {
        let g = genesis(&folder, &file, chain_seed);
        Self {
            folder,
            file,
            genesis: g,
            entries: Vec::new(),
            head: g,
        }
    }

    /// Rebuilds a chain from stored entries, verifying all of them.
    pub fn from_entries(
        folder: FolderId,
        file: FileId,
        chain_seed: &SecretKey,
        entries: Vec<Entry>,
    ) -> Result<Self, ChainError> {
        let g = genesis(&folder, &file, chain_seed);
        let head = if entries.is_empty() {
            g
        } else {
            verify_chain(&folder, &file, &g, &entries)?.head
        };
        Ok(Self {
            folder,
            file,
            genesis: g,
            entries,
            head,
        })
    }

    /// The genesis link.
    pub fn genesis(&self) -> ChainHash {
        self.genesis
    }

    /// The newest link.
    pub fn head(&self) -> ChainHash {
        self.head
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether the file exists after the last entry.
    pub fn is_present(&self) -> bool {
        self.entries.last().is_some_and(|e| e.op != Op::Delete)
    }

    /// Signs `change` as the next entry and appends it. Refuses an operation the file's state
    /// does not allow, so a writer cannot produce a chain that verifiers would reject.
    pub fn append(&mut self, author: &SigningKey, change: Change) -> Result<&Entry, ChainError> {
        let next = ChainTip {
            folder: self.folder,
            file: self.file,
            seq: self.entries.len() as u64,
            head: self.head,
            present: self.is_present(),
        };
        let (entry, head) = next.sign(author, change)?;
        self.head = head;
        self.entries.push(entry);
        // The vector is non-empty: an entry was pushed on the line above.
        Ok(&self.entries[self.entries.len() - 1])
    }
}

/// The end of a file's chain: all a writer needs to sign the next entry, without the
/// entries themselves (the index stores this per file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// The folder.
    pub folder: FolderId,
    /// The file.
    pub file: FileId,
    /// Entries so far (0 for a new file).
    pub seq: u64,
    /// The last link (`h0` for a new file).
    pub head: ChainHash,
    /// Whether the file exists after the last entry.
    pub present: bool,
}

impl ChainTip {
    /// The tip of a file with no entries yet.
    pub fn genesis(folder: FolderId, file: FileId, chain_seed: &SecretKey) -> Self {
        Self {
            folder,
            file,
            seq: 0,
            head: genesis(&folder, &file, chain_seed),
            present: false,
        }
    }

    /// Signs `change` as the next entry; returns it and the new head.
    pub fn sign(
        &self,
        author: &SigningKey,
        change: Change,
    ) -> Result<(Entry, ChainHash), ChainError> {
        let seq = self.seq + 1;
        check_op(seq, change.op, self.present)?;
        let (content_root, size) = if change.op == Op::Delete {
            (ContentRoot::from_bytes([0; 32]), 0)
        } else {
            (change.content_root, change.size)
        };
        let mut entry = Entry {
            folder: self.folder,
            file: self.file,
            seq,
            op: change.op,
            content_root,
            size,
            path: change.path,
            author: DeviceId::of_signing_key(author),
            timestamp_ms: change.timestamp_ms,
            signature: [0; 64],
        };
        let mut w = Writer::with_capacity(SIGNED_LEN);
        entry.encode_signed_part(&mut w);
        entry.signature = author
            .sign(&signed_message(&self.head, w.as_slice()))
            .to_bytes();
        let head = link(&self.head, &entry.encode());
        Ok((entry, head))
    }

    /// The tip after `entry` (which must have been made by [`ChainTip::sign`] on this tip).
    pub fn after(&self, entry: &Entry, head: ChainHash) -> Self {
        Self {
            seq: entry.seq,
            head,
            present: entry.op != Op::Delete,
            ..*self
        }
    }
}

fn check_op(seq: u64, op: Op, present: bool) -> Result<(), ChainError> {
    let allowed = match op {
        Op::Create => !present,
        Op::Modify | Op::Rename | Op::Delete => present,
    };
    if allowed {
        Ok(())
    } else {
        Err(ChainError::IllegalOp {
            seq,
            op: op.name(),
            state: if present { "present" } else { "absent" },
        })
    }
}

/// What a valid chain establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The last link.
    pub head: ChainHash,
    /// The last entry's sequence number.
    pub seq: u64,
    /// Whether the file exists after the last entry.
    pub present: bool,
}

/// Verifies entries 1..=n of a file's chain from its genesis link `h0`: folder and file,
/// consecutive sequence numbers, legal operations, and every signature over its predecessor.
pub fn verify_chain(
    folder: &FolderId,
    file: &FileId,
    h0: &ChainHash,
    entries: &[Entry],
) -> Result<Verified, ChainError> {
    if entries.is_empty() {
        return Err(ChainError::Empty);
    }
    let mut head = *h0;
    let mut present = false;
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        if &e.folder != folder || &e.file != file {
            return Err(ChainError::WrongFile { seq: e.seq });
        }
        if e.seq != expected {
            return Err(ChainError::SeqGap {
                expected,
                found: e.seq,
            });
        }
        check_op(e.seq, e.op, present)?;
        if e.op == Op::Delete && (e.content_root.as_bytes() != &[0; 32] || e.size != 0) {
            return Err(ChainError::DeleteWithContent { seq: e.seq });
        }
        e.verify_signature(&head)?;
        head = link(&head, &e.encode());
        present = e.op != Op::Delete;
    }
    Ok(Verified {
        head,
        seq: entries.len() as u64,
        present,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Chain, SigningKey, SecretKey) {
        let seed = SecretKey::from_bytes([1; 32]);
        let chain = Chain::new(
            FolderId::from_bytes([2; 16]),
            FileId::from_bytes([3; 16]),
            &seed,
        );
        (chain, SigningKey::from_bytes(&[4; 32]), seed)
    }

    fn change(op: Op, n: u8) -> Change {
        Change {
            op,
            content_root: ContentRoot::from_bytes([n; 32]),
            size: u64::from(n) * 100,
            path: PathCommitment::from_bytes([9; 32]),
            timestamp_ms: 1_763_700_000_000 + u64::from(n),
        }
    }

    fn history() -> (Chain, SecretKey) {
        let (mut c, key, seed) = setup();
        c.append(&key, change(Op::Create, 1)).unwrap();
        c.append(&key, change(Op::Modify, 2)).unwrap();
        c.append(&key, change(Op::Rename, 2)).unwrap();
        c.append(&key, change(Op::Delete, 0)).unwrap();
        c.append(&key, change(Op::Create, 5)).unwrap();
        (c, seed)
    }

    #[test]
    fn an_honest_history_verifies_and_rebuilds() {
        let (c, seed) = history();
        let v = verify_chain(&c.folder, &c.file, &c.genesis(), c.entries()).unwrap();
        assert_eq!(v.head, c.head());
        assert_eq!(v.seq, 5);
        assert!(v.present);
        let again = Chain::from_entries(c.folder, c.file, &seed, c.entries().to_vec()).unwrap();
        assert_eq!(again.head(), c.head());
        for e in c.entries() {
            assert_eq!(Entry::decode(&e.encode()).unwrap(), *e);
        }
    }

    #[test]
    fn writers_cannot_append_illegal_operations() {
        let (mut c, key, _) = setup();
        assert_eq!(
            c.append(&key, change(Op::Modify, 1)).unwrap_err().code(),
            "illegal_op"
        );
        c.append(&key, change(Op::Create, 1)).unwrap();
        assert_eq!(
            c.append(&key, change(Op::Create, 1)).unwrap_err().code(),
            "illegal_op"
        );
    }

    #[test]
    fn every_kind_of_tampering_gets_its_own_error() {
        let (c, _) = history();
        let (f, fi, g) = (c.folder, c.file, c.genesis());
        let verify = |entries: &[Entry]| verify_chain(&f, &fi, &g, entries).unwrap_err();
        let good = c.entries().to_vec();

        let mut rewritten = good.clone();
        rewritten[1].size += 1;
        assert_eq!(
            verify(&rewritten),
            ChainError::BadSignature {
                seq: 2,
                author: good[1].author
            }
        );

        let mut dropped = good.clone();
        dropped.remove(2);
        assert_eq!(
            verify(&dropped),
            ChainError::SeqGap {
                expected: 3,
                found: 4
            }
        );

        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered).code(), "seq_gap");

        // Renumbering a moved entry does not help: its signature binds its predecessor.
        let mut spliced = good[..1].to_vec();
        let mut moved = good[2].clone();
        moved.seq = 2;
        spliced.push(moved);
        assert_eq!(verify(&spliced).code(), "bad_signature");

        let mut forged = good.clone();
        let mallory = SigningKey::from_bytes(&[66; 32]);
        forged[0].author = DeviceId::of_signing_key(&mallory);
        assert_eq!(verify(&forged).code(), "bad_signature");

        let other_seed = SecretKey::from_bytes([7; 32]);
        assert_ne!(genesis(&f, &fi, &other_seed), g);
        assert_eq!(
            verify_chain(&f, &fi, &genesis(&f, &fi, &other_seed), &good)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        assert_eq!(
            verify_chain(&f, &FileId::from_bytes([0; 16]), &g, &good)
                .unwrap_err()
                .code(),
            "wrong_file"
        );
        assert_eq!(verify(&[]), ChainError::Empty);
    }

    #[test]
    fn decoding_checks_version_op_and_length() {
        let (c, _) = history();
        let bytes = c.entries()[0].encode();
        assert_eq!(
            Entry::decode(&bytes[..100]).unwrap_err().code(),
            "truncated"
        );
        let mut bad = bytes;
        bad[0] = 2;
        assert_eq!(Entry::decode(&bad).unwrap_err().code(), "unknown_version");
        let mut bad = bytes;
        bad[41] = 9;
        assert_eq!(Entry::decode(&bad).unwrap_err().code(), "unknown_tag");
        let long = [&bytes[..], &[0]].concat();
        assert_eq!(Entry::decode(&long).unwrap_err().code(), "trailing_bytes");
    }

    proptest::proptest! {
        #[test]
        fn decoding_random_entries_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Entry::decode(&data);
        }
    }
}
