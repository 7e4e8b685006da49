//! The network node: libp2p over QUIC and TCP, and the chunk exchange.
//!
//! # Shape
//! An [`EventLoop`] owns the libp2p `Swarm` and runs one `select!` loop over swarm events and
//! commands; a cloneable [`Handle`] sends it commands with a `oneshot` reply. Every channel is
//! bounded. Chunk streams do not go through the loop: [`chunks`] opens and accepts them with
//! `libp2p-stream`'s `Control`, so bulk data never waits behind swarm events.
//!
//! # Behaviours
//! Identify (addresses and agent), Ping (liveness, RTT), mDNS (peers on the same LAN),
//! Kademlia (`/harp/kad/1.0.0`, peer routing), AutoNAT (are we reachable?), the circuit relay
//! v2 client (reachability through a public `harp relay`) and, in relay mode, the relay server,
//! DCUtR (hole punching: upgrade a relayed connection to a direct one), and the stream
//! behaviour that carries `/harp/chunks/1` ([`chunks`]).
//!
//! # Identity
//! The device key is the libp2p identity: a [`DeviceId`] and a `PeerId` are the same Ed25519
//! public key, so the transport's authentication (Noise) tells the chunk server which device
//! asks, and membership checks need nothing more.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use harp_protocol::ids::DeviceId;
use libp2p::core::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, identify, identity, kad, mdns, noise,
    ping, relay, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

pub mod checkpoints;
pub mod chunks;
pub mod early;
pub mod frame;
pub mod lane;
pub mod limit;
pub mod meta;
pub mod source;
#[cfg(test)]
mod tests;

/// The Kademlia protocol of Harp's DHT (separate from IPFS's).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/harp/kad/1.0.0");
/// Identify's protocol version string.
pub const PROTOCOL_VERSION: &str = "/harp/1.0.0";

/// Errors of the network node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Building the transport or a behaviour failed.
    #[error("network setup: {0}")]
    Setup(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Dialing failed.
    #[error("cannot reach {addr}: {reason}")]
    Dial {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The event loop is gone.
    #[error("the network node stopped")]
    Stopped,
}

/// How to run the node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/udp/0/quic-v1` and `/ip4/0.0.0.0/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Public relays (with `/p2p/<id>`): the node reserves a slot on each, so peers behind
    /// other NATs can reach it, and hole punching can start from there.
    pub relays: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Serve as a relay for others (`harp relay`).
    pub relay_server: bool,
    /// Upgrade relayed connections to direct ones by hole punching (DCUtR). Off only to
    /// force traffic through a relay (tests, or networks that punish the attempt).
    pub hole_punching: bool,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Chunk bytes per second this node sends, and receives (0: unlimited).
    pub max_send_bytes_per_sec: u64,
    /// See `max_send_bytes_per_sec`.
    pub max_recv_bytes_per_sec: u64,
    /// Move chunks over bulk lanes where a direct connection allows ([`lane`]): serve them,
    /// and ask peers for them.
    pub bulk_lanes: bool,
    /// The TCP port lanes are served on (0: any free one), on the first listen address's IP.
    pub bulk_lane_port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            relays: Vec::new(),
            mdns: true,
            relay_server: false,
            hole_punching: true,
            idle_timeout: Duration::from_secs(60),
            max_send_bytes_per_sec: 0,
            max_recv_bytes_per_sec: 0,
            bulk_lanes: true,
            bulk_lane_port: 0,
        }
    }
}

mod behaviour {
    // The derive generates a public event enum without docs.
    #![allow(missing_docs)]

    use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
    use libp2p::{autonat, dcutr, identify, kad, mdns, ping, relay};

    /// All behaviours of a Harp node.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        pub(super) identify: identify::Behaviour,
        pub(super) ping: ping::Behaviour,
        pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
        pub(super) kad: kad::Behaviour<kad::store::MemoryStore>,
        pub(super) autonat: autonat::Behaviour,
        pub(super) relay_client: relay::client::Behaviour,
        pub(super) relay_server: Toggle<relay::Behaviour>,
        pub(super) dcutr: Toggle<dcutr::Behaviour>,
        pub(super) stream: libp2p_stream::Behaviour,
    }
}
pub use behaviour::{Behaviour, BehaviourEvent};

