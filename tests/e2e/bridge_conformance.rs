//! The bridge conformance suite: every endpoint of `docs/bridge-api.yaml` over HTTP, with the
//! refusals that matter (credentials, another user's folder, oversized and malformed bodies,
//! replayed and forged chain entries, the compare-and-swap conflict).
//!
//! By default each test starts its own `harp-bridge`. To check the Nextcloud app instead:
//! `HARP_BRIDGE_URL=http://127.0.0.1:8080 HARP_BRIDGE_USERS=alice:PW,bob:PW cargo nextest run
//! -p harp-e2e --test bridge_conformance` (the tests that need a fresh server's setting, such
//! as the server-wide versioning mode, create their folders with an explicit mode instead).

#![allow(clippy::unwrap_used)]

use data_encoding::{BASE64, HEXLOWER};
use ed25519_dalek::SigningKey;
use harp_e2e::bridge::{Client, Device, Target, create_folder, hex_id, random};
use harp_protocol::chain::{ChainTip, Change, Op};
use harp_protocol::ids::{ContentRoot, FileId, FolderId, PathCommitment};
use harp_protocol::keys::SecretKey;
use serde_json::{Value, json};

fn target() -> Target {
    Target::get().expect("a bridge to test")
}

#[test]
fn requests_without_valid_credentials_are_refused() {
    let t = target();
    let alice = t.client(0);
    for path in ["/capabilities", "/devices", "/folders"] {
        assert_eq!(alice.anonymous().get(path).status, 401, "{path} anonymous");
        let wrong = Client::new(&t.base, &t.users[0].0, "not-the-password");
        assert_eq!(wrong.get(path).status, 401, "{path} wrong password");
        // Bob's valid password does not open Alice's account.
        let swapped = Client::new(&t.base, &t.users[0].0, &t.users[1].1);
        assert_eq!(
            swapped.get(path).status,
            401,
            "{path} another user's password"
        );
    }
    assert_eq!(alice.get("/capabilities").status, 200);
}

#[test]
fn capabilities_describe_the_api_and_the_caller() {
    let t = target();
    let a = t.client(0).get("/capabilities");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["ocs"]["meta"]["statuscode"], 200);
    assert_eq!(a.data["api_version"], 1);
    assert!(!a.data["user"].as_str().unwrap_or("").is_empty());
    assert!(
        ["crdt", "server_authoritative"].contains(&a.data["versioning"].as_str().unwrap_or(""))
    );
    assert_eq!(a.data["limits"]["max_body_bytes"], 16 * 1024 * 1024);
    assert_eq!(a.data["limits"]["max_change_bytes"], 1024 * 1024);
}

