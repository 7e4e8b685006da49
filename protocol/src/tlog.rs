//! Transparency logs: RFC 6962 / 9162 Merkle trees, inclusion and consistency proofs, and the
//! C2SP formats around them (signed notes, checkpoints, cosignatures).
//!
//! A folder's log holds one leaf per chain link (`file id ‖ seq ‖ head`, see [`chain_leaf`]),
//! in the order the bridge accepted them. A checkpoint (`origin`, size, root) signed by the
//! bridge commits to every link so far; an inclusion proof shows a link is in it in O(log n)
//! hashes, a consistency proof that a later checkpoint extends an earlier one (so a bridge
//! that rewrites or drops history is caught), and witnesses cosign checkpoints only when they
//! are consistent with the last one they cosigned (so a bridge cannot show two histories).
//!
//! Hashing is SHA-256 as in RFC 6962 and C2SP, so standard witnesses and tools can follow
//! Harp logs. Everything here is pure: [`Tree`] keeps the hashes of complete subtrees, so a
//! root or a proof for any past size costs O(log n) (inclusion: O(log² n)) node lookups.

use data_encoding::BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::ids::{ChainHash, FileId};

/// A node or leaf hash.
pub type Hash = [u8; 32];

/// Why a proof, checkpoint, note or cosignature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogError {
    /// An index or size outside the tree.
    #[error("leaf {index} is not in a tree of {size}")]
    OutOfRange {
        /// The leaf index asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A proof has the wrong number of hashes for its sizes.
    #[error("a proof of {got} hashes, {want} expected")]
    ProofLength {
        /// Hashes given.
        got: usize,
        /// Hashes the sizes call for.
        want: usize,
    },
    /// The proof does not lead to the root.
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    NotIncluded,
    /// The later tree does not extend the earlier one.
    #[error("the log is not append-only: size {old} is not a prefix of size {new}")]
    Inconsistent {
        /// The earlier size.
        old: u64,
        /// The later size.
        new: u64,
    },
    /// A checkpoint or note that does not parse.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was read.
        what: &'static str,
        /// Why it is refused.
        why: &'static str,
    },
    /// No signature line by the expected key, or one that does not verify.
    #[error("no valid signature by {0}")]
    BadSignature(String),
}

impl LogError {
    /// A stable code for scripts and other implementations.
    pub fn code(&self) -> &'static str {
        match self {
            LogError::OutOfRange { .. } => "out_of_range",
            LogError::ProofLength { .. } => "proof_length",
            LogError::NotIncluded => "not_included",
            LogError::Inconsistent { .. } => "inconsistent",
            LogError::Malformed { .. } => "malformed",
            LogError::BadSignature(_) => "bad_log_signature",
        }
    }
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0], data])
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1], left, right])
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// The leaf a chain link is logged as: `file id (16) ‖ seq (u64 BE) ‖ head (32)`.
pub fn chain_leaf(file: &FileId, seq: u64, head: &ChainHash) -> Hash {
    let mut data = Vec::with_capacity(56);
    data.extend_from_slice(file.as_bytes());
    data.extend_from_slice(&seq.to_be_bytes());
    data.extend_from_slice(head.as_bytes());
    leaf_hash(&data)
}

/// The largest power of two below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    if k == n { k / 2 } else { k }
}

