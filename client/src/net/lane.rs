//! Bulk lanes: a TCP connection of its own beside a direct libp2p connection, keyed over it,
//! that carries `/harp/chunks/1`'s messages.
//!
//! # Why
//! libp2p's TCP stack (Noise with ChaCha20-Poly1305, then Yamux, in frames of at most 64 KiB)
//! costs about 3.6 CPU seconds per GiB moved on loopback here, both ends together, and QUIC
//! more; a TCP connection sealed with AES-256-GCM in records of up to a blob costs about
//! 1.2-1.4 (docs/benchmarks.md, session 16), and under 1 since blob bodies are no longer
//! sealed twice (session 22). The blobs themselves are already sealed under the folder key,
//! so the lane's own cipher only has to keep the exchange (which ids, which requests)
//! private and whole, and AES-GCM does that at a fraction of ChaCha20's cost on CPUs with AES
//! instructions (Syncthing's TLS, from Go's crypto/tls, makes the same choice). libp2p keeps
//! everything else: finding peers,
//! hole punching, relays, authentication, and the chunk exchange wherever a lane cannot be
//! had.
//!
//! # Setup
//! 1. The fetcher opens `/harp/lane/1` on its (authenticated, encrypted) libp2p connection to
//!    the peer and sends a version byte and 32 random bytes.
//! 2. The server answers with the lane port and 32 random bytes of its own (or "no lane").
//!    Both derive, with BLAKE3's key derivation over both random values and both peer ids, a
//!    key per direction and a one-time ticket. Nobody else saw the random values: they went
//!    through Noise.
//! 3. The fetcher connects to the peer's address of that libp2p connection (direct ones only:
//!    a peer reached through a relay gets no lane) at the lane port and sends the ticket; the
//!    server takes the ticket (once, within [`TICKET_TTL`]), knows from it which peer this is,
//!    and answers one byte. From then on every record is sealed.
//!
//! A fetcher that cannot get a lane (no direct connection, a firewall, an older peer) uses a
//! libp2p stream as before, and does not try that peer's lane again for [`RETRY_AFTER`]
//! (twice as long after each further failure in a row, up to [`RETRY_AT_MOST`]).
//!
//! # Records
//! `len: u32 BE` ‖ AES-256-GCM(`plaintext`) with the length as associated data and the
//! record's number in its direction as nonce; a message's plaintext is its body from
//! [`harp_protocol::wire`]. A record that fails to open ends the lane as a peer fault.
//!
//! A blob's record (the length's top bit set) seals only the blob's head (version, kind and
//! the 24-byte nonce), its request id and its chunk id; the rest of the blob, ciphertext and
//! tag under the folder key, follows as it is. Sealing it again would cost both ends an
//! AES-GCM pass per byte (about 0.4 CPU seconds per GiB here, 8 % of a new file's transfer,
//! `docs/benchmarks.md`, session 22) and hide nothing the blob format does not already hide
//! from anyone without the folder key: what an observer of the lane gets is what the blob
//! format concedes to whoever holds blobs (their sizes, and which are equal), minus the
//! chunk ids, which cannot be computed without the sealed head. Nor does it leave the body
//! open to changes: the sealed chunk id is the BLAKE3 hash of the whole blob, and the
//! fetcher checks every blob against it before anything else, so a changed body ends the
//! lane as a peer fault, as a record that fails to open does.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use harp_protocol::blob::{BLOB_HEADER_LEN, MAX_BLOB_LEN};
use harp_protocol::ids::ChunkId;
use harp_protocol::wire::{self, Message};
use libp2p::core::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::chunks::StreamError;

/// The protocol that sets a lane up.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/harp/lane/1");
/// How long a ticket stays good.
pub const TICKET_TTL: Duration = Duration::from_secs(10);
/// How long a fetcher leaves a peer's lane alone after it could not get one; each further
/// failure in a row doubles it, up to [`RETRY_AT_MOST`].
pub const RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest wait before trying a peer's lane again.
pub const RETRY_AT_MOST: Duration = Duration::from_secs(4 * 3600);
/// How long the TCP connect of a lane may take: a port that a firewall drops costs the first
/// fetch from that peer this much, then nothing until [`RETRY_AFTER`].
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a served lane may wait for its next request before the server closes it.
pub const IDLE: Duration = Duration::from_secs(300);
/// How long a fetcher keeps an idle lane for its next fetch (well within [`IDLE`], so a kept
/// lane is still open at the other end).
const POOL_IDLE: Duration = Duration::from_secs(30);
/// How long a record may take to arrive or to go out, and a fetcher may wait for an answer,
/// before the lane counts as cut. TCP alone would wait many minutes on a path that died (a
/// router's uplink gone); the fetch then asks again, over whatever path is left.
pub const STALL: Duration = Duration::from_secs(60);
/// How long each step of the setup may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Tickets waiting to be used, at most (more get "no lane"), in all and per peer.
const MAX_PENDING: usize = 256;
const MAX_PENDING_PER_PEER: usize = 8;
/// Idle lanes kept per peer.
const POOL_PER_PEER: usize = 4;

