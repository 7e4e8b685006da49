//! NAT traversal between real `harp` processes in a lab of Linux network namespaces
//! (`tests/netlab/lab.sh`): two home routers with NAT and a stateful firewall, a public
//! relay, peers behind each router. Needs root, iproute2 and nftables (the README's test
//! command installs them). Each case prints one line: connected or not, direct or relayed,
//! time to direct.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harp::config::{Config, PeerConfig};
use harp::index::Index;
use harp_e2e::harp;
use harp_e2e::{
    Proc, control, dirs, edit_config, fill, init_device, peer_entry, wait_for, workspace_root,
};
use serde_json::{Value, json};

struct Lab {
    prefix: String,
}

fn lab_script() -> PathBuf {
    workspace_root().join("tests/netlab/lab.sh")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

impl Lab {
    fn up(name: &str, nat_a: &str, nat_b: &str) -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: the NAT lab needs root");
            return None;
        }
        let prefix = format!("h{}{}", name, std::process::id() % 10_000);
        let out = Command::new(lab_script())
            .args(["up", &prefix, nat_a, nat_b])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self { prefix })
    }

    fn ctl(&self, args: &[&str]) {
        let out = Command::new(lab_script())
            .arg(args[0])
            .arg(&self.prefix)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `harp ARGS` inside NODE's namespace with its own home.
    fn start(&self, node: &str, home: &Path, args: &[&str]) -> Proc {
        let ns = format!("{}-{node}", self.prefix);
        Proc::start(&["ip", "netns", "exec", &ns], home, args).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(lab_script())
            .args(["down", &self.prefix])
            .output();
    }
}

fn setup(home: &Path) -> String {
    init_device(home).unwrap()
}

fn edit(home: &Path, f: impl FnOnce(&mut Config)) {
    edit_config(home, f).unwrap();
}

fn ask(home: &Path, req: Value) -> Value {
    control(home, &req).unwrap()
}

fn wait(what: &str, secs: u64, f: impl FnMut() -> bool) -> Option<Duration> {
    let r = wait_for(secs, f);
    if r.is_none() {
        eprintln!("gave up waiting for {what}");
    }
    r
}

fn peer(home: &Path, device: &str) -> Option<Value> {
    peer_entry(home, device).unwrap()
}

/// A relay at 192.0.2.10, B (behind router B) sharing a 4 MiB file with A (behind router A),
/// both reserving a slot on the relay; A knows B only by its relayed address.
struct Scene {
    lab: Lab,
    _tmp: tempfile::TempDir,
    a_home: PathBuf,
    b_id: String,
    folder: String,
    ids: Vec<String>,
    _procs: Vec<Proc>,
}

fn scene(name: &str, nat_a: &str, nat_b: &str, tweak_lab: impl FnOnce(&Lab)) -> Option<Scene> {
    scene_with(name, nat_a, nat_b, tweak_lab, true, 4, false)
}