/// The relay server's limits. libp2p's defaults (128 KiB and 2 minutes per circuit) suit a
/// relay that only helps peers meet for hole punching; Harp's relay is also the fallback data
/// path when no direct connection is possible (symmetric NATs, UDP blocked), so circuits carry
/// any number of bytes (they are end-to-end encrypted: Noise between the peers, and the blobs
/// themselves) and last an hour before the peers re-establish them.
fn relay_config() -> relay::Config {
    relay::Config {
        max_circuit_bytes: 0,
        max_circuit_duration: Duration::from_secs(3600),
        ..relay::Config::default()
    }
}

/// The libp2p key of a device key seed.
pub fn keypair(device_seed: [u8; 32]) -> Result<identity::Keypair, Error> {
    let mut seed = device_seed;
    identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| Error::Setup(e.to_string()))
}

/// The device behind a peer id (every Harp peer is an Ed25519 identity).
pub fn device_of(peer: &PeerId) -> Option<DeviceId> {
    DeviceId::from_peer_id_bytes(&peer.to_bytes()).ok()
}

/// The peer id of a device.
pub fn peer_of(device: &DeviceId) -> Option<PeerId> {
    PeerId::from_bytes(&device.to_peer_id_bytes()).ok()
}

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Whether an address is direct TCP to a host on this machine or a local network
/// (loopback, RFC 1918 / unique-local, link-local).
fn is_local_tcp(addr: &Multiaddr) -> bool {
    let mut ip = None;
    let mut tcp = false;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a.is_loopback() || a.is_private() || a.is_link_local()),
            Protocol::Ip6(a) => {
                let first = a.segments()[0];
                // fc00::/7 unique-local, fe80::/10 link-local.
                ip = Some(
                    a.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80,
                )
            }
            Protocol::Tcp(_) => tcp = true,
            Protocol::P2pCircuit | Protocol::QuicV1 | Protocol::Udp(_) => return false,
            _ => {}
        }
    }
    tcp && ip == Some(true)
}

/// `addrs` in the order to dial them one by one: direct TCP on a local network first, then
/// the other direct addresses as given, relayed ones last.
///
/// Why TCP first on a LAN: bulk transfers cost much less CPU over TCP here (the kernel moves
/// 64 KiB segments where QUIC seals ~1.4 KB datagrams, with ChaCha20 because libp2p-tls
/// prefers it): a raw stream 441 MB/s in 4.3 CPU-s per GiB against 281 MB/s in 7.3 over QUIC,
/// and a new 1 GiB file synced in 7.5-9.6 s against 10.2-10.7 (docs/benchmarks.md). Syncthing
/// ranks its connections the same way. Across the internet the order is left alone: QUIC
/// punches through NATs more often than TCP.
pub fn in_dial_order(mut addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    addrs.sort_by_key(|a| match (is_relayed(a), is_local_tcp(a)) {
        (true, _) => 2,
        (false, true) => 0,
        (false, false) => 1,
    });
    addrs
}

/// One open connection to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The remote address.
    pub addr: Multiaddr,
    /// Through a relay (`/p2p-circuit`) rather than direct.
    pub relayed: bool,
}

/// What the node knows of a connected peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// Its device id.
    pub device: Option<DeviceId>,
    /// Its open connections.
    pub connections: Vec<Connection>,
    /// The last ping round trip.
    pub rtt: Option<Duration>,
    /// Its agent string (from Identify).
    pub agent: Option<String>,
    /// Chunk bytes received from it.
    pub bytes_in: u64,
    /// Chunk bytes sent to it.
    pub bytes_out: u64,
    /// Of those, in and out, the bytes that went over bulk lanes.
    pub lane_bytes: u64,
}

impl PeerInfo {
    /// Whether at least one connection is direct.
    pub fn is_direct(&self) -> bool {
        self.connections.iter().any(|c| !c.relayed)
    }
}