const VERSION: u8 = 2;
const TAG_LEN: usize = 16;
/// The length's top bit: a blob's record (sealed head, then the rest of the blob as it is).
const BLOB_RECORD: u32 = 1 << 31;
/// What a blob's record seals after the blob's head: request id, chunk id.
const BLOB_TRAILER: usize = 8 + 32;
/// The sealed part of a blob's record with a whole head (a shorter blob is all head).
const SEALED_BLOB_PART: usize = BLOB_HEADER_LEN + BLOB_TRAILER + TAG_LEN;
/// The largest record: a blob, its trailer and the tag.
const MAX_RECORD: usize = wire::MAX_FRAME_LEN + BLOB_TRAILER + TAG_LEN;

/// The keys of one lane, as both ends derive them.
struct Keys {
    up: [u8; 32],
    down: [u8; 32],
    ticket: [u8; 32],
}

impl Keys {
    fn derive(
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        client: &PeerId,
        server: &PeerId,
    ) -> Self {
        let mut material = Vec::with_capacity(64 + 80);
        material.extend_from_slice(client_random);
        material.extend_from_slice(server_random);
        for p in [client, server] {
            let bytes = p.to_bytes();
            material.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            material.extend_from_slice(&bytes);
        }
        Self {
            up: blake3::derive_key("harp lane 1 fetcher to server", &material),
            down: blake3::derive_key("harp lane 1 server to fetcher", &material),
            ticket: blake3::derive_key("harp lane 1 ticket", &material),
        }
    }
}

/// One direction's cipher: a key and the number of the next record.
struct Sealer {
    key: LessSafeKey,
    next: u64,
}

impl Sealer {
    fn new(key: &[u8; 32]) -> Result<Self, StreamError> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| StreamError::Violation("lane key rejected".into()))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            next: 0,
        })
    }

    fn nonce(&mut self) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        Nonce::assume_unique_for_key(n)
    }
}

/// The reading half of a lane.
pub struct LaneReader {
    io: OwnedReadHalf,
    open: Sealer,
    /// How long to wait for the start of a record (`None`: for ever); then the lane ends as
    /// if closed.
    idle: Option<Duration>,
}

/// The writing half of a lane.
pub struct LaneWriter {
    /// Unbuffered: each record goes out in one vectored write (its length, then its bytes).
    io: OwnedWriteHalf,
    seal: Sealer,
}

/// Both halves of one lane.
pub struct Lane {
    /// Records from the other end.
    pub reader: LaneReader,
    /// Records to it.
    pub writer: LaneWriter,
}

impl LaneReader {
    /// Reads one message; `Ok(None)` at a clean end (or, on a server, after [`IDLE`] without
    /// a request).
    pub async fn read_message(&mut self) -> Result<Option<Message>, StreamError> {
        let mut header = [0u8; 4];
        let first = self.io.read_exact(&mut header);
        let read = match self.idle {
            Some(idle) => match tokio::time::timeout(idle, first).await {
                Ok(r) => r,
                Err(_) => return Ok(None),
            },
            None => first.await,
        };
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let word = u32::from_be_bytes(header);
        let is_blob = word & BLOB_RECORD != 0;
        let len = (word & !BLOB_RECORD) as usize;
        let least = if is_blob {
            BLOB_TRAILER + TAG_LEN
        } else {
            TAG_LEN + 1
        };
        if !(least..=MAX_RECORD).contains(&len) {
            return Err(StreamError::Violation(format!(
                "a lane record of {len} bytes ({least} to {MAX_RECORD})"
            )));
        }
        if is_blob {
            return self.read_blob(header, len).await.map(Some);
        }
        // Into spare capacity of a kept buffer (crate::buffers): no zeroing, no fresh pages.
        let mut buf = crate::buffers::take(len);
        self.read_into(&mut buf, len).await?;
        let nonce = self.open.nonce();
        let plain_len = self
            .open
            .key
            .open_in_place(nonce, Aad::from(header), &mut buf)
            .map_err(|_| refused())?
            .len();
        buf.truncate(plain_len);
        let msg = Message::decode(&buf)?;
        crate::buffers::give(buf);
        if matches!(msg, Message::Blob { .. }) {
            return Err(StreamError::Violation(
                "a blob in a message record of a lane".into(),
            ));
        }
        Ok(Some(msg))
    }