fn scene_with(
    name: &str,
    nat_a: &str,
    nat_b: &str,
    tweak_lab: impl FnOnce(&Lab),
    a_uses_quic: bool,
    mib: usize,
    b_on_a_s_lan: bool,
) -> Option<Scene> {
    let lab = Lab::up(name, nat_a, nat_b)?;
    tweak_lab(&lab);
    let tmp = tempfile::tempdir().unwrap();
    let (r_home, a_home, b_home) = (
        tmp.path().join("r"),
        tmp.path().join("a"),
        tmp.path().join("b"),
    );
    setup(&r_home);
    let a_id = setup(&a_home);
    let b_id = setup(&b_home);
    let relay = lab.start(
        "relay",
        &r_home,
        &[
            "relay",
            "--listen",
            "/ip4/192.0.2.10/udp/4001/quic-v1",
            "--listen",
            "/ip4/192.0.2.10/tcp/4001",
        ],
    );
    let mut printed = relay.until("relay listening on").unwrap();
    printed.extend(relay.until("relay listening on").unwrap());
    let relay_quic = printed
        .iter()
        .find(|l| l.contains("quic"))
        .unwrap()
        .replace("relay listening on ", "");
    let relay_tcp = printed
        .iter()
        .find(|l| l.contains("tcp/4001"))
        .unwrap()
        .replace("relay listening on ", "");
    let relay_peer = relay_quic.rsplit('/').next().unwrap().to_owned();

    let docs = b_home.join("docs");
    assert!(
        harp(&b_home, &["folder", "add", docs.to_str().unwrap()])
            .unwrap()
            .status
            .success()
    );
    let data = fill(name.as_bytes(), mib << 20);
    std::fs::write(docs.join("big.bin"), &data).unwrap();
    assert!(harp(&b_home, &["scan", "docs"]).unwrap().status.success());
    let listen = vec![
        "/ip4/0.0.0.0/udp/0/quic-v1".to_owned(),
        "/ip4/0.0.0.0/tcp/0".to_owned(),
    ];
    let relays = vec![relay_quic.clone(), relay_tcp.clone()];
    edit(&b_home, |c| {
        c.listen = listen.clone();
        c.mdns = false;
        c.relays = relays.clone();
        c.folders[0].members = vec![a_id.clone()];
    });
    // B behind its own router (b1), or beside A on A's LAN (a2).
    let b_node = if b_on_a_s_lan { "a2" } else { "b1" };
    let b = lab.start(b_node, &b_home, &["daemon"]);
    b.until("daemon ready").unwrap();
    wait("B's relay reservation", 20, || {
        ask(&b_home, json!({"cmd": "status"}))["listen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("p2p-circuit"))
    })
    .expect("B never got a relay reservation");
    let b_peer = ask(&b_home, json!({"cmd": "status"}))["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let circuits = if b_on_a_s_lan {
        // On one LAN, A knows B's own addresses there.
        ask(&b_home, json!({"cmd": "status"}))["listen"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .filter(|a| a.starts_with("/ip4/10.0.1.3/"))
            .map(|a| format!("{a}/p2p/{b_peer}"))
            .collect()
    } else {
        vec![
            format!("{relay_quic}/p2p-circuit/p2p/{b_peer}"),
            format!("{relay_tcp}/p2p-circuit/p2p/{b_peer}"),
        ]
    };
    let keep = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|a| a_uses_quic || !a.contains("quic"))
            .cloned()
            .collect()
    };
    edit(&a_home, |c| {
        c.listen = keep(&listen);
        c.mdns = false;
        c.relays = keep(&relays);
        c.peers = vec![PeerConfig {
            device: b_id.clone(),
            addresses: keep(&circuits),
        }];
    });
    let a = lab.start("a1", &a_home, &["daemon"]);
    a.until("daemon ready").unwrap();
    let d = dirs(&b_home);
    let c = Config::load(&d).unwrap();
    let index = Index::open(&d.index()).unwrap();
    let row = index.file(&c.folders[0].id, "big.bin").unwrap().unwrap();
    let mut ids: Vec<String> = index
        .chunks(&c.folders[0].id, &row.file_id)
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    ids.push(row.content_root.to_string());
    let _ = relay_peer;
    Some(Scene {
        lab,
        a_home,
        b_id,
        folder: c.folders[0].id.to_string(),
        ids,
        _tmp: tmp,
        _procs: vec![relay, b, a],
    })
}

impl Scene {
    fn fetch(&self) -> Value {
        ask(
            &self.a_home,
            json!({"cmd": "fetch", "folder": self.folder, "ids": self.ids, "peers": [self.b_id]}),
        )
    }

    fn connected(&self) -> Option<Duration> {
        let r = wait("A connected to B", 30, || {
            peer(&self.a_home, &self.b_id).is_some()
        });
        if r.is_none() {
            eprintln!("A's peers: {}", ask(&self.a_home, json!({"cmd": "peers"})));
            eprintln!(
                "A's status: {}",
                ask(&self.a_home, json!({"cmd": "status"}))
            );
        }
        r
    }
}