/// Traffic counters shared by the chunk protocol and the event loop.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    per_peer: HashMap<PeerId, (u64, u64)>,
    /// Peers whose only connections are relayed right now.
    relayed_only: HashSet<PeerId>,
    direct_bytes: u64,
    relayed_bytes: u64,
    chunks_verified: u64,
    chunks_rejected: u64,
    /// Chunk bytes (both ways) that went over bulk lanes, in all and per peer.
    lane_bytes: u64,
    lane_per_peer: HashMap<PeerId, u64>,
}

impl StatsInner {
    fn add(&mut self, peer: &PeerId, bytes: u64, inbound: bool) {
        let e = self.per_peer.entry(*peer).or_default();
        if inbound {
            e.0 += bytes;
        } else {
            e.1 += bytes;
        }
        if self.relayed_only.contains(peer) {
            self.relayed_bytes += bytes;
        } else {
            self.direct_bytes += bytes;
        }
    }
}

impl Stats {
    fn with<T>(&self, f: impl FnOnce(&mut StatsInner) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Counts chunk bytes received from (`inbound`) or sent to a peer over a libp2p stream.
    pub fn count(&self, peer: &PeerId, bytes: u64, inbound: bool) {
        self.with(|s| s.add(peer, bytes, inbound));
    }

    /// [`Stats::count`] for bytes that went over a bulk lane: counted as lane bytes too (one
    /// lock per blob, on the hot path).
    pub fn count_lane(&self, peer: &PeerId, bytes: u64, inbound: bool) {
        self.with(|s| {
            s.add(peer, bytes, inbound);
            s.lane_bytes += bytes;
            *s.lane_per_peer.entry(*peer).or_default() += bytes;
        });
    }

    /// Chunk bytes (both ways) exchanged with a peer over bulk lanes.
    pub fn lane_bytes_of(&self, peer: &PeerId) -> u64 {
        self.with(|s| s.lane_per_peer.get(peer).copied().unwrap_or_default())
    }

    /// Chunk bytes (both ways) that went over bulk lanes.
    pub fn lane_bytes(&self) -> u64 {
        self.with(|s| s.lane_bytes)
    }

    /// Counts a received blob that matched its id (`true`) or did not.
    pub fn checked(&self, ok: bool) {
        self.with(|s| {
            if ok {
                s.chunks_verified += 1;
            } else {
                s.chunks_rejected += 1;
            }
        });
    }

    /// Received blobs that matched their id, and those that did not.
    pub fn verified_and_rejected(&self) -> (u64, u64) {
        self.with(|s| (s.chunks_verified, s.chunks_rejected))
    }

    /// Chunk bytes (in, out) exchanged with a peer.
    pub fn of(&self, peer: &PeerId) -> (u64, u64) {
        self.with(|s| s.per_peer.get(peer).copied().unwrap_or_default())
    }

    /// Chunk bytes that went over direct and over relayed connections.
    pub fn direct_and_relayed(&self) -> (u64, u64) {
        self.with(|s| (s.direct_bytes, s.relayed_bytes))
    }

    fn set_relayed_only(&self, peer: PeerId, relayed_only: bool) {
        self.with(|s| {
            if relayed_only {
                s.relayed_only.insert(peer);
            } else {
                s.relayed_only.remove(&peer);
            }
        });
    }
}

enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), Error>>),
    Disconnect(PeerId),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    AddAddress(PeerId, Multiaddr),
}

/// A cloneable handle to the node: each method sends the event loop a command.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Traffic counters.
    pub stats: Arc<Stats>,
    /// Bandwidth limits of chunk traffic.
    pub limits: Arc<limit::Limits>,
    /// Bulk lanes: served, handed out, kept for reuse.
    pub lanes: Arc<lane::Lanes>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Connects to `addr` (which should end in `/p2p/<peer id>`). Cancel-safe: dropping the
    /// future leaves the dial running in the node.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// Closes every connection to `peer` (a peer that sent bad data).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), Error> {
        self.commands
            .send(Command::Disconnect(peer))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Remembers an address of a peer (from the bridge, a config file...).
    pub async fn add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<(), Error> {
        self.commands
            .send(Command::AddAddress(peer, addr))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.ask(Command::Peers).await
    }

    /// The addresses this node listens on (relayed ones included once reserved).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        self.ask(Command::ListenAddrs).await
    }

    /// A stream control for the chunk protocol.
    pub fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }
}