    /// A blob's record of `len` bytes: its sealed part opened, the rest of the blob read
    /// after the head into one kept buffer.
    async fn read_blob(&mut self, header: [u8; 4], len: usize) -> Result<Message, StreamError> {
        let sealed_len = len.min(SEALED_BLOB_PART);
        let mut sealed = [0u8; SEALED_BLOB_PART];
        stalled(self.io.read_exact(&mut sealed[..sealed_len])).await?;
        let nonce = self.open.nonce();
        let plain = self
            .open
            .key
            .open_in_place(nonce, Aad::from(header), &mut sealed[..sealed_len])
            .map_err(|_| refused())?;
        let head_len = plain.len() - BLOB_TRAILER;
        let blob_len = head_len + (len - sealed_len);
        if blob_len > MAX_BLOB_LEN {
            return Err(StreamError::Violation(format!(
                "a blob of {blob_len} bytes (at most {MAX_BLOB_LEN})"
            )));
        }
        let mut req = [0u8; 8];
        req.copy_from_slice(&plain[head_len..head_len + 8]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&plain[head_len + 8..]);
        let mut data = crate::buffers::take(blob_len);
        data.extend_from_slice(&plain[..head_len]);
        self.read_into(&mut data, blob_len).await?;
        Ok(Message::Blob {
            req: u64::from_be_bytes(req),
            id: ChunkId::from_bytes(id),
            data,
        })
    }