#[test]
fn cone_to_cone_goes_direct_by_hole_punching() {
    let Some(s) = scene("cc", "cone", "cone", |_| {}) else {
        return;
    };
    s.connected().expect("A never connected to B");
    let to_direct = wait("a direct connection", 30, || {
        peer(&s.a_home, &s.b_id).is_some_and(|p| p["direct"] == json!(true))
    });
    let got = s.fetch();
    eprintln!(
        "NAT cell cone<->cone: connected, {}, time to direct {:?}, fetched {} blobs",
        if to_direct.is_some() {
            "direct"
        } else {
            "relayed"
        },
        to_direct,
        got["fetched"]
    );
    let to_direct = to_direct.expect("cone<->cone must go direct");
    assert!(to_direct < Duration::from_secs(30));
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
    let p = peer(&s.a_home, &s.b_id).unwrap();
    let direct_addr = p["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["relayed"] == json!(false))
        .unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        direct_addr.contains("192.0.2.12"),
        "the direct path goes to B's router: {direct_addr}"
    );
    let totals = ask(&s.a_home, json!({"cmd": "peers"}));
    assert_eq!(totals["bytes_relayed"], json!(0), "{totals}");
    // B's router forwards no port to B's bulk lane: the punched libp2p connection carried
    // the chunks, after a lane attempt that its firewall dropped.
    eprintln!(
        "NAT cell cone<->cone: bulk lane bytes {} (none expected: B's lane port is behind its NAT)",
        p["bulk_lane_bytes"]
    );
    assert_eq!(p["bulk_lane_bytes"], json!(0), "{p}");
}

