//! Real libp2p nodes on loopback, in one process: chunk transfer, membership, hostile peers.
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::AsyncWriteExt;
use harp_protocol::blob::{self, BlobKind};
use harp_protocol::ids::{ChunkId, DeviceId, FolderId};
use harp_protocol::keys::FolderKey;
use harp_protocol::wire::Message;
use libp2p::Multiaddr;
use tokio::sync::mpsc;

use super::chunks::{self, BlobSource, PROTOCOL};
use super::source::LocalSource;
use super::{Config, Handle, keypair, start};
use crate::index::Index;
use crate::scan::{self, Folder};

fn config() -> Config {
    Config {
        listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
        mdns: false,
        ..Config::default()
    }
}

async fn node(seed: u8) -> (Handle, Multiaddr) {
    node_with(seed, config()).await
}

async fn node_with(seed: u8, config: Config) -> (Handle, Multiaddr) {
    let (handle, event_loop) = start(keypair([seed; 32]).unwrap(), &config).unwrap();
    tokio::spawn(event_loop.run());
    let addr = loop {
        if let Some(a) = handle.listen_addrs().await.unwrap().into_iter().next() {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let addr = addr.with(libp2p::core::multiaddr::Protocol::P2p(handle.peer_id));
    (handle, addr)
}

fn device(seed: u8) -> DeviceId {
    DeviceId::of_signing_key(&SigningKey::from_bytes(&[seed; 32]))
}

struct Shared {
    _dir: tempfile::TempDir,
    folder: Folder,
    ids: Vec<ChunkId>,
    data: Vec<u8>,
}

/// A scanned folder with one 3 MiB file; the source serves it to `members`.
fn folder_source(members: &[DeviceId]) -> (Shared, Arc<LocalSource>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("f");
    std::fs::create_dir_all(&root).unwrap();
    let mut data = vec![0u8; 3 << 20];
    blake3::Hasher::new()
        .update(b"net")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(root.join("a.bin"), &data).unwrap();
    let folder = Folder::new(
        FolderId::from_bytes([5; 16]),
        root,
        FolderKey::from_bytes([6; 32]).schedule(),
    );
    let mut index = Index::in_memory().unwrap();
    scan::scan(
        &mut index,
        &folder,
        &SigningKey::from_bytes(&[1; 32]),
        &scan::Options {
            threads: 2,
            progress: None,
            early: None,
        },
    )
    .unwrap();
    let row = index.file(&folder.id, "a.bin").unwrap().unwrap();
    let mut ids: Vec<ChunkId> = index
        .chunks(&folder.id, &row.file_id)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    ids.push(row.content_root.into());
    let source_folder = Folder::new(
        folder.id,
        folder.root.clone(),
        FolderKey::from_bytes([6; 32]).schedule(),
    );
    let source = LocalSource::new(
        index,
        vec![(source_folder, members.iter().copied().collect())],
    );
    (
        Shared {
            _dir: dir,
            folder,
            ids,
            data,
        },
        Arc::new(source),
    )
}

async fn collect(
    handle: &Handle,
    peers: &[libp2p::PeerId],
    folder: FolderId,
    ids: Vec<ChunkId>,
) -> (chunks::Outcome, Vec<(ChunkId, Vec<u8>)>) {
    let (tx, mut rx) = mpsc::channel(16);
    let gather = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            let b: blob::CheckedBlob = b;
            got.push((b.id(), b.into_bytes()));
        }
        got
    });
    let outcome = chunks::fetch(handle, peers, folder, ids, &tx).await;
    drop(tx);
    (outcome, gather.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_fetches_every_blob_and_a_stranger_is_refused() {
    let (a, _) = node(1).await;
    let (b, b_addr) = node(2).await;
    let (c, _) = node(3).await;
    let (shared, source) = folder_source(&[device(1)]);
    tokio::spawn(chunks::serve(b.clone(), source));
    a.dial(b_addr.clone()).await.unwrap();
    c.dial(b_addr).await.unwrap();

    let (outcome, got) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    assert!(outcome.missing.is_empty() && outcome.failed_peers.is_empty());
    let mut chunks = Vec::new();
    for (id, bytes) in &got {
        match blob::open(&shared.folder.keys, BlobKind::Chunk, id, bytes) {
            Ok(plain) => chunks.push((*id, plain)),
            Err(_) => {
                assert!(blob::open(&shared.folder.keys, BlobKind::ManifestNode, id, bytes).is_ok())
            }
        }
    }
    // Reassemble in the order of the ids: the file comes back byte for byte.
    let order: std::collections::HashMap<ChunkId, Vec<u8>> = chunks.into_iter().collect();
    let file: Vec<u8> = shared
        .ids
        .iter()
        .filter_map(|id| order.get(id))
        .flatten()
        .copied()
        .collect();
    assert_eq!(file, shared.data);
    let peers = a.peers().await.unwrap();
    let pb = peers.iter().find(|p| p.peer == b.peer_id).unwrap();
    assert!(pb.is_direct());
    assert_eq!(pb.bytes_in, outcome.bytes);
    assert_eq!(a.stats.direct_and_relayed(), (outcome.bytes, 0));
    // A direct peer: the blobs came over a bulk lane, which the next fetch reuses.
    assert_eq!(a.lanes.opened(), 1);
    assert_eq!(a.stats.lane_bytes(), outcome.bytes);
    assert_eq!(b.stats.lane_bytes(), outcome.bytes);

    // Device 3 is not a member: refused, nothing received.
    let (outcome, got) = collect(&c, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert!(got.is_empty());
    assert_eq!(outcome.unfetched.len(), shared.ids.len());
    assert!(
        outcome.failed_peers[0].1.contains("NotMember"),
        "{outcome:?}"
    );
    // Unknown ids are reported missing, not hung on.
    let (outcome, _) = collect(
        &a,
        &[b.peer_id],
        shared.folder.id,
        vec![ChunkId::from_bytes([9; 32])],
    )
    .await;
    assert_eq!(outcome.missing, vec![ChunkId::from_bytes([9; 32])]);
    assert_eq!(a.lanes.opened(), 1, "the kept lane was not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bulk_lanes_on_either_side_the_chunks_go_over_libp2p_streams() {
    let no_lanes = || Config {
        bulk_lanes: false,
        ..config()
    };
    // A server that offers no lane, a fetcher that asks for one.
    let (a, _) = node(51).await;
    let (b, b_addr) = node_with(52, no_lanes()).await;
    assert_eq!(b.lanes.port(), 0);
    let (shared, source) = folder_source(&[device(51), device(53)]);
    tokio::spawn(chunks::serve(b.clone(), source.clone()));
    a.dial(b_addr).await.unwrap();
    let (outcome, got) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    assert_eq!(got.len(), shared.ids.len());
    assert_eq!(a.lanes.opened(), 0);
    // A fetcher that never asks, from a server that offers lanes.
    let (c, _) = node_with(53, no_lanes()).await;
    let (d, d_addr) = node(54).await;
    assert_ne!(d.lanes.port(), 0);
    tokio::spawn(chunks::serve(d.clone(), source));
    c.dial(d_addr).await.unwrap();
    let (outcome, got) = collect(&c, &[d.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    for (id, bytes) in &got {
        blob::check_id(id, bytes).unwrap();
    }
    assert_eq!(c.lanes.opened(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_connection_without_a_good_ticket_or_with_garbage_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, _) = node(61).await;
    let (b, b_addr) = node(62).await;
    let (shared, source) = folder_source(&[device(61)]);
    tokio::spawn(chunks::serve(b.clone(), source));
    a.dial(b_addr).await.unwrap();
    let lane_port = ("127.0.0.1", b.lanes.port());
    // A made-up ticket: closed without the one-byte welcome.
    let mut tcp = tokio::net::TcpStream::connect(lane_port).await.unwrap();
    tcp.write_all(&[7u8; 32]).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?} {buf:?}");
    // Too few bytes for a ticket: dropped after the setup timeout, without an answer.
    let mut tcp = tokio::net::TcpStream::connect(lane_port).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?} {buf:?}");
    // A real lane that then carries garbage ends; the server keeps serving.
    let mut lane = super::lane::open(&a, b.peer_id).await.expect("a lane");
    let raw = lane.writer.raw_for_tests();
    raw.write_all(&[0, 0, 0, 40]).await.unwrap();
    raw.write_all(&[0x55; 40]).await.unwrap();
    raw.flush().await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), lane.reader.read_message()).await;
    assert!(matches!(answer, Ok(Ok(None))), "{answer:?}");
    drop(lane);
    let (outcome, _) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    assert_eq!(a.lanes.opened(), 2);
}

/// A peer that answers every `Want` with corrupted blobs.
struct Liar(Arc<LocalSource>);

impl BlobSource for Liar {
    fn is_member(&self, f: &FolderId, d: &DeviceId) -> bool {
        self.0.is_member(f, d)
    }
    fn read(&self, f: &FolderId, id: &ChunkId) -> Option<Vec<u8>> {
        let mut b = self.0.read(f, id)?;
        let last = b.len() - 1;
        b[last] ^= 0xff;
        Some(b)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_is_dropped_and_its_chunks_come_from_another() {
    let (a, _) = node(11).await;
    let (honest, honest_addr) = node(12).await;
    let (liar, liar_addr) = node(13).await;
    let (shared, source) = folder_source(&[device(11)]);
    tokio::spawn(chunks::serve(honest.clone(), source.clone()));
    tokio::spawn(chunks::serve(liar.clone(), Arc::new(Liar(source))));
    a.dial(honest_addr).await.unwrap();
    a.dial(liar_addr).await.unwrap();

    // Alone, the liar is caught at its first blob, disconnected, and nothing it sent is kept.
    let (outcome, got) = collect(&a, &[liar.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert!(got.is_empty());
    assert_eq!(outcome.unfetched.len(), shared.ids.len());
    assert_eq!(outcome.failed_peers.len(), 1);
    assert_eq!(outcome.failed_peers[0].0, liar.peer_id);
    assert!(
        outcome.failed_peers[0].1.contains("corrupt blob"),
        "{outcome:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while a
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer == liar.peer_id)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "liar still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // With an honest peer beside it, everything arrives, all of it checked.
    let (outcome, got) = collect(
        &a,
        &[liar.peer_id, honest.peer_id],
        shared.folder.id,
        shared.ids.clone(),
    )
    .await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    assert_eq!(got.len(), shared.ids.len());
    for (id, bytes) in &got {
        blob::check_id(id, bytes).unwrap();
    }
    assert!(
        outcome.failed_peers.iter().all(|(p, _)| *p == liar.peer_id),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_end_the_stream_and_the_server_keeps_serving() {
    let (a, _) = node(21).await;
    let (b, b_addr) = node(22).await;
    let (shared, source) = folder_source(&[device(21)]);
    tokio::spawn(chunks::serve(b.clone(), source));
    a.dial(b_addr).await.unwrap();
    for garbage in [
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![0, 0, 0, 1, 0x7f],
        Message::Cancel { req: 1 }.encode_frame()[..6].to_vec(),
    ] {
        let mut s = a.control().open_stream(b.peer_id, PROTOCOL).await.unwrap();
        s.write_all(&garbage).await.unwrap();
        s.close().await.unwrap();
        let mut r = s;
        let mut buf = Vec::new();
        // The server closes its side: reading ends without any answer.
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            futures::AsyncReadExt::read_to_end(&mut r, &mut buf),
        )
        .await;
        assert!(read.is_ok(), "the server kept a garbage stream open");
        assert!(buf.is_empty(), "the server answered garbage with {buf:?}");
    }
    let (outcome, _) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len());
}

/// Waits for `node`'s relay reservation and returns its `/p2p-circuit/p2p/<node>` address.
async fn reserved_circuit(node: &Handle) -> Multiaddr {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(a) = node
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .find(super::is_relayed)
        {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no relay reservation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_relay_then_direct_by_hole_punching() {
    let (relay, relay_addr) = node_with(
        31,
        Config {
            relay_server: true,
            ..config()
        },
    )
    .await;
    let (b, _) = node_with(
        32,
        Config {
            relays: vec![relay_addr.clone()],
            ..config()
        },
    )
    .await;
    // B's reservation on the relay shows up as a /p2p-circuit listen address.
    let circuit = reserved_circuit(&b).await;
    let (shared, source) = folder_source(&[device(33)]);
    tokio::spawn(chunks::serve(b.clone(), source));
    let (a, _) = node(33).await;
    // The reserved address already ends in /p2p-circuit/p2p/<B>.
    a.dial(circuit).await.unwrap();
    let info = a.peers().await.unwrap();
    let to_b = info.iter().find(|p| p.peer == b.peer_id).unwrap();
    assert!(to_b.connections.iter().any(|c| c.relayed), "{to_b:?}");
    let _ = relay;

    let (outcome, got) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    assert_eq!(got.len(), shared.ids.len());
    // DCUtR: the relayed connection is upgraded to a direct one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let info = a.peers().await.unwrap();
        if info.iter().any(|p| p.peer == b.peer_id && p.is_direct()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never went direct: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_direct_path_chunks_flow_through_the_relay() {
    let (_relay, relay_addr) = node_with(
        41,
        Config {
            relay_server: true,
            ..config()
        },
    )
    .await;
    let no_punch = Config {
        hole_punching: false,
        ..config()
    };
    let (b, _) = node_with(
        42,
        Config {
            relays: vec![relay_addr],
            ..no_punch.clone()
        },
    )
    .await;
    let circuit = reserved_circuit(&b).await;
    let (shared, source) = folder_source(&[device(43)]);
    tokio::spawn(chunks::serve(b.clone(), source));
    let (a, _) = node_with(43, no_punch).await;
    a.dial(circuit).await.unwrap();
    let (outcome, got) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
    assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
    assert_eq!(got.len(), shared.ids.len());
    // Every byte went through the relay, and status says so: no bulk lane without a direct
    // connection.
    assert_eq!(a.stats.direct_and_relayed(), (0, outcome.bytes));
    assert_eq!((a.lanes.opened(), a.stats.lane_bytes()), (0, 0));
    let info = a.peers().await.unwrap();
    let to_b = info.iter().find(|p| p.peer == b.peer_id).unwrap();
    assert!(!to_b.is_direct(), "{to_b:?}");
}

/// A folder's shared state with `members`, for the metadata and checkpoint protocols.
fn shared_folders(folder: FolderId, members: &[DeviceId]) -> super::meta::Folders {
    let mut map = std::collections::HashMap::new();
    map.insert(
        folder,
        super::meta::SharedFolder {
            doc: Arc::new(std::sync::Mutex::new(
                crate::sync::doc::FolderDoc::in_memory(),
            )),
            members: crate::members::Members::new(members.iter().copied().collect()),
            on_change: Box::new(|| {}),
        },
    );
    Arc::new(map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_checkpoints_and_a_stranger_learns_nothing() {
    use super::checkpoints::{self, Book, ExchangeError};
    let (a, _) = node(31).await;
    let (b, b_addr) = node(32).await;
    let (c, _) = node(33).await;
    let folder = FolderId::from_bytes([7; 16]);
    let (book_a, book_b, book_c) = (Book::default(), Book::default(), Book::default());
    book_a.set_mine(&folder, "note of a\n");
    book_b.set_mine(&folder, "note of b\n");
    book_c.set_mine(&folder, "forged by c\n");
    tokio::spawn(checkpoints::serve(
        b.clone(),
        shared_folders(folder, &[device(31), device(32)]),
        book_b.clone(),
    ));
    a.dial(b_addr.clone()).await.unwrap();
    c.dial(b_addr).await.unwrap();

    checkpoints::exchange(&a, &book_a, b.peer_id, folder)
        .await
        .unwrap();
    assert_eq!(
        book_a.theirs(&folder),
        vec![(device(32), "note of b\n".to_owned())]
    );
    assert_eq!(
        book_b.theirs(&folder),
        vec![(device(31), "note of a\n".to_owned())]
    );

    // Not a member: refused, and its note is not kept.
    let e = checkpoints::exchange(&c, &book_c, b.peer_id, folder)
        .await
        .unwrap_err();
    assert!(matches!(e, ExchangeError::Refused), "{e}");
    assert!(book_c.theirs(&folder).is_empty());
    assert_eq!(book_b.theirs(&folder).len(), 1);
    // Another folder: the same refusal.
    let other = FolderId::from_bytes([8; 16]);
    let e = checkpoints::exchange(&a, &book_a, b.peer_id, other)
        .await
        .unwrap_err();
    assert!(matches!(e, ExchangeError::Refused), "{e}");

    // An oversized frame ends the stream without an answer; the server goes on serving.
    let mut s = a
        .control()
        .open_stream(b.peer_id, checkpoints::PROTOCOL)
        .await
        .unwrap();
    s.write_all(&[0, 1, 0, 0, 1]).await.unwrap();
    s.close().await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        futures::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    assert!(read.is_ok() && buf.is_empty(), "{buf:?}");
    checkpoints::exchange(&a, &book_a, b.peer_id, folder)
        .await
        .unwrap();
}

/// While a metadata session with a peer for a folder runs (here: one the peer opened, held
/// open in the registry), this side opens no second one for it, which would echo the changes
/// the first is delivering; once it ends (its guard dropped, as a timeout does), what changed
/// meanwhile goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_metadata_session_with_a_peer_while_one_runs() {
    use super::meta::{self, Outcome, Sessions};
    use harp_protocol::ids::FileId;
    let (a, _) = node(51).await;
    let (b, b_addr) = node(52).await;
    let folder = FolderId::from_bytes([9; 16]);
    let members = [device(51), device(52)];
    let (docs_a, docs_b) = (
        shared_folders(folder, &members),
        shared_folders(folder, &members),
    );
    let (sessions_a, sessions_b) = (Sessions::default(), Sessions::default());
    tokio::spawn(meta::serve(b.clone(), docs_b.clone(), sessions_b));
    a.dial(b_addr).await.unwrap();
    let running = sessions_a.begin((b.peer_id, folder), Outcome::AnswerFailed);
    let wake = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(meta::keep_in_sync(
        a.clone(),
        docs_a.clone(),
        wake.clone(),
        sessions_a.clone(),
    ));
    let heads = |docs: &meta::Folders| docs[&folder].doc.lock().unwrap().heads();
    docs_a[&folder]
        .doc
        .lock()
        .unwrap()
        .put_raw_record(&FileId::from_bytes([1; 16]), vec![1, 2, 3])
        .unwrap();
    wake.notify_one();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(heads(&docs_b).is_empty(), "a second session ran");

    drop(running);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heads(&docs_b) != heads(&docs_a) {
        assert!(
            std::time::Instant::now() < deadline,
            "the change never went out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A limit is a floor on the time a transfer takes: 3 MiB of blobs at 1 MiB/s, with one MiB
/// of burst, cannot arrive in under two seconds, whichever side limits. (Only the lower bound
/// is asserted: it holds on any machine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_hold_on_the_sending_and_the_receiving_side() {
    let limited = |send: u64, recv: u64| Config {
        max_send_bytes_per_sec: send,
        max_recv_bytes_per_sec: recv,
        ..config()
    };
    for (server, client) in [
        (limited(1 << 20, 0), config()),
        (config(), limited(0, 1 << 20)),
    ] {
        let (a, _) = node_with(41, client).await;
        let (b, b_addr) = node_with(42, server).await;
        let (shared, source) = folder_source(&[device(41)]);
        tokio::spawn(chunks::serve(b.clone(), source));
        a.dial(b_addr).await.unwrap();
        let started = std::time::Instant::now();
        let (outcome, _) = collect(&a, &[b.peer_id], shared.folder.id, shared.ids.clone()).await;
        let took = started.elapsed();
        assert_eq!(outcome.fetched as usize, shared.ids.len(), "{outcome:?}");
        assert!(outcome.bytes >= 3 << 20, "{outcome:?}");
        assert!(
            took >= Duration::from_millis(1900),
            "3 MiB at 1 MiB/s in {took:?}"
        );
    }
}

#[test]
fn local_tcp_is_dialled_first_relays_last_and_the_rest_keeps_its_order() {
    let parse = |v: &[&str]| -> Vec<Multiaddr> { v.iter().map(|a| a.parse().unwrap()).collect() };
    let given = parse(&[
        "/ip4/203.0.113.7/udp/4001/quic-v1",
        "/ip4/198.51.100.2/tcp/4001/p2p/12D3KooWGAeFW76mCGhHJ1VWtfRQ7tu1jYxiTE2HqD7yeVJ6YRwA/p2p-circuit",
        "/ip4/203.0.113.7/tcp/4001",
        "/ip4/192.168.1.20/udp/4001/quic-v1",
        "/ip4/192.168.1.20/tcp/4001",
        "/ip6/fd00::20/tcp/4001",
        "/ip6/fe80::1/tcp/4001",
        "/ip6/2001:db8::1/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/10.0.0.5/udp/4001/quic-v1",
    ]);
    let ordered = super::in_dial_order(given);
    let expected = parse(&[
        // TCP on loopback and local networks (RFC 1918, unique-local, link-local)...
        "/ip4/192.168.1.20/tcp/4001",
        "/ip6/fd00::20/tcp/4001",
        "/ip6/fe80::1/tcp/4001",
        "/ip4/127.0.0.1/tcp/4001",
        // ...then every other direct address as given (public TCP does not jump QUIC)...
        "/ip4/203.0.113.7/udp/4001/quic-v1",
        "/ip4/203.0.113.7/tcp/4001",
        "/ip4/192.168.1.20/udp/4001/quic-v1",
        "/ip6/2001:db8::1/tcp/4001",
        "/ip4/10.0.0.5/udp/4001/quic-v1",
        // ...and relayed ones last, even over a local TCP hop.
        "/ip4/198.51.100.2/tcp/4001/p2p/12D3KooWGAeFW76mCGhHJ1VWtfRQ7tu1jYxiTE2HqD7yeVJ6YRwA/p2p-circuit",
    ]);
    assert_eq!(ordered, expected);
}
