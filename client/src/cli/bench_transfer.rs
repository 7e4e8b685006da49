//! `harp bench transfer`: the chunk exchange between real libp2p nodes on loopback (QUIC),
//! next to a raw libp2p stream moving the same number of bytes in the same run. The chunk
//! exchange runs over bulk lanes ([`crate::net::lane`]) as devices with a direct connection
//! do, and once more from one peer over libp2p streams, as relayed peers do.
//!
//! The serving node re-makes every chunk from the file (read, seal, check) as it would for a
//! real peer; the fetching node checks each blob's id, then authenticates and decrypts it
//! (XChaCha20-Poly1305) before counting it, as the sync engine will before use.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use harp_protocol::blob::{self, BlobKind};
use harp_protocol::ids::{ChunkId, DeviceId};
use libp2p::core::multiaddr::Protocol;
use libp2p::{Multiaddr, StreamProtocol};
use tokio::sync::mpsc;

use super::bench::{TransferArgs, cpu_seconds, mb_s, say, write_big_file};
use crate::index::Index;
use crate::net::{self, Handle, chunks, source::LocalSource};
use crate::scan::{self, Folder};

const RAW: StreamProtocol = StreamProtocol::new("/harp/bench-raw/1");

/// The transport a measurement runs on (loopback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// QUIC (quinn, TLS 1.3), what devices prefer.
    Quic,
    /// TCP with Noise and Yamux.
    Tcp,
}

impl Transport {
    pub(crate) fn listen(self) -> &'static str {
        match self {
            Transport::Quic => "/ip4/127.0.0.1/udp/0/quic-v1",
            Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Quic => "QUIC",
            Transport::Tcp => "TCP + Noise + Yamux",
        }
    }
}

