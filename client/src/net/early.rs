//! `/harp/early/1`: the chunk list of a large new file, sent to members while it is scanned.
//!
//! A large new file cannot be published before its scan ends (its record names the root of
//! a manifest of every chunk), and without this protocol the other devices could not ask for
//! a byte of it before then. The scanning device opens one stream per direct member peer
//! and sends `Begin`, then a `Chunks` frame per window the scanner cuts, then `End`. A peer
//! that wants the file fetches those chunks over `/harp/chunks/1` as they are listed, into a
//! staging file of its own, while the scan goes on (see [`crate::early`]). Nothing received
//! here is ever installed by itself: the file is installed when its signed record arrives,
//! through the ordinary planner and applier, which take the staged chunks that match it.
//!
//! Frames (`u32` big-endian length ‖ payload, [`super::frame`]):
//!
//! ```text
//! Begin  : 0x01 ‖ folder id [16] ‖ size u64 ‖ path length u16 ‖ path (UTF-8)
//! Chunks : 0x02 ‖ first index u32 ‖ count u16 (1..=4096) ‖ count × (chunk id [32] ‖ length u32)
//! End    : 0x03 ‖ complete u8 (1: the scan ended with exactly these chunks; 0: it stopped)
//! ```

use std::sync::Arc;

use futures::{AsyncWriteExt, StreamExt};
use harp_protocol::ids::{ChunkId, DeviceId, FolderId};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::mpsc;

use super::{Handle, device_of, frame};

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/harp/early/1");
/// Chunk references per `Chunks` frame, at most.
pub const MAX_REFS: usize = 4096;
/// The largest frame: a full `Chunks` frame.
const MAX_FRAME: usize = 1 + 4 + 2 + MAX_REFS * 36;
/// Longest path accepted (the record format's own limit is checked by the receiver).
const MAX_PATH: usize = 4096;
/// How long a stream may stay silent before the receiver gives up on it (a scan lists a
/// window every few milliseconds; a stalled sender is gone).
const SILENCE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a write to a peer may take before the offer leaves that peer out.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Early streams served at once.
const MAX_INBOUND: usize = 8;

/// One message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A new file of `size` bytes at `path` in `folder` is being scanned.
    Begin {
        /// The folder.
        folder: FolderId,
        /// The file's path in the folder.
        path: String,
        /// Its size when the scan began.
        size: u64,
    },
    /// Its chunks from position `first` on, in file order.
    Chunks {
        /// The position of the first reference in the file's chunk list.
        first: u32,
        /// (chunk id, plaintext length).
        refs: Vec<(ChunkId, u32)>,
    },
    /// The scan ended: `complete` if it listed the whole file.
    End {
        /// Whether the listed chunks are the whole file as scanned.
        complete: bool,
    },
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ended early, or has bytes left over.
    #[error("frame has the wrong length")]
    Length,
    /// An unknown message type.
    #[error("unknown message type {0}")]
    Kind(u8),
    /// A path that is empty, too long, or not UTF-8.
    #[error("bad path")]
    Path,
    /// A `Chunks` frame with no references, too many, or a zero length.
    #[error("bad chunk list")]
    Refs,
}

impl Message {
    /// The message's bytes (a frame's payload).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Begin { folder, path, size } => {
                let mut out = Vec::with_capacity(1 + 16 + 8 + 2 + path.len());
                out.push(1);
                out.extend_from_slice(folder.as_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(&(path.len() as u16).to_be_bytes());
                out.extend_from_slice(path.as_bytes());
                out
            }
            Message::Chunks { first, refs } => {
                let mut out = Vec::with_capacity(1 + 4 + 2 + refs.len() * 36);
                out.push(2);
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&(refs.len() as u16).to_be_bytes());
                for (id, len) in refs {
                    out.extend_from_slice(id.as_bytes());
                    out.extend_from_slice(&len.to_be_bytes());
                }
                out
            }
            Message::End { complete } => vec![3, u8::from(*complete)],
        }
    }

    /// Decodes a frame's payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let msg = match r.u8()? {
            1 => {
                let folder = FolderId::from_bytes(r.array()?);
                let size = u64::from_be_bytes(r.array()?);
                let len = u16::from_be_bytes(r.array()?) as usize;
                if len == 0 || len > MAX_PATH {
                    return Err(DecodeError::Path);
                }
                let path = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| DecodeError::Path)?
                    .to_owned();
                Message::Begin { folder, path, size }
            }
            2 => {
                let first = u32::from_be_bytes(r.array()?);
                let count = u16::from_be_bytes(r.array()?) as usize;
                if count == 0 || count > MAX_REFS {
                    return Err(DecodeError::Refs);
                }
                let mut refs = Vec::with_capacity(count);
                for _ in 0..count {
                    let id = ChunkId::from_bytes(r.array()?);
                    let len = u32::from_be_bytes(r.array()?);
                    if len == 0 {
                        return Err(DecodeError::Refs);
                    }
                    refs.push((id, len));
                }
                Message::Chunks { first, refs }
            }
            3 => match r.u8()? {
                0 => Message::End { complete: false },
                1 => Message::End { complete: true },
                _ => return Err(DecodeError::Length),
            },
            kind => return Err(DecodeError::Kind(kind)),
        };
        if !r.0.is_empty() {
            return Err(DecodeError::Length);
        }
        Ok(msg)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Length);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Sends one file's messages from `rx` (the first must be `Begin`) to each of `peers` on a
