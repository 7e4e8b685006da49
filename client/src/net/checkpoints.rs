//! `/harp/checkpoints/1`: member devices of a folder tell each other which checkpoint of the
//! folder's transparency log they accepted, directly, so a bridge that shows two devices two
//! histories (a split view) is caught: the bridge cannot prove two such checkpoints
//! consistent (the daemon's bridge link does that check, with the bridge's key and proofs).
//!
//! One stream is one exchange, for one folder:
//!
//! ```text
//! initiator → u32 length ‖ 0x01 ‖ folder id [16] ‖ its checkpoint (signed note, UTF-8; empty: none yet)
//! responder → u32 length ‖ 0x02 ‖ its checkpoint   |   u32 length ‖ 0x03 (refused: not a member, or no such folder)
//! ```
//!
//! A frame holds at most [`MAX_FRAME`] bytes; notes are kept as received, unverified: the
//! reader checks the bridge's signature before believing one. The checkpoints stay off the
//! bridge on purpose (it is the party being checked, and they would cost metadata traffic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use harp_protocol::ids::{DeviceId, FolderId};
use libp2p::{PeerId, StreamProtocol};

use super::frame::write as write_frame;
use super::{Handle, device_of};
use crate::net::meta::Folders;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/harp/checkpoints/1");
/// The largest frame (a checkpoint note signed by the bridge is a few hundred bytes).
pub const MAX_FRAME: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(10);

const HELLO: u8 = 1;
const ANSWER: u8 = 2;
const REFUSED: u8 = 3;

/// What this device and its peers accepted, per folder.
#[derive(Debug, Default)]
struct Folder {
    mine: Option<String>,
    theirs: HashMap<DeviceId, String>,
}

/// The checkpoints known to this device: its own per folder (set by the bridge link), and the
/// ones peers sent (unverified).
#[derive(Debug, Clone, Default)]
pub struct Book(Arc<Mutex<HashMap<FolderId, Folder>>>);

impl Book {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<FolderId, Folder>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sets the checkpoint this device accepted for `folder`.
    pub fn set_mine(&self, folder: &FolderId, note: &str) {
        self.with(|m| m.entry(*folder).or_default().mine = Some(note.to_owned()));
    }

    /// The checkpoint this device accepted for `folder`.
    pub fn mine(&self, folder: &FolderId) -> Option<String> {
        self.with(|m| m.get(folder).and_then(|f| f.mine.clone()))
    }

    /// The checkpoints peers sent for `folder`, by device (unverified).
    pub fn theirs(&self, folder: &FolderId) -> Vec<(DeviceId, String)> {
        self.with(|m| {
            m.get(folder)
                .map(|f| f.theirs.iter().map(|(d, n)| (*d, n.clone())).collect())
                .unwrap_or_default()
        })
    }

    fn put_theirs(&self, folder: &FolderId, device: DeviceId, note: String) {
        self.with(|m| {
            m.entry(*folder).or_default().theirs.insert(device, note);
        });
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The stream broke or timed out.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer is not a member of the folder (or does not have it).
    #[error("refused: not a member of the folder")]
    Refused,
    /// The peer broke the protocol.
    #[error("protocol violation: {0}")]
    Violation(String),
}

async fn read_frame(r: &mut (impl futures::AsyncRead + Unpin)) -> Result<Vec<u8>, ExchangeError> {
    super::frame::read(r, MAX_FRAME).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            ExchangeError::Violation(e.to_string())
        } else {
            ExchangeError::Io(e)
        }
    })
}

fn note_of(bytes: &[u8]) -> Result<Option<String>, ExchangeError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| ExchangeError::Violation("a checkpoint that is not UTF-8".into()))
}

/// Sends this device's checkpoint of `folder` to `peer` and stores the one it answers with.
pub async fn exchange(
    handle: &Handle,
    book: &Book,
    peer: PeerId,
    folder: FolderId,
) -> Result<(), ExchangeError> {
    let device = device_of(&peer)
        .ok_or_else(|| ExchangeError::Violation("a peer id that is no device".into()))?;
    let run = async {
        let stream = handle
            .control()
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| ExchangeError::Io(std::io::Error::other(e.to_string())))?;
        let (mut r, mut w) = stream.split();
        let mut hello = vec![HELLO];
        hello.extend_from_slice(folder.as_bytes());
        hello.extend_from_slice(book.mine(&folder).unwrap_or_default().as_bytes());
        if hello.len() > MAX_FRAME {
            return Err(ExchangeError::Violation("own checkpoint too large".into()));
        }
        write_frame(&mut w, &hello).await?;
        let answer = read_frame(&mut r).await?;
        let _ = w.close().await;
        match answer.split_first() {
            Some((&ANSWER, note)) => {
                if let Some(note) = note_of(note)? {
                    book.put_theirs(&folder, device, note);
                }
                Ok(())
            }
            Some((&REFUSED, [])) => Err(ExchangeError::Refused),
            _ => Err(ExchangeError::Violation("bad answer".into())),
        }
    };
    tokio::time::timeout(TIMEOUT, run)
        .await
        .map_err(|_| ExchangeError::Io(std::io::ErrorKind::TimedOut.into()))?
}

/// Answers exchanges from member peers until the node stops.
pub async fn serve(handle: Handle, folders: Folders, book: Book) -> Result<(), super::Error> {
    let mut incoming = handle
        .control()
        .accept(PROTOCOL)
        .map_err(|e| super::Error::Setup(e.to_string()))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    while let Some((peer, stream)) = incoming.next().await {
        // Never wait in this loop: libp2p drops inbound streams that find it busy.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "checkpoint exchange dropped: every slot is busy");
            continue;
        };
        let (folders, book) = (folders.clone(), book.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(TIMEOUT, answer(peer, stream, &folders, &book)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(%peer, "checkpoint exchange: {e}"),
                Err(_) => tracing::warn!(%peer, "checkpoint exchange timed out"),
            }
            drop(permit);
        });
    }
    Ok(())
}

async fn answer(
    peer: PeerId,
    stream: libp2p::Stream,
    folders: &Folders,
    book: &Book,
) -> Result<(), ExchangeError> {
    let (mut r, mut w) = stream.split();
    let hello = read_frame(&mut r).await?;
    if hello.len() < 17 || hello[0] != HELLO {
        return Err(ExchangeError::Violation("bad hello".into()));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&hello[1..17]);
    let folder = FolderId::from_bytes(id);
    let member =
        device_of(&peer).filter(|d| folders.get(&folder).is_some_and(|f| f.members.contains(d)));
    let Some(device) = member else {
        tracing::warn!(%peer, %folder, "checkpoint exchange refused: not a member of the folder (or no such folder)");
        write_frame(&mut w, &[REFUSED]).await?;
        let _ = w.close().await;
        return Ok(());
    };
    if let Some(note) = note_of(&hello[17..])? {
        book.put_theirs(&folder, device, note);
    }
    let mut reply = vec![ANSWER];
    reply.extend_from_slice(book.mine(&folder).unwrap_or_default().as_bytes());
    if reply.len() > MAX_FRAME {
        reply.truncate(1);
    }
    write_frame(&mut w, &reply).await?;
    let _ = w.close().await;
    Ok(())
}