/// The event loop: owns the swarm. Run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    listen_addrs: Vec<Multiaddr>,
    peers: HashMap<PeerId, PeerInfo>,
    connections: HashMap<libp2p::swarm::ConnectionId, PeerId>,
    /// Direct inbound connections: (peer, remote address), to spot ones a restarted peer left.
    inbound: HashMap<libp2p::swarm::ConnectionId, (PeerId, Multiaddr)>,
    pending_dials:
        HashMap<libp2p::swarm::ConnectionId, (Multiaddr, oneshot::Sender<Result<(), Error>>)>,
    stats: Arc<Stats>,
    relay_server: bool,
    /// Relay circuit listeners (reservations) and their listener while one is open.
    reservations: HashMap<Multiaddr, Option<libp2p::core::transport::ListenerId>>,
}

/// How often lost relay reservations are asked for again.
const RESERVE_EVERY: Duration = Duration::from_secs(5);

/// Builds the node: the swarm, its listeners, relay reservations, and the handle.
pub fn start(key: identity::Keypair, config: &Config) -> Result<(Handle, EventLoop), Error> {
    let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());
    let mdns_on = config.mdns;
    let relay_server = config.relay_server;
    let hole_punching = config.hole_punching;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|key, relay_client| {
            let peer = key.public().to_peer_id();
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?)
            } else {
                None
            };
            let mut kad = kad::Behaviour::with_config(
                peer,
                kad::store::MemoryStore::new(peer),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(Some(if relay_server {
                kad::Mode::Server
            } else {
                kad::Mode::Client
            }));
            Ok(Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(PROTOCOL_VERSION.to_owned(), key.public())
                        .with_agent_version(format!("harp/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_secs(5)),
                ),
                mdns: mdns.into(),
                kad,
                autonat: autonat::Behaviour::new(peer, autonat::Config::default()),
                relay_client,
                relay_server: relay_server
                    .then(|| relay::Behaviour::new(peer, relay_config()))
                    .into(),
                dcutr: hole_punching.then(|| dcutr::Behaviour::new(peer)).into(),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    }
    let mut reservations = HashMap::new();
    for relay in &config.relays {
        let circuit = relay.clone().with(Protocol::P2pCircuit);
        let id = swarm
            .listen_on(circuit.clone())
            .map_err(|e| Error::Listen {
                addr: circuit.clone(),
                reason: e.to_string(),
            })?;
        reservations.insert(circuit, Some(id));
    }
    let (tx, rx) = mpsc::channel(64);
    let stats = Arc::new(Stats::default());
    let handle = Handle {
        commands: tx,
        control: swarm.behaviour().stream.new_control(),
        peer_id: *swarm.local_peer_id(),
        stats: stats.clone(),
        limits: Arc::new(limit::Limits {
            send: limit::Bucket::new(config.max_send_bytes_per_sec),
            recv: limit::Bucket::new(config.max_recv_bytes_per_sec),
        }),
        lanes: Arc::new(lane::Lanes::new(
            config
                .bulk_lanes
                .then(|| lane::bind_addr(&config.listen, config.bulk_lane_port))
                .flatten(),
            config.bulk_lanes,
        )),
    };
    Ok((
        handle,
        EventLoop {
            swarm,
            commands: rx,
            listen_addrs: Vec::new(),
            peers: HashMap::new(),
            connections: HashMap::new(),
            inbound: HashMap::new(),
            pending_dials: HashMap::new(),
            stats,
            relay_server,
            reservations,
        },
    ))
}

impl EventLoop {
    /// Runs until every [`Handle`] is dropped.
    pub async fn run(mut self) {
        let mut reserve = tokio::time::interval(RESERVE_EVERY);
        reserve.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => return,
                },
                _ = reserve.tick() => self.renew_reservations(),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial(addr, reply) => {
                let opts = libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
                    .address(addr.clone())
                    .build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Dial {
                            addr,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::AddAddress(peer, addr) => {
                self.swarm.add_peer_address(peer, addr.clone());
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
            Command::Peers(reply) => {
                let list = self
                    .peers
                    .values()
                    .map(|p| {
                        let (bytes_in, bytes_out) = self.stats.of(&p.peer);
                        PeerInfo {
                            bytes_in,
                            bytes_out,
                            lane_bytes: self.stats.lane_bytes_of(&p.peer),
                            ..p.clone()
                        }
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
        }
    }

    /// Asks again for every relay reservation whose listener closed (the relay was down, or
    /// its first path timed out while another would have worked).
    fn renew_reservations(&mut self) {
        let lost: Vec<Multiaddr> = self
            .reservations
            .iter()
            .filter(|(_, l)| l.is_none())
            .map(|(a, _)| a.clone())
            .collect();
        for circuit in lost {
            match self.swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    self.reservations.insert(circuit, Some(id));
                }
                Err(e) => tracing::warn!(%circuit, "cannot reserve on relay: {e}"),
            }
        }
    }

    fn peer(&mut self, peer: PeerId) -> &mut PeerInfo {
        self.peers.entry(peer).or_insert_with(|| PeerInfo {
            peer,
            device: device_of(&peer),
            connections: Vec::new(),
            rtt: None,
            agent: None,
            bytes_in: 0,
            bytes_out: 0,
            lane_bytes: 0,
        })
    }

    fn update_relayed(&mut self, peer: PeerId) {
        let relayed_only = self
            .peers
            .get(&peer)
            .is_some_and(|p| !p.connections.is_empty() && !p.is_direct());
        self.stats.set_relayed_only(peer, relayed_only);
    }

    /// A peer dials us again over the same transport only when it has no connection to us:
    /// it restarted (a kill -9 sends no close), and its older inbound connections are dead.
    /// They would otherwise linger until the idle timeout, and streams opened on them stall.
    fn close_left_behind(&mut self, peer: PeerId, addr: &Multiaddr) {
        let transport = |a: &Multiaddr| {
            a.iter()
                .filter_map(|p| match p {
                    libp2p::core::multiaddr::Protocol::QuicV1 => Some("quic"),
                    libp2p::core::multiaddr::Protocol::Tcp(_) => Some("tcp"),
                    _ => None,
                })
                .last()
        };
        let stale: Vec<_> = self
            .inbound
            .iter()
            .filter(|(_, (p, a))| *p == peer && a != addr && transport(a) == transport(addr))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            tracing::debug!(%peer, "closing a connection the peer left behind");
            self.swarm.close_connection(id);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } if !self.listen_addrs.contains(&address) => {
                // A relay is a public node: its listen addresses are its external addresses
                // (the relay server only accepts reservations once it has one).
                if self.relay_server && !is_relayed(&address) {
                    self.swarm.add_external_address(address.clone());
                }
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address)
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                let addr = endpoint.get_remote_address().clone();
                let relayed = is_relayed(&addr);
                if endpoint.is_listener() && !relayed {
                    self.close_left_behind(peer_id, &addr);
                    self.inbound.insert(connection_id, (peer_id, addr.clone()));
                }
                self.connections.insert(connection_id, peer_id);
                self.peer(peer_id)
                    .connections
                    .push(Connection { addr, relayed });
                self.update_relayed(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.connections.remove(&connection_id);
                self.inbound.remove(&connection_id);
                let addr = endpoint.get_remote_address().clone();
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    if let Some(i) = p.connections.iter().position(|c| c.addr == addr) {
                        p.connections.remove(i);
                    }
                    if p.connections.is_empty() {
                        self.peers.remove(&peer_id);
                    }
                }
                self.update_relayed(peer_id);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(Error::Dial {
                        addr,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.peer(peer_id).agent = Some(info.agent_version.clone());
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.rtt = Some(rtt);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                // Every address is remembered; one dial per peer, trying its addresses one
                // at a time in `in_dial_order` (TCP on the LAN first), so QUIC wins no race.
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    self.swarm.add_peer_address(peer, addr.clone());
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    if self.swarm.is_connected(&peer) {
                        continue;
                    }
                    let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                        .addresses(in_dial_order(addrs))
                        .override_dial_concurrency_factor(
                            std::num::NonZeroU8::MIN, // one address at a time, in order
                        )
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            }
            _ => {}
        }
    }
}
