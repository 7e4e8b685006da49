//! The data plane between real processes on loopback: a `harp relay`, and `harp daemon`s that
//! reach each other through it, exchange verified chunks, go direct by hole punching, refuse
//! strangers, and report all of it through `harp peers`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harp::config::{Config, Dirs, PeerConfig};
use harp::index::Index;
use harp_e2e::{binary, harp};
use serde_json::{Value, json};

/// A child process killed when the test ends, whatever happens.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(home: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(binary("harp").unwrap())
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Lines printed until one contains `marker`.
    fn until(&self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {marker:?} in {seen:?}"));
            let done = line.contains(marker);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }
}

fn dirs(home: &Path) -> Dirs {
    Dirs {
        config: home.join("config/harp"),
        data: home.join("data/harp"),
    }
}

fn setup(home: &Path) -> String {
    let out = harp(home, &["init", "--json"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["device_id"].as_str().unwrap().to_owned()
}

fn edit_config(home: &Path, f: impl FnOnce(&mut Config)) {
    let d = dirs(home);
    let mut c = Config::load(&d).unwrap();
    f(&mut c);
    c.save(&d).unwrap();
}

fn control(home: &Path, req: Value) -> Value {
    harp::daemon::request(&dirs(home).control_socket(), &req).unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
        &r_home,
        &["relay", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"],
    );
    let relay_addr = relay
        .until("relay listening on")
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
    let mut data = vec![0u8; 2 << 20];
    blake3::Hasher::new()
        .update(b"p2p")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(docs.join("big.bin"), &data).unwrap();
    assert!(harp(&b_home, &["scan", "docs"]).unwrap().status.success());
    let loopback = vec!["/ip4/127.0.0.1/udp/0/quic-v1".to_owned()];
    edit_config(&b_home, |c| {
        c.listen = loopback.clone();
        c.mdns = false;
        c.relays = vec![relay_addr.clone()];
        c.folders[0].members = vec![a_id.clone()];
    });
    let _b = Proc::start(&b_home, &["daemon"]);
    _b.until("daemon ready");
    wait_for("B's relay reservation", || {
        control(&b_home, json!({"cmd": "status"}))["listen"]
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
    let b_peer = control(&b_home, json!({"cmd": "status"}))["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let via_relay = format!("{relay_addr}/p2p-circuit/p2p/{b_peer}");

    // A and C know B only by its relayed address.
    for (home, _) in [(&a_home, &a_id), (&c_home, &c_id)] {
        edit_config(home, |c| {
            c.listen = loopback.clone();
            c.mdns = false;
            c.peers = vec![PeerConfig {
                device: b_id.clone(),
                addresses: vec![via_relay.clone()],
            }];
        });
    }
    let _a = Proc::start(&a_home, &["daemon"]);
    _a.until("daemon ready");
    wait_for("A connected to B", || {
        control(&a_home, json!({"cmd": "peers"}))["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == json!(b_id))
    });

    let (folder, ids) = blob_ids(&b_home, "big.bin");
    let got = control(
        &a_home,
        json!({"cmd": "fetch", "folder": folder, "ids": ids, "peers": [b_id]}),
    );
    assert_eq!(got["fetched"].as_u64(), Some(ids.len() as u64), "{got}");
    assert!(got["bytes"].as_u64().unwrap() > 2 << 20);

    // Hole punching turns the relayed connection into a direct one; `harp peers` says so.
    wait_for("a direct connection to B", || {
        let v = control(&a_home, json!({"cmd": "peers"}));
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == json!(b_id) && p["direct"] == json!(true))
    });
    let out = harp(&a_home, &["peers"]).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&b_id) && text.contains("direct"), "{text}");
    let v = control(&a_home, json!({"cmd": "peers"}));
    let b = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device"] == json!(b_id))
        .unwrap()
        .clone();
    assert_eq!(b["bytes_in"], got["bytes"]);

    // C is not a member of B's folder: refused, nothing moves.
    let _c = Proc::start(&c_home, &["daemon"]);
    _c.until("daemon ready");
    wait_for("C connected to B", || {
        control(&c_home, json!({"cmd": "peers"}))["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == json!(b_id))
    });
    let refused = control(
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
