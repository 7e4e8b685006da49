//! `/harp/chunks/1`: moving blobs (chunks and manifest nodes) between devices.
//!
//! The messages and framing are [`harp_protocol::wire`]'s. This module runs them over
//! libp2p streams:
//!
//! - **Serving** ([`serve`]): every inbound stream gets its own task (at most
//!   [`MAX_INBOUND_STREAMS`] at once). A `Want` from a device that is not a member of the
//!   folder gets `Refused(NotMember)` and a log line; otherwise each wanted blob is made by the
//!   [`BlobSource`] (on the blocking pool, two at a time, so reading and sealing the next blob
//!   overlaps sending this one) and sent as `Blob`, or `Missing`. Garbage or oversized frames
//!   end the stream.
//! - **Fetching** ([`fetch`]): one worker per source peer, each with [`PIPELINE_DEPTH`]
//!   `Want`s of up to [`WANT_BATCH`] ids in flight, all pulling from one shared queue, so a
//!   faster peer takes more of the work. Every blob is checked against its id (its BLAKE3
//!   hash) before it is handed on; a peer that sends a wrong blob or breaks the protocol is
//!   disconnected and its outstanding ids go back to the queue for the others. A cut stream
//!   puts its outstanding ids back too; what already arrived is never asked for again. Ids
//!   that every remaining peer reports missing are returned as missing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use harp_protocol::blob;
use harp_protocol::codec::DecodeError;
use harp_protocol::ids::{ChunkId, DeviceId, FolderId};
use harp_protocol::wire::{self, Message, RefuseReason};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{Semaphore, mpsc};

use super::{Handle, Stats, device_of, lane};

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/harp/chunks/1");
/// Inbound chunk streams served at once; more wait.
pub const MAX_INBOUND_STREAMS: usize = 64;
/// Ids per `Want`: with 64 KiB chunks, about 2 MiB per request.
pub const WANT_BATCH: usize = 32;
/// `Want`s in flight per peer.
pub const PIPELINE_DEPTH: usize = 2;
/// How often a peer's stream may be cut in a row before the fetch gives up on that peer.
pub const MAX_CUTS: u32 = 5;
/// How long an inbound stream may wait for a serving slot.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The pause before asking a peer again after a cut.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);
/// Blobs a server reads per trip to a blocking thread (at most 2 MiB of chunks: 8 times the
/// largest).
const READ_BATCH: usize = 8;

/// What a serving device offers: membership and blobs.
pub trait BlobSource: Send + Sync + 'static {
    /// Whether `device` may read `folder` (an unknown folder answers false, like a foreign one).
    fn is_member(&self, folder: &FolderId, device: &DeviceId) -> bool;
    /// The blob `id` of `folder`, if this device has it. Blocking (reads files).
    fn read(&self, folder: &FolderId, id: &ChunkId) -> Option<Vec<u8>>;
}

/// Why a stream ended badly.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that do not decode.
    #[error("peer sent a malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// The peer sent a well-formed message that breaks the protocol.
    #[error("protocol violation: {0}")]
    Violation(String),
    /// The peer sent a blob that is not the one asked for.
    #[error("peer sent a corrupt blob for {0}")]
    BadBlob(ChunkId),
    /// The peer refused the request.
    #[error("peer refused: {0:?}")]
    Refused(RefuseReason),
}

impl StreamError {
    /// Whether the peer misbehaved (and should be disconnected), as opposed to a cut or a refusal.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            StreamError::Malformed(_) | StreamError::Violation(_) | StreamError::BadBlob(_)
        )
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> Result<Option<Message>, StreamError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = wire::frame_len(header)?;
    if len < wire::BLOB_PREFIX_LEN {
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        return Ok(Some(Message::decode(&body)?));
    }
    // A blob goes straight into a buffer of its own (no copy out of the frame): read the
    // message's prefix first.
    let mut prefix = [0u8; wire::BLOB_PREFIX_LEN];
    r.read_exact(&mut prefix).await?;
    if let Some((req, id)) = wire::blob_prefix(&prefix, len)? {
        // A kept buffer (crate::buffers), filled in place: no fresh pages for each blob.
        let want = len - wire::BLOB_PREFIX_LEN;
        let mut data = crate::buffers::take(want);
        data.resize(want, 0);
        r.read_exact(&mut data).await?;
        return Ok(Some(Message::Blob { req, id, data }));
    }
    let mut body = vec![0u8; len];
    body[..wire::BLOB_PREFIX_LEN].copy_from_slice(&prefix);
    r.read_exact(&mut body[wire::BLOB_PREFIX_LEN..]).await?;
    Ok(Some(Message::decode(&body)?))
}