/// A Merkle tree that grows by appending leaf hashes, keeping every complete subtree's hash.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[k][i]`: the hash of leaves `i·2^k .. (i+1)·2^k`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() as u64 - 1;
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let n = self.levels[k].len();
            let parent = node_hash(&self.levels[k][n - 2], &self.levels[k][n - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(parent);
            k += 1;
        }
        index
    }

    /// MTH of leaves `start .. end` (a range the RFC's recursion produces).
    fn mth(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(start / n) as usize];
        }
        let k = split(n);
        node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        if size > self.size() {
            return Err(LogError::OutOfRange {
                index: size,
                size: self.size(),
            });
        }
        Ok(self.mth(0, size))
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962 PATH).
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        if index >= size || size > self.size() {
            return Err(LogError::OutOfRange { index, size });
        }
        let mut proof = Vec::new();
        let (mut start, mut end, mut m) = (0, size, index);
        let mut stack = Vec::new();
        while end - start > 1 {
            let k = split(end - start);
            if m < k {
                stack.push(self.mth(start + k, end));
                end = start + k;
            } else {
                stack.push(self.mth(start, start + k));
                start += k;
                m -= k;
            }
        }
        while let Some(h) = stack.pop() {
            proof.push(h);
        }
        Ok(proof)
    }

    /// The consistency proof from the tree of `old` leaves to that of `new` (RFC 6962 PROOF).
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        if old > new || new > self.size() {
            return Err(LogError::OutOfRange {
                index: old,
                size: new,
            });
        }
        if old == 0 || old == new {
            return Ok(Vec::new());
        }
        let mut proof = Vec::new();
        self.subproof(old, 0, new, true, &mut proof);
        Ok(proof)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(self.mth(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, complete, out);
            out.push(self.mth(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.mth(start, start + k));
        }
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    if index >= size {
        return Err(LogError::OutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(LogError::ProofLength {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(LogError::ProofLength {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if r == *root {
        Ok(())
    } else {
        Err(LogError::NotIncluded)
    }
}

/// Checks a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), LogError> {
    let inconsistent = LogError::Inconsistent { old, new };
    if old > new {
        return Err(inconsistent);
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(inconsistent)
        };
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(inconsistent)
        };
    }
    if proof.is_empty() {
        return Err(LogError::ProofLength { got: 0, want: 1 });
    }
    let mut path = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(inconsistent);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(inconsistent)
    }
}

/// A checkpoint (C2SP tlog-checkpoint): the log's origin, its size and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, e.g. `harp/<folder id>`.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: three newline-terminated lines.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(&self.root)
        )
    }

    /// Parses a note body (extension lines are refused: Harp checkpoints have none).
    pub fn parse(body: &str) -> Result<Self, LogError> {
        let bad = |why| LogError::Malformed {
            what: "checkpoint",
            why,
        };
        let rest = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("no final newline"))?;
        let lines: Vec<&str> = rest.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad("not three lines"));
        };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(bad("bad origin"));
        }
        if size.is_empty()
            || (size.len() > 1 && size.starts_with('0'))
            || !size.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("bad size"));
        }
        let size = size.parse().map_err(|_| bad("bad size"))?;
        let root = BASE64
            .decode(root.as_bytes())
            .ok()
            .and_then(|b| <Hash>::try_from(b).ok())
            .ok_or_else(|| bad("bad root hash"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

const SIG_ED25519: u8 = 0x01;
const SIG_COSIGNATURE: u8 = 0x04;

fn key_id(name: &str, kind: u8, key: &VerifyingKey) -> [u8; 4] {
    let h = sha256(&[name.as_bytes(), b"\n", &[kind], key.as_bytes()]);
    [h[0], h[1], h[2], h[3]]
}

fn check_name(name: &str) -> Result<(), LogError> {
    if name.is_empty() || name.contains(['+', ' ']) || name.chars().any(char::is_control) {
        return Err(LogError::Malformed {
            what: "key name",
            why: "empty, or holds '+', a space or a control character",
        });
    }
    Ok(())
}

/// A signature line of a signed note (C2SP signed-note), `— name base64(key id ‖ payload)`.
fn line(name: &str, id: [u8; 4], payload: &[u8]) -> String {
    let mut bytes = id.to_vec();
    bytes.extend_from_slice(payload);
    format!("\u{2014} {name} {}\n", BASE64.encode(&bytes))
}

/// Signs a note body (C2SP signed-note, Ed25519): the body, a blank line, the signature line.
pub fn sign_note(body: &str, name: &str, key: &SigningKey) -> Result<String, LogError> {
    check_name(name)?;
    if !body.ends_with('\n') {
        return Err(LogError::Malformed {
            what: "note",
            why: "the body must end with a newline",
        });
    }
    let sig = key.sign(body.as_bytes());
    let id = key_id(name, SIG_ED25519, &key.verifying_key());
    Ok(format!("{body}\n{}", line(name, id, &sig.to_bytes())))
}

/// A signed note split into its body and signature lines (name, key id, payload).
pub struct Note {
    /// The text that was signed.
    pub body: String,
    /// Signature lines: name, key id, the bytes after the key id.
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

impl Note {
    /// Splits a note; a line that does not parse as a signature is refused.
    pub fn parse(text: &str) -> Result<Self, LogError> {
        let bad = |why| LogError::Malformed {
            what: "signed note",
            why,
        };
        if text.len() > 1 << 20 {
            return Err(bad("over 1 MiB"));
        }
        let at = text
            .find("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let (body, sigs) = (&text[..=at], &text[at + 2..]);
        let mut signatures = Vec::new();
        for l in sigs.split_terminator('\n') {
            let rest = l
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line without its dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line without a name"))?;
            let bytes = BASE64
                .decode(b64.as_bytes())
                .map_err(|_| bad("a signature that is not base64"))?;
            if bytes.len() < 5 {
                return Err(bad("a signature too short"));
            }
            let id = [bytes[0], bytes[1], bytes[2], bytes[3]];
            signatures.push((name.to_owned(), id, bytes[4..].to_vec()));
        }
        if !text.ends_with('\n') || signatures.is_empty() {
            return Err(bad("no signature lines"));
        }
        Ok(Self {
            body: body.to_owned(),
            signatures,
        })
    }

    /// The body, if the key `name`/`key` signed it (C2SP signed-note Ed25519).
    pub fn verified_by(&self, name: &str, key: &VerifyingKey) -> Result<&str, LogError> {
        let id = key_id(name, SIG_ED25519, key);
        let ok = self.signatures.iter().any(|(n, i, payload)| {
            n == name
                && *i == id
                && <[u8; 64]>::try_from(payload.as_slice()).is_ok_and(|s| {
                    key.verify_strict(self.body.as_bytes(), &Signature::from_bytes(&s))
                        .is_ok()
                })
        });
        if ok {
            Ok(&self.body)
        } else {
            Err(LogError::BadSignature(name.to_owned()))
        }
    }

    /// The timestamps of valid cosignatures by `name`/`key` (C2SP tlog-cosignature v1).
    pub fn cosigned_by(&self, name: &str, key: &VerifyingKey) -> Result<u64, LogError> {
        let id = key_id(name, SIG_COSIGNATURE, key);
        self.signatures
            .iter()
            .filter(|(n, i, p)| n == name && *i == id && p.len() == 72)
            .find_map(|(_, _, p)| {
                let t = u64::from_be_bytes(p[..8].try_into().ok()?);
                let sig = Signature::from_bytes(&p[8..].try_into().ok()?);
                key.verify_strict(&cosigned_message(&self.body, t), &sig)
                    .ok()
                    .map(|()| t)
            })
            .ok_or_else(|| LogError::BadSignature(name.to_owned()))
    }
}

fn cosigned_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A witness's cosignature line for a checkpoint body, at `timestamp` (seconds since the
/// epoch): append it to the signed note's signature lines.
pub fn cosign(
    body: &str,
    name: &str,
    key: &SigningKey,
    timestamp: u64,
) -> Result<String, LogError> {
    check_name(name)?;
    if timestamp > i64::MAX as u64 {
        return Err(LogError::Malformed {
            what: "cosignature",
            why: "timestamp over 2^63 - 1",
        });
    }
    let sig = key.sign(&cosigned_message(body, timestamp));
    let mut payload = timestamp.to_be_bytes().to_vec();
    payload.extend_from_slice(&sig.to_bytes());
    Ok(line(
        name,
        key_id(name, SIG_COSIGNATURE, &key.verifying_key()),
        &payload,
    ))
}

/// A log's verifier key string (C2SP signed-note): `name+hex(key id)+base64(0x01 ‖ key)`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    VerifierKey::log(name, key).to_string()
}

/// The signature type of a C2SP verifier key: an Ed25519 note signature (logs).
pub const KEY_ED25519: u8 = SIG_ED25519;
/// The signature type of a C2SP verifier key: an Ed25519 checkpoint cosignature (witnesses).
pub const KEY_COSIGNATURE: u8 = SIG_COSIGNATURE;

/// A C2SP signed-note verifier key, `name+hex(key id)+base64(type ‖ Ed25519 key)`, of type
/// [`KEY_ED25519`] (a log) or [`KEY_COSIGNATURE`] (a witness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// The key's name (a log's or witness's name, as on its signature lines).
    pub name: String,
    /// [`KEY_ED25519`] or [`KEY_COSIGNATURE`].
    pub kind: u8,
    /// The public key.
    pub key: VerifyingKey,
}

impl VerifierKey {
    /// A log's key (note signatures).
    pub fn log(name: &str, key: &VerifyingKey) -> Self {
        Self {
            name: name.to_owned(),
            kind: KEY_ED25519,
            key: *key,
        }
    }

    /// A witness's key (cosignatures).
    pub fn witness(name: &str, key: &VerifyingKey) -> Self {
        Self {
            name: name.to_owned(),
            kind: KEY_COSIGNATURE,
            key: *key,
        }
    }

    /// The 4-byte key id its signature lines start with.
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.kind, &self.key)
    }

    /// Parses a verifier key; the key id must match the rest.
    pub fn parse(s: &str) -> Result<Self, LogError> {
        let bad = |why| LogError::Malformed {
            what: "verifier key",
            why,
        };
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not name+id+key"));
        };
        check_name(name)?;
        let bytes = BASE64
            .decode(key.as_bytes())
            .map_err(|_| bad("the key is not base64"))?;
        let (&kind, key) = bytes.split_first().ok_or_else(|| bad("no key"))?;
        if kind != KEY_ED25519 && kind != KEY_COSIGNATURE {
            return Err(bad("not an Ed25519 (0x01) or cosignature (0x04) key"));
        }
        let key = <[u8; 32]>::try_from(key)
            .ok()
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| bad("not an Ed25519 public key"))?;
        let parsed = Self {
            name: name.to_owned(),
            kind,
            key,
        };
        if data_encoding::HEXLOWER.encode(&parsed.id()) != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(parsed)
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = vec![self.kind];
        bytes.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            data_encoding::HEXLOWER.encode(&self.id()),
            BASE64.encode(&bytes)
        )
    }
}

