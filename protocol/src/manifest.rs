//! Manifests: which chunks, in which order, make a file version, and the version's metadata.
//!
//! A file version is described by two things:
//!
//! - its **manifest tree**: the ordered chunk references (`ChunkId`, plaintext length) split
//!   into nodes at *content-defined* boundaries, then the nodes' references split the same way
//!   one level up, until one root node is left. A node ends after an entry whose id has its
//!   low six bits zero (and that holds at least two entries), or at [`MAX_NODE_ENTRIES`]. So
//!   nodes average 64 entries, and an edit anywhere changes one node per level: a 1-byte insert
//!   into a 1 GiB file (16,384 chunks of 64 KiB) changes about two chunks, one ~2.3 KiB leaf,
//!   one inner node and the root, instead of a 590 KiB flat list. Every node is an encrypted
//!   blob ([`crate::blob`], kind `ManifestNode`); the root's id is the version's
//!   [`ContentRoot`], which is all the bridge and the hash chain see.
//! - its **manifest record**: kind, size, mode, mtime and content root, encrypted as a small
//!   blob (kind `ManifestRecord`) that travels in the folder's metadata document.
//!
//! Node plaintext (big-endian):
//!
//! ```text
//! version u8 = 1 | level u8 (0 = leaf) | count u32 |
//!   leaf entries:  chunk id [32] | length u32   (1 ..= MAX_BLOB_PLAINTEXT)
//!   inner entries: node id  [32] | bytes  u64   (file bytes under the child, ≥ 1)
//! ```

use std::collections::HashMap;

use thiserror::Error;

use crate::blob::{self, BlobError, BlobKind, MAX_BLOB_PLAINTEXT};
use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{ChunkId, ContentRoot};
use crate::keys::FolderKeys;

/// Version byte of manifest nodes and records.
pub const MANIFEST_VERSION: u8 = 1;
/// The most entries one node may hold.
pub const MAX_NODE_ENTRIES: usize = 1024;
/// The deepest a tree may be (levels above the leaves). With 64 entries a node on average,
/// 12 levels would address far more chunks than any disk holds.
pub const MAX_TREE_LEVEL: u8 = 12;
/// A node boundary follows an entry whose id has these bits all zero (1 in 64).
const BOUNDARY_MASK: u8 = 0x3f;

/// One chunk of a file version, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    /// The chunk's blob id.
    pub id: ChunkId,
    /// The chunk's plaintext length (1 ..= [`MAX_BLOB_PLAINTEXT`]).
    pub len: u32,
}

/// A reference from an inner node to a child node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// The child's blob id.
    pub id: ChunkId,
    /// How many file bytes the child covers.
    pub bytes: u64,
}

/// One node of a manifest tree, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Level 0: chunk references.
    Leaf(Vec<ChunkRef>),
    /// Level 1 and up: references to nodes one level down.
    Inner {
        /// The node's level (≥ 1).
        level: u8,
        /// Its children, in file order.
        children: Vec<NodeRef>,
    },
}

/// Why a manifest could not be built, decoded or walked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A blob of the tree failed its checks.
    #[error("manifest blob {id}: {source}")]
    Blob {
        /// The blob's id.
        id: ChunkId,
        /// What was wrong with it.
        source: BlobError,
    },
    /// A node's plaintext is malformed.
    #[error("malformed manifest: {0}")]
    Decode(#[from] DecodeError),
    /// A node is at another level than its parent implies, or the tree is too deep.
    #[error("manifest node {id} is at level {found}, expected {expected}")]
    WrongLevel {
        /// The node's id.
        id: ChunkId,
        /// The level its parent implies.
        expected: u8,
        /// The level it claims.
        found: u8,
    },
    /// A child covers another number of bytes than its parent says.
    #[error("manifest node {id} covers {found} bytes, its parent says {expected}")]
    SizeMismatch {
        /// The node's id.
        id: ChunkId,
        /// What the parent says.
        expected: u64,
        /// What the node adds up to.
        found: u64,
    },
    /// A node the walk needs is not available.
    #[error("manifest node {0} is missing")]
    Missing(ChunkId),
    /// A chunk reference is out of range (zero or oversized length).
    #[error("invalid chunk length {0}")]
    BadChunkLength(u32),
    /// The tree would exceed [`MAX_TREE_LEVEL`].
    #[error("manifest tree too deep")]
    TooDeep,
}

