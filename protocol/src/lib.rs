//! `harp-protocol`: the single contract of Harp, shared by the `harp` node, the standalone
//! bridge and (through its golden vectors) the Nextcloud app.
//!
//! It is *sans-IO*: no sockets, no files, no async runtime, no clock. Everything here is a
//! pure function from bytes and keys to bytes, or a parser that refuses bad input with a
//! typed error, so it can be tested exhaustively and reused everywhere.
//!
//! The data's path, module by module:
//!
//! - [`ids`]: newtypes for every identifier (folders, files, devices, chunks, roots, links).
//! - [`keys`]: the key schedule, every folder secret derived from one folder key.
//! - [`blob`]: the encrypted blob format of chunks and manifest nodes (XChaCha20-Poly1305
//!   with synthetic nonces, addressed by the BLAKE3 hash of the ciphertext).
//! - [`manifest`]: a file version's chunk list as a content-defined tree, and its record.
//! - [`chain`]: per-file SHA3-256 hash chains of signed entries.
//! - [`proof`]: self-contained version proofs and their offline verification.
//! - [`policy`]: trust policies (the log key, witnesses and their quorum, trusted devices).
//! - [`tlog`]: transparency logs (RFC 6962 Merkle trees, inclusion and consistency proofs)
//!   and the C2SP checkpoint, signed-note and cosignature formats.
//! - [`wire`]: the peer-to-peer chunk protocol's messages and framing.
//! - [`wrap`]: what travels through the bridge: folder keys wrapped to a device, sealed
//!   metadata changes, signed device registrations.
//! - [`epoch`]: key epochs, rotated when a device leaves a folder: what seals the metadata
//!   the bridge keeps from then on, and the grants that give it to the remaining members.
//! - [`intro`]: introductions, a device's signed word that it trusts another device.
//! - [`codec`]: the canonical big-endian encoding all of them use.
//!
//! The byte-level specification is `docs/protocol.md`; golden vectors for other
//! implementations are in `protocol/tests/vectors/`.
//!
//! # Example
//!
//! Encrypt a chunk, describe a one-chunk file, sign its first version and prove it:
//!
//! ```
//! use harp_protocol::{blob, chain, manifest, proof};
//! use harp_protocol::ids::{FileId, FolderId};
//! use harp_protocol::keys::FolderKey;
//!
//! let keys = FolderKey::from_bytes([7; 32]).schedule();
//! let (chunk_id, ciphertext) = blob::seal(&keys, blob::BlobKind::Chunk, b"hello, world")?;
//! let tree = manifest::Tree::build(&keys, &[manifest::ChunkRef { id: chunk_id, len: 12 }])?;
//!
//! let device = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
//! let mut file = chain::Chain::new(FolderId::from_bytes([1; 16]), FileId::from_bytes([2; 16]), &keys.chain_seed);
//! file.append(&device, chain::Change {
//!     op: chain::Op::Create,
//!     content_root: tree.root,
//!     size: tree.size,
//!     path: keys.commit_path("notes/hello.txt"),
//!     timestamp_ms: 1_763_700_000_000,
//! })?;
//!
//! let bytes = proof::Proof::make(&file, 1)?.encode();
//! let policy = proof::Policy { chain_seed: Some(&keys.chain_seed), ..Default::default() };
//! let summary = proof::verify(&bytes, &policy)?;
//! assert_eq!(summary.content_root, tree.root);
//! assert_eq!(blob::open(&keys, blob::BlobKind::Chunk, &chunk_id, &ciphertext)?, b"hello, world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod blob;
pub mod chain;
pub mod chunker;
pub mod codec;
pub mod epoch;
pub mod ids;
pub mod intro;
pub mod keys;
pub mod manifest;
pub mod policy;
pub mod proof;
pub mod record;
pub mod tlog;
pub mod wire;
pub mod wrap;

pub use ed25519_dalek;
