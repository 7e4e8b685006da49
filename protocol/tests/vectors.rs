//! Golden test vectors: the bytes of every format, and broken inputs with the error each must
//! give, in `protocol/tests/vectors/*.json` for other implementations (the PHP app) to test
//! against.
//!
//! Every vector is made from fixed seeds, so the files are reproducible. This test makes them
//! again and compares with the files (a format change fails here), then checks each stored
//! vector the way another implementation would: decode, verify, and compare error codes.
//! After an intended format change, rewrite the files with
//! `HARP_BLESS_VECTORS=1 cargo test -p harp-protocol --test vectors` and review the diff.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use data_encoding::HEXLOWER;
use ed25519_dalek::SigningKey;
use harp_protocol::blob::{self, BlobKind};
use harp_protocol::chain::{self, Chain, Change, Entry, Op};
use harp_protocol::ids::{ChainHash, ChunkId, ContentRoot, DeviceId, FileId, FolderId};
use harp_protocol::keys::{FolderKey, FolderKeys};
use harp_protocol::manifest::{self, ChunkRef, EntryKind, Manifest, Tree};
use harp_protocol::proof::{self, Policy, Proof};
use harp_protocol::wire::{Message, RefuseReason};
use serde_json::{Value, json};

fn hex(b: &[u8]) -> String {
    HEXLOWER.encode(b)
}