impl ManifestError {
    /// A stable, machine-readable name for the error (used by the golden vectors).
    pub fn code(&self) -> &'static str {
        match self {
            ManifestError::Blob { source, .. } => source.code(),
            ManifestError::Decode(e) => e.code(),
            ManifestError::WrongLevel { .. } => "wrong_level",
            ManifestError::SizeMismatch { .. } => "size_mismatch",
            ManifestError::Missing(_) => "missing",
            ManifestError::BadChunkLength(_) => "bad_chunk_length",
            ManifestError::TooDeep => "too_deep",
        }
    }
}

fn is_boundary(id: &ChunkId) -> bool {
    id.as_bytes()[31] & BOUNDARY_MASK == 0
}

/// Splits `entries` into runs at content-defined boundaries (see the module docs).
fn split<T>(entries: &[T], id_of: impl Fn(&T) -> &ChunkId) -> Vec<&[T]> {
    let mut runs = Vec::with_capacity(entries.len() / 32 + 1);
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = i + 1 - start;
        if (len >= 2 && is_boundary(id_of(e))) || len == MAX_NODE_ENTRIES {
            runs.push(&entries[start..=i]);
            start = i + 1;
        }
    }
    if start < entries.len() || entries.is_empty() {
        runs.push(&entries[start..]);
    }
    runs
}

impl Node {
    /// The node's level: 0 for leaves.
    pub fn level(&self) -> u8 {
        match self {
            Node::Leaf(_) => 0,
            Node::Inner { level, .. } => *level,
        }
    }

    /// File bytes under this node.
    pub fn bytes(&self) -> u64 {
        match self {
            Node::Leaf(chunks) => chunks.iter().map(|c| u64::from(c.len)).sum(),
            Node::Inner { children, .. } => children.iter().map(|c| c.bytes).sum(),
        }
    }

    /// The node's canonical plaintext.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(6 + 40 * MAX_NODE_ENTRIES.min(64));
        w.u8(MANIFEST_VERSION).u8(self.level());
        match self {
            Node::Leaf(chunks) => {
                w.u32(chunks.len() as u32);
                for c in chunks {
                    w.raw(c.id.as_bytes()).u32(c.len);
                }
            }
            Node::Inner { children, .. } => {
                w.u32(children.len() as u32);
                for c in children {
                    w.raw(c.id.as_bytes()).u64(c.bytes);
                }
            }
        }
        w.into_vec()
    }

    /// Decodes a node's plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("manifest node version")?;
        if version != MANIFEST_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "manifest node",
                version,
            });
        }
        let level = r.u8("manifest node level")?;
        if level > MAX_TREE_LEVEL {
            return Err(DecodeError::Invalid {
                what: "manifest node level",
                reason: "deeper than the maximum",
            });
        }
        let node = if level == 0 {
            let n = r.count_u32(MAX_NODE_ENTRIES, 36, "manifest leaf entries")?;
            let mut chunks = Vec::with_capacity(n);
            for _ in 0..n {
                let id = ChunkId::from_bytes(r.array("chunk id")?);
                let len = r.u32("chunk length")?;
                if len == 0 || len as usize > MAX_BLOB_PLAINTEXT {
                    return Err(DecodeError::Invalid {
                        what: "chunk length",
                        reason: "zero or above the maximum blob size",
                    });
                }
                chunks.push(ChunkRef { id, len });
            }
            Node::Leaf(chunks)
        } else {
            let n = r.count_u32(MAX_NODE_ENTRIES, 40, "manifest node entries")?;
            if n == 0 {
                return Err(DecodeError::Invalid {
                    what: "manifest inner node",
                    reason: "no children",
                });
            }
            let mut children = Vec::with_capacity(n);
            for _ in 0..n {
                let id = ChunkId::from_bytes(r.array("node id")?);
                let bytes = r.u64("node bytes")?;
                if bytes == 0 {
                    return Err(DecodeError::Invalid {
                        what: "node bytes",
                        reason: "an inner entry covers no bytes",
                    });
                }
                children.push(NodeRef { id, bytes });
            }
            Node::Inner { level, children }
        };
        r.finish("manifest node")?;
        Ok(node)
    }

    /// Decrypts and decodes the node blob `id`.
    pub fn open(keys: &FolderKeys, id: &ChunkId, blob: &[u8]) -> Result<Self, ManifestError> {
        let plain = blob::open(keys, BlobKind::ManifestNode, id, blob)
            .map_err(|source| ManifestError::Blob { id: *id, source })?;
        Ok(Self::decode(&plain)?)
    }

    fn seal(&self, keys: &FolderKeys) -> Result<(ChunkId, Vec<u8>), ManifestError> {
        let plain = self.encode();
        let (id, blob) = blob::seal(keys, BlobKind::ManifestNode, &plain).map_err(|source| {
            ManifestError::Blob {
                id: ChunkId::from_bytes([0; 32]),
                source,
            }
        })?;
        Ok((id, blob))
    }
}