#[test]
fn two_peers_on_one_lan_move_chunks_over_a_bulk_lane() {
    // A and B on the same LAN behind router A: a direct connection between their LAN
    // addresses, and the chunks over a bulk lane across the LAN's bridge (not loopback).
    let Some(s) = scene_with("ln", "cone", "cone", |_| {}, true, 4, true) else {
        return;
    };
    s.connected().expect("A never connected to B on their LAN");
    let got = s.fetch();
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
    let p = peer(&s.a_home, &s.b_id).unwrap();
    eprintln!(
        "LAN cell: {}, bulk lane bytes {}, connections {}",
        if p["direct"] == json!(true) {
            "direct"
        } else {
            "relayed"
        },
        p["bulk_lane_bytes"],
        p["connections"]
    );
    assert_eq!(p["direct"], json!(true), "{p}");
    assert!(
        p["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["addr"].as_str().unwrap().contains("10.0.1.3")),
        "{p}"
    );
    assert!(
        p["bulk_lane_bytes"].as_u64().unwrap() >= 4 << 20,
        "the 4 MiB did not come over a bulk lane: {p}"
    );
}

#[test]
fn symmetric_nat_falls_back_to_the_relay() {
    let Some(s) = scene("sy", "cone", "symmetric", |_| {}) else {
        return;
    };
    s.connected().expect("A never connected to B");
    let got = s.fetch();
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
    // Hole punching had its chance; the connection must still be relayed, and say so.
    std::thread::sleep(Duration::from_secs(3));
    let p = peer(&s.a_home, &s.b_id).unwrap();
    eprintln!(
        "NAT cell cone<->symmetric: connected, {}, fetched {} blobs",
        if p["direct"] == json!(true) {
            "direct"
        } else {
            "relayed"
        },
        got["fetched"]
    );
    assert_eq!(p["direct"], json!(false), "{p}");
    let totals = ask(&s.a_home, json!({"cmd": "peers"}));
    assert!(
        totals["bytes_relayed"].as_u64().unwrap() >= 4 << 20,
        "{totals}"
    );
    assert_eq!(totals["direct_ratio"], json!(0.0));
}

#[test]
fn udp_blocked_still_connects_over_tcp() {
    let Some(s) = scene_with(
        "ub",
        "cone",
        "cone",
        |lab| lab.ctl(&["block-udp", "A"]),
        true,
        4,
        false,
    ) else {
        return;
    };
    s.connected()
        .expect("A never connected to B with UDP blocked");
    let got = s.fetch();
    let p = peer(&s.a_home, &s.b_id).unwrap();
    eprintln!(
        "NAT cell UDP blocked at A: connected, {}, fetched {} blobs",
        if p["direct"] == json!(true) {
            "direct"
        } else {
            "relayed"
        },
        got["fetched"]
    );
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
    assert!(
        p["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["addr"].as_str().unwrap().contains("/tcp/")),
        "{p}"
    );
    let _ = &s.lab;
}

#[test]
fn five_percent_loss_still_delivers_every_chunk_intact() {
    let Some(s) = scene("ls", "cone", "cone", |lab| {
        lab.ctl(&["loss", "A", "5"]);
        lab.ctl(&["loss", "B", "5"]);
    }) else {
        return;
    };
    s.connected().expect("A never connected to B under loss");
    let got = s.fetch();
    eprintln!(
        "NAT cell cone<->cone, 5% loss each router: connected, fetched {} blobs in {} s",
        got["fetched"], got["seconds"]
    );
    // Every blob was checked against its id on arrival: complete means intact.
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
}

#[test]
fn forty_ms_each_way_and_five_percent_loss_still_deliver_every_chunk_intact() {
    let Some(s) = scene("dl", "cone", "cone", |lab| {
        lab.ctl(&["delay", "A", "40"]);
        lab.ctl(&["loss", "A", "5"]);
        lab.ctl(&["loss", "B", "5"]);
    }) else {
        return;
    };
    s.connected()
        .expect("A never connected to B through the delay line");
    let got = s.fetch();
    // The delay is really on the path: A measures at least 2 × 40 ms to B.
    let rtt = wait("A measured its RTT to B", 30, || {
        peer(&s.a_home, &s.b_id).is_some_and(|p| p["rtt_ms"].as_f64().is_some())
    });
    assert!(rtt.is_some());
    let entry = peer(&s.a_home, &s.b_id).unwrap();
    let rtt_ms = entry["rtt_ms"].as_f64().unwrap();
    eprintln!(
        "NAT cell cone<->cone, 40 ms each way at A + 5% loss each router: connected ({}), RTT {rtt_ms:.0} ms, fetched {} blobs in {} s",
        if entry["direct"] == true {
            "direct"
        } else {
            "relayed"
        },
        got["fetched"],
        got["seconds"]
    );
    assert!(
        rtt_ms >= 80.0,
        "RTT {rtt_ms} ms: the delay line is not on the path"
    );
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
}

#[test]
fn a_five_second_uplink_cut_mid_transfer_resumes_and_completes() {
    let Some(s) = scene_with("ct", "cone", "cone", |_| {}, true, 48, false) else {
        return;
    };
    s.connected().expect("A never connected to B");
    wait("a direct connection", 30, || {
        peer(&s.a_home, &s.b_id).is_some_and(|p| p["direct"] == json!(true))
    });
    let request = json!({"cmd": "fetch", "folder": s.folder, "ids": s.ids, "peers": [s.b_id]});
    let a_home = s.a_home.clone();
    let got = std::thread::scope(|scope| {
        let fetch = scope.spawn(move || ask(&a_home, request));
        std::thread::sleep(Duration::from_millis(300));
        s.lab.ctl(&["cut", "A"]);
        std::thread::sleep(Duration::from_secs(5));
        s.lab.ctl(&["restore", "A"]);
        fetch.join().unwrap()
    });
    eprintln!(
        "NAT cell 5 s cut of router A's uplink: fetched {} blobs in {} s",
        got["fetched"], got["seconds"]
    );
    assert_eq!(got["fetched"].as_u64(), Some(s.ids.len() as u64), "{got}");
    assert!(
        got["seconds"].as_f64().unwrap() >= 5.0,
        "the cut did not land mid-transfer: {got}"
    );
}

#[test]
fn mdns_finds_the_peer_on_the_same_lan_and_nothing_across_the_nat() {
    let Some(lab) = Lab::up("md", "cone", "cone") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let homes: Vec<PathBuf> = ["a1", "a2", "b1"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let ids: Vec<String> = homes.iter().map(|h| setup(h)).collect();
    let mut procs = Vec::new();
    for (home, node) in homes.iter().zip(["a1", "a2", "b1"]) {
        edit(home, |c| {
            c.listen = vec!["/ip4/0.0.0.0/udp/0/quic-v1".to_owned()];
            c.mdns = true;
        });
        let p = lab.start(node, home, &["daemon"]);
        p.until("daemon ready").unwrap();
        procs.push(p);
    }
    let found = wait("a1 to find a2 by mDNS", 30, || {
        peer(&homes[0], &ids[1]).is_some()
    });
    eprintln!("mDNS: a1 found a2 after {found:?}");
    found.expect("a1 never found a2 on their LAN");
    assert!(
        peer(&homes[1], &ids[0]).is_some()
            || wait("a2 to see a1", 10, || peer(&homes[1], &ids[0]).is_some()).is_some()
    );
    std::thread::sleep(Duration::from_secs(3));
    for h in &homes[..2] {
        assert!(
            peer(h, &ids[2]).is_none(),
            "b1 was discovered across the NAT"
        );
    }
    assert!(peer(&homes[2], &ids[0]).is_none() && peer(&homes[2], &ids[1]).is_none());
}