#[test]
fn devices_register_publish_addresses_and_revoke() {
    let t = target();
    let (alice, bob) = (t.client(0), t.client(1));
    let d = Device::new();
    let reg = d.registration(&alice.user_id(), "laptop");
    let a = alice.post("/devices", &reg);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.data["device_id"], d.id());
    assert_eq!(a.data["name"], "laptop");
    // Again with the same keys: fine, not new.
    assert_eq!(alice.post("/devices", &reg).status, 200);
    // The same device id with another X25519 key, or for another user: conflict.
    let impostor = Device {
        key: SigningKey::from_bytes(&d.key.to_bytes()),
        x25519: random(),
    };
    let other_key = impostor.registration(&alice.user_id(), "laptop");
    assert_eq!(alice.post("/devices", &other_key).status, 409);
    let for_bob = d.registration(&bob.user_id(), "laptop");
    assert_eq!(bob.post("/devices", &for_bob).status, 409);
    // Signed for another user: the signature does not verify.
    let a = bob.post(
        "/devices",
        &Device::new().registration(&alice.user_id(), "x"),
    );
    assert_eq!((a.status, a.error()), (422, "invalid"), "{a:?}");
    // Malformed fields and unknown fields.
    let mut bad = Device::new().registration(&alice.user_id(), "x");
    bad["device_id"] = json!("not-a-device");
    assert_eq!(alice.post("/devices", &bad).status, 422);
    let mut extra = Device::new().registration(&alice.user_id(), "x");
    extra["file_content"] = json!("AAAA");
    assert_eq!(alice.post("/devices", &extra).status, 422);
    let mut long = Device::new().registration(&alice.user_id(), "x");
    long["name"] = json!("n".repeat(65));
    assert_eq!(alice.post("/devices", &long).status, 422);

    let list = alice.get("/devices");
    assert_eq!(list.status, 200);
    assert!(
        list.data
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["device_id"] == d.id()))
    );

    // Addresses: published, visible, bounded.
    let path = format!("/devices/{}/addresses", d.id());
    let addr = format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{}", "12D3KooWtest");
    let a = alice.put(&path, &json!({ "addresses": [addr], "ttl_seconds": 600 }));
    assert_eq!(a.status, 204, "{a:?}");
    let got = alice.get(&format!("/devices/{}", d.id()));
    assert_eq!(got.status, 200);
    assert_eq!(got.data["addresses"], json!([addr]));
    assert!(got.data["addresses_expire"].as_i64().unwrap_or(0) > 0);
    assert_eq!(
        alice
            .put(&path, &json!({ "addresses": [addr], "ttl_seconds": 5 }))
            .status,
        422
    );
    let many: Vec<String> = (0..17).map(|i| format!("/ip4/10.0.0.{i}/tcp/1")).collect();
    assert_eq!(
        alice
            .put(&path, &json!({ "addresses": many, "ttl_seconds": 60 }))
            .status,
        422
    );
    assert_eq!(
        alice
            .put(
                &path,
                &json!({ "addresses": ["no slash"], "ttl_seconds": 60 })
            )
            .status,
        422
    );
    // Bob shares nothing with Alice: her device is invisible to him, and not his to change.
    assert_eq!(bob.get(&format!("/devices/{}", d.id())).status, 404);
    assert_eq!(
        bob.put(&path, &json!({ "addresses": [], "ttl_seconds": 60 }))
            .status,
        404
    );
    assert_eq!(bob.delete(&format!("/devices/{}", d.id())).status, 404);
    // Revoked: gone.
    assert_eq!(alice.delete(&format!("/devices/{}", d.id())).status, 204);
    assert_eq!(alice.get(&format!("/devices/{}", d.id())).status, 404);
}