/// A built manifest tree: its root and every node blob, children before parents.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The root node's id.
    pub root: ContentRoot,
    /// File bytes the tree covers.
    pub size: u64,
    /// Every node as `(id, blob)`; the root is last.
    pub nodes: Vec<(ChunkId, Vec<u8>)>,
}

impl Tree {
    /// Builds the tree over `chunks`, in file order. An empty file has one empty leaf.
    pub fn build(keys: &FolderKeys, chunks: &[ChunkRef]) -> Result<Self, ManifestError> {
        if let Some(bad) = chunks
            .iter()
            .find(|c| c.len == 0 || c.len as usize > MAX_BLOB_PLAINTEXT)
        {
            return Err(ManifestError::BadChunkLength(bad.len));
        }
        let mut nodes = Vec::new();
        let mut level_refs = Vec::new();
        for run in split(chunks, |c| &c.id) {
            let node = Node::Leaf(run.to_vec());
            let bytes = node.bytes();
            let (id, blob) = node.seal(keys)?;
            level_refs.push(NodeRef { id, bytes });
            nodes.push((id, blob));
        }
        let mut level = 0u8;
        while level_refs.len() > 1 {
            level = level.checked_add(1).ok_or(ManifestError::TooDeep)?;
            if level > MAX_TREE_LEVEL {
                return Err(ManifestError::TooDeep);
            }
            let mut next = Vec::with_capacity(level_refs.len() / 32 + 1);
            for run in split(&level_refs, |r| &r.id) {
                let node = Node::Inner {
                    level,
                    children: run.to_vec(),
                };
                let bytes = node.bytes();
                let (id, blob) = node.seal(keys)?;
                next.push(NodeRef { id, bytes });
                nodes.push((id, blob));
            }
            level_refs = next;
        }
        let root = level_refs
            .first()
            .copied()
            .ok_or(ManifestError::Missing(ChunkId::from_bytes([0; 32])))?;
        Ok(Self {
            root: root.id.into(),
            size: root.bytes,
            nodes,
        })
    }

    /// The node blobs as a map, for looking nodes up by id.
    pub fn node_map(&self) -> HashMap<ChunkId, Vec<u8>> {
        self.nodes.iter().cloned().collect()
    }
}

/// Reads the chunk list of the tree under `root`, fetching node blobs through `fetch` (which
/// returns `None` for a blob it does not have). Every node is checked against its id,
/// decrypted, and checked for level and size consistency.
pub fn walk(
    keys: &FolderKeys,
    root: &ContentRoot,
    mut fetch: impl FnMut(&ChunkId) -> Option<Vec<u8>>,
) -> Result<Vec<ChunkRef>, ManifestError> {
    let root_id: ChunkId = (*root).into();
    let blob = fetch(&root_id).ok_or(ManifestError::Missing(root_id))?;
    let node = Node::open(keys, &root_id, &blob)?;
    let mut out = Vec::new();
    // Depth-first with an explicit stack, children in order: (node, expected level, id).
    let mut stack = vec![(node, None::<(u8, u64)>, root_id)];
    while let Some((node, expect, id)) = stack.pop() {
        if let Some((level, bytes)) = expect {
            if node.level() != level {
                return Err(ManifestError::WrongLevel {
                    id,
                    expected: level,
                    found: node.level(),
                });
            }
            if node.bytes() != bytes {
                return Err(ManifestError::SizeMismatch {
                    id,
                    expected: bytes,
                    found: node.bytes(),
                });
            }
        }
        match node {
            Node::Leaf(chunks) => out.extend(chunks),
            Node::Inner { level, children } => {
                for child in children.iter().rev() {
                    let blob = fetch(&child.id).ok_or(ManifestError::Missing(child.id))?;
                    let node = Node::open(keys, &child.id, &blob)?;
                    stack.push((node, Some((level - 1, child.bytes)), child.id));
                }
            }
        }
    }
    Ok(out)
}

