//! Criterion benches of the protocol's hot paths, each next to its reference in the same run:
//! - proofs: make and verify a proof of a 10-version file (the source documents quote 24 ms
//!   to make and 31 ms to verify; the aim is ≤ 0.1 ms and ≤ 1 ms);
//! - blobs: seal and open 1 MiB chunks and cut 1 MiB into chunks, next to raw BLAKE3 of 1 MiB.
//!
//! Run: `cargo bench -p harp-protocol --bench protocol`. Figures go to `docs/benchmarks.md`.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harp_protocol::blob::{self, BlobKind};
use harp_protocol::chain::{Chain, Change, Op};
use harp_protocol::ids::{ContentRoot, FileId, FolderId};
use harp_protocol::keys::FolderKey;
use harp_protocol::manifest::{ChunkRef, Tree};
use harp_protocol::proof::{self, Policy, Proof};
use std::hint::black_box;

fn ten_version_chain() -> (Chain, harp_protocol::keys::FolderKeys) {
    let keys = FolderKey::from_bytes([3; 32]).schedule();
    let device = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let mut chain = Chain::new(
        FolderId::from_bytes([1; 16]),
        FileId::from_bytes([2; 16]),
        &keys.chain_seed,
    );
    for i in 0..10u8 {
        chain
            .append(
                &device,
                Change {
                    op: if i == 0 { Op::Create } else { Op::Modify },
                    content_root: ContentRoot::from_bytes([i; 32]),
                    size: 1000 + u64::from(i),
                    path: keys.commit_path("report.odt"),
                    timestamp_ms: 1_763_700_000_000 + u64::from(i),
                },
            )
            .unwrap();
    }
    (chain, keys)
}

fn proofs(c: &mut Criterion) {
    let (chain, keys) = ten_version_chain();
    let bytes = Proof::make(&chain, 10).unwrap().encode();
    let policy = Policy {
        chain_seed: Some(&keys.chain_seed),
        trusted_devices: None,
    };
    let mut g = c.benchmark_group("proof_10_versions");
    g.bench_function("make", |b| {
        b.iter(|| black_box(Proof::make(black_box(&chain), 10).unwrap().encode()))
    });
    g.bench_function("verify", |b| {
        b.iter(|| black_box(proof::verify(black_box(&bytes), &policy).unwrap()))
    });
    g.finish();
}

fn blobs(c: &mut Criterion) {
    let keys = FolderKey::from_bytes([3; 32]).schedule();
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (id, sealed) = blob::seal(&keys, BlobKind::Chunk, &data).unwrap();
    let mut g = c.benchmark_group("blob_1MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("reference_raw_blake3", |b| {
        b.iter(|| black_box(blake3::hash(black_box(&data))))
    });
    g.bench_function("seal", |b| {
        b.iter(|| black_box(blob::seal(&keys, BlobKind::Chunk, black_box(&data)).unwrap()))
    });
    let chunker = harp_protocol::chunker::Chunker::for_folder(&keys);
    g.bench_function("chunk_keyed_fastcdc", |b| {
        b.iter(|| black_box(chunker.chunks(black_box(&data)).count()))
    });
    g.bench_function("open", |b| {
        b.iter(|| black_box(blob::open(&keys, BlobKind::Chunk, &id, black_box(&sealed)).unwrap()))
    });
    g.finish();
}

fn manifests(c: &mut Criterion) {
    let keys = FolderKey::from_bytes([3; 32]).schedule();
    let chunks: Vec<ChunkRef> = (0..16_384u32)
        .map(|i| ChunkRef {
            id: harp_protocol::ids::ChunkId::from_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes()),
            len: 65536,
        })
        .collect();
    let mut g = c.benchmark_group("manifest");
    g.bench_function("build_tree_1GiB_16384_chunks", |b| {
        b.iter(|| black_box(Tree::build(&keys, black_box(&chunks)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, proofs, blobs, manifests);
criterion_main!(benches);
