//! Messages of the peer-to-peer chunk protocol, and their framing.
//!
//! # Participants and goals
//! Two devices that are both members of a folder, connected by libp2p (which authenticates
//! each side's [`DeviceId`](crate::ids::DeviceId) with Noise or TLS). The *requester* wants
//! blobs (chunks and manifest nodes) by id; the *provider* sends those it has. Goals: keep
//! the pipe full with many blobs in flight, let the requester check each blob against its id
//! before anything else, and let a provider refuse cheaply. Non-goals: authentication (the
//! transport's job) and discovery of who has what (the metadata document and `Have` hints).
//!
//! # Framing
//! A stream is a sequence of frames: `length u32` (of the body, ≤ [`MAX_FRAME_LEN`]), then the
//! body: `tag u8` and the message's fields (big-endian, see [`Message`]). A length above the
//! maximum ends the stream: the peer is faulty.
//!
//! # Flow
//! The requester sends `Want` with a request id of its choosing and up to [`MAX_WANT`] ids;
//! the provider answers every id in any order, each with `Blob` or `Missing` carrying the same
//! request id, or the whole request with one `Refused`. `Cancel` withdraws a request whose
//! answers are no longer needed. `Have` tells a peer which blobs one holds (a hint; never
//! trusted for content).

use crate::blob::MAX_BLOB_LEN;
use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{ChunkId, FolderId};

/// The largest frame body: one blob plus its message header.
pub const MAX_FRAME_LEN: usize = MAX_BLOB_LEN + 64;
/// The most ids one `Want` may ask for.
pub const MAX_WANT: usize = 1024;
/// The most ids one `Have` may list.
pub const MAX_HAVE: usize = 8192;

/// Why a provider refuses a whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RefuseReason {
    /// The requester is not a member of the folder (or the folder is unknown: the two are
    /// not told apart, so a stranger learns nothing about which folders exist).
    NotMember = 1,
    /// The provider is overloaded: retry later or ask another peer.
    Busy = 2,
    /// The request was malformed.
    BadRequest = 3,
}

/// One message of the chunk protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `0x01 | req u64 | folder [16] | count u32 | ids [32]×count` — ask for blobs.
    Want {
        /// The requester's id for this request.
        req: u64,
        /// The folder the blobs belong to (the provider checks membership).
        folder: FolderId,
        /// The blobs wanted (1 ..= [`MAX_WANT`]).
        ids: Vec<ChunkId>,
    },
    /// `0x02 | req u64 | id [32] | len u32 | blob` — one blob of a request.
    Blob {
        /// The request it answers.
        req: u64,
        /// The blob's id.
        id: ChunkId,
        /// The blob (≤ [`MAX_BLOB_LEN`] bytes).
        data: Vec<u8>,
    },
    /// `0x03 | req u64 | id [32]` — the provider does not have this blob.
    Missing {
        /// The request it answers.
        req: u64,
        /// The blob's id.
        id: ChunkId,
    },
    /// `0x04 | req u64 | reason u8` — the whole request is refused.
    Refused {
        /// The request it answers.
        req: u64,
        /// Why.
        reason: RefuseReason,
    },
    /// `0x05 | req u64` — the requester no longer needs the answers to a request.
    Cancel {
        /// The request to cancel.
        req: u64,
    },
    /// `0x06 | folder [16] | count u32 | ids [32]×count` — blobs the sender holds (a hint).
    Have {
        /// The folder.
        folder: FolderId,
        /// Blob ids (≤ [`MAX_HAVE`]).
        ids: Vec<ChunkId>,
    },
}

mod tag {
    pub(super) const WANT: u8 = 0x01;
    pub(super) const BLOB: u8 = 0x02;
    pub(super) const MISSING: u8 = 0x03;
    pub(super) const REFUSED: u8 = 0x04;
    pub(super) const CANCEL: u8 = 0x05;
    pub(super) const HAVE: u8 = 0x06;
}