    /// Reads until `buf` holds `len` bytes, into its spare capacity.
    async fn read_into(&mut self, buf: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
        stalled(async {
            while buf.len() < len {
                let want = len - buf.len();
                if (&mut self.io).take(want as u64).read_buf(buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok(())
        })
        .await
    }
}

fn refused() -> StreamError {
    StreamError::Violation("a lane record failed authentication".into())
}

/// `io`, or a `TimedOut` error after [`STALL`].
async fn stalled<T>(
    io: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(STALL, io)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

impl LaneWriter {
    /// The connection under the lane, to send it unsealed bytes (tests of hostile input).
    #[cfg(test)]
    pub(super) fn raw_for_tests(&mut self) -> &mut OwnedWriteHalf {
        &mut self.io
    }

    /// Seals and sends one message: a blob as its sealed head and the rest as it is, where it
    /// lies; anything else sealed whole.
    pub async fn send(&mut self, msg: Message) -> Result<(), StreamError> {
        let too_large = || StreamError::Violation("a message too large for a lane".into());
        let nonce = self.seal.nonce();
        match msg {
            Message::Blob { req, id, data } => {
                let head_len = data.len().min(BLOB_HEADER_LEN);
                let plain_len = head_len + BLOB_TRAILER;
                let mut sealed = [0u8; SEALED_BLOB_PART];
                sealed[..head_len].copy_from_slice(&data[..head_len]);
                sealed[head_len..head_len + 8].copy_from_slice(&req.to_be_bytes());
                sealed[head_len + 8..plain_len].copy_from_slice(id.as_bytes());
                let len = u32::try_from(plain_len + TAG_LEN + (data.len() - head_len))
                    .ok()
                    .filter(|l| *l as usize <= MAX_RECORD)
                    .ok_or_else(too_large)?;
                let header = (len | BLOB_RECORD).to_be_bytes();
                let tag = self
                    .seal
                    .key
                    .seal_in_place_separate_tag(nonce, Aad::from(header), &mut sealed[..plain_len])
                    .map_err(|_| sealing_failed())?;
                sealed[plain_len..plain_len + TAG_LEN].copy_from_slice(tag.as_ref());
                let sealed = &sealed[..plain_len + TAG_LEN];
                self.write(&mut [
                    IoSlice::new(&header),
                    IoSlice::new(sealed),
                    IoSlice::new(&data[head_len..]),
                ])
                .await?;
                crate::buffers::give(data);
            }
            other => {
                let mut buf = other.encode();
                buf.reserve_exact(TAG_LEN);
                let len = u32::try_from(buf.len() + TAG_LEN)
                    .ok()
                    .filter(|l| *l as usize <= MAX_RECORD)
                    .ok_or_else(too_large)?;
                let header = len.to_be_bytes();
                self.seal
                    .key
                    .seal_in_place_append_tag(nonce, Aad::from(header), &mut buf)
                    .map_err(|_| sealing_failed())?;
                self.write(&mut [IoSlice::new(&header), IoSlice::new(&buf)])
                    .await?;
            }
        }
        Ok(())
    }

    /// One record's parts in as few system calls as the socket takes (and one segment, up to
    /// the MTU, for a small record): no copy into a buffer, no 4-byte write of the length
    /// alone ahead of a large record.
    async fn write(&mut self, parts: &mut [IoSlice<'_>]) -> std::io::Result<()> {
        stalled(async {
            let mut left = parts;
            while !left.is_empty() {
                let n = self.io.write_vectored(left).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                IoSlice::advance_slices(&mut left, n);
            }
            Ok(())
        })
        .await
    }
}

fn sealing_failed() -> StreamError {
    StreamError::Violation("sealing a lane record failed".into())
}

/// A pending lane: the ticket's peer and keys.
struct Pending {
    peer: PeerId,
    keys: Keys,
    expires: Instant,
}

/// A node's lanes: the listener it serves them on, tickets handed out, and (as a fetcher)
/// idle lanes to reuse and peers whose lane could not be had.
#[derive(Default)]
pub struct Lanes {
    /// The listener, until [`super::chunks::serve`] takes it.
    listener: Mutex<Option<std::net::TcpListener>>,
    /// Its port (0: no lanes served).
    port: u16,
    pending: Mutex<HashMap<[u8; 32], Pending>>,
    idle: Mutex<HashMap<PeerId, Vec<(Lane, Instant)>>>,
    /// Peers whose lane could not be had: when it last failed, and how many times in a row.
    failed: Mutex<HashMap<PeerId, (Instant, u32)>>,
    /// Lanes this node set up as a fetcher.
    opened: std::sync::atomic::AtomicU64,
    /// Whether this node asks peers for lanes.
    pub use_lanes: bool,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("port", &self.port)
            .field("use_lanes", &self.use_lanes)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where to listen for lanes, given the node's listen addresses: the first one's IP, at
/// `port`.
pub fn bind_addr(listen: &[Multiaddr], port: u16) -> Option<SocketAddr> {
    listen.iter().find_map(|a| {
        a.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(SocketAddr::new(IpAddr::V4(ip), port)),
            Protocol::Ip6(ip) => Some(SocketAddr::new(IpAddr::V6(ip), port)),
            _ => None,
        })
    })
}

impl Lanes {
    /// Lanes served on `bind` (`None`: none served) and asked for from peers (`use_lanes`).
    /// A bind that fails is logged and leaves lanes unserved: libp2p streams still work.
    pub fn new(bind: Option<SocketAddr>, use_lanes: bool) -> Self {
        let listener = bind.and_then(|addr| {
            let l =
                std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l));
            match l {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(%addr, "no bulk lanes (chunks go over libp2p streams): {e}");
                    None
                }
            }
        });
        let port = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());
        Self {
            listener: Mutex::new(listener),
            port,
            use_lanes,
            ..Self::default()
        }
    }

    /// How many lanes this node has set up as a fetcher (kept ones reused are not counted
    /// again).
    pub fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The port lanes are served on (0: none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The listener, once (the chunk server takes it).
    pub(super) fn take_listener(&self) -> Option<tokio::net::TcpListener> {
        let l = lock(&self.listener).take()?;
        tokio::net::TcpListener::from_std(l)
            .inspect_err(|e| tracing::warn!("no bulk lanes: {e}"))
            .ok()
    }

    /// Answers a fetcher's setup stream: an offer with a fresh ticket, or "no lane".
    pub(super) async fn offer(&self, peer: PeerId, me: PeerId, mut stream: libp2p::Stream) {
        let answer = async {
            let mut hello = [0u8; 33];
            stream.read_exact(&mut hello).await?;
            let reply = self.ticket_for(peer, me, &hello)?;
            stream.write_all(&reply).await?;
            stream.close().await
        };
        match tokio::time::timeout(SETUP_TIMEOUT, answer).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(%peer, "lane setup failed: {e}"),
            Err(_) => tracing::debug!(%peer, "lane setup timed out"),
        }
    }

    /// The answer to a setup's hello: an offer (a ticket noted for `peer`) or "no lane".
    fn ticket_for(&self, peer: PeerId, me: PeerId, hello: &[u8; 33]) -> std::io::Result<[u8; 35]> {
        let mut reply = [0u8; 35];
        let mut pending = lock(&self.pending);
        let now = Instant::now();
        pending.retain(|_, p| p.expires > now);
        let of_peer = pending.values().filter(|p| p.peer == peer).count();
        if hello[0] != VERSION
            || self.port == 0
            || pending.len() >= MAX_PENDING
            || of_peer >= MAX_PENDING_PER_PEER
        {
            return Ok(reply);
        }
        let mut server_random = [0u8; 32];
        getrandom::getrandom(&mut server_random)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut client_random = [0u8; 32];
        client_random.copy_from_slice(&hello[1..]);
        let keys = Keys::derive(&client_random, &server_random, &peer, &me);
        reply[0] = 1;
        reply[1..3].copy_from_slice(&self.port.to_be_bytes());
        reply[3..].copy_from_slice(&server_random);
        pending.insert(
            keys.ticket,
            Pending {
                peer,
                keys,
                expires: now + TICKET_TTL,
            },
        );
        Ok(reply)
    }

    /// Takes a TCP connection to the lane port: its ticket names the peer and keys. `None`
    /// (the connection dropped) for an unknown, used or expired ticket.
    pub(super) async fn accept(&self, tcp: tokio::net::TcpStream) -> Option<(PeerId, Lane)> {
        let from = tcp.peer_addr().ok();
        let setup = async {
            let _ = tcp.set_nodelay(true);
            let mut tcp = tcp;
            let mut ticket = [0u8; 32];
            tcp.read_exact(&mut ticket).await.ok()?;
            let pending = lock(&self.pending).remove(&ticket)?;
            if pending.expires < Instant::now() {
                return None;
            }
            tcp.write_all(&[1]).await.ok()?;
            let lane = Lane::over(tcp, &pending.keys.up, &pending.keys.down, Some(IDLE)).ok()?;
            Some((pending.peer, lane))
        };
        let lane = tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .ok()
            .flatten();
        if lane.is_none() {
            tracing::debug!(?from, "lane connection without a good ticket dropped");
        }
        lane
    }

    /// An idle lane to `peer`, if one was kept.
    fn reuse(&self, peer: &PeerId) -> Option<Lane> {
        let mut idle = lock(&self.idle);
        let lanes = idle.get_mut(peer)?;
        let now = Instant::now();
        lanes.retain(|(_, at)| now.duration_since(*at) < POOL_IDLE);
        lanes.pop().map(|(lane, _)| lane)
    }

    /// Keeps a lane whose fetch ended with nothing in flight, for the next fetch.
    pub(super) fn put_back(&self, peer: PeerId, lane: Lane) {
        let mut idle = lock(&self.idle);
        let lanes = idle.entry(peer).or_default();
        if lanes.len() < POOL_PER_PEER {
            lanes.push((lane, Instant::now()));
        }
    }

    fn failed_lately(&self, peer: &PeerId) -> bool {
        lock(&self.failed)
            .get(peer)
            .is_some_and(|(at, times)| at.elapsed() < retry_after(*times))
    }

    fn note_failure(&self, peer: PeerId) {
        let mut failed = lock(&self.failed);
        let times = failed.get(&peer).map_or(0, |(_, n)| *n);
        failed.insert(peer, (Instant::now(), times.saturating_add(1)));
    }
}

