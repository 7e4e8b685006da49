//! Criterion benches of the protocol's hot paths, each next to its reference in the same run:
//! - proofs: make and verify a proof of a 10-version file (the source documents quote 24 ms
//!   to make and 31 ms to verify; the aim is ≤ 0.1 ms and ≤ 1 ms);
//! - blobs: seal and open 1 MiB chunks and cut 1 MiB into chunks, next to raw BLAKE3 of 1 MiB
//!   and, for the cut, the plain one-byte-per-step FastCDC loop over the same gear table;
//! - transparency log: append rate; in a log of 1,000,000 leaves, make and verify an inclusion
//!   and a consistency proof; verify a checkpoint note signed by the log and cosigned by three
//!   witnesses (aims: proof ≤ 2 KiB, verify ≤ 1 ms), next to one raw SHA-256 of 64 bytes;
//! - the whole witnessed proof: a 10-version file whose links are leaves of a log of
//!   1,000,000, with the checkpoint signed by the log and cosigned by three witnesses: make it
//!   (inclusion proof, section, encoding) and verify it under a policy that asks for all of it.
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
        ..Policy::default()
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
    let gear = keys.gear_table();
    assert_eq!(
        one_byte_chunks(&gear, &data),
        chunker.chunks(&data).count(),
        "the reference loop cuts where the chunker does"
    );
    g.bench_function("reference_fastcdc_one_byte_per_step", |b| {
        b.iter(|| black_box(one_byte_chunks(&gear, black_box(&data))))
    });
    g.bench_function("open", |b| {
        b.iter(|| black_box(blob::open(&keys, BlobKind::Chunk, &id, black_box(&sealed)).unwrap()))
    });
    g.finish();
}

/// How many chunks the textbook FastCDC loop (one byte per step, normalized level 1, the
/// default 16 / 64 / 256 KiB) cuts `data` into: the reference for `chunk_keyed_fastcdc`.
fn one_byte_chunks(gear: &[u64; 256], data: &[u8]) -> usize {
    let p = harp_protocol::chunker::Params::DEFAULT;
    let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
    let bits = p.avg.trailing_zeros();
    let (small, large) = (!0u64 << (64 - (bits + 1)), !0u64 << (64 - (bits - 1)));
    let (mut at, mut count) = (0, 0);
    while at < data.len() {
        let rest = &data[at..];
        let end = rest.len().min(max);
        let mut len = end;
        if end > min {
            let mut hash = 0u64;
            for (i, byte) in rest.iter().enumerate().take(end).skip(min) {
                hash = (hash << 1).wrapping_add(gear[*byte as usize]);
                if hash & if i < avg { small } else { large } == 0 {
                    len = i + 1;
                    break;
                }
            }
        }
        at += len;
        count += 1;
    }
    count
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

fn transparency_log(c: &mut Criterion) {
    use harp_protocol::tlog::{self, Checkpoint, Note, Tree};
    const N: u64 = 1_000_000;
    let mut tree = Tree::new();
    for i in 0..N {
        tree.push(tlog::leaf_hash(&i.to_be_bytes()));
    }
    let root = tree.root(N).unwrap();
    let (index, old) = (123_457u64, 999_000u64);
    let leaf = tlog::leaf_hash(&index.to_be_bytes());
    let inclusion = tree.inclusion(index, N).unwrap();
    let consistency = tree.consistency(old, N).unwrap();
    let old_root = tree.root(old).unwrap();
    let log_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let body = Checkpoint {
        origin: "harp/00112233445566778899aabbccddeeff".into(),
        size: N,
        root,
    }
    .body();
    let mut note = tlog::sign_note(&body, "bridge.example", &log_key).unwrap();
    let witnesses: Vec<_> = (0..3u8)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[10 + i; 32]))
        .collect();
    for (i, w) in witnesses.iter().enumerate() {
        note.push_str(&tlog::cosign(&body, &format!("w{i}.example"), w, 1_763_700_000).unwrap());
    }
    println!(
        "transparency log of {N} leaves: inclusion proof {} hashes ({} bytes), consistency proof from {old}: {} hashes ({} bytes), checkpoint note with 3 cosignatures {} bytes",
        inclusion.len(),
        inclusion.len() * 32,
        consistency.len(),
        consistency.len() * 32,
        note.len()
    );
    let mut g = c.benchmark_group("tlog_1M");
    g.bench_function("reference_sha256_64_bytes", |b| {
        b.iter(|| black_box(tlog::node_hash(black_box(&root), black_box(&leaf))))
    });
    g.bench_function("append", |b| {
        let mut t = tree.clone();
        let mut i = N;
        b.iter(|| {
            i += 1;
            black_box(t.push(tlog::leaf_hash(&i.to_be_bytes())))
        })
    });
    g.bench_function("make_inclusion", |b| {
        b.iter(|| black_box(tree.inclusion(black_box(index), N).unwrap()))
    });
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| {
            tlog::verify_inclusion(black_box(&leaf), index, N, black_box(&inclusion), &root)
                .unwrap()
        })
    });
    g.bench_function("verify_consistency", |b| {
        b.iter(|| {
            tlog::verify_consistency(old, N, black_box(&consistency), &old_root, &root).unwrap()
        })
    });
    g.bench_function("verify_note_and_3_cosignatures", |b| {
        b.iter(|| {
            let n = Note::parse(black_box(&note)).unwrap();
            n.verified_by("bridge.example", &log_key.verifying_key())
                .unwrap();
            for (i, w) in witnesses.iter().enumerate() {
                n.cosigned_by(&format!("w{i}.example"), &w.verifying_key())
                    .unwrap();
            }
        })
    });
    g.finish();
}

