//! The data plane between real processes on loopback: a `harp relay`, and `harp daemon`s that
//! reach each other through it, exchange verified chunks, go direct by hole punching, refuse
//! strangers, and report all of it through `harp peers`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use harp::config::{Config, PeerConfig};
use harp::index::Index;
use harp_e2e::{Proc, control, dirs, edit_config, fill, harp, init_device, wait_for};
use serde_json::{Value, json};

fn setup(home: &Path) -> String {
    init_device(home).unwrap()
}

fn edit(home: &Path, f: impl FnOnce(&mut Config)) {
    edit_config(home, f).unwrap();
}

fn ask(home: &Path, req: Value) -> Value {
    control(home, &req).unwrap()
}

fn wait(what: &str, f: impl FnMut() -> bool) {
    assert!(wait_for(30, f).is_some(), "timed out waiting for {what}");
}

/// Blob ids of a scanned file: its chunks, then its manifest root.
fn blob_ids(home: &Path, rel: &str) -> (String, Vec<String>) {
    let d = dirs(home);
    let c = Config::load(&d).unwrap();
    let folder = &c.folders[0];
    let index = Index::open(&d.index()).unwrap();
    let row = index.file(&folder.id, rel).unwrap().unwrap();
    let mut ids: Vec<String> = index
        .chunks(&folder.id, &row.file_id)
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    ids.push(row.content_root.to_string());
    (folder.id.to_string(), ids)
}

#[test]
fn daemons_meet_through_a_relay_exchange_verified_chunks_and_go_direct() {
    let tmp = tempfile::tempdir().unwrap();
    let (r_home, a_home, b_home, c_home) = (
        tmp.path().join("r"),
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for h in [&r_home, &a_home, &b_home, &c_home] {
        std::fs::create_dir_all(h).unwrap();
    }
    setup(&r_home);
    let relay = Proc::start(
        &[],
        &r_home,
        &["relay", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"],
    )
    .unwrap();
    let relay_addr = relay
        .until("relay listening on")
        .unwrap()
        .pop()
        .unwrap()
        .replace("relay listening on ", "");

    let a_id = setup(&a_home);
    let b_id = setup(&b_home);
    let c_id = setup(&c_home);
    // B has a folder with a 2 MiB file, shared with A (not with C), and a slot on the relay.
    let docs: PathBuf = b_home.join("docs");
    assert!(
        harp(&b_home, &["folder", "add", docs.to_str().unwrap()])
            .unwrap()
            .status
            .success()
    );
    let data = fill(b"p2p", 2 << 20);
    std::fs::write(docs.join("big.bin"), &data).unwrap();
    assert!(harp(&b_home, &["scan", "docs"]).unwrap().status.success());
    let loopback = vec!["/ip4/127.0.0.1/udp/0/quic-v1".to_owned()];
    edit(&b_home, |c| {
        c.listen = loopback.clone();
        c.mdns = false;
        c.relays = vec![relay_addr.clone()];
        c.folders[0].members = vec![a_id.clone()];
    });
    let _b = Proc::start(&[], &b_home, &["daemon"]).unwrap();
    _b.until("daemon ready").unwrap();
    wait("B's relay reservation", || {
        ask(&b_home, json!({"cmd": "status"}))["listen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("p2p-circuit"))
    });
    let status = harp(&b_home, &["status"]).unwrap();
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains("listening (relayed)") && text.contains(&b_id),
        "{text}"
    );
    let b_peer = ask(&b_home, json!({"cmd": "status"}))["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let via_relay = format!("{relay_addr}/p2p-circuit/p2p/{b_peer}");

    // A and C know B only by its relayed address.
    for (home, _) in [(&a_home, &a_id), (&c_home, &c_id)] {
        edit(home, |c| {
            c.listen = loopback.clone();
            c.mdns = false;
            c.peers = vec![PeerConfig {
                device: b_id.clone(),
                addresses: vec![via_relay.clone()],
            }];
        });
    }
    let _a = Proc::start(&[], &a_home, &["daemon"]).unwrap();
    _a.until("daemon ready").unwrap();
    wait("A connected to B", || {
        ask(&a_home, json!({"cmd": "peers"}))["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == json!(b_id))
    });

    let (folder, ids) = blob_ids(&b_home, "big.bin");
    let got = ask(
        &a_home,
        json!({"cmd": "fetch", "folder": folder, "ids": ids, "peers": [b_id]}),
    );
    assert_eq!(got["fetched"].as_u64(), Some(ids.len() as u64), "{got}");
    assert!(got["bytes"].as_u64().unwrap() > 2 << 20);

    // Hole punching turns the relayed connection into a direct one; `harp peers` says so.
    wait("a direct connection to B", || {
        let v = ask(&a_home, json!({"cmd": "peers"}));
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == json!(b_id) && p["direct"] == json!(true))
    });
    let out = harp(&a_home, &["peers"]).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&b_id) && text.contains("direct"), "{text}");
    let v = ask(&a_home, json!({"cmd": "peers"}));
    let b = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device"] == json!(b_id))
        .unwrap()
        .clone();
    assert_eq!(b["bytes_in"], got["bytes"]);

    // C is not a member of B's folder: refused, nothing moves.
    let _c = Proc::start(&[], &c_home, &["daemon"]).unwrap();
    _c.until("daemon ready").unwrap();
    wait("C connected to B", || {
        ask(&c_home, json!({"cmd": "peers"}))["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == json!(b_id))
    });
    let refused = ask(
        &c_home,
        json!({"cmd": "fetch", "folder": folder, "ids": ids, "peers": [b_id]}),
    );
    assert_eq!(refused["fetched"].as_u64(), Some(0), "{refused}");
    assert!(
        refused["failed_peers"].to_string().contains("NotMember"),
        "{refused}"
    );
}

#[test]
fn peers_without_a_daemon_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let out = harp(tmp.path(), &["peers"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("harp daemon"), "{err}");
}