/// What a file version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryKind {
    /// A regular file: its content is the tree's chunks.
    File = 1,
    /// A symbolic link: its content is the target path's bytes.
    Symlink = 2,
    /// A directory: no content (the tree of an empty file).
    Directory = 3,
}

/// A file version's metadata: what the metadata document carries (encrypted) per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// File, symlink or directory.
    pub kind: EntryKind,
    /// Content length in bytes.
    pub size: u64,
    /// Unix permission bits (the low 12 bits of `st_mode`).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The root of the content's manifest tree.
    pub root: ContentRoot,
}

/// Length of an encoded [`Manifest`].
pub const MANIFEST_RECORD_LEN: usize = 1 + 1 + 8 + 4 + 8 + 32;

impl Manifest {
    /// The record's canonical bytes.
    ///
    /// ```text
    /// version u8 = 1 | kind u8 | size u64 | mode u32 | mtime_ns i64 | root [32]
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MANIFEST_RECORD_LEN);
        w.u8(MANIFEST_VERSION)
            .u8(self.kind as u8)
            .u64(self.size)
            .u32(self.mode)
            .i64(self.mtime_ns)
            .raw(self.root.as_bytes());
        w.into_vec()
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("manifest version")?;
        if version != MANIFEST_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "manifest",
                version,
            });
        }
        let kind = match r.u8("manifest kind")? {
            1 => EntryKind::File,
            2 => EntryKind::Symlink,
            3 => EntryKind::Directory,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "manifest kind",
                    tag,
                });
            }
        };
        let size = r.u64("manifest size")?;
        let mode = r.u32("manifest mode")?;
        if mode > 0o7777 {
            return Err(DecodeError::Invalid {
                what: "manifest mode",
                reason: "bits beyond the permission bits",
            });
        }
        let mtime_ns = r.i64("manifest mtime")?;
        let root = ContentRoot::from_bytes(r.array("manifest root")?);
        r.finish("manifest")?;
        Ok(Self {
            kind,
            size,
            mode,
            mtime_ns,
            root,
        })
    }

    /// Encrypts the record as a `ManifestRecord` blob.
    pub fn seal(&self, keys: &FolderKeys) -> (ChunkId, Vec<u8>) {
        // A record is 58 bytes, far below the blob maximum, so sealing cannot fail.
        match blob::seal(keys, BlobKind::ManifestRecord, &self.encode()) {
            Ok(sealed) => sealed,
            Err(_) => unreachable!("a 58-byte record is within the blob size limit"),
        }
    }

    /// Decrypts and decodes a record blob.
    pub fn open(keys: &FolderKeys, blob: &[u8]) -> Result<Self, ManifestError> {
        let plain =
            blob::open_unchecked_id(keys, BlobKind::ManifestRecord, blob).map_err(|source| {
                ManifestError::Blob {
                    id: ChunkId::of_ciphertext(blob),
                    source,
                }
            })?;
        Ok(Self::decode(&plain)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::FolderKey;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn keys() -> FolderKeys {
        FolderKey::from_bytes([5; 32]).schedule()
    }

    /// Chunk refs with pseudo-random ids, as a 64 KiB-average chunker would give.
    fn refs(seed: u64, n: usize) -> Vec<ChunkRef> {
        (0..n)
            .map(|i| {
                let h = blake3::hash(&[seed.to_be_bytes(), (i as u64).to_be_bytes()].concat());
                ChunkRef {
                    id: ChunkId::from_bytes(*h.as_bytes()),
                    len: 65536,
                }
            })
            .collect()
    }

    fn walk_tree(k: &FolderKeys, tree: &Tree) -> Result<Vec<ChunkRef>, ManifestError> {
        let map = tree.node_map();
        walk(k, &tree.root, |id| map.get(id).cloned())
    }

    #[test]
    fn empty_and_single_chunk_files_round_trip() {
        let k = keys();
        let empty = Tree::build(&k, &[]).unwrap();
        assert_eq!(empty.nodes.len(), 1);
        assert_eq!(empty.size, 0);
        assert!(walk_tree(&k, &empty).unwrap().is_empty());
        let one = refs(1, 1);
        let tree = Tree::build(&k, &one).unwrap();
        assert_eq!(walk_tree(&k, &tree).unwrap(), one);
        assert_ne!(tree.root, empty.root);
    }

    #[test]
    fn one_byte_insert_in_a_gib_file_moves_under_256_kib() {
        let k = keys();
        let old = refs(7, 16_384); // 1 GiB in 64 KiB chunks
        let old_tree = Tree::build(&k, &old).unwrap();
        assert!(old_tree.nodes.len() > 200, "a real tree, not a flat list");
        assert_eq!(old_tree.size, 1 << 30);
        // A 1-byte insert in the middle: the chunker replaces the chunk there with two.
        let mut new = old.clone();
        let fresh = refs(8, 2);
        new.splice(
            8192..8193,
            [
                ChunkRef {
                    len: 30_000,
                    ..fresh[0]
                },
                ChunkRef {
                    len: 35_537,
                    ..fresh[1]
                },
            ],
        );
        let new_tree = Tree::build(&k, &new).unwrap();
        assert_eq!(walk_tree(&k, &new_tree).unwrap(), new);
        let have: HashSet<ChunkId> = old_tree.nodes.iter().map(|(id, _)| *id).collect();
        let manifest_bytes: usize = new_tree
            .nodes
            .iter()
            .filter(|(id, _)| !have.contains(id))
            .map(|(_, b)| b.len())
            .sum();
        let chunk_bytes = 30_000 + 35_537 + 2 * crate::blob::BLOB_OVERHEAD;
        assert!(
            manifest_bytes < 16 * 1024,
            "manifest delta {manifest_bytes}"
        );
        assert!(manifest_bytes + chunk_bytes <= 256 * 1024);
    }

    #[test]
    fn walking_detects_swapped_and_missing_nodes() {
        let k = keys();
        let tree = Tree::build(&k, &refs(3, 2000)).unwrap();
        let mut map = tree.node_map();
        // Put a leaf's blob under another leaf's id: the id check catches it.
        let leaves: Vec<ChunkId> = tree.nodes.iter().take(2).map(|(id, _)| *id).collect();
        let other = map[&leaves[1]].clone();
        map.insert(leaves[0], other);
        let err = walk(&k, &tree.root, |id| map.get(id).cloned()).unwrap_err();
        assert_eq!(err.code(), "id_mismatch");
        map.remove(&leaves[0]);
        assert_eq!(
            walk(&k, &tree.root, |id| map.get(id).cloned()).unwrap_err(),
            ManifestError::Missing(leaves[0])
        );
    }

    #[test]
    fn manifest_record_round_trips_and_rejects_bad_fields() {
        let k = keys();
        let m = Manifest {
            kind: EntryKind::File,
            size: 12,
            mode: 0o644,
            mtime_ns: 1_700_000_000_123_456_789,
            root: ContentRoot::from_bytes([3; 32]),
        };
        assert_eq!(m.encode().len(), MANIFEST_RECORD_LEN);
        let (_, blob) = m.seal(&k);
        assert_eq!(Manifest::open(&k, &blob).unwrap(), m);
        let mut bad = m.encode();
        bad[1] = 9;
        assert_eq!(Manifest::decode(&bad).unwrap_err().code(), "unknown_tag");
        assert_eq!(
            Manifest::decode(&m.encode()[..20]).unwrap_err().code(),
            "truncated"
        );
    }

    proptest! {
        // Each case builds trees of thousands of nodes: fewer cases, same coverage of shapes.
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn tree_round_trips(n in 0usize..3000, seed in any::<u64>()) {
            let k = keys();
            let chunks = refs(seed, n);
            let tree = Tree::build(&k, &chunks).unwrap();
            prop_assert_eq!(walk_tree(&k, &tree).unwrap(), chunks);
        }

        #[test]
        fn node_boundaries_are_stable_under_inserts(seed in any::<u64>(), at in 0usize..1500) {
            // Inserting one chunk changes at most two leaves (the one it lands in, and the
            // one merged or split there); every other leaf stays byte-identical.
            let k = keys();
            let old = refs(seed, 1500);
            let mut new = old.clone();
            new.insert(at, refs(seed ^ 0xdead, 1)[0]);
            let a = Tree::build(&k, &old).unwrap();
            let b = Tree::build(&k, &new).unwrap();
            let have: HashSet<ChunkId> = a.nodes.iter().map(|(id, _)| *id).collect();
            let changed = b.nodes.iter().filter(|(id, _)| !have.contains(id)).count();
            // At most 2 leaves plus one node per level above.
            prop_assert!(changed <= 2 + 2 * 3, "changed {}", changed);
        }

        #[test]
        fn decoding_random_nodes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Node::decode(&data);
            let _ = Manifest::decode(&data);
        }
    }
}