/// Writes one frame (a blob after its header, never copied into a frame first).
pub async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &Message,
) -> Result<(), StreamError> {
    match msg {
        Message::Blob { req, id, data } => {
            w.write_all(&wire::blob_frame_header(*req, id, data.len()))
                .await?;
            w.write_all(data).await?;
        }
        _ => w.write_all(&msg.encode_frame()).await?,
    }
    w.flush().await?;
    Ok(())
}

/// Where a conversation's messages come from: a libp2p stream or a bulk lane ([`lane`]).
pub trait MessageReader: Send {
    /// Whether this is a bulk lane (for the traffic counters).
    const LANE: bool = false;
    /// The next message; `Ok(None)` at a clean end.
    fn read_message(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Message>, StreamError>> + Send;
}

/// Where a conversation's messages go.
pub trait MessageWriter: Send {
    /// Whether this is a bulk lane (for the traffic counters).
    const LANE: bool = false;
    /// Sends one message (and flushes it).
    fn send(
        &mut self,
        msg: Message,
    ) -> impl std::future::Future<Output = Result<(), StreamError>> + Send;
}

impl MessageReader for futures::io::ReadHalf<libp2p::Stream> {
    async fn read_message(&mut self) -> Result<Option<Message>, StreamError> {
        read_frame(self).await
    }
}

impl MessageWriter for futures::io::WriteHalf<libp2p::Stream> {
    async fn send(&mut self, msg: Message) -> Result<(), StreamError> {
        write_frame(self, &msg).await?;
        if let Message::Blob { data, .. } = msg {
            crate::buffers::give(data);
        }
        Ok(())
    }
}

impl MessageReader for lane::LaneReader {
    const LANE: bool = true;
    async fn read_message(&mut self) -> Result<Option<Message>, StreamError> {
        lane::LaneReader::read_message(self).await
    }
}

impl MessageWriter for lane::LaneWriter {
    const LANE: bool = true;
    async fn send(&mut self, msg: Message) -> Result<(), StreamError> {
        lane::LaneWriter::send(self, msg).await
    }
}

/// Connections to the lane port waiting for their ticket, at most.
const MAX_LANE_HANDSHAKES: usize = 64;

/// Accepts chunk streams and bulk lanes and serves them from `source` until the node stops.
pub async fn serve(handle: Handle, source: Arc<dyn BlobSource>) -> Result<(), super::Error> {
    let mut incoming = handle
        .control()
        .accept(PROTOCOL)
        .map_err(|e| super::Error::Setup(e.to_string()))?;
    let slots = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
    let lane_setups = handle
        .control()
        .accept(lane::PROTOCOL)
        .map_err(|e| super::Error::Setup(e.to_string()))?;
    tokio::spawn(offer_lanes(handle.clone(), lane_setups));
    if let Some(listener) = handle.lanes.take_listener() {
        tokio::spawn(serve_lanes(
            handle.clone(),
            listener,
            source.clone(),
            slots.clone(),
        ));
    }
    while let Some((peer, stream)) = incoming.next().await {
        // Never wait in this loop: libp2p drops inbound streams that find it busy. A stream
        // that gets no slot within `SLOT_WAIT` is dropped (the fetcher retries).
        let (source, stats, slots) = (source.clone(), handle.stats.clone(), slots.clone());
        let limits = handle.limits.clone();
        tokio::spawn(async move {
            let Ok(Ok(permit)) = tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await
            else {
                tracing::warn!(%peer, "chunk stream dropped: every serving slot is busy");
                return;
            };
            let (r, w) = stream.split();
            if let Err(e) = serve_conversation(peer, r, w, source, stats, &limits).await {
                tracing::warn!(%peer, "chunk stream ended: {e}");
            }
            drop(permit);
        });
    }
    Ok(())
}

/// Answers lane setups (each on its own task: the accept loop must never wait).
async fn offer_lanes(handle: Handle, mut setups: libp2p_stream::IncomingStreams) {
    while let Some((peer, stream)) = setups.next().await {
        let handle = handle.clone();
        tokio::spawn(async move { handle.lanes.offer(peer, handle.peer_id, stream).await });
    }
}

/// Accepts connections to the lane port; one with a good ticket is served like a stream.
async fn serve_lanes(
    handle: Handle,
    listener: tokio::net::TcpListener,
    source: Arc<dyn BlobSource>,
    slots: Arc<Semaphore>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_LANE_HANDSHAKES));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors, say: wait a moment rather than spin.
                tracing::warn!("lane port: {e}");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            continue;
        };
        let (handle, source, slots) = (handle.clone(), source.clone(), slots.clone());
        tokio::spawn(async move {
            let lane = handle.lanes.accept(tcp).await;
            drop(handshake);
            let Some((peer, lane)) = lane else {
                return;
            };
            let Ok(Ok(permit)) = tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await
            else {
                tracing::warn!(%peer, "lane dropped: every serving slot is busy");
                return;
            };
            let (stats, limits) = (handle.stats.clone(), handle.limits.clone());
            let lane::Lane { reader, writer } = lane;
            if let Err(e) = serve_conversation(peer, reader, writer, source, stats, &limits).await {
                tracing::warn!(%peer, "lane ended: {e}");
            }
            drop(permit);
        });
    }
}