#[test]
fn folders_are_visible_to_members_only_and_keys_only_to_their_device() {
    let t = target();
    let (alice, bob) = (t.client(0), t.client(1));
    let (da, db) = (Device::new(), Device::new());
    let _da_registered = da.register(&alice);
    let _db_registered = db.register(&bob);
    let folder = create_folder(&alice, &da, "plaintext", None);
    let path = format!("/folders/{folder}");
    let a = alice.get(&path);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.data["owner"], alice.user_id());
    assert!(
        alice
            .get("/folders")
            .data
            .as_array()
            .is_some_and(|l| l.iter().any(|f| f["folder_id"] == folder))
    );
    // The same id again: conflict.
    let again = json!({
        "folder_id": folder, "label": "x", "index_mode": "plaintext",
        "wrapped_key": da.wrap_for(&folder, &da.id()),
    });
    assert_eq!(alice.post("/folders", &again).status, 409);

    // Bob: Alice's folder answers exactly like one that does not exist.
    let foreign = bob.get(&path);
    let missing = bob.get(&format!("/folders/{}", hex_id::<16>()));
    assert_eq!((foreign.status, missing.status), (404, 404));
    assert_eq!(
        foreign.data, missing.data,
        "a foreign folder must not be told apart"
    );
    assert!(
        !bob.get("/folders")
            .data
            .as_array()
            .is_some_and(|l| l.iter().any(|f| f["folder_id"] == folder))
    );
    assert_eq!(bob.get(&format!("{path}/changes")).status, 404);
    assert_eq!(
        bob.post(&format!("{path}/members"), &json!({"user": bob.user_id()}))
            .status,
        404
    );
    // A key for Bob's device before he is a member: refused.
    let key_path = format!("{path}/keys/{}", db.id());
    assert_eq!(
        alice.put(&key_path, &da.wrap_for(&folder, &db.id())).status,
        404
    );

    // Shared: Bob sees it, with both members and their devices.
    let a = alice.post(&format!("{path}/members"), &json!({"user": bob.user_id()}));
    assert_eq!(a.status, 201, "{a:?}");
    let seen = bob.get(&path);
    assert_eq!(seen.status, 200);
    let members = seen.data["members"].as_array().cloned().unwrap_or_default();
    assert!(members.iter().any(|m| {
        m["user"] == bob.user_id()
            && m["devices"]
                .as_array()
                .is_some_and(|d| d.contains(&json!(db.id())))
    }));
    assert!(members.iter().any(|m| m["user"] == alice.user_id()));
    // Now they share a folder, each sees the other's devices.
    assert_eq!(bob.get(&format!("/devices/{}", da.id())).status, 200);
    // Alice wraps the key for Bob's device; only Bob reads it.
    let wrapped = da.wrap_for(&folder, &db.id());
    assert_eq!(alice.put(&key_path, &wrapped).status, 204);
    let got = bob.get(&key_path);
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.data, wrapped);
    assert_eq!(
        alice.get(&key_path).status,
        404,
        "a key is read by its device's user only"
    );
    // A forged wrap (signature over other bytes) and a wrap claimed by someone else's device.
    let mut forged = da.wrap_for(&folder, &db.id());
    forged["ciphertext"] = json!(BASE64.encode(&random::<48>()));
    assert_eq!(alice.put(&key_path, &forged).status, 422);
    assert_eq!(
        bob.put(
            &format!("{path}/keys/{}", da.id()),
            &da.wrap_for(&folder, &da.id())
        )
        .status,
        422
    );
    // Only the owner shares.
    assert_eq!(
        bob.post(
            &format!("{path}/members"),
            &json!({"user": alice.user_id()})
        )
        .status,
        404
    );
    // Unshared: gone for Bob, with his key.
    assert_eq!(
        alice
            .delete(&format!("{path}/members/{}", bob.user_id()))
            .status,
        204
    );
    assert_eq!(bob.get(&path).status, 404);
    assert_eq!(bob.get(&key_path).status, 404);
    // Bob can leave a folder he was given (shared again, then leaves).
    assert_eq!(
        alice
            .post(&format!("{path}/members"), &json!({"user": bob.user_id()}))
            .status,
        201
    );
    assert_eq!(
        bob.delete(&format!("{path}/members/{}", bob.user_id()))
            .status,
        204
    );
    assert_eq!(bob.get(&path).status, 404);
}