fn read_ids(
    r: &mut Reader<'_>,
    max: usize,
    what: &'static str,
) -> Result<Vec<ChunkId>, DecodeError> {
    let n = r.count_u32(max, 32, what)?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(ChunkId::from_bytes(r.array("chunk id")?));
    }
    Ok(ids)
}

fn write_ids(w: &mut Writer, ids: &[ChunkId]) {
    w.u32(ids.len() as u32);
    for id in ids {
        w.raw(id.as_bytes());
    }
}

impl Message {
    /// The message body (tag and fields), without the frame length.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(match self {
            Message::Blob { data, .. } => 45 + data.len(),
            _ => 64,
        });
        match self {
            Message::Want { req, folder, ids } => {
                w.u8(tag::WANT).u64(*req).raw(folder.as_bytes());
                write_ids(&mut w, ids);
            }
            Message::Blob { req, id, data } => {
                w.u8(tag::BLOB).u64(*req).raw(id.as_bytes()).bytes_u32(data);
            }
            Message::Missing { req, id } => {
                w.u8(tag::MISSING).u64(*req).raw(id.as_bytes());
            }
            Message::Refused { req, reason } => {
                w.u8(tag::REFUSED).u64(*req).u8(*reason as u8);
            }
            Message::Cancel { req } => {
                w.u8(tag::CANCEL).u64(*req);
            }
            Message::Have { folder, ids } => {
                w.u8(tag::HAVE).raw(folder.as_bytes());
                write_ids(&mut w, ids);
            }
        }
        w.into_vec()
    }

    /// The message as a frame: length, then body.
    pub fn encode_frame(&self) -> Vec<u8> {
        if let Message::Blob { req, id, data } = self {
            // The hot path: one copy of the blob, not two.
            let mut frame = Vec::with_capacity(BLOB_FRAME_HEADER_LEN + data.len());
            frame.extend_from_slice(&blob_frame_header(*req, id, data.len()));
            frame.extend_from_slice(data);
            return frame;
        }
        let body = self.encode();
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }

    /// Decodes a message body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        if body.len() > MAX_FRAME_LEN {
            return Err(DecodeError::TooLarge {
                what: "frame",
                len: body.len() as u64,
                max: MAX_FRAME_LEN as u64,
            });
        }
        let mut r = Reader::new(body);
        let msg = match r.u8("message tag")? {
            tag::WANT => {
                let req = r.u64("request id")?;
                let folder = FolderId::from_bytes(r.array("folder id")?);
                let ids = read_ids(&mut r, MAX_WANT, "wanted ids")?;
                if ids.is_empty() {
                    return Err(DecodeError::Invalid {
                        what: "want",
                        reason: "asks for no blobs",
                    });
                }
                Message::Want { req, folder, ids }
            }
            tag::BLOB => Message::Blob {
                req: r.u64("request id")?,
                id: ChunkId::from_bytes(r.array("chunk id")?),
                data: r.bytes_u32(MAX_BLOB_LEN, "blob")?.to_vec(),
            },
            tag::MISSING => Message::Missing {
                req: r.u64("request id")?,
                id: ChunkId::from_bytes(r.array("chunk id")?),
            },
            tag::REFUSED => {
                let req = r.u64("request id")?;
                let reason = match r.u8("refuse reason")? {
                    1 => RefuseReason::NotMember,
                    2 => RefuseReason::Busy,
                    3 => RefuseReason::BadRequest,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "refuse reason",
                            tag,
                        });
                    }
                };
                Message::Refused { req, reason }
            }
            tag::CANCEL => Message::Cancel {
                req: r.u64("request id")?,
            },
            tag::HAVE => Message::Have {
                folder: FolderId::from_bytes(r.array("folder id")?),
                ids: read_ids(&mut r, MAX_HAVE, "held ids")?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "message",
                    tag,
                });
            }
        };
        r.finish("message")?;
        Ok(msg)
    }
}