/// stream of its own. A peer whose stream fails is left out from then on; the file's scan
/// never waits on this.
pub async fn offer(handle: Handle, peers: Vec<PeerId>, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut streams = Vec::new();
    for peer in peers {
        match handle.control().open_stream(peer, PROTOCOL).await {
            Ok(s) => streams.push((peer, s)),
            Err(e) => tracing::debug!(%peer, "no early stream: {e}"),
        }
    }
    // Returning (no stream left) drops `rx`: the scan then stops offering.
    while !streams.is_empty()
        && let Some(msg) = rx.recv().await
    {
        let bytes = msg.encode();
        let mut kept = Vec::with_capacity(streams.len());
        for (peer, mut s) in streams {
            // A peer that stopped reading is left behind, never waited for.
            match tokio::time::timeout(WRITE_WAIT, frame::write(&mut s, &bytes)).await {
                Ok(Ok(())) => kept.push((peer, s)),
                Ok(Err(e)) => tracing::debug!(%peer, "early stream ended: {e}"),
                Err(_) => tracing::debug!(%peer, "early stream left: the peer stopped reading"),
            }
        }
        streams = kept;
    }
    for (_, mut s) in streams {
        let _ = s.close().await;
    }
}

/// What a receiving device does with an offered file.
pub trait EarlySink: Send + Sync + 'static {
    /// A member's offer of a new file; `None` declines it (unknown folder, not a member, a
    /// folder that does not take changes here, a path this device has, no room...).
    fn begin(
        &self,
        peer: PeerId,
        device: DeviceId,
        folder: FolderId,
        path: &str,
        size: u64,
    ) -> Option<Box<dyn EarlyFile>>;
}

/// One offered file on the receiving side.
pub trait EarlyFile: Send {
    /// More of its chunk list (positions from `first` on). `false` stops the stream (the
    /// list broke a rule: a gap, too many chunks for the size).
    fn listed(&mut self, first: u32, refs: Vec<(ChunkId, u32)>) -> bool;
    /// The stream ended: `complete` when the sender said its scan listed the whole file.
    fn end(self: Box<Self>, complete: bool);
}

/// Accepts early streams and hands them to `sink` until the node stops.
pub async fn serve(handle: Handle, sink: Arc<dyn EarlySink>) -> Result<(), super::Error> {
    let mut incoming = handle
        .control()
        .accept(PROTOCOL)
        .map_err(|e| super::Error::Setup(e.to_string()))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND));
    while let Some((peer, stream)) = incoming.next().await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "early stream dropped: too many at once");
            continue;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            receive(peer, stream, sink).await;
            drop(permit);
        });
    }
    Ok(())
}

async fn receive(peer: PeerId, mut stream: libp2p::Stream, sink: Arc<dyn EarlySink>) {
    let Some(device) = device_of(&peer) else {
        return;
    };
    let (folder, path, size) = match next(&mut stream).await {
        Ok(Message::Begin { folder, path, size }) => (folder, path, size),
        Ok(other) => {
            tracing::debug!(%peer, "early stream did not begin with Begin: {other:?}");
            return;
        }
        Err(e) => {
            tracing::debug!(%peer, "early stream: {e}");
            return;
        }
    };
    let Some(mut file) = sink.begin(peer, device, folder, &path, size) else {
        return;
    };
    loop {
        match next(&mut stream).await {
            Ok(Message::Chunks { first, refs }) => {
                if !file.listed(first, refs) {
                    tracing::debug!(%peer, path, "early stream broke its list: dropped");
                    file.end(false);
                    return;
                }
            }
            Ok(Message::End { complete }) => {
                file.end(complete);
                return;
            }
            Ok(Message::Begin { .. }) | Err(_) => {
                file.end(false);
                return;
            }
        }
    }
}

/// The next message, or why there is none.
async fn next(s: &mut libp2p::Stream) -> Result<Message, String> {
    match tokio::time::timeout(SILENCE, frame::read(s, MAX_FRAME)).await {
        Ok(Ok(bytes)) => Message::decode(&bytes).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("silent for too long".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Begin {
                folder: FolderId::from_bytes([7; 16]),
                path: "dir/big file.bin".to_owned(),
                size: 1 << 30,
            },
            Message::Chunks {
                first: 12,
                refs: vec![
                    (ChunkId::from_bytes([1; 32]), 65_536),
                    (ChunkId::from_bytes([2; 32]), 17),
                ],
            },
            Message::End { complete: true },
            Message::End { complete: false },
        ]
    }

    #[test]
    fn every_message_decodes_to_itself() {
        for m in samples() {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn truncated_padded_and_bad_frames_are_refused() {
        for m in samples() {
            let bytes = m.encode();
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
            let mut padded = bytes.clone();
            padded.push(0);
            assert_eq!(Message::decode(&padded), Err(DecodeError::Length));
        }
        assert_eq!(Message::decode(&[9]), Err(DecodeError::Kind(9)));
        assert_eq!(Message::decode(&[3, 2]), Err(DecodeError::Length));
        // An empty path, a path that is not UTF-8.
        let mut empty = vec![1];
        empty.extend_from_slice(&[0; 16 + 8]);
        empty.extend_from_slice(&0u16.to_be_bytes());
        assert_eq!(Message::decode(&empty), Err(DecodeError::Path));
        let mut bad = vec![1];
        bad.extend_from_slice(&[0; 16 + 8]);
        bad.extend_from_slice(&1u16.to_be_bytes());
        bad.push(0xff);
        assert_eq!(Message::decode(&bad), Err(DecodeError::Path));
        // No references; a zero length.
        assert_eq!(
            Message::decode(&[2, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::Refs)
        );
        let zero = Message::Chunks {
            first: 0,
            refs: vec![(ChunkId::from_bytes([1; 32]), 0)],
        };
        assert_eq!(Message::decode(&zero.encode()), Err(DecodeError::Refs));
    }
}