#[test]
fn changes_are_stored_opaquely_and_paged_by_cursor() {
    let t = target();
    let (alice, bob) = (t.client(0), t.client(1));
    let da = Device::new();
    let _da_registered = da.register(&alice);
    let folder = create_folder(&alice, &da, "encrypted", None);
    let path = format!("/folders/{folder}/changes");
    let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let body = json!({ "device": da.id(), "changes": blobs.iter().map(|b| BASE64.encode(b)).collect::<Vec<_>>() });
    let a = alice.post(&path, &body);
    assert_eq!(a.status, 200, "{a:?}");
    let last = a.data["cursor"].as_i64().unwrap_or(0);
    assert!(last > 0);
    let all = alice.get(&format!("{path}?after=0"));
    assert_eq!(all.status, 200);
    let got: Vec<Vec<u8>> = all.data["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            BASE64
                .decode(c["change"].as_str().unwrap_or("").as_bytes())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(got, blobs, "oldest first, byte for byte");
    assert_eq!(all.data["next"], Value::Null);
    // Paging: one at a time.
    let mut after = 0;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let p = alice.get(&format!("{path}?after={after}&limit=1"));
        let cs = p.data["changes"].as_array().cloned().unwrap_or_default();
        seen.extend(cs.iter().map(|c| c["cursor"].as_i64().unwrap_or(0)));
        match p.data["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen.last().copied(), Some(last));
    // Refusals: a non-member, another user's device, bad base64, an oversized change, a
    // body over the limit.
    assert_eq!(bob.get(&path).status, 404);
    let bob_dev = Device::new();
    let _bob_dev_registered = bob_dev.register(&bob);
    assert_eq!(
        alice
            .post(
                &path,
                &json!({ "device": bob_dev.id(), "changes": ["AAAA"] })
            )
            .status,
        422
    );
    assert_eq!(
        alice
            .post(&path, &json!({ "device": da.id(), "changes": ["%%%"] }))
            .status,
        422
    );
    assert_eq!(
        alice
            .post(&path, &json!({ "device": da.id(), "changes": [] }))
            .status,
        422
    );
    let big = BASE64.encode(&vec![1u8; 1024 * 1024 + 1]);
    assert_eq!(
        alice
            .post(&path, &json!({ "device": da.id(), "changes": [big] }))
            .status,
        413
    );
    let huge = vec![b' '; 17 * 1024 * 1024];
    assert_eq!(alice.raw("POST", &path, Some(huge)).status, 413);
    assert_eq!(
        alice.raw("POST", &path, Some(b"{not json".to_vec())).status,
        422
    );
    // Nothing of that was stored.
    let after_all = alice.get(&format!("{path}?after={last}"));
    assert_eq!(after_all.data["changes"], json!([]));
}

/// Builds chain entries for tests: the bridge checks everything but the genesis.
struct Chain {
    tip: ChainTip,
}

impl Chain {
    fn new(folder: &str, file: &str) -> Self {
        let f = FolderId::from_bytes(
            HEXLOWER
                .decode(folder.as_bytes())
                .unwrap_or_default()
                .try_into()
                .unwrap_or([0; 16]),
        );
        let id = FileId::from_bytes(
            HEXLOWER
                .decode(file.as_bytes())
                .unwrap_or_default()
                .try_into()
                .unwrap_or([0; 16]),
        );
        Self {
            tip: ChainTip::genesis(f, id, &SecretKey::from_bytes(random())),
        }
    }

    /// The next entry (not applied to the tip): the request body and the new tip.
    fn next(&self, author: &Device) -> (Value, ChainTip) {
        let op = if self.tip.present {
            Op::Modify
        } else {
            Op::Create
        };
        let change = Change {
            op,
            content_root: ContentRoot::from_bytes(random()),
            size: 1234,
            path: PathCommitment::from_bytes(random()),
            timestamp_ms: 1_763_700_000_000,
        };
        let (entry, head) = self.tip.sign(&author.key, change).expect("sign");
        let body = json!({
            "prev": self.tip.head.to_hex(),
            "entry": BASE64.encode(&entry.encode()),
            "head": head.to_hex(),
        });
        (body, self.tip.after(&entry, head))
    }
}

#[test]
fn chain_entries_are_checked_replays_answer_the_stored_link_and_forgeries_are_refused() {
    let t = target();
    let (alice, bob) = (t.client(0), t.client(1));
    let (da, stranger) = (Device::new(), Device::new());
    let _da_registered = da.register(&alice);
    let _stranger_registered = stranger.register(&bob);
    let folder = create_folder(&alice, &da, "plaintext", Some("crdt"));
    let file = hex_id::<16>();
    let path = format!("/folders/{folder}/files/{file}/entries");
    let mut chain = Chain::new(&folder, &file);
    let mut bodies = Vec::new();
    for seq in 1..=3 {
        let (body, tip) = chain.next(&da);
        let a = alice.post(&path, &body);
        assert_eq!(a.status, 201, "seq {seq}: {a:?}");
        assert_eq!(a.data["seq"], seq);
        assert_eq!(a.data["head"], body["head"]);
        chain.tip = tip;
        bodies.push(body);
    }
    // A replay answers the stored link, and stores nothing new.
    let replay = alice.post(&path, &bodies[1]);
    assert_eq!(replay.status, 200, "{replay:?}");
    assert_eq!(replay.data["seq"], 2);
    let read = alice.get(&format!("{path}?from_seq=1"));
    assert_eq!(read.status, 200);
    let links = read.data.as_array().cloned().unwrap_or_default();
    assert_eq!(links.len(), 3);
    for (l, b) in links.iter().zip(&bodies) {
        assert_eq!(
            (&l["prev"], &l["entry"], &l["head"]),
            (&b["prev"], &b["entry"], &b["head"])
        );
    }
    assert_eq!(
        alice
            .get(&format!("{path}?from_seq=3"))
            .data
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let refused = |body: &Value, why: &str| {
        let a = alice.post(&path, body);
        assert_eq!((a.status, a.error()), (422, "invalid"), "{why}: {a:?}");
        assert!(a.message().contains(why), "{why}: {a:?}");
    };
    // Forged: a byte of the signed part changed (and the head recomputed to match).
    let (good, _) = chain.next(&da);
    let mut raw = BASE64
        .decode(good["entry"].as_str().unwrap_or("").as_bytes())
        .unwrap_or_default();
    raw[80] ^= 1;
    let prev = harp_protocol::ids::ChainHash::from_bytes(
        HEXLOWER
            .decode(good["prev"].as_str().unwrap_or("").as_bytes())
            .unwrap_or_default()
            .try_into()
            .unwrap_or([0; 32]),
    );
    let forged = json!({
        "prev": good["prev"],
        "entry": BASE64.encode(&raw),
        "head": harp_protocol::chain::link(&prev, &raw).to_hex(),
    });
    refused(&forged, "bad_signature");
    // Head that is not SHA3(prev ‖ entry).
    let mut wrong_head = good.clone();
    wrong_head["head"] = json!(hex_id::<32>());
    refused(&wrong_head, "wrong_head");
    // An entry for another file posted here.
    let other = Chain::new(&folder, &hex_id::<16>());
    refused(&other.next(&da).0, "wrong_file");
    // An entry whose prev is not a stored head (it skips one).
    let (skipped_body, skipped_tip) = chain.next(&da);
    let _ = skipped_body;
    let skip = Chain { tip: skipped_tip };
    refused(&skip.next(&da).0, "wrong_link");
    // An author who is not a device of a member.
    refused(&chain.next(&stranger).0, "unknown_author");
    // Malformed: not 218 bytes.
    let mut short = good.clone();
    short["entry"] = json!(BASE64.encode(&[1u8; 100]));
    refused(&short, "malformed");
    // None of that was stored; the good one still goes in.
    assert_eq!(alice.get(&path).data.as_array().map(Vec::len), Some(3));
    assert_eq!(alice.post(&path, &good).status, 201);
    // A non-member learns nothing.
    assert_eq!(bob.get(&path).status, 404);
    assert_eq!(bob.post(&path, &good).status, 404);
}

#[test]
fn crdt_folders_keep_forks_and_server_authoritative_folders_compare_and_swap() {
    let t = target();
    let alice = t.client(0);
    let da = Device::new();
    let _da_registered = da.register(&alice);

    // crdt: two different entries after the same head are both stored.
    let folder = create_folder(&alice, &da, "plaintext", Some("crdt"));
    let file = hex_id::<16>();
    let path = format!("/folders/{folder}/files/{file}/entries");
    let mut chain = Chain::new(&folder, &file);
    let (first, tip) = chain.next(&da);
    assert_eq!(alice.post(&path, &first).status, 201);
    chain.tip = tip;
    let (left, _) = chain.next(&da);
    let (right, _) = chain.next(&da);
    assert_ne!(left["head"], right["head"]);
    assert_eq!(alice.post(&path, &left).status, 201);
    assert_eq!(alice.post(&path, &right).status, 201);
    assert_eq!(alice.get(&path).data.as_array().map(Vec::len), Some(3));

    // server_authoritative: the append names the head it builds on.
    let folder = create_folder(&alice, &da, "plaintext", Some("server_authoritative"));
    assert_eq!(
        alice.get(&format!("/folders/{folder}")).data["versioning"],
        "server_authoritative"
    );
    let file = hex_id::<16>();
    let path = format!("/folders/{folder}/files/{file}/entries");
    let mut chain = Chain::new(&folder, &file);
    let (mut first, tip) = chain.next(&da);
    first["expected_head"] = Value::Null;
    assert_eq!(alice.post(&path, &first).status, 201);
    let head1 = first["head"].clone();
    chain.tip = tip;
    let (mut left, left_tip) = chain.next(&da);
    let (mut right, _) = chain.next(&da);
    // Building on nothing when there is a head: conflict, with the current head.
    let a = alice.post(&path, &left);
    assert_eq!((a.status, a.error()), (409, "conflict"), "{a:?}");
    assert_eq!(a.data["head"], head1);
    assert_eq!(a.data["seq"], 1);
    left["expected_head"] = head1.clone();
    assert_eq!(alice.post(&path, &left).status, 201);
    // The other writer built on head1 too: it lost the race and learns the new head.
    right["expected_head"] = head1;
    let a = alice.post(&path, &right);
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(a.data["head"], left["head"]);
    assert_eq!(a.data["seq"], 2);
    // It rebases on the new head and goes in.
    chain.tip = left_tip;
    let (mut rebased, _) = chain.next(&da);
    rebased["expected_head"] = left["head"].clone();
    assert_eq!(alice.post(&path, &rebased).status, 201);
    assert_eq!(alice.get(&path).data.as_array().map(Vec::len), Some(3));
}

#[test]
fn the_index_holds_names_only_where_the_folder_allows_them() {
    let t = target();
    let (alice, bob) = (t.client(0), t.client(1));
    let da = Device::new();
    let _da_registered = da.register(&alice);
    let plain = create_folder(&alice, &da, "plaintext", None);
    let (f1, f2) = (hex_id::<16>(), hex_id::<16>());
    let body = json!({ "entries": [
        { "file_id": f1, "name": "photos/Summer 2026/beach.jpg", "size": 1000, "mtime_ms": 1, "deleted": false },
        { "file_id": f2, "name": "notes/todo.txt", "size": 10, "mtime_ms": 2, "deleted": false },
    ]});
    let a = alice.put(&format!("/folders/{plain}/index"), &body);
    assert_eq!(a.status, 204, "{a:?}");
    let found = alice.get(&format!("/folders/{plain}/index?q=summer%202026"));
    assert_eq!(found.status, 200, "{found:?}");
    let hits = found.data.as_array().cloned().unwrap_or_default();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["file_id"], f1);
    assert_eq!(
        bob.get(&format!("/folders/{plain}/index?q=beach")).status,
        404
    );

    let enc = create_folder(&alice, &da, "encrypted", None);
    let a = alice.put(&format!("/folders/{enc}/index"), &body);
    assert_eq!(
        a.status, 422,
        "a plaintext name in an encrypted folder: {a:?}"
    );
    let (t1, t2) = (hex_id::<16>(), hex_id::<16>());
    let tokens = json!({ "entries": [
        { "file_id": f1, "tokens": [t1, t2], "size": 5, "mtime_ms": 3, "deleted": false },
        { "file_id": f2, "tokens": [t2], "size": 6, "mtime_ms": 4, "deleted": false },
    ]});
    assert_eq!(
        alice.put(&format!("/folders/{enc}/index"), &tokens).status,
        204
    );
    let both = alice.get(&format!("/folders/{enc}/index?token={t1}&token={t2}"));
    assert_eq!(both.data.as_array().map(Vec::len), Some(1), "{both:?}");
    let one = alice.get(&format!("/folders/{enc}/index?token={t2}"));
    assert_eq!(one.data.as_array().map(Vec::len), Some(2), "{one:?}");
    assert_eq!(
        alice.get(&format!("/folders/{enc}/index?token=xyz")).status,
        422
    );
}

#[test]
fn unknown_paths_malformed_ids_and_an_empty_log_answer_cleanly() {
    let t = target();
    let alice = t.client(0);
    let da = Device::new();
    let _da_registered = da.register(&alice);
    let folder = create_folder(&alice, &da, "plaintext", None);
    assert_eq!(alice.get("/no-such-endpoint").status, 404);
    assert_eq!(alice.get("/folders/../../etc/passwd").status, 404);
    assert_eq!(alice.get("/folders/not-hex").status, 404);
    let a = alice.get(&format!("/folders/{folder}/files/not-a-file-id/entries"));
    assert!(a.status == 404 || a.status == 422, "{a:?}");
    // An empty log has a checkpoint too: size 0, the empty tree's root.
    let a = alice.get(&format!("/folders/{folder}/checkpoint"));
    assert_eq!((a.status, a.data["size"].clone()), (200, json!(0)), "{a:?}");
    let body = harp_protocol::tlog::Note::parse(a.data["note"].as_str().unwrap())
        .unwrap()
        .body;
    let cp = harp_protocol::tlog::Checkpoint::parse(&body).unwrap();
    assert_eq!(cp.root, harp_protocol::tlog::empty_root());
    // Every answer, failures included, is an OCS envelope with the status mirrored.
    let a = alice.get(&format!("/folders/{}", hex_id::<16>()));
    assert_eq!(a.body["ocs"]["meta"]["statuscode"], 404);
    assert_eq!(a.error(), "not_found");
}

/// Parses a C2SP verifier key `name+hex(key id)+base64(0x01 ‖ key)`.
fn verifier_key(s: &str) -> (String, ed25519_dalek::VerifyingKey) {
    let mut parts = s.splitn(3, '+');
    let (name, _id, key) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let bytes = BASE64.decode(key.as_bytes()).unwrap();
    assert_eq!(bytes[0], 1, "an Ed25519 verifier key");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes[1..].try_into().unwrap()).unwrap();
    (name.to_owned(), key)
}

fn hashes(v: &Value) -> Vec<harp_protocol::tlog::Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            HEXLOWER
                .decode(h.as_str().unwrap().as_bytes())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

#[test]
fn the_folder_log_is_signed_provable_append_only_and_takes_cosignatures() {
    use harp_protocol::tlog::{self, Checkpoint, Note, Tree};
    let t = target();
    let (alice, bob) = (t.client(0), t.client(1));
    let da = Device::new();
    let _da_registered = da.register(&alice);
    let folder = create_folder(&alice, &da, "plaintext", Some("crdt"));
    let (log_name, log_key) =
        verifier_key(alice.get("/capabilities").data["log_key"].as_str().unwrap());

    // Entries of two files, interleaved; each new one gets the next leaf.
    let files = [hex_id::<16>(), hex_id::<16>()];
    let mut chains: Vec<Chain> = files.iter().map(|f| Chain::new(&folder, f)).collect();
    let mut local = Tree::new();
    let mut leaves = Vec::new();
    let mut append = |k: usize, local: &mut Tree, leaves: &mut Vec<tlog::Hash>| {
        let (body, tip) = chains[k].next(&da);
        let a = alice.post(
            &format!("/folders/{folder}/files/{}/entries", files[k]),
            &body,
        );
        assert_eq!(a.status, 201, "{a:?}");
        assert_eq!(a.data["log_index"], local.size(), "{a:?}");
        let id: FileId = files[k].parse().unwrap();
        let leaf = tlog::chain_leaf(&id, tip.seq, &tip.head);
        local.push(leaf);
        leaves.push(leaf);
        chains[k].tip = tip;
        body
    };
    let first = append(0, &mut local, &mut leaves);
    for k in [1, 0, 1, 0] {
        append(k, &mut local, &mut leaves);
    }
    // A replay keeps its place.
    let replay = alice.post(
        &format!("/folders/{folder}/files/{}/entries", files[0]),
        &first,
    );
    assert_eq!(
        (replay.status, replay.data["log_index"].clone()),
        (200, json!(0))
    );

    let checkpoint = |c: &Client| -> (Checkpoint, Note) {
        let a = c.get(&format!("/folders/{folder}/checkpoint"));
        assert_eq!(a.status, 200, "{a:?}");
        let note = Note::parse(a.data["note"].as_str().unwrap()).unwrap();
        let body = note.verified_by(&log_name, &log_key).unwrap().to_owned();
        let cp = Checkpoint::parse(&body).unwrap();
        assert_eq!(a.data["size"], cp.size);
        (cp, note)
    };
    let (cp5, _) = checkpoint(&alice);
    assert_eq!(cp5.origin, format!("harp/{folder}"));
    assert_eq!((cp5.size, cp5.root), (5, local.root(5).unwrap()));
    for index in 0..5u64 {
        let a = alice.get(&format!(
            "/folders/{folder}/log/inclusion?index={index}&size=5"
        ));
        assert_eq!(a.status, 200, "{a:?}");
        let proof = hashes(&a.data["proof"]);
        assert_eq!(
            proof,
            local.inclusion(index, 5).unwrap(),
            "the RFC 6962 path"
        );
        tlog::verify_inclusion(&leaves[index as usize], index, 5, &proof, &cp5.root).unwrap();
    }
    // Two more, then the new checkpoint extends the old one.
    append(1, &mut local, &mut leaves);
    append(0, &mut local, &mut leaves);
    let (cp7, _) = checkpoint(&alice);
    assert_eq!((cp7.size, cp7.root), (7, local.root(7).unwrap()));
    let a = alice.get(&format!("/folders/{folder}/log/consistency?old=5&new=7"));
    assert_eq!(a.status, 200, "{a:?}");
    tlog::verify_consistency(5, 7, &hashes(&a.data["proof"]), &cp5.root, &cp7.root).unwrap();

    // A witness cosigns size 7; the note then carries its line.
    let witness = SigningKey::from_bytes(&random());
    let line = tlog::cosign(&cp7.body(), "witness.example/w1", &witness, 1_763_700_000).unwrap();
    let path = format!("/folders/{folder}/checkpoint/cosignatures");
    let a = alice.post(&path, &json!({ "size": 7, "cosignature": line }));
    assert_eq!(a.status, 204, "{a:?}");
    let (_, note) = checkpoint(&alice);
    assert_eq!(
        note.cosigned_by("witness.example/w1", &witness.verifying_key())
            .unwrap(),
        1_763_700_000
    );
    assert_eq!(
        alice
            .post(&path, &json!({ "size": 7, "cosignature": "not a line" }))
            .status,
        422
    );
    assert_eq!(
        alice
            .post(&path, &json!({ "size": 99, "cosignature": line }))
            .status,
        422
    );
    // Bad ranges, and a stranger.
    assert_eq!(
        alice
            .get(&format!("/folders/{folder}/log/inclusion?index=7&size=7"))
            .status,
        422
    );
    assert_eq!(
        alice
            .get(&format!("/folders/{folder}/log/consistency?old=7&new=5"))
            .status,
        422
    );
    assert_eq!(
        alice
            .get(&format!("/folders/{folder}/log/inclusion?index=0&size=99"))
            .status,
        422
    );
    assert_eq!(
        bob.get(&format!("/folders/{folder}/checkpoint")).status,
        404
    );
    assert_eq!(
        bob.get(&format!("/folders/{folder}/log/consistency?old=5&new=7"))
            .status,
        404
    );
    assert_eq!(
        bob.post(&path, &json!({ "size": 7, "cosignature": line }))
            .status,
        404
    );
}