/// Reads a frame header: how long the body that follows is. Fails when the length is above
/// [`MAX_FRAME_LEN`], before the caller reads (or allocates) anything more.
pub fn frame_len(header: [u8; 4]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(DecodeError::TooLarge {
            what: "frame",
            len: len as u64,
            max: MAX_FRAME_LEN as u64,
        });
    }
    Ok(len)
}

/// The bytes of a `Blob` body before the blob itself: tag, request id, chunk id, length.
pub const BLOB_PREFIX_LEN: usize = 1 + 8 + 32 + 4;
/// The bytes of a `Blob` frame before the blob itself: the frame length, then the prefix.
pub const BLOB_FRAME_HEADER_LEN: usize = 4 + BLOB_PREFIX_LEN;

/// The start of the frame of `Blob { req, id, data }` where `data` is `len` bytes long: a
/// sender writes it, then the blob, without copying the blob into a frame first.
pub fn blob_frame_header(req: u64, id: &ChunkId, len: usize) -> [u8; BLOB_FRAME_HEADER_LEN] {
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    let mut h = [0u8; BLOB_FRAME_HEADER_LEN];
    h[..4].copy_from_slice(&len32.saturating_add(BLOB_PREFIX_LEN as u32).to_be_bytes());
    h[4] = tag::BLOB;
    h[5..13].copy_from_slice(&req.to_be_bytes());
    h[13..45].copy_from_slice(id.as_bytes());
    h[45..].copy_from_slice(&len32.to_be_bytes());
    h
}

/// Reads the first [`BLOB_PREFIX_LEN`] bytes of a frame body of `body_len` bytes: for a
/// `Blob`, its request id and chunk id (the rest of the body, `body_len - BLOB_PREFIX_LEN`
/// bytes, is the blob, which a reader can then take straight into its own buffer); `None`
/// for any other message, which is decoded whole ([`Message::decode`]).
pub fn blob_prefix(
    prefix: &[u8; BLOB_PREFIX_LEN],
    body_len: usize,
) -> Result<Option<(u64, ChunkId)>, DecodeError> {
    if prefix[0] != tag::BLOB {
        return Ok(None);
    }
    let mut r = Reader::new(&prefix[1..]);
    let req = r.u64("request id")?;
    let id = ChunkId::from_bytes(r.array("chunk id")?);
    let len = r.u32("blob")? as usize;
    if len > MAX_BLOB_LEN {
        return Err(DecodeError::TooLarge {
            what: "blob",
            len: len as u64,
            max: MAX_BLOB_LEN as u64,
        });
    }
    if BLOB_PREFIX_LEN + len != body_len {
        return Err(DecodeError::Invalid {
            what: "blob",
            reason: "length disagrees with the frame's",
        });
    }
    Ok(Some((req, id)))
}