fn unhex(v: &Value) -> Vec<u8> {
    HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

const FOLDER_KEY: [u8; 32] = [0x42; 32];
const FOLDER: [u8; 16] = [0x0f; 16];
const FILE: [u8; 16] = [0xf1; 16];
const ALICE_SEED: [u8; 32] = [0xa1; 32];
const BOB_SEED: [u8; 32] = [0xb0; 32];
const MALLORY_SEED: [u8; 32] = [0x66; 32];

fn keys() -> FolderKeys {
    FolderKey::from_bytes(FOLDER_KEY).schedule()
}

/// Deterministic pseudo-random bytes (BLAKE3 XOF of a label).
fn bytes(label: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn keys_vectors() -> Value {
    let k = keys();
    let table = k.gear_table();
    let paths: Vec<Value> = ["a.txt", "docs/Report 2026.odt", "é/ñ"]
        .iter()
        .map(|p| json!({"path": p, "commitment": k.commit_path(p).to_hex()}))
        .collect();
    json!({
        "description": "Key schedule: BLAKE3 derive_key(context, folder_key) for each key; see docs/protocol.md",
        "folder_key": hex(&FOLDER_KEY),
        "derived": {
            "chunk_nonce": hex(k.chunk_nonce.as_bytes()),
            "chunker": hex(k.chunker.as_bytes()),
            "chunk_encryption": hex(k.chunk_encryption.as_bytes()),
            "manifest_nonce": hex(k.manifest_nonce.as_bytes()),
            "manifest_encryption": hex(k.manifest_encryption.as_bytes()),
            "path_commitment": hex(k.path_commitment.as_bytes()),
            "chain_seed": hex(k.chain_seed.as_bytes()),
        },
        "gear_table_first_8": table[..8].iter().map(|v| format!("{v:016x}")).collect::<Vec<_>>(),
        "gear_table_last": format!("{:016x}", table[255]),
        "path_commitments": paths,
    })
}

fn ids_vectors() -> Value {
    let devices: Vec<Value> = [ALICE_SEED, BOB_SEED]
        .iter()
        .map(|seed| {
            let id = DeviceId::of_signing_key(&SigningKey::from_bytes(seed));
            json!({
                "ed25519_seed": hex(seed),
                "device_id_hex": id.to_hex(),
                "device_id_base32": id.to_string(),
                "libp2p_peer_id_bytes": hex(&id.to_peer_id_bytes()),
            })
        })
        .collect();
    json!({
        "description": "Device ids: Ed25519 public keys; display base32 (RFC 4648, lowercase, unpadded); libp2p PeerId = identity multihash of the protobuf public key",
        "devices": devices,
    })
}

fn blob_vectors() -> Value {
    let k = keys();
    let mut cases = Vec::new();
    for (kind, name, plain) in [
        (BlobKind::Chunk, "chunk", Vec::new()),
        (BlobKind::Chunk, "chunk", b"hello, harp".to_vec()),
        (BlobKind::Chunk, "chunk", bytes("blob 1000", 1000)),
        (
            BlobKind::ManifestNode,
            "manifest_node",
            b"node bytes".to_vec(),
        ),
        (
            BlobKind::ManifestRecord,
            "manifest_record",
            b"record bytes".to_vec(),
        ),
    ] {
        let (id, sealed) = blob::seal(&k, kind, &plain).unwrap();
        cases.push(json!({"kind": name, "plaintext": hex(&plain), "id": id.to_hex(), "blob": hex(&sealed)}));
    }
    let (id, good) = blob::seal(&k, BlobKind::Chunk, b"hello, harp").unwrap();
    let mut flipped = good.clone();
    flipped[30] ^= 0x01;
    let mut version = good.clone();
    version[0] = 2;
    let broken = vec![
        json!({"name": "flipped ciphertext byte, checked against its id", "kind": "chunk", "id": id.to_hex(), "blob": hex(&flipped), "error": "id_mismatch"}),
        json!({"name": "flipped ciphertext byte, id not known", "kind": "chunk", "id": null, "blob": hex(&flipped), "error": "authentication"}),
        json!({"name": "opened as the wrong kind", "kind": "manifest_node", "id": id.to_hex(), "blob": hex(&good), "error": "wrong_kind"}),
        json!({"name": "unknown version", "kind": "chunk", "id": null, "blob": hex(&version), "error": "unknown_version"}),
        json!({"name": "shorter than the header", "kind": "chunk", "id": null, "blob": hex(&good[..20]), "error": "truncated"}),
    ];
    json!({
        "description": "Encrypted blobs: version | kind | nonce (24) | XChaCha20-Poly1305 ciphertext and tag; id = BLAKE3(blob); folder key as in keys.json",
        "cases": cases,
        "broken": broken,
    })
}

fn chunk_refs(n: u32) -> Vec<ChunkRef> {
    (0..n)
        .map(|i| ChunkRef {
            id: ChunkId::from_bytes(bytes(&format!("chunk {i}"), 32).try_into().unwrap()),
            len: 1000 + i,
        })
        .collect()
}

fn manifest_vectors() -> Value {
    let k = keys();
    let refs = chunk_refs(200);
    let tree = Tree::build(&k, &refs).unwrap();
    let empty = Tree::build(&k, &[]).unwrap();
    let record = Manifest {
        kind: EntryKind::File,
        size: tree.size,
        mode: 0o644,
        mtime_ns: 1_763_700_000_123_456_789,
        root: tree.root,
    };
    let (_, record_blob) = record.seal(&k);
    json!({
        "description": "Manifest trees over chunk refs, nodes split where an entry id's last byte & 0x3f == 0 (and the node has >= 2 entries); node blobs are kind manifest_node",
        "trees": [
            {
                "chunks": refs.iter().map(|r| json!({"id": r.id.to_hex(), "len": r.len})).collect::<Vec<_>>(),
                "root": tree.root.to_hex(),
                "size": tree.size,
                "nodes": tree.nodes.iter().map(|(id, b)| json!({"id": id.to_hex(), "blob": hex(b)})).collect::<Vec<_>>(),
            },
            {
                "chunks": [],
                "root": empty.root.to_hex(),
                "size": 0,
                "nodes": empty.nodes.iter().map(|(id, b)| json!({"id": id.to_hex(), "blob": hex(b)})).collect::<Vec<_>>(),
            }
        ],
        "record": {
            "kind": "file", "size": record.size, "mode": record.mode, "mtime_ns": record.mtime_ns,
            "root": record.root.to_hex(),
            "encoding": hex(&record.encode()),
            "blob": hex(&record_blob),
        },
    })
}

/// The vector chain: Alice creates, modifies, renames; Bob modifies; Alice deletes and creates
/// again; 10 entries in all.
fn vector_chain() -> Chain {
    let k = keys();
    let alice = SigningKey::from_bytes(&ALICE_SEED);
    let bob = SigningKey::from_bytes(&BOB_SEED);
    let mut c = Chain::new(
        FolderId::from_bytes(FOLDER),
        FileId::from_bytes(FILE),
        &k.chain_seed,
    );
    let ops = [
        (Op::Create, &alice, "notes.txt"),
        (Op::Modify, &alice, "notes.txt"),
        (Op::Rename, &alice, "notes/2026.txt"),
        (Op::Modify, &bob, "notes/2026.txt"),
        (Op::Modify, &bob, "notes/2026.txt"),
        (Op::Modify, &alice, "notes/2026.txt"),
        (Op::Delete, &alice, "notes/2026.txt"),
        (Op::Create, &alice, "notes/2026.txt"),
        (Op::Modify, &bob, "notes/2026.txt"),
        (Op::Modify, &alice, "notes/2026.txt"),
    ];
    for (i, (op, who, path)) in ops.into_iter().enumerate() {
        c.append(
            who,
            Change {
                op,
                content_root: ContentRoot::from_bytes(
                    bytes(&format!("root {i}"), 32).try_into().unwrap(),
                ),
                size: 100 * (i as u64 + 1),
                path: k.commit_path(path),
                timestamp_ms: 1_763_700_000_000 + 60_000 * i as u64,
            },
        )
        .unwrap();
    }
    c
}

fn chain_vectors() -> Value {
    let c = vector_chain();
    let mut head = c.genesis();
    let entries: Vec<Value> = c
        .entries()
        .iter()
        .map(|e| {
            head = chain::link(&head, &e.encode());
            json!({
                "seq": e.seq, "op": e.op.name(), "author": e.author.to_hex(),
                "content_root": e.content_root.to_hex(), "size": e.size, "path": e.path.to_hex(),
                "timestamp_ms": e.timestamp_ms, "encoding": hex(&e.encode()), "hash_after": head.to_hex(),
            })
        })
        .collect();
    json!({
        "description": "A 10-entry chain; h0 = SHA3-256('harp chain genesis v1\\0' || folder || file || chain_seed), h_n = SHA3-256(h_{n-1} || entry_n); signatures are Ed25519 over 'harp chain entry v1\\0' || h_{n-1} || entry_n[0..154]",
        "folder": hex(&FOLDER), "file": hex(&FILE),
        "chain_seed": hex(keys().chain_seed.as_bytes()),
        "genesis": c.genesis().to_hex(),
        "entries": entries,
        "head": c.head().to_hex(),
    })
}

fn proof_vectors() -> Value {
    let c = vector_chain();
    let alice = DeviceId::of_signing_key(&SigningKey::from_bytes(&ALICE_SEED));
    let bob = DeviceId::of_signing_key(&SigningKey::from_bytes(&BOB_SEED));
    let good = Proof::make(&c, 10).unwrap();
    let seed_policy = json!({"chain_seed": true, "trusted": [alice.to_hex(), bob.to_hex()]});
    let mut broken = Vec::new();
    let mut add = |name: &str, p: &Proof, policy: &Value, error: &str| {
        broken.push(
            json!({"name": name, "proof": hex(&p.encode()), "policy": policy, "error": error}),
        );
    };

    let mut p = good.clone();
    p.entries[4].size += 1;
    add(
        "rewritten entry (size of entry 5 changed)",
        &p,
        &seed_policy,
        "bad_signature",
    );
    let mut p = good.clone();
    p.entries.remove(3);
    add("dropped entry 4", &p, &seed_policy, "seq_gap");
    let mut p = good.clone();
    p.entries.swap(4, 5);
    add("entries 5 and 6 reordered", &p, &seed_policy, "seq_gap");
    let mut p = good.clone();
    let mallory = SigningKey::from_bytes(&MALLORY_SEED);
    let mut forged = Chain::new(
        c.entries()[0].folder,
        c.entries()[0].file,
        &keys().chain_seed,
    );
    for e in &c.entries()[..9] {
        // Mallory re-signs the whole history as her own: every signature verifies, but she
        // is not a trusted device.
        forged
            .append(
                &mallory,
                Change {
                    op: e.op,
                    content_root: e.content_root,
                    size: e.size,
                    path: e.path,
                    timestamp_ms: e.timestamp_ms,
                },
            )
            .unwrap();
    }
    p.entries = forged.entries().to_vec();
    add(
        "history re-signed by an untrusted device",
        &p,
        &seed_policy,
        "untrusted_author",
    );
    let mut p = good.clone();
    p.entries[9].author = DeviceId::of_signing_key(&mallory);
    add(
        "last entry claims another author",
        &p,
        &json!({"chain_seed": false, "trusted": null}),
        "bad_signature",
    );
    let mut p = good.clone();
    p.genesis = ChainHash::from_bytes([0; 32]);
    add(
        "genesis not derived from the chain seed",
        &p,
        &seed_policy,
        "bad_genesis",
    );
    add(
        "no chain seed: a wrong genesis still breaks the first signature",
        &p,
        &json!({"chain_seed": false, "trusted": null}),
        "bad_signature",
    );
    let mut p = good.clone();
    p.sections.push((proof::section::COSIGNATURE, vec![0; 8]));
    add(
        "section this verifier cannot check",
        &p,
        &seed_policy,
        "unsupported_section",
    );

    // Proofs with a log section (a C2SP tlog-proof): the chain's ten links are leaves of a log
    // of 25, the checkpoint signed by the bridge and cosigned by two of three witnesses.
    let (logged, log_vk, witness_vks, other_origin) = logged_proof(&c);
    let full = json!({"chain_seed": true, "trusted": null, "log": log_vk, "witnesses": [witness_vks[0], witness_vks[1]], "quorum": 2});
    let logged_valid = logged.clone();
    add(
        "a third witness in the policy, quorum 3: two cosigned",
        &logged,
        &json!({"chain_seed": true, "trusted": null, "log": log_vk, "witnesses": witness_vks, "quorum": 3}),
        "too_few_cosignatures",
    );
    add(
        "only a witness that did not cosign is named, quorum 1",
        &logged,
        &json!({"chain_seed": true, "trusted": null, "log": log_vk, "witnesses": [witness_vks[2]], "quorum": 1}),
        "unknown_witness",
    );
    let mallory_log = harp_protocol::tlog::VerifierKey::log(
        "bridge.example",
        &SigningKey::from_bytes(&MALLORY_SEED).verifying_key(),
    )
    .to_string();
    add(
        "the checkpoint is not signed by the policy's log key",
        &logged,
        &json!({"chain_seed": true, "trusted": null, "log": mallory_log, "witnesses": [], "quorum": 0}),
        "bad_log_signature",
    );
    let with_lp = |f: &dyn Fn(&mut harp_protocol::tlog::LogProof)| {
        let mut lp = logged.log_proof().unwrap().unwrap();
        f(&mut lp);
        logged.clone().with_log_proof(&lp)
    };
    add(
        "an inclusion hash changed",
        &with_lp(&|lp| lp.hashes[0][5] ^= 1),
        &full,
        "not_included",
    );
    add(
        "the leaf index moved",
        &with_lp(&|lp| lp.index += 1),
        &full,
        "not_included",
    );
    add(
        "a checkpoint of another folder's log",
        &with_lp(&|lp| lp.checkpoint = other_origin.clone()),
        &full,
        "wrong_log",
    );
    add(
        "a witness's cosignature altered",
        &with_lp(&|lp| {
            let lines: Vec<&str> = lp.checkpoint.lines().collect();
            let last = lines.len() - 1;
            let (head, b64) = lines[last].rsplit_once(' ').unwrap();
            let mut bytes = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
            bytes[30] ^= 1;
            let mut text = lines[..last].join("\n");
            text.push_str(&format!(
                "\n{head} {}\n",
                data_encoding::BASE64.encode(&bytes)
            ));
            lp.checkpoint = text;
        }),
        &full,
        "bad_cosignature",
    );
    add(
        "the policy asks for the log and the proof has no section",
        &good,
        &full,
        "no_log_proof",
    );
    let mut twice = logged.clone();
    twice.sections.push(twice.sections[0].clone());
    add("the log section twice", &twice, &full, "duplicate_section");

    let good_bytes = good.encode();
    let raw = |name: &str, bytes: &[u8], error: &str| json!({"name": name, "proof": hex(bytes), "policy": {"chain_seed": false, "trusted": null}, "error": error});
    broken.push(raw(
        "truncated in the last entry",
        &good_bytes[..good_bytes.len() - 10],
        "truncated",
    ));
    broken.push(raw("bad magic", b"NOT A PROOF AT ALL", "bad_magic"));
    let mut count = good_bytes.clone();
    count[72..76].copy_from_slice(&u32::MAX.to_be_bytes());
    broken.push(raw("entry count beyond the maximum", &count, "too_large"));
    let mut trailing = good_bytes.clone();
    trailing.push(0);
    broken.push(raw("trailing byte", &trailing, "trailing_bytes"));

    let s = good.verify(&Policy::default()).unwrap();
    let ls = verify_with(&json!(hex(&logged_valid.encode())), &full).unwrap();
    json!({
        "description": "Proofs v1 of the chain in chain.json; policy.chain_seed = use the chain seed of keys.json, policy.trusted = device ids allowed to author (null = any); policy.log = the bridge's C2SP verifier key, policy.witnesses = witnesses' cosignature verifier keys, policy.quorum = how many must have cosigned (absent: none)",
        "valid": [{
            "proof": hex(&good_bytes),
            "policy": seed_policy,
            "expect": {"seq": s.seq, "op": s.op.name(), "content_root": s.content_root.to_hex(), "size": s.size, "author": s.author.to_hex(), "head": s.head.to_hex()},
        }, {
            "proof": hex(&Proof::make(&c, 3).unwrap().encode()),
            "policy": {"chain_seed": true, "trusted": null},
            "expect": {"seq": 3, "op": "rename", "head": chain::link(&chain::link(&chain::link(&c.genesis(), &c.entries()[0].encode()), &c.entries()[1].encode()), &c.entries()[2].encode()).to_hex()},
        }, {
            "proof": hex(&logged_valid.encode()),
            "policy": full,
            "expect": {"seq": 10, "op": s.op.name(), "head": s.head.to_hex(), "log": {"index": ls.log.as_ref().unwrap().index, "size": ls.log.as_ref().unwrap().size, "cosigned_by": ls.log.as_ref().unwrap().cosigned_by.iter().map(|(n, t)| json!({"witness": n, "timestamp": t})).collect::<Vec<_>>()}},
        }],
        "broken": broken,
    })
}

/// The proof of version 10 of `c` with a log section; the log's and three witnesses' verifier
/// keys (the first two cosigned); and a signed checkpoint of another folder's log.
fn logged_proof(c: &Chain) -> (Proof, String, Vec<String>, String) {
    use harp_protocol::tlog::{self, Checkpoint, LogProof, VerifierKey};
    let log_key = SigningKey::from_bytes(&[0x10; 32]);
    let mut tree = tlog::Tree::new();
    let mut head = c.genesis();
    let mut index = 0;
    for (i, e) in c.entries().iter().enumerate() {
        tree.push(tlog::leaf_hash(
            format!("another file's link {i}").as_bytes(),
        ));
        head = chain::link(&head, &e.encode());
        index = tree.push(tlog::chain_leaf(&e.file, e.seq, &head));
    }
    for i in 0..5 {
        tree.push(tlog::leaf_hash(format!("a later link {i}").as_bytes()));
    }
    let size = tree.size();
    let checkpoint = |origin: String| {
        Checkpoint {
            origin,
            size,
            root: tree.root(size).unwrap(),
        }
        .body()
    };
    let body = checkpoint(format!("harp/{}", c.entries()[0].folder));
    let mut note = tlog::sign_note(&body, "bridge.example", &log_key).unwrap();
    let witnesses: Vec<SigningKey> = (0..3u8)
        .map(|i| SigningKey::from_bytes(&[0x20 + i; 32]))
        .collect();
    for (i, w) in witnesses.iter().take(2).enumerate() {
        let line = tlog::cosign(&body, &format!("w{i}.example"), w, 1_763_700_000 + i as u64);
        note.push_str(&line.unwrap());
    }
    let other = tlog::sign_note(
        &checkpoint(format!("harp/{}", FolderId::from_bytes([0xee; 16]))),
        "bridge.example",
        &log_key,
    )
    .unwrap();
    let proof = Proof::make(c, 10).unwrap().with_log_proof(&LogProof {
        index,
        hashes: tree.inclusion(index, size).unwrap(),
        checkpoint: note,
    });
    let log = VerifierKey::log("bridge.example", &log_key.verifying_key()).to_string();
    let keys = witnesses
        .iter()
        .enumerate()
        .map(|(i, w)| {
            VerifierKey::witness(&format!("w{i}.example"), &w.verifying_key()).to_string()
        })
        .collect();
    (proof, log, keys, other)
}

fn wire_vectors() -> Value {
    let folder = FolderId::from_bytes(FOLDER);
    let id = ChunkId::from_bytes([0x11; 32]);
    let msgs = [
        Message::Want {
            req: 1,
            folder,
            ids: vec![id, ChunkId::from_bytes([0x22; 32])],
        },
        Message::Blob {
            req: 1,
            id,
            data: b"ciphertext".to_vec(),
        },
        Message::Missing {
            req: 1,
            id: ChunkId::from_bytes([0x22; 32]),
        },
        Message::Refused {
            req: 2,
            reason: RefuseReason::NotMember,
        },
        Message::Cancel { req: 3 },
        Message::Have {
            folder,
            ids: vec![id],
        },
    ];
    let names = ["want", "blob", "missing", "refused", "cancel", "have"];
    let mut oversized = Vec::new();
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    json!({
        "description": "Chunk protocol frames: length u32 | tag u8 | fields",
        "frames": msgs.iter().zip(names).map(|(m, n)| json!({"name": n, "frame": hex(&m.encode_frame())})).collect::<Vec<_>>(),
        "broken": [
            {"name": "frame length above the maximum", "frame": hex(&oversized), "error": "too_large"},
            {"name": "unknown message tag", "frame": hex(&[0, 0, 0, 1, 0x7f]), "error": "unknown_tag"},
            {"name": "want with a count beyond the maximum", "frame": hex(&[&[0u8, 0, 0, 29, 1][..], &[0; 8], &FOLDER, &[0, 0, 0x10, 0]].concat()), "error": "too_large"},
            {"name": "want for nothing", "frame": hex(&[&[0u8, 0, 0, 29, 1][..], &[0; 8], &FOLDER, &[0, 0, 0, 0]].concat()), "error": "invalid"},
            {"name": "blob shorter than its length", "frame": hex(&[&[0u8, 0, 0, 47, 2][..], &[0; 8], &[0x11; 32], &[0, 0, 0, 9], b"ab"].concat()), "error": "truncated"},
        ],
    })
}

fn all_vectors() -> Vec<(&'static str, Value)> {
    vec![
        ("keys.json", keys_vectors()),
        ("ids.json", ids_vectors()),
        ("blobs.json", blob_vectors()),
        ("manifests.json", manifest_vectors()),
        ("chain.json", chain_vectors()),
        ("proofs.json", proof_vectors()),
        ("wire.json", wire_vectors()),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; run with HARP_BLESS_VECTORS=1 to write it"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn stored_vectors_match_this_implementation() {
    let bless = std::env::var_os("HARP_BLESS_VECTORS").is_some();
    for (name, value) in all_vectors() {
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        if bless {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(dir().join(name), &text).unwrap();
        }
        let stored = std::fs::read_to_string(dir().join(name)).unwrap();
        assert!(
            stored == text,
            "{name} differs from what the code makes: a format changed"
        );
    }
}

fn policy_of(v: &Value) -> (bool, Option<Vec<DeviceId>>) {
    let seed = v["chain_seed"].as_bool().unwrap();
    let trusted = v["trusted"].as_array().map(|a| {
        a.iter()
            .map(|d| d.as_str().unwrap().parse().unwrap())
            .collect()
    });
    (seed, trusted)
}

fn verify_with(proof_hex: &Value, policy: &Value) -> Result<proof::Summary, proof::ProofError> {
    use harp_protocol::tlog::VerifierKey;
    let k = keys();
    let (use_seed, trusted) = policy_of(policy);
    let log = policy["log"]
        .as_str()
        .map(|s| VerifierKey::parse(s).unwrap());
    let witnesses: Vec<VerifierKey> = policy["witnesses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| VerifierKey::parse(w.as_str().unwrap()).unwrap())
        .collect();
    proof::verify(
        &unhex(proof_hex),
        &Policy {
            chain_seed: use_seed.then_some(&k.chain_seed),
            trusted_devices: trusted.as_deref(),
            log_key: log.as_ref(),
            witnesses: &witnesses,
            quorum: policy["quorum"].as_u64().unwrap_or(0) as usize,
        },
    )
}

#[test]
fn stored_proofs_verify_or_fail_with_their_error() {
    let v = load("proofs.json");
    for valid in v["valid"].as_array().unwrap() {
        let s = verify_with(&valid["proof"], &valid["policy"]).unwrap();
        assert_eq!(s.seq, valid["expect"]["seq"].as_u64().unwrap());
        assert_eq!(s.head.to_hex(), valid["expect"]["head"].as_str().unwrap());
        assert_eq!(s.op.name(), valid["expect"]["op"].as_str().unwrap());
        if let Some(log) = valid["expect"].get("log") {
            let got = s.log.unwrap();
            assert_eq!(got.index, log["index"].as_u64().unwrap());
            assert_eq!(got.size, log["size"].as_u64().unwrap());
            assert_eq!(
                got.cosigned_by.len(),
                log["cosigned_by"].as_array().unwrap().len()
            );
        }
    }
    let broken = v["broken"].as_array().unwrap();
    assert!(broken.len() >= 10);
    for b in broken {
        let err = verify_with(&b["proof"], &b["policy"]).unwrap_err();
        assert_eq!(err.code(), b["error"].as_str().unwrap(), "{}", b["name"]);
    }
}

#[test]
fn stored_chain_links_recompute() {
    let v = load("chain.json");
    let k = keys();
    let folder: FolderId = v["folder"].as_str().unwrap().parse().unwrap();
    let file: FileId = v["file"].as_str().unwrap().parse().unwrap();
    let mut head = chain::genesis(&folder, &file, &k.chain_seed);
    assert_eq!(head.to_hex(), v["genesis"].as_str().unwrap());
    let mut entries = Vec::new();
    for e in v["entries"].as_array().unwrap() {
        let entry = Entry::decode(&unhex(&e["encoding"])).unwrap();
        entry.verify_signature(&head).unwrap();
        head = chain::link(&head, &entry.encode());
        assert_eq!(head.to_hex(), e["hash_after"].as_str().unwrap());
        entries.push(entry);
    }
    assert_eq!(
        chain::verify_chain(
            &folder,
            &file,
            &chain::genesis(&folder, &file, &k.chain_seed),
            &entries
        )
        .unwrap()
        .head,
        head
    );
}

#[test]
fn stored_blobs_and_manifests_open() {
    let k = keys();
    let kind = |s: &str| match s {
        "chunk" => BlobKind::Chunk,
        "manifest_node" => BlobKind::ManifestNode,
        _ => BlobKind::ManifestRecord,
    };
    let v = load("blobs.json");
    for c in v["cases"].as_array().unwrap() {
        let id: ChunkId = c["id"].as_str().unwrap().parse().unwrap();
        let plain = blob::open(
            &k,
            kind(c["kind"].as_str().unwrap()),
            &id,
            &unhex(&c["blob"]),
        )
        .unwrap();
        assert_eq!(plain, unhex(&c["plaintext"]));
    }
    for b in v["broken"].as_array().unwrap() {
        let bl = unhex(&b["blob"]);
        let kd = kind(b["kind"].as_str().unwrap());
        let err = match b["id"].as_str() {
            Some(id) => blob::open(&k, kd, &id.parse().unwrap(), &bl),
            None => blob::open_unchecked_id(&k, kd, &bl),
        }
        .unwrap_err();
        assert_eq!(err.code(), b["error"].as_str().unwrap(), "{}", b["name"]);
    }
    let m = load("manifests.json");
    for t in m["trees"].as_array().unwrap() {
        let nodes: std::collections::HashMap<ChunkId, Vec<u8>> = t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["id"].as_str().unwrap().parse().unwrap(),
                    unhex(&n["blob"]),
                )
            })
            .collect();
        let root: ContentRoot = t["root"].as_str().unwrap().parse().unwrap();
        let chunks = manifest::walk(&k, &root, |id| nodes.get(id).cloned()).unwrap();
        let expected: Vec<String> = t["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            chunks.iter().map(|c| c.id.to_hex()).collect::<Vec<_>>(),
            expected
        );
    }
    let rec = Manifest::open(&k, &unhex(&m["record"]["blob"])).unwrap();
    assert_eq!(rec.encode(), unhex(&m["record"]["encoding"]));
}

#[test]
fn stored_wire_frames_decode_or_fail_with_their_error() {
    let v = load("wire.json");
    for f in v["frames"].as_array().unwrap() {
        let bytes = unhex(&f["frame"]);
        let (msg, used) = harp_protocol::wire::decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(msg.encode_frame(), bytes);
    }
    for b in v["broken"].as_array().unwrap() {
        let err = harp_protocol::wire::decode_frame(&unhex(&b["frame"])).unwrap_err();
        assert_eq!(err.code(), b["error"].as_str().unwrap(), "{}", b["name"]);
    }
}