/// What one message from a requester turns into: answers to send, made on the blocking
/// pool (a batch of blobs) or at once (a refusal).
type Answers = futures::future::BoxFuture<'static, Result<Vec<Message>, StreamError>>;

/// Serves one conversation (a libp2p stream or a lane) with `peer`.
async fn serve_conversation<W: MessageWriter>(
    peer: PeerId,
    r: impl MessageReader + 'static,
    mut w: W,
    source: Arc<dyn BlobSource>,
    stats: Arc<Stats>,
    limits: &super::limit::Limits,
) -> Result<(), StreamError> {
    let device = device_of(&peer);
    // Requests are read while the answers to earlier ones are being made and sent, and their
    // blobs are made two batches ahead across request boundaries: the first blobs of the next
    // `Want` are sealed while the last of this one go out, so the pipe never waits for them.
    let requests = futures::stream::try_unfold(r, |mut r| async move {
        Ok(r.read_message().await?.map(|msg| (msg, r)))
    });
    let answers = requests
        .map(move |msg| answers_to(msg, &peer, device.as_ref(), &source))
        .flatten()
        .buffered(2);
    let mut answers = std::pin::pin!(answers);
    while let Some(batch) = answers.next().await {
        for msg in batch? {
            if let Message::Blob { data, .. } = &msg {
                limits.send.take(data.len() as u64).await;
                if W::LANE {
                    stats.count_lane(&peer, data.len() as u64, false);
                } else {
                    stats.count(&peer, data.len() as u64, false);
                }
            }
            w.send(msg).await?;
        }
    }
    Ok(())
}

/// The answers to one message a requester sent (or the error that ends the stream).
fn answers_to(
    msg: Result<Message, StreamError>,
    peer: &PeerId,
    device: Option<&DeviceId>,
    source: &Arc<dyn BlobSource>,
) -> futures::stream::BoxStream<'static, Answers> {
    use futures::FutureExt;
    let now =
        |r: Result<Vec<Message>, StreamError>| -> Answers { futures::future::ready(r).boxed() };
    let one = |a: Answers| futures::stream::once(futures::future::ready(a)).boxed();
    match msg {
        Err(e) => one(now(Err(e))),
        Ok(Message::Want { req, folder, ids }) => {
            if !device.is_some_and(|d| source.is_member(&folder, d)) {
                tracing::warn!(%peer, %folder, "refused: not a member of the folder (or no such folder)");
                let reason = RefuseReason::NotMember;
                return one(now(Ok(vec![Message::Refused { req, reason }])));
            }
            // A few blobs per trip to a blocking thread: one handoff per blob cost more than
            // reading a small file's blob (two trips in flight keep the pipe full for large
            // ones).
            let batches: Vec<Answers> = ids
                .chunks(READ_BATCH)
                .map(|batch| {
                    let (source, batch) = (source.clone(), batch.to_vec());
                    let ids = batch.clone();
                    async move {
                        let made = tokio::task::spawn_blocking(move || {
                            batch
                                .into_iter()
                                .map(|id| (id, source.read(&folder, &id)))
                                .collect::<Vec<_>>()
                        })
                        .await
                        .unwrap_or_else(|_| ids.into_iter().map(|id| (id, None)).collect());
                        Ok(made
                            .into_iter()
                            .map(|(id, data)| match data {
                                Some(data) => Message::Blob { req, id, data },
                                None => Message::Missing { req, id },
                            })
                            .collect())
                    }
                    .boxed()
                })
                .collect();
            futures::stream::iter(batches).boxed()
        }
        // Requests are answered in order and quickly; a cancel needs no action.
        Ok(Message::Cancel { .. } | Message::Have { .. }) => futures::stream::empty().boxed(),
        Ok(other) => one(now(Err(StreamError::Violation(format!(
            "a requester sent {other:?}"
        ))))),
    }
}