/// Splits one frame off the front of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the message and how many bytes it took. For callers that read into a buffer.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = frame_len(*header)?;
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((Message::decode(body)?, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Message> {
        let folder = FolderId::from_bytes([1; 16]);
        let id = ChunkId::from_bytes([2; 32]);
        vec![
            Message::Want {
                req: 7,
                folder,
                ids: vec![id, ChunkId::from_bytes([3; 32])],
            },
            Message::Blob {
                req: 7,
                id,
                data: vec![9; 100],
            },
            Message::Missing { req: 7, id },
            Message::Refused {
                req: 8,
                reason: RefuseReason::NotMember,
            },
            Message::Cancel { req: 9 },
            Message::Have {
                folder,
                ids: vec![id],
            },
        ]
    }

    #[test]
    fn every_message_round_trips_through_a_stream() {
        let stream: Vec<u8> = samples().iter().flat_map(|m| m.encode_frame()).collect();
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((m, used)) = decode_frame(&stream[at..]).unwrap() {
            out.push(m);
            at += used;
        }
        assert_eq!(at, stream.len());
        assert_eq!(out, samples());
        // A partial frame asks for more bytes instead of failing.
        assert_eq!(decode_frame(&stream[..10]).unwrap(), None);
    }

    #[test]
    fn oversized_and_garbage_frames_are_refused() {
        let huge = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert_eq!(decode_frame(&huge).unwrap_err().code(), "too_large");
        assert_eq!(Message::decode(&[0x77]).unwrap_err().code(), "unknown_tag");
        assert_eq!(Message::decode(&[]).unwrap_err().code(), "truncated");
        let mut want = samples()[0].encode();
        want[25..29].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Message::decode(&want).unwrap_err().code(), "too_large");
        let empty_want = Message::Want {
            req: 1,
            folder: FolderId::from_bytes([0; 16]),
            ids: vec![],
        };
        assert_eq!(
            Message::decode(&empty_want.encode()).unwrap_err().code(),
            "invalid"
        );
        let mut trailing = samples()[4].encode();
        trailing.push(0);
        assert_eq!(
            Message::decode(&trailing).unwrap_err().code(),
            "trailing_bytes"
        );
    }

    #[test]
    fn a_blob_prefix_that_disagrees_with_its_frame_is_refused() {
        let id = ChunkId::from_bytes([2; 32]);
        let frame = blob_frame_header(3, &id, 100);
        let prefix: [u8; BLOB_PREFIX_LEN] = frame[4..].try_into().unwrap();
        assert_eq!(
            blob_prefix(&prefix, BLOB_PREFIX_LEN + 100).unwrap(),
            Some((3, id))
        );
        // A blob length that does not add up to the frame's: the stream cannot be trusted.
        for body_len in [BLOB_PREFIX_LEN + 99, BLOB_PREFIX_LEN + 101] {
            assert_eq!(
                blob_prefix(&prefix, body_len).unwrap_err().code(),
                "invalid"
            );
        }
        let huge = blob_frame_header(3, &id, MAX_BLOB_LEN + 1);
        let prefix: [u8; BLOB_PREFIX_LEN] = huge[4..].try_into().unwrap();
        assert_eq!(
            blob_prefix(&prefix, BLOB_PREFIX_LEN + MAX_BLOB_LEN + 1)
                .unwrap_err()
                .code(),
            "too_large"
        );
        // Any other message is left to the whole-body decoder.
        let mut want = samples()[0].encode();
        want.resize(BLOB_PREFIX_LEN, 0);
        let prefix: [u8; BLOB_PREFIX_LEN] = want[..].try_into().unwrap();
        assert_eq!(blob_prefix(&prefix, 200).unwrap(), None);
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Message::decode(&data);
            let _ = decode_frame(&data);
        }

        #[test]
        fn blobs_round_trip(req in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let m = Message::Blob { req, id: ChunkId::from_bytes([5; 32]), data };
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn a_blob_frame_is_its_header_then_the_blob_and_its_prefix_reads_back(
            req in any::<u64>(),
            data in proptest::collection::vec(any::<u8>(), 0..5000),
        ) {
            let id = ChunkId::from_bytes([6; 32]);
            let m = Message::Blob { req, id, data: data.clone() };
            // The frame written in two parts is the generic encoding, byte for byte.
            let mut generic = (m.encode().len() as u32).to_be_bytes().to_vec();
            generic.extend(m.encode());
            let mut parts = blob_frame_header(req, &id, data.len()).to_vec();
            parts.extend_from_slice(&data);
            prop_assert_eq!(&parts, &generic);
            prop_assert_eq!(&m.encode_frame(), &generic);
            // A reader that takes the prefix first gets the same request and chunk ids.
            let body_len = generic.len() - 4;
            let prefix: [u8; BLOB_PREFIX_LEN] = generic[4..4 + BLOB_PREFIX_LEN].try_into().unwrap();
            prop_assert_eq!(blob_prefix(&prefix, body_len).unwrap(), Some((req, id)));
        }
    }
}
