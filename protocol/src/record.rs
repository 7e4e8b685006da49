//! File records: what a folder's metadata document says about one file.
//!
//! The folder document (an Automerge map, see the `harp` crate's `sync` module) holds one
//! record per file id, as one small bytes value, and the chain entries that lead to it. A record
//! is the file's state after its latest chain entry: path, kind, permissions, modification time
//! and content.
//!
//! Record, big-endian:
//!
//! ```text
//! version u8 = 1 | flags u8 (bit 0: deleted) | kind u8 | mode u32 | mtime_ns i64 | size u64 |
//! content root [32] | seq u64 | chain head [32] | path len u16 | path (UTF-8, NFC)
//! ```
//!
//! Paths come from peers, so [`check_path`] is strict: relative, `/`-separated, no empty, `.` or
//! `..` component, no NUL or backslash, not inside `.harp`, at most [`MAX_PATH`] bytes. A record
//! that breaks any rule does not decode. (Names are NFC when written; the client, which has the
//! Unicode tables, refuses remote names that are not.)

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{ChainHash, ContentRoot};
use crate::manifest::EntryKind;

/// Version byte of records.
pub const RECORD_VERSION: u8 = 1;
/// The longest path a record may carry, in bytes.
pub const MAX_PATH: usize = 4096;
/// The longest single name in a path, in bytes (the common file-system limit).
pub const MAX_NAME: usize = 255;
/// The folder-local directory that never syncs.
pub const RESERVED_DIR: &str = ".harp";

/// One file's state in the folder document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Where the file is, relative to the folder root.
    pub path: String,
    /// File, symlink or directory.
    pub kind: EntryKind,
    /// Permission bits (the low 12 bits of `st_mode`).
    pub mode: u32,
    /// Modification time in nanoseconds since the Unix epoch (0 for directories and links).
    pub mtime_ns: i64,
    /// Content length.
    pub size: u64,
    /// The content's manifest root.
    pub content_root: ContentRoot,
    /// The file was deleted (a tombstone: the chain goes on if it comes back).
    pub deleted: bool,
    /// Entries in the file's chain.
    pub seq: u64,
    /// The chain's head after its last entry.
    pub chain_head: ChainHash,
}

/// A record's digest: BLAKE3 of its bytes. Two devices agree on a file when their digests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

/// Why a path is refused.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > MAX_PATH {
        return Err("path too long");
    }
    if path.contains('\0') {
        return Err("NUL in path");
    }
    if path.contains('\\') {
        return Err("backslash in path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    for (i, part) in path.split('/').enumerate() {
        match part {
            "" => return Err("empty path component"),
            "." | ".." => return Err("dot component in path"),
            p if p.len() > MAX_NAME => return Err("name too long"),
            p if i == 0 && p == RESERVED_DIR => return Err("path inside .harp"),
            _ => {}
        }
    }
    Ok(())
}

impl Record {
    /// The record's canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(1 + 1 + 1 + 4 + 8 + 8 + 32 + 8 + 32 + 2 + self.path.len());
        w.u8(RECORD_VERSION)
            .u8(u8::from(self.deleted))
            .u8(self.kind as u8)
            .u32(self.mode)
            .i64(self.mtime_ns)
            .u64(self.size)
            .raw(self.content_root.as_bytes())
            .u64(self.seq)
            .raw(self.chain_head.as_bytes())
            .u16(self.path.len() as u16)
            .raw(self.path.as_bytes());
        w.into_vec()
    }

    /// Decodes and checks a record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("record version")?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "record",
                version,
            });
        }
        let deleted = match r.u8("record flags")? {
            0 => false,
            1 => true,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "record flags",
                    tag,
                });
            }
        };
        let kind = match r.u8("record kind")? {
            1 => EntryKind::File,
            2 => EntryKind::Symlink,
            3 => EntryKind::Directory,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "record kind",
                    tag,
                });
            }
        };
        let mode = r.u32("record mode")?;
        if mode > 0o7777 {
            return Err(DecodeError::Invalid {
                what: "record mode",
                reason: "bits beyond the permission bits",
            });
        }
        let mtime_ns = r.i64("record mtime")?;
        let size = r.u64("record size")?;
        let content_root = ContentRoot::from_bytes(r.array("record content root")?);
        let seq = r.u64("record seq")?;
        if seq == 0 {
            return Err(DecodeError::Invalid {
                what: "record seq",
                reason: "a record follows at least one chain entry",
            });
        }
        let chain_head = ChainHash::from_bytes(r.array("record chain head")?);
        let len = r.u16("record path length")? as usize;
        let path =
            std::str::from_utf8(r.take(len, "record path")?).map_err(|_| DecodeError::Invalid {
                what: "record path",
                reason: "not UTF-8",
            })?;
        check_path(path).map_err(|reason| DecodeError::Invalid {
            what: "record path",
            reason,
        })?;
        r.finish("record")?;
        Ok(Self {
            path: path.to_owned(),
            kind,
            mode,
            mtime_ns,
            size,
            content_root,
            deleted,
            seq,
            chain_head,
        })
    }

    /// The record's digest.
    pub fn digest(&self) -> Digest {
        Digest(*blake3::hash(&self.encode()).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str) -> Record {
        Record {
            path: path.to_owned(),
            kind: EntryKind::File,
            mode: 0o644,
            mtime_ns: 1_700_000_000_123_456_789,
            size: 42,
            content_root: ContentRoot::from_bytes([7; 32]),
            deleted: false,
            seq: 3,
            chain_head: ChainHash::from_bytes([9; 32]),
        }
    }

    #[test]
    fn records_round_trip_and_digests_follow_every_field() {
        let r = sample("docs/a b/ünï.txt");
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        let mut other = r.clone();
        other.mode = 0o600;
        assert_ne!(other.digest(), r.digest());
    }

    #[test]
    fn hostile_paths_do_not_decode() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
            "a\\..\\b",
            ".harp/versions/x",
        ] {
            let bytes = sample(bad).encode();
            assert!(Record::decode(&bytes).is_err(), "{bad:?} was accepted");
        }
        let long = "x".repeat(MAX_NAME + 1);
        assert!(Record::decode(&sample(&long).encode()).is_err());
        // `.harp` is reserved only at the root.
        assert!(Record::decode(&sample("sub/.harp").encode()).is_ok());
    }

    #[test]
    fn truncated_or_padded_records_are_refused() {
        let bytes = sample("a").encode();
        for n in 0..bytes.len() {
            assert!(Record::decode(&bytes[..n]).is_err());
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Record::decode(&padded).is_err());
    }
}