/// The work shared by the fetch workers.
#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<ChunkId>,
    /// Peers that said they do not have an id.
    lacking: HashMap<ChunkId, HashSet<PeerId>>,
}

impl Queue {
    /// Up to `n` ids this peer has not said it lacks.
    fn take(&mut self, peer: &PeerId, n: usize) -> Vec<ChunkId> {
        let mut out = Vec::with_capacity(n);
        let mut skipped = Vec::new();
        while out.len() < n {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            if self.lacking.get(&id).is_some_and(|s| s.contains(peer)) {
                skipped.push(id);
            } else {
                out.push(id);
            }
        }
        for id in skipped.into_iter().rev() {
            self.pending.push_front(id);
        }
        out
    }

    fn give_back(&mut self, ids: impl IntoIterator<Item = ChunkId>) {
        self.pending.extend(ids);
    }
}

/// What a fetch achieved.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Blobs received and checked.
    pub fetched: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Ids no remaining peer had.
    pub missing: Vec<ChunkId>,
    /// Ids not fetched because no peer was left to ask (all cut off or faulty).
    pub unfetched: Vec<ChunkId>,
    /// Peers that failed, and why.
    pub failed_peers: Vec<(PeerId, String)>,
}

struct Shared<'a> {
    queue: Mutex<Queue>,
    /// Workers in the current round: no worker takes more than its share of what is left.
    workers: std::sync::atomic::AtomicUsize,
    folder: FolderId,
    out: &'a mpsc::Sender<blob::CheckedBlob>,
    stats: &'a Stats,
    fetched: Mutex<(u64, u64)>,
}

impl Shared<'_> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Fetches blobs `ids` of `folder` from `peers`, sending each checked blob to `out` (whose
/// capacity bounds the memory used). Returns when every id was received, reported missing
/// by every peer, or no peer is left. Peers that misbehave are disconnected.
pub async fn fetch(
    handle: &Handle,
    peers: &[PeerId],
    folder: FolderId,
    ids: Vec<ChunkId>,
    out: &mpsc::Sender<blob::CheckedBlob>,
) -> Outcome {
    let mut unique = HashSet::new();
    let pending: VecDeque<ChunkId> = ids.into_iter().filter(|id| unique.insert(*id)).collect();
    let shared = Shared {
        queue: Mutex::new(Queue {
            pending,
            ..Queue::default()
        }),
        workers: std::sync::atomic::AtomicUsize::new(1),
        folder,
        out,
        stats: &handle.stats,
        fetched: Mutex::new((0, 0)),
    };
    let mut alive: Vec<PeerId> = peers.to_vec();
    let mut cuts: HashMap<PeerId, u32> = HashMap::new();
    let mut outcome = Outcome::default();
    loop {
        let before = shared.queue().pending.len();
        if before == 0 || alive.is_empty() {
            break;
        }
        shared
            .workers
            .store(alive.len(), std::sync::atomic::Ordering::Relaxed);
        let results =
            futures::future::join_all(alive.iter().map(|peer| worker(handle, *peer, &shared)))
                .await;
        let mut still = Vec::new();
        let mut retry_later = false;
        for (peer, result) in alive.iter().zip(results) {
            match result {
                Ok(()) => {
                    cuts.remove(peer);
                    still.push(*peer);
                }
                // A cut stream (a connection that dropped, or moved from relayed to direct):
                // ask again, a few times, for what has not arrived.
                Err(StreamError::Io(e)) if *cuts.entry(*peer).or_default() < MAX_CUTS => {
                    tracing::debug!(%peer, "chunk stream cut, retrying: {e}");
                    *cuts.entry(*peer).or_default() += 1;
                    retry_later = true;
                    still.push(*peer);
                }
                Err(e) => {
                    if e.is_peer_fault() {
                        tracing::warn!(%peer, "disconnecting: {e}");
                        let _ = handle.disconnect(*peer).await;
                    }
                    outcome.failed_peers.push((*peer, e.to_string()));
                }
            }
        }
        alive = still;
        if retry_later {
            tokio::time::sleep(RETRY_DELAY).await;
        }
        let q = shared.queue();
        let every_alive_lacks = |id: &ChunkId| {
            q.lacking
                .get(id)
                .is_some_and(|s| alive.iter().all(|p| s.contains(p)))
        };
        if q.pending.iter().all(every_alive_lacks) && !alive.is_empty() {
            break;
        }
        if q.pending.len() == before && alive.is_empty() {
            break;
        }
    }
    let q = shared.queue.into_inner().unwrap_or_else(|e| e.into_inner());
    for id in q.pending {
        if !alive.is_empty()
            && q.lacking
                .get(&id)
                .is_some_and(|s| alive.iter().all(|p| s.contains(p)))
        {
            outcome.missing.push(id);
        } else {
            outcome.unfetched.push(id);
        }
    }
    let (fetched, bytes) = *shared.fetched.lock().unwrap_or_else(|e| e.into_inner());
    outcome.fetched = fetched;
    outcome.bytes = bytes;
    outcome
}