fn witnessed_proof(c: &mut Criterion) {
    use harp_protocol::tlog::{self, Checkpoint, LogProof, Tree, VerifierKey};
    const N: u64 = 1_000_000;
    let (chain, keys) = ten_version_chain();
    let file = FileId::from_bytes([2; 16]);
    let mut tree = Tree::new();
    let mut head = chain.genesis();
    let mut at = Vec::new();
    let step = N / 10;
    let mut entries = chain.entries().iter();
    for i in 0..N {
        if i % step == step / 2
            && let Some(e) = entries.next()
        {
            head = harp_protocol::chain::link(&head, &e.encode());
            at.push(tree.push(tlog::chain_leaf(&file, e.seq, &head)));
        } else {
            tree.push(tlog::leaf_hash(&i.to_be_bytes()));
        }
    }
    let index = *at.last().unwrap();
    let log_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let body = Checkpoint {
        origin: format!("harp/{}", FolderId::from_bytes([1; 16])),
        size: N,
        root: tree.root(N).unwrap(),
    }
    .body();
    let mut note = tlog::sign_note(&body, "bridge.example", &log_key).unwrap();
    let witnesses: Vec<_> = (0..3u8)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[10 + i; 32]))
        .collect();
    let mut witness_keys = Vec::new();
    for (i, w) in witnesses.iter().enumerate() {
        let name = format!("w{i}.example");
        note.push_str(&tlog::cosign(&body, &name, w, 1_763_700_000).unwrap());
        witness_keys.push(VerifierKey::witness(&name, &w.verifying_key()));
    }
    let make = || {
        Proof::make(&chain, 10)
            .unwrap()
            .with_log_proof(&LogProof {
                index,
                hashes: tree.inclusion(index, N).unwrap(),
                checkpoint: note.clone(),
            })
            .encode()
    };
    let bytes = make();
    let log = VerifierKey::log("bridge.example", &log_key.verifying_key());
    let policy = Policy {
        chain_seed: Some(&keys.chain_seed),
        log_key: Some(&log),
        witnesses: &witness_keys,
        quorum: 3,
        ..Policy::default()
    };
    let s = proof::verify(&bytes, &policy).unwrap();
    assert_eq!(s.log.unwrap().cosigned_by.len(), 3);
    let section = bytes.len() - Proof::make(&chain, 10).unwrap().encode().len();
    println!(
        "witnessed proof of a 10-version file in a log of {N}: {} bytes, of which the log section (tlog-proof: index, {} hashes, checkpoint, 3 cosignatures) {section}",
        bytes.len(),
        tree.inclusion(index, N).unwrap().len()
    );
    let mut g = c.benchmark_group("witnessed_proof_10_versions_1M_log");
    g.bench_function("make", |b| b.iter(|| black_box(make())));
    g.bench_function("verify", |b| {
        b.iter(|| black_box(proof::verify(black_box(&bytes), &policy).unwrap()))
    });
    g.finish();
}

criterion_group!(
    benches,
    proofs,
    blobs,
    manifests,
    transparency_log,
    witnessed_proof
);
criterion_main!(benches);