async fn node(seed: u8, transport: Transport, lanes: bool) -> anyhow::Result<(Handle, Multiaddr)> {
    let config = net::Config {
        listen: vec![transport.listen().parse()?],
        mdns: false,
        bulk_lanes: lanes,
        ..net::Config::default()
    };
    let (handle, event_loop) = net::start(net::keypair([seed; 32])?, &config)?;
    tokio::spawn(event_loop.run());
    let addr = loop {
        if let Some(a) = handle.listen_addrs().await?.into_iter().next() {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let addr = addr.with(Protocol::P2p(handle.peer_id));
    Ok((handle, addr))
}

/// Moves `bytes` over one raw libp2p stream; returns the seconds until the receiver had all.
pub(crate) async fn raw_stream(bytes: u64, transport: Transport) -> anyhow::Result<f64> {
    let (a, _) = node(201, transport, false).await?;
    let (b, b_addr) = node(202, transport, false).await?;
    let mut incoming = b
        .control()
        .accept(RAW)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let receiver = tokio::spawn(async move {
        let mut total = 0u64;
        if let Some((_, mut s)) = incoming.next().await {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        anyhow::Ok(total)
    });
    a.dial(b_addr).await?;
    let mut s = a
        .control()
        .open_stream(b.peer_id, RAW)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).await?;
        sent += n as u64;
    }
    s.close().await?;
    let got = receiver.await??;
    anyhow::ensure!(got == bytes, "raw stream delivered {got} of {bytes} bytes");
    Ok(start.elapsed().as_secs_f64())
}

/// Fetches `ids` from `sources`; every blob is checked and decrypted. Returns (seconds, bytes).
async fn fetch_all(
    client: &Handle,
    sources: &[libp2p::PeerId],
    folder: &Folder,
    ids: &[ChunkId],
) -> anyhow::Result<(f64, u64)> {
    let (tx, mut rx) = mpsc::channel::<blob::CheckedBlob>(64);
    let keys = folder.keys.clone();
    let consumer = std::thread::spawn(move || -> anyhow::Result<u64> {
        let mut plain_bytes = 0u64;
        while let Some(b) = rx.blocking_recv() {
            // `fetch` checked the id (BLAKE3 of the blob) already: authenticate and decrypt.
            let id = b.id();
            let plain = b
                .into_plaintext(&keys, BlobKind::Chunk)
                .map_err(|e| anyhow::anyhow!("blob {id}: {e}"))?;
            plain_bytes += plain.len() as u64;
        }
        Ok(plain_bytes)
    });
    let start = Instant::now();
    let outcome = chunks::fetch(client, sources, folder.id, ids.to_vec(), &tx).await;
    drop(tx);
    let plain = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("consumer panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        outcome.fetched as usize == ids.len(),
        "fetched {} of {} blobs: {outcome:?}",
        outcome.fetched,
        ids.len()
    );
    Ok((secs, plain))
}

/// Runs the benchmark.
pub(crate) async fn transfer(args: &TransferArgs) -> anyhow::Result<serde_json::Value> {
    let base = tempfile::Builder::new()
        .prefix("harp-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))
        .context("creating the scratch directory")?;
    let root = base.path().join("folder");
    std::fs::create_dir_all(&root)?;
    let bytes = args.size_mib << 20;
    say(
        args.json,
        format!("writing a {} MiB file and scanning it…", args.size_mib),
    );
    write_big_file(&root.join("big.bin"), args.size_mib)?;
    let key = harp_protocol::keys::FolderKey::from_bytes([9; 32]);
    let folder = Folder::new(
        harp_protocol::ids::FolderId::from_bytes([9; 16]),
        root.clone(),
        key.schedule(),
    );
    let db = base.path().join("index.sqlite3");
    let mut index = Index::open(&db)?;
    let device = ed25519_dalek::SigningKey::from_bytes(&[200; 32]);
    let threads = crate::config::Config::new(String::new()).hashing_threads;
    scan::scan(
        &mut index,
        &folder,
        &device,
        &scan::Options {
            threads,
            progress: None,
            early: None,
        },
    )?;
    let row = index
        .file(&folder.id, "big.bin")?
        .context("scanned file missing")?;
    let ids: Vec<ChunkId> = index
        .chunks(&folder.id, &row.file_id)?
        .iter()
        .map(|c| c.id)
        .collect();
    drop(index);

    say(
        args.json,
        format!(
            "reference: one raw libp2p stream ({}) moving the same bytes…",
            args.transport.name()
        ),
    );
    let cpu0 = cpu_seconds();
    let raw_secs = raw_stream(bytes, args.transport).await?;
    let raw_cpu = cpu_seconds() - cpu0;

    let client_device =
        DeviceId::from_peer_id_bytes(&net::keypair([210; 32])?.public().to_peer_id().to_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A second fetching device, with lanes off (its own id: a server closes an older
    // connection from the same device as one its restarted owner left behind).
    let streams_device =
        DeviceId::from_peer_id_bytes(&net::keypair([213; 32])?.public().to_peer_id().to_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let members: HashSet<DeviceId> = [client_device, streams_device].into();
    let serve = |seed: u8| {
        let members = members.clone();
        let folder = Folder::new(folder.id, root.clone(), key.schedule());
        let db = db.clone();
        async move {
            let (h, addr) = node(seed, args.transport, true).await?;
            let source = LocalSource::new(
                Index::open(&db)?,
                vec![(folder, crate::members::Members::new(members))],
            );
            tokio::spawn(chunks::serve(h.clone(), Arc::new(source)));
            anyhow::Ok((h, addr))
        }
    };
    let (s1, s1_addr) = serve(211).await?;
    let (s2, s2_addr) = serve(212).await?;
    let (client, _) = node(210, args.transport, true).await?;
    client.dial(s1_addr.clone()).await?;
    client.dial(s2_addr).await?;
    // The chunk exchange over libp2p streams.
    let (streams_client, _) = node(213, args.transport, false).await?;
    streams_client.dial(s1_addr).await?;

    say(args.json, "Harp: fetching every chunk from one peer…");
    let cpu0 = cpu_seconds();
    let (one_secs, plain) = fetch_all(&client, &[s1.peer_id], &folder, &ids).await?;
    let one_cpu = cpu_seconds() - cpu0;
    anyhow::ensure!(
        plain == bytes,
        "received {plain} plaintext bytes, expected {bytes}"
    );
    let lanes_used = client.lanes.opened();
    say(
        args.json,
        "Harp: fetching every chunk from one peer over libp2p streams (no bulk lane)…",
    );
    let cpu0 = cpu_seconds();
    let (streams_secs, plain) = fetch_all(&streams_client, &[s1.peer_id], &folder, &ids).await?;
    let streams_cpu = cpu_seconds() - cpu0;
    anyhow::ensure!(
        plain == bytes && streams_client.lanes.opened() == 0,
        "received {plain} plaintext bytes, expected {bytes}, without a lane"
    );
    say(
        args.json,
        "Harp: fetching every chunk from two peers at once…",
    );
    let cpu0 = cpu_seconds();
    let (two_secs, plain) = fetch_all(&client, &[s1.peer_id, s2.peer_id], &folder, &ids).await?;
    let two_cpu = cpu_seconds() - cpu0;
    anyhow::ensure!(
        plain == bytes,
        "received {plain} plaintext bytes, expected {bytes}"
    );
    let peers = client.peers().await?;
    let split: Vec<u64> = [s1.peer_id, s2.peer_id]
        .iter()
        .map(|p| {
            peers
                .iter()
                .find(|i| i.peer == *p)
                .map(|i| i.bytes_in)
                .unwrap_or(0)
        })
        .collect();

    Ok(serde_json::json!({
        "bytes": bytes,
        "chunks": ids.len(),
        "transport": format!("{} on 127.0.0.1, all nodes in this process", args.transport.name()),
        "reference_raw_libp2p_stream": {"seconds": raw_secs, "mb_s": mb_s(bytes, raw_secs), "cpu_seconds": raw_cpu},
        "harp_one_source": {"seconds": one_secs, "mb_s": mb_s(bytes, one_secs), "ratio": raw_secs / one_secs, "cpu_seconds": one_cpu,
            "bulk_lanes_opened": lanes_used},
        "harp_one_source_over_libp2p_streams": {"seconds": streams_secs, "mb_s": mb_s(bytes, streams_secs), "ratio": raw_secs / streams_secs, "cpu_seconds": streams_cpu},
        "harp_two_sources": {"seconds": two_secs, "mb_s": mb_s(bytes, two_secs), "ratio": raw_secs / two_secs, "cpu_seconds": two_cpu,
            "bytes_in_per_source_cumulative": split},
    }))
}