impl Lane {
    fn over(
        tcp: tokio::net::TcpStream,
        read_key: &[u8; 32],
        write_key: &[u8; 32],
        idle: Option<Duration>,
    ) -> Result<Self, StreamError> {
        let (r, w) = tcp.into_split();
        Ok(Self {
            reader: LaneReader {
                io: r,
                open: Sealer::new(read_key)?,
                idle,
            },
            writer: LaneWriter {
                io: w,
                seal: Sealer::new(write_key)?,
            },
        })
    }
}

/// The IP of a direct connection to `peer`, if the node has one.
async fn direct_ip(handle: &super::Handle, peer: &PeerId) -> Option<IpAddr> {
    let peers = handle.peers().await.ok()?;
    let info = peers.into_iter().find(|p| p.peer == *peer)?;
    info.connections
        .iter()
        .filter(|c| !c.relayed)
        .find_map(|c| {
            c.addr.iter().find_map(|p| match p {
                Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            })
        })
}

/// A lane to `peer` for a fetch: a kept one, or a new one; `None` when the node does not use
/// lanes or the peer offers none (the fetch then uses a libp2p stream).
pub(super) async fn open(handle: &super::Handle, peer: PeerId) -> Option<Lane> {
    let lanes = &handle.lanes;
    if !lanes.use_lanes || lanes.failed_lately(&peer) {
        return None;
    }
    if let Some(lane) = lanes.reuse(&peer) {
        return Some(lane);
    }
    // Not a failure to remember: a relayed connection may turn direct by hole punching.
    let ip = direct_ip(handle, &peer).await?;
    match tokio::time::timeout(SETUP_TIMEOUT * 2, set_up(handle, peer, ip)).await {
        Ok(Ok(lane)) => {
            lock(&lanes.failed).remove(&peer);
            lanes
                .opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(lane)
        }
        Ok(Err(why)) => {
            tracing::debug!(%peer, "no bulk lane, using a libp2p stream: {why}");
            lanes.note_failure(peer);
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "no bulk lane (setup timed out), using a libp2p stream");
            lanes.note_failure(peer);
            None
        }
    }
}