/// [`fetch`] from a thread that is not the runtime's: each checked blob goes to `sink` on the
/// calling thread (which may block on disk); returns the ids that did not reach `sink`. An
/// error from `sink` stops the fetch and is returned.
pub fn fetch_blocking(
    runtime: &tokio::runtime::Handle,
    handle: &Handle,
    peers: &[PeerId],
    folder: FolderId,
    ids: Vec<ChunkId>,
    sink: &mut dyn FnMut(blob::CheckedBlob) -> std::io::Result<()>,
) -> std::io::Result<Vec<ChunkId>> {
    if peers.is_empty() {
        return Ok(ids);
    }
    let mut wanted: HashSet<ChunkId> = ids.iter().copied().collect();
    let (tx, mut rx) = mpsc::channel(16);
    let (handle, peers) = (handle.clone(), peers.to_vec());
    let task = runtime.spawn(async move {
        let outcome = fetch(&handle, &peers, folder, ids, &tx).await;
        drop(tx);
        outcome
    });
    let mut failed = None;
    while let Some(blob) = rx.blocking_recv() {
        wanted.remove(&blob.id());
        if let Err(e) = sink(blob) {
            failed = Some(e);
            break;
        }
    }
    drop(rx);
    let outcome = runtime
        .block_on(task)
        .map_err(|e| std::io::Error::other(format!("fetch task: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    // Whatever did not reach the sink is not had, whatever the outcome says.
    let reported: HashSet<ChunkId> = outcome
        .missing
        .into_iter()
        .chain(outcome.unfetched)
        .collect();
    if let Some(lost) = wanted.iter().find(|id| !reported.contains(id)) {
        tracing::warn!("chunk fetch ended without {lost} and without saying so");
    }
    Ok(wanted.into_iter().collect())
}

/// One peer's share of a fetch. Outstanding ids go back to the queue however it ends.
async fn worker(handle: &Handle, peer: PeerId, shared: &Shared<'_>) -> Result<(), StreamError> {
    let mut inflight: VecDeque<(u64, HashSet<ChunkId>)> = VecDeque::new();
    let result = match lane::open(handle, peer).await {
        Some(mut lane) => {
            let result = run_worker(
                handle,
                peer,
                shared,
                &mut lane.reader,
                &mut lane.writer,
                &mut inflight,
            )
            .await;
            // A lane with nothing in flight can carry the next fetch.
            if result.is_ok() && inflight.is_empty() {
                handle.lanes.put_back(peer, lane);
            }
            result
        }
        None => match handle.control().open_stream(peer, PROTOCOL).await {
            Ok(stream) => {
                let (mut r, mut w) = stream.split();
                run_worker(handle, peer, shared, &mut r, &mut w, &mut inflight).await
            }
            Err(e) => Err(StreamError::Io(std::io::Error::other(e.to_string()))),
        },
    };
    let leftover: Vec<ChunkId> = inflight.into_iter().flat_map(|(_, ids)| ids).collect();
    shared.queue().give_back(leftover);
    result
}

async fn run_worker<R: MessageReader>(
    handle: &Handle,
    peer: PeerId,
    shared: &Shared<'_>,
    r: &mut R,
    w: &mut impl MessageWriter,
    inflight: &mut VecDeque<(u64, HashSet<ChunkId>)>,
) -> Result<(), StreamError> {
    let mut next_req = 1u64;
    loop {
        while inflight.len() < PIPELINE_DEPTH {
            let ids = {
                let mut q = shared.queue();
                let workers = shared
                    .workers
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .max(1);
                let share = q.pending.len().div_ceil(workers).clamp(1, WANT_BATCH);
                q.take(&peer, share)
            };
            if ids.is_empty() {
                break;
            }
            let req = next_req;
            next_req += 1;
            // In flight before the write: if the write fails, the worker gives them back
            // (taken from the queue and lost, they would count as delivered).
            inflight.push_back((req, ids.iter().copied().collect()));
            w.send(Message::Want {
                req,
                folder: shared.folder,
                ids,
            })
            .await?;
        }
        if inflight.is_empty() {
            return Ok(());
        }
        let msg = r
            .read_message()
            .await?
            .ok_or_else(|| StreamError::Io(std::io::ErrorKind::UnexpectedEof.into()))?;
        let (req, id) = match &msg {
            Message::Blob { req, id, .. } | Message::Missing { req, id } => (*req, *id),
            Message::Refused { reason, .. } => return Err(StreamError::Refused(*reason)),
            other => return Err(StreamError::Violation(format!("a provider sent {other:?}"))),
        };
        let Some(pos) = inflight
            .iter()
            .position(|(r, ids)| *r == req && ids.contains(&id))
        else {
            return Err(StreamError::Violation(format!(
                "an answer for {id} that was not asked for"
            )));
        };
        match msg {
            Message::Blob { data, .. } => {
                let checked = blob::CheckedBlob::check(id, data);
                shared.stats.checked(checked.is_ok());
                let Ok(data) = checked else {
                    return Err(StreamError::BadBlob(id));
                };
                let len = data.bytes().len() as u64;
                if R::LANE {
                    shared.stats.count_lane(&peer, len, true);
                } else {
                    shared.stats.count(&peer, len, true);
                }
                handle.limits.recv.take(len).await;
                {
                    let mut f = shared.fetched.lock().unwrap_or_else(|e| e.into_inner());
                    f.0 += 1;
                    f.1 += len;
                }
                inflight[pos].1.remove(&id);
                if shared.out.send(data).await.is_err() {
                    // The consumer is gone: stop, and give the rest back.
                    return Ok(());
                }
            }
            _ => {
                inflight[pos].1.remove(&id);
                let mut q = shared.queue();
                q.lacking.entry(id).or_default().insert(peer);
                q.give_back([id]);
            }
        }
        if inflight[pos].1.is_empty() {
            inflight.remove(pos);
        }
    }
}

#[cfg(test)]
pub(in crate::net) mod tests {
    use super::*;

    /// One of each message, a large and an empty blob among them (the lane's tests use them
    /// too).
    pub(in crate::net) fn samples() -> Vec<Message> {
        let id = ChunkId::from_bytes([7; 32]);
        vec![
            Message::Blob {
                req: 3,
                id,
                data: vec![1; 70_000],
            },
            Message::Blob {
                req: 4,
                id,
                data: vec![],
            },
            Message::Want {
                req: 5,
                folder: FolderId::from_bytes([1; 16]),
                ids: vec![id; 3],
            },
            Message::Missing { req: 6, id },
            Message::Cancel { req: 7 },
        ]
    }

    #[test]
    fn the_fast_paths_write_and_read_exactly_the_wire_format() {
        futures::executor::block_on(async {
            for msg in samples() {
                let mut out = futures::io::Cursor::new(Vec::new());
                write_frame(&mut out, &msg).await.unwrap();
                assert_eq!(out.get_ref(), &msg.encode_frame(), "{msg:?}");
                let mut input = futures::io::Cursor::new(msg.encode_frame());
                assert_eq!(read_frame(&mut input).await.unwrap(), Some(msg));
                assert_eq!(read_frame(&mut input).await.unwrap(), None);
            }
        });
    }

    #[test]
    fn a_blob_whose_length_disagrees_with_its_frame_is_refused() {
        futures::executor::block_on(async {
            let mut frame = samples()[0].encode_frame();
            // Inner length one byte short of what the frame holds.
            let inner = u32::from_be_bytes([frame[45], frame[46], frame[47], frame[48]]) - 1;
            frame[45..49].copy_from_slice(&inner.to_be_bytes());
            let mut input = futures::io::Cursor::new(frame);
            assert!(matches!(
                read_frame(&mut input).await,
                Err(StreamError::Malformed(_))
            ));
        });
    }
}