/// The header line of a C2SP tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A C2SP tlog-proof: the index of a leaf, its inclusion proof, and the signed checkpoint
/// (with any cosignatures) the proof leads to. The leaf itself is not in it: the reader
/// computes it from what is being proven (for Harp, [`chain_leaf`] of a chain link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProof {
    /// The leaf's index in the log.
    pub index: u64,
    /// The inclusion proof, leaf to root.
    pub hashes: Vec<Hash>,
    /// The signed note of the checkpoint, signature and cosignature lines included.
    pub checkpoint: String,
}

impl LogProof {
    /// The text form: header, `index N`, one base64 hash per line, a blank line, the note.
    pub fn encode(&self) -> String {
        let mut s = format!("{TLOG_PROOF_HEADER}\nindex {}\n", self.index);
        for h in &self.hashes {
            s.push_str(&BASE64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses the text form (an `extra` line is refused: Harp's leaves carry no extra data).
    pub fn parse(text: &str) -> Result<Self, LogError> {
        let bad = |why| LogError::Malformed {
            what: "tlog-proof",
            why,
        };
        let rest = text
            .strip_prefix(TLOG_PROOF_HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or_else(|| bad("no c2sp.org/tlog-proof@v1 header"))?;
        let (index_line, mut rest) = rest.split_once('\n').ok_or_else(|| bad("no index"))?;
        let index = index_line
            .strip_prefix("index ")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| n.len() == 1 || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the second line is not `index N`"))?;
        let mut hashes = Vec::new();
        loop {
            let (l, r) = rest
                .split_once('\n')
                .ok_or_else(|| bad("no blank line before the checkpoint"))?;
            rest = r;
            if l.is_empty() {
                break;
            }
            if hashes.len() == 64 {
                return Err(bad("over 64 proof hashes"));
            }
            let h = BASE64
                .decode(l.as_bytes())
                .ok()
                .and_then(|b| <Hash>::try_from(b).ok())
                .ok_or_else(|| bad("a proof line that is not a base64 hash"))?;
            hashes.push(h);
        }
        Note::parse(rest)?;
        Ok(Self {
            index,
            hashes,
            checkpoint: rest.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Hash {
        data_encoding::HEXLOWER
            .decode(s.as_bytes())
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// The reference leaves and roots of RFC 6962's test data (certificate-transparency).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference() -> Tree {
        let mut t = Tree::new();
        for l in LEAVES {
            t.push(leaf_hash(
                &data_encoding::HEXLOWER.decode(l.as_bytes()).unwrap(),
            ));
        }
        t
    }

    #[test]
    fn roots_match_rfc_6962_for_every_size() {
        let t = reference();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(t.root(size as u64).unwrap(), hex(want), "size {size}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference_and_verify() {
        let t = reference();
        let proof = t.inclusion(5, 8).unwrap();
        let want = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(proof, want.map(hex).to_vec());
        let want0 = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(t.inclusion(0, 8).unwrap(), want0.map(hex).to_vec());
    }

    fn grown(n: u64) -> Tree {
        let mut t = Tree::new();
        for i in 0..n {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        t
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_tampering_fails() {
        let t = grown(40);
        for size in 1..=40u64 {
            let root = t.root(size).unwrap();
            for index in 0..size {
                let leaf = leaf_hash(&index.to_be_bytes());
                let proof = t.inclusion(index, size).unwrap();
                verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
                assert!(verify_inclusion(&leaf_hash(b"x"), index, size, &proof, &root).is_err());
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                    assert!(verify_inclusion(&leaf, index, size, &proof[1..], &root).is_err());
                }
            }
            for old in 0..=size {
                let proof = t.consistency(old, size).unwrap();
                let old_root = t.root(old).unwrap();
                verify_consistency(old, size, &proof, &old_root, &root)
                    .unwrap_or_else(|e| panic!("{old} -> {size}: {e}"));
                if old > 0 && old < size {
                    assert!(
                        verify_consistency(old, size, &proof, &leaf_hash(b"forged"), &root)
                            .is_err()
                    );
                    assert!(
                        verify_consistency(old, size, &proof, &old_root, &leaf_hash(b"forged"))
                            .is_err()
                    );
                }
            }
        }
        // A rewritten history is not consistent with what was seen before.
        let mut other = grown(20);
        for i in 20..40u64 {
            other.push(leaf_hash(&(i + 1000).to_be_bytes()));
        }
        let mut rewritten = grown(19);
        rewritten.push(leaf_hash(b"rewritten"));
        let proof = t.consistency(20, 40).unwrap();
        assert!(
            verify_consistency(
                20,
                40,
                &proof,
                &rewritten.root(20).unwrap(),
                &t.root(40).unwrap()
            )
            .is_err()
        );
        assert!(
            verify_consistency(
                20,
                40,
                &proof,
                &t.root(20).unwrap(),
                &other.root(40).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn proofs_stay_logarithmic_in_a_million_leaves() {
        let t = grown(1 << 20);
        let proof = t.inclusion(123_456, 1 << 20).unwrap();
        assert_eq!(proof.len(), 20);
        let c = t.consistency(1_000_000, 1 << 20).unwrap();
        assert!(c.len() <= 40, "{}", c.len());
    }

    #[test]
    fn checkpoints_notes_and_cosignatures_round_trip_and_refuse_forgeries() {
        let log = SigningKey::from_bytes(&[1; 32]);
        let witness = SigningKey::from_bytes(&[2; 32]);
        let cp = Checkpoint {
            origin: "harp/0123456789abcdef0123456789abcdef".into(),
            size: 8,
            root: hex(ROOTS[8]),
        };
        let body = cp.body();
        assert_eq!(Checkpoint::parse(&body).unwrap(), cp);
        let mut note = sign_note(&body, "bridge.example", &log).unwrap();
        note.push_str(&cosign(&body, "witness.example/w1", &witness, 1_763_700_000).unwrap());
        let parsed = Note::parse(&note).unwrap();
        assert_eq!(
            parsed
                .verified_by("bridge.example", &log.verifying_key())
                .unwrap(),
            body
        );
        assert_eq!(
            parsed
                .cosigned_by("witness.example/w1", &witness.verifying_key())
                .unwrap(),
            1_763_700_000
        );
        // Another key, another name, an edited body, a cosignature where a signature belongs.
        assert!(
            parsed
                .verified_by("bridge.example", &witness.verifying_key())
                .is_err()
        );
        assert!(
            parsed
                .verified_by("other.example", &log.verifying_key())
                .is_err()
        );
        assert!(
            parsed
                .cosigned_by("witness.example/w1", &log.verifying_key())
                .is_err()
        );
        assert!(
            parsed
                .verified_by("witness.example/w1", &witness.verifying_key())
                .is_err()
        );
        let edited = note.replacen("\n8\n", "\n9\n", 1);
        let p2 = Note::parse(&edited).unwrap();
        assert!(
            p2.verified_by("bridge.example", &log.verifying_key())
                .is_err()
        );
        assert!(
            p2.cosigned_by("witness.example/w1", &witness.verifying_key())
                .is_err()
        );
        // Malformed bodies and notes.
        for bad in [
            "x\n8\n",
            "x\n08\n",
            "x\n8\nAAAA\n",
            "\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "x\n8\nroot\nextra\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Note::parse(&body).is_err(), "a body without signatures");
        assert!(Note::parse("a\n\n- x AAAA\n").is_err());
        assert!(
            verifier_key("bridge.example", &log.verifying_key()).starts_with("bridge.example+")
        );
    }

    #[test]
    fn verifier_keys_round_trip_and_refuse_a_wrong_id() {
        let k = SigningKey::from_bytes(&[3; 32]).verifying_key();
        for v in [
            VerifierKey::log("l.example", &k),
            VerifierKey::witness("w.example", &k),
        ] {
            let text = v.to_string();
            assert_eq!(VerifierKey::parse(&text).unwrap(), v);
            let mut wrong = text.clone().into_bytes();
            wrong[v.name.len() + 1] ^= 1;
            let e = VerifierKey::parse(std::str::from_utf8(&wrong).unwrap()).unwrap_err();
            assert_eq!(e.code(), "malformed");
        }
        assert_ne!(
            VerifierKey::log("a", &k).to_string(),
            VerifierKey::witness("a", &k).to_string()
        );
        assert_eq!(verifier_key("a", &k), VerifierKey::log("a", &k).to_string());
    }

    #[test]
    fn tlog_proofs_round_trip_and_refuse_bad_text() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let note = sign_note("o\n1\nAAAA\n", "o", &k).unwrap();
        let p = LogProof {
            index: 7,
            hashes: vec![[1; 32], [2; 32]],
            checkpoint: note,
        };
        assert_eq!(LogProof::parse(&p.encode()).unwrap(), p);
        let text = p.encode();
        for bad in [
            text.replacen("tlog-proof@v1", "tlog-proof@v2", 1),
            text.replacen("index 7", "index 07", 1),
            text.replacen("index 7\n", "index 7\n!!!\n", 1),
            text.replacen("\n\no\n", "\no\n", 1),
        ] {
            assert_eq!(
                LogProof::parse(&bad).unwrap_err().code(),
                "malformed",
                "{bad}"
            );
        }
    }
}