/// The wait before trying a lane again after `times` failures in a row.
fn retry_after(times: u32) -> Duration {
    RETRY_AFTER
        .saturating_mul(1 << times.saturating_sub(1).min(16))
        .min(RETRY_AT_MOST)
}

async fn set_up(handle: &super::Handle, peer: PeerId, ip: IpAddr) -> Result<Lane, String> {
    let mut stream = handle
        .control()
        .open_stream(peer, PROTOCOL)
        .await
        .map_err(|e| e.to_string())?;
    let mut client_random = [0u8; 32];
    getrandom::getrandom(&mut client_random).map_err(|e| e.to_string())?;
    let mut hello = [0u8; 33];
    hello[0] = VERSION;
    hello[1..].copy_from_slice(&client_random);
    stream.write_all(&hello).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut reply = [0u8; 35];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    if reply[0] != 1 {
        return Err("the peer offers no lane".into());
    }
    let port = u16::from_be_bytes([reply[1], reply[2]]);
    let mut server_random = [0u8; 32];
    server_random.copy_from_slice(&reply[3..]);
    let keys = Keys::derive(&client_random, &server_random, &handle.peer_id, &peer);
    let mut tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(SocketAddr::new(ip, port)),
    )
    .await
    .map_err(|_| format!("connecting to {ip} port {port}: timed out"))?
    .map_err(|e| format!("connecting to {ip} port {port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tcp.write_all(&keys.ticket)
        .await
        .map_err(|e| e.to_string())?;
    let mut ok = [0u8; 1];
    tcp.read_exact(&mut ok)
        .await
        .map_err(|e| format!("the peer did not take the ticket: {e}"))?;
    if ok[0] != 1 {
        return Err("the peer did not take the ticket".into());
    }
    // A fetcher reads only while answers are due: a silence of `STALL` is a cut.
    Lane::over(tcp, &keys.down, &keys.up, Some(STALL)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::chunks::tests::samples;

    fn pair(a: &PeerId, b: &PeerId) -> (Keys, Keys) {
        let (c, s) = ([1u8; 32], [2u8; 32]);
        (Keys::derive(&c, &s, a, b), Keys::derive(&c, &s, a, b))
    }

    async fn connected(up: &[u8; 32], down: &[u8; 32]) -> (Lane, Lane) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let fetcher = Lane::over(a.unwrap(), down, up, None).unwrap();
        let server = Lane::over(b.unwrap().0, up, down, None).unwrap();
        (fetcher, server)
    }

    #[tokio::test]
    async fn every_message_crosses_a_lane_unchanged_both_ways() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (k, _) = pair(&a, &b);
        let (mut fetcher, mut server) = connected(&k.up, &k.down).await;
        for msg in samples() {
            fetcher.writer.send(msg.clone()).await.unwrap();
            assert_eq!(
                server.reader.read_message().await.unwrap(),
                Some(msg.clone())
            );
            server.writer.send(msg.clone()).await.unwrap();
            assert_eq!(fetcher.reader.read_message().await.unwrap(), Some(msg));
        }
        drop(server);
        assert_eq!(fetcher.reader.read_message().await.unwrap(), None);
    }

    #[test]
    fn both_ends_derive_the_same_keys_and_different_ones_per_direction_and_pair() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (k1, k2) = pair(&a, &b);
        assert_eq!((k1.up, k1.down, k1.ticket), (k2.up, k2.down, k2.ticket));
        assert_ne!(k1.up, k1.down);
        assert_ne!(k1.ticket, k1.up);
        let other = Keys::derive(&[1; 32], &[2; 32], &a, &c);
        assert_ne!(other.up, k1.up);
        let swapped = Keys::derive(&[1; 32], &[2; 32], &b, &a);
        assert_ne!(swapped.up, k1.up);
    }

    /// The bytes one message makes on the wire of a lane with key `up`.
    async fn record_of(msg: Message, up: &[u8; 32], down: &[u8; 32]) -> Vec<u8> {
        let mut record = Vec::new();
        let (mut fetcher, server) = connected(up, down).await;
        fetcher.writer.send(msg).await.unwrap();
        drop(fetcher);
        let mut raw = server.reader.io;
        raw.read_to_end(&mut record).await.unwrap();
        record
    }

    /// What a lane keyed `key` reads from `bytes`.
    async fn replay(bytes: Vec<u8>, key: [u8; 32]) -> Result<Option<Message>, StreamError> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let mut a = a.unwrap();
        a.write_all(&bytes).await.unwrap();
        drop(a);
        let mut lane = Lane::over(b.unwrap().0, &key, &key, None).unwrap();
        lane.reader.read_message().await
    }

    /// A real chunk's blob and id.
    fn real_blob() -> (ChunkId, Vec<u8>) {
        use harp_protocol::blob::{self, BlobKind};
        let keys = harp_protocol::keys::FolderKey::from_bytes([4; 32]).schedule();
        let plain: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        blob::seal(&keys, BlobKind::Chunk, &plain).unwrap()
    }

    #[tokio::test]
    async fn a_blob_s_record_hides_its_nonce_and_ids_and_a_changed_body_fails_the_id_check() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (k, _) = pair(&a, &b);
        let (id, blob) = real_blob();
        let req = 0x0123_4567_89ab_cdef_u64;
        let msg = Message::Blob {
            req,
            id,
            data: blob.clone(),
        };
        let record = record_of(msg.clone(), &k.up, &k.down).await;
        assert_eq!(
            record.len(),
            4 + SEALED_BLOB_PART + blob.len() - BLOB_HEADER_LEN
        );
        // On the wire: the blob's ciphertext after its head, as it is ...
        assert_eq!(&record[4 + SEALED_BLOB_PART..], &blob[BLOB_HEADER_LEN..]);
        // ... but not its nonce (without which no one can compute its id), nor the ids.
        let sealed = &record[..4 + SEALED_BLOB_PART];
        let holds = |needle: &[u8]| sealed.windows(needle.len()).any(|w| w == needle);
        assert!(!holds(&blob[2..BLOB_HEADER_LEN]));
        assert!(!holds(id.as_bytes()));
        assert!(!holds(&req.to_be_bytes()));
        assert_eq!(replay(record.clone(), k.up).await.unwrap(), Some(msg));
        // A flipped bit in the body reaches the reader, whose blob then fails the check
        // every fetcher makes of every blob before anything else.
        let mut flipped = record.clone();
        flipped[4 + SEALED_BLOB_PART + 1000] ^= 1;
        let Ok(Some(Message::Blob { id: got, data, .. })) = replay(flipped, k.up).await else {
            panic!("a changed body still reads as a blob");
        };
        assert_eq!(got, id);
        assert_ne!(data, blob);
        assert!(harp_protocol::blob::CheckedBlob::check(got, data).is_err());
        // A flipped bit in the sealed head or trailer, or in the length's blob bit.
        for at in [4 + 10, 4 + BLOB_HEADER_LEN + 3, 4 + SEALED_BLOB_PART - 1] {
            let mut flipped = record.clone();
            flipped[at] ^= 1;
            assert!(
                matches!(replay(flipped, k.up).await, Err(StreamError::Violation(_))),
                "byte {at}"
            );
        }
        let mut unflagged = record.clone();
        unflagged[0] ^= 0x80;
        assert!(matches!(
            replay(unflagged, k.up).await,
            Err(StreamError::Violation(_))
        ));
        // A blob too short to have a head crosses whole, sealed.
        let short = Message::Blob {
            req: 9,
            id,
            data: vec![5; 7],
        };
        let record = record_of(short.clone(), &k.up, &k.down).await;
        assert_eq!(record.len(), 4 + 7 + BLOB_TRAILER + TAG_LEN);
        assert!(!record.windows(7).any(|w| w == [5; 7]));
        assert_eq!(replay(record, k.up).await.unwrap(), Some(short));
    }

    #[tokio::test]
    async fn a_flipped_bit_a_replayed_record_or_a_wrong_key_is_refused() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (k, _) = pair(&a, &b);
        // A real record's bytes: a message, sealed whole.
        let want = Message::Want {
            req: 5,
            folder: harp_protocol::ids::FolderId::from_bytes([1; 16]),
            ids: vec![ChunkId::from_bytes([7; 32]); wire::MAX_WANT],
        };
        let record = record_of(want, &k.up, &k.down).await;
        assert!(record.len() > 30_000);
        // As sent, it opens.
        assert!(matches!(
            replay(record.clone(), k.up).await,
            Ok(Some(Message::Want { .. }))
        ));
        // A flipped bit in the body or in the length.
        let mut flipped = record.clone();
        flipped[1000] ^= 1;
        assert!(matches!(
            replay(flipped, k.up).await,
            Err(StreamError::Violation(_))
        ));
        let mut longer = record.clone();
        longer[3] ^= 1;
        longer.push(0);
        assert!(replay(longer, k.up).await.is_err());
        // The blob bit set on a message's record: its sealed part does not open.
        let mut flagged = record.clone();
        flagged[0] ^= 0x80;
        assert!(matches!(
            replay(flagged, k.up).await,
            Err(StreamError::Violation(_))
        ));
        // A blob in a message's record (only a sender that breaks the format makes one).
        let mut sealer = Sealer::new(&k.up).unwrap();
        let mut body = samples()[0].encode();
        let header = u32::try_from(body.len() + TAG_LEN).unwrap().to_be_bytes();
        let nonce = sealer.nonce();
        sealer
            .key
            .seal_in_place_append_tag(nonce, Aad::from(header), &mut body)
            .unwrap();
        let smuggled = [&header[..], &body].concat();
        assert!(matches!(
            replay(smuggled, k.up).await,
            Err(StreamError::Violation(_))
        ));
        // Another key (another lane's, or the other direction's).
        assert!(matches!(
            replay(record.clone(), k.down).await,
            Err(StreamError::Violation(_))
        ));
        // The same record twice: the second has the wrong number.
        let mut twice = record.clone();
        twice.extend_from_slice(&record);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let mut c = c.unwrap();
        c.write_all(&twice).await.unwrap();
        let mut lane = Lane::over(s.unwrap().0, &k.up, &k.up, None).unwrap();
        assert!(lane.reader.read_message().await.unwrap().is_some());
        assert!(matches!(
            lane.reader.read_message().await,
            Err(StreamError::Violation(_))
        ));
        // An oversized length is refused before anything is read or allocated.
        let huge = [0xffu8, 0xff, 0xff, 0xff];
        assert!(matches!(
            replay(huge.to_vec(), k.up).await,
            Err(StreamError::Violation(_))
        ));
    }

    #[test]
    fn a_peer_whose_lane_keeps_failing_is_asked_less_and_less_often() {
        assert_eq!(retry_after(1), RETRY_AFTER);
        assert_eq!(retry_after(2), RETRY_AFTER * 2);
        assert_eq!(retry_after(3), RETRY_AFTER * 4);
        assert_eq!(retry_after(9), RETRY_AT_MOST);
        assert_eq!(retry_after(u32::MAX), RETRY_AT_MOST);
        let lanes = Lanes::new(None, true);
        let peer = PeerId::random();
        assert!(!lanes.failed_lately(&peer));
        lanes.note_failure(peer);
        lanes.note_failure(peer);
        assert!(lanes.failed_lately(&peer));
        assert_eq!(lock(&lanes.failed)[&peer].1, 2);
    }

    #[test]
    fn tickets_are_handed_out_within_bounds_and_only_for_this_version() {
        let lanes = Lanes::new(Some("127.0.0.1:0".parse().unwrap()), true);
        assert_ne!(lanes.port(), 0);
        let (me, peer) = (PeerId::random(), PeerId::random());
        let hello = |v: u8| {
            let mut h = [9u8; 33];
            h[0] = v;
            h
        };
        // Another version's records differ: its peer gets no lane, and a libp2p stream.
        assert_eq!(
            lanes.ticket_for(peer, me, &hello(VERSION - 1)).unwrap()[0],
            0
        );
        assert_eq!(
            lanes.ticket_for(peer, me, &hello(VERSION + 1)).unwrap()[0],
            0
        );
        for _ in 0..MAX_PENDING_PER_PEER {
            let offer = lanes.ticket_for(peer, me, &hello(VERSION)).unwrap();
            assert_eq!(offer[0], 1);
            assert_eq!(u16::from_be_bytes([offer[1], offer[2]]), lanes.port());
        }
        // One peer cannot take every ticket; another still gets one.
        assert_eq!(lanes.ticket_for(peer, me, &hello(VERSION)).unwrap()[0], 0);
        let other = PeerId::random();
        assert_eq!(lanes.ticket_for(other, me, &hello(VERSION)).unwrap()[0], 1);
        // A node that serves no lanes offers none.
        let off = Lanes::new(None, true);
        assert_eq!(
            off.ticket_for(peer, me, &hello(VERSION)).unwrap(),
            [0u8; 35]
        );
    }

    #[test]
    fn the_lane_listens_on_the_first_listen_address_ip() {
        let listen: Vec<Multiaddr> = vec![
            "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
            "/ip4/0.0.0.0/tcp/0".parse().unwrap(),
        ];
        assert_eq!(bind_addr(&listen, 7), Some("127.0.0.1:7".parse().unwrap()));
        assert_eq!(bind_addr(&[], 7), None);
    }
}
