//! Two users' daemons sync a folder through the standalone bridge: found by the bridge (no
//! address given, no LAN discovery), the folder key wrapped from Alice's device to Bob's,
//! metadata through the bridge and from peer to peer, 100 MiB of file content peer to peer.
//! A proxy in front of the bridge counts what it received: no chunk data, and metadata
//! within 64 KiB per GiB synced.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use harp_e2e::bridge::{CountingProxy, Target, bridge_cli};
use harp_e2e::{Proc, Side, dirs, edit_config, fill, harp, init_device, tree, wait_for};

fn side(tmp: &Path, name: &str) -> Side {
    Side::new(tmp, name).unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    harp_e2e::harp_ok(home, args).unwrap()
}

fn start(s: &Side) -> Proc {
    s.start().unwrap().0
}

#[test]
fn two_users_sync_100_mib_through_the_bridge_which_sees_only_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[]).unwrap();
    let proxy = CountingProxy::start(&bridge.base).unwrap();
    let (a, b) = (side(tmp.path(), "a"), side(tmp.path(), "b"));
    let (alice_pw, bob_pw) = (&bridge.users[0].1, &bridge.users[1].1);
    ok(
        &a.home,
        &[
            "login",
            &proxy.url,
            "--user",
            "alice",
            "--app-password",
            alice_pw,
        ],
    );
    ok(
        &b.home,
        &[
            "login",
            &proxy.url,
            "--user",
            "bob",
            "--app-password",
            bob_pw,
        ],
    );
    // A wrong app password is refused and nothing is stored.
    let bad = harp(
        &b.home,
        &[
            "login",
            &proxy.url,
            "--user",
            "bob",
            "--app-password",
            "nope",
        ],
    )
    .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("401"),
        "{bad:?}"
    );

    let folder_id = a.add_folder("shared").unwrap();
    const SIZE: usize = 100 << 20;
    std::fs::write(a.folder.join("big.bin"), fill(b"bridge sync", SIZE)).unwrap();
    std::fs::write(a.folder.join("notes.txt"), b"from alice").unwrap();
    ok(&a.home, &["folder", "share", "shared", "--user", "bob"]);
    // Setup (logins, the folder's creation, the share) is per account and folder; what
    // scales with data is what the daemons send from here on.
    let c = &proxy.counts;
    let setup_bodies = c.body_bytes.load(Relaxed);
    let setup_headers = c.header_bytes.load(Relaxed);
    let setup_requests = c.requests.load(Relaxed);
    let _pa = start(&a);

    // Bob sees the offer; his device gets the key once Alice's daemon has wrapped it.
    let offers = ok(&b.home, &["folder", "offers"]);
    assert!(offers.contains(&folder_id), "{offers}");
    let accepted = wait_for(60, || {
        harp(
            &b.home,
            &["folder", "accept", &folder_id, b.folder.to_str().unwrap()],
        )
        .unwrap()
        .status
        .success()
    });
    assert!(accepted.is_some(), "Bob's device never got the folder key");
    let config = std::fs::read_to_string(dirs(&b.home).config_file()).unwrap();
    assert!(
        !config.contains("[[peer]]"),
        "Bob was given no address: {config}"
    );
    let _pb = start(&b);

    let same = || tree(&a.folder) == tree(&b.folder);
    assert!(
        wait_for(180, same).is_some(),
        "the folder did not reach Bob"
    );
    // And back: Bob's change reaches Alice.
    std::fs::write(b.folder.join("from-bob.txt"), b"hello alice").unwrap();
    assert!(
        wait_for(60, || std::fs::read(a.folder.join("from-bob.txt"))
            .ok()
            .as_deref()
            == Some(&b"hello alice"[..]))
        .is_some(),
        "Bob's file did not reach Alice"
    );
    // Let both links upload what they have (their passes run every few seconds).
    std::thread::sleep(std::time::Duration::from_secs(12));

    // Search through the bridge's encrypted index, from either side (each device indexed the
    // files it wrote; the bridge holds keyed word tokens, not names).
    let hits = ok(&b.home, &["search", "NOTES"]);
    assert!(hits.contains("notes.txt"), "{hits}");
    let hits = ok(&a.home, &["search", "bob", "from"]);
    assert!(hits.trim().ends_with("from-bob.txt"), "{hits}");
    assert!(ok(&a.home, &["search", "nothing-like-this"]).contains("Nothing found"));
    // What the sync installed is sound: chains, manifests, chunk rows and bytes.
    for s in [&a, &b] {
        let out = ok(&s.home, &["check", "--read-data"]);
        assert!(out.contains("shared: ok"), "{out}");
    }

    let db = bridge.db.as_ref().unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&bridge_cli(db, &["status"]).unwrap()).unwrap();
    assert!(
        status["changes"].as_i64().unwrap() >= 2,
        "both users' changes are on the bridge: {status}"
    );
    assert!(
        status["entries"].as_i64().unwrap() >= 3,
        "the chain links are on the bridge: {status}"
    );
    assert_eq!(status["devices"], 2, "{status}");

    let (requests, headers, bodies, max_body) = (
        c.requests.load(Relaxed) - setup_requests,
        c.header_bytes.load(Relaxed) - setup_headers,
        c.body_bytes.load(Relaxed) - setup_bodies,
        c.max_body.load(Relaxed),
    );
    let synced = (SIZE + 10 + 11) as u64;
    let budget = 64 * 1024 * synced / (1 << 30);
    eprintln!(
        "bridge received, setting up: {setup_requests} requests, {setup_headers} bytes of \
         headers, {setup_bodies} bytes of bodies; while syncing: {requests} requests, {headers} \
         bytes of headers, {bodies} bytes of bodies (largest body of all {max_body}); {synced} \
         bytes synced; budget for metadata {budget} bytes"
    );
    assert!(
        max_body < 16 * 1024,
        "a request body of {max_body} bytes: chunk data?"
    );
    assert!(
        bodies <= budget,
        "{bodies} bytes of metadata for {synced} bytes synced (budget {budget})"
    );
}

fn form_post(url: &str, form: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(url)
        .content_type("application/x-www-form-urlencoded")
        .send(form.as_bytes())
        .unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// `harp login URL` against harp-bridge: Login Flow v2 with the test as the browser.
#[test]
fn login_flow_v2_grants_a_device_its_own_app_password_once() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[]).unwrap();
    let base = &bridge.base;

    // The protocol by hand: 404 until granted, the credentials once, then 404 again.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let start: serde_json::Value = agent
        .post(&format!("{base}/index.php/login/v2"))
        .send_empty()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let (poll, token) = (
        start["poll"]["endpoint"].as_str().unwrap(),
        start["poll"]["token"].as_str().unwrap(),
    );
    let login = start["login"].as_str().unwrap();
    assert_eq!(form_post(poll, &format!("token={token}")).0, 404);
    let page = agent
        .get(login)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("<form"), "{page}");
    let (status, _) = form_post(login, "user=alice&password=wrong");
    assert_eq!(status, 401);
    assert_eq!(
        form_post(poll, &format!("token={token}")).0,
        404,
        "a failed sign-in grants nothing"
    );
    let pw = &bridge.users[0].1;
    let (status, body) = form_post(login, &format!("user=alice&password={pw}"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = form_post(poll, &format!("token={token}"));
    assert_eq!(status, 200, "{body}");
    let granted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(granted["loginName"], "alice");
    let new_pw = granted["appPassword"].as_str().unwrap();
    assert_ne!(new_pw, pw, "the device gets its own app password");
    assert_eq!(
        form_post(poll, &format!("token={token}")).0,
        404,
        "credentials are handed out once"
    );
    let me = harp_e2e::bridge::Client::new(base, "alice", new_pw);
    assert_eq!(
        me.get("/capabilities").status,
        200,
        "the new app password works"
    );

    // And `harp login URL` end to end.
    let a = side(tmp.path(), "a");
    let mut child = std::process::Command::new(harp_e2e::binary("harp").unwrap())
        .args(["login", base])
        .env("HOME", &a.home)
        .env("XDG_CONFIG_HOME", a.home.join("config"))
        .env("XDG_DATA_HOME", a.home.join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    assert!(
        url.starts_with(&format!("{base}/index.php/login/v2/flow/")),
        "{url}"
    );
    assert_eq!(form_post(&url, &format!("user=alice&password={pw}")).0, 200);
    assert!(child.wait().unwrap().success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("Logged in to") && l.contains("alice")),
        "{rest:?}"
    );
    assert_eq!(ok(&a.home, &["folder", "offers", "--json"]).trim(), "[]");
}

/// A `server_authoritative` bridge orders each file's versions: while B is offline both edit
/// one file; A's edit reaches the bridge first, so when B comes back its edit becomes the
/// conflict copy on both devices, and the bridge holds one unforked history.
#[test]
fn server_authoritative_folders_keep_the_bridge_s_order() {
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[&["config", "versioning", "server_authoritative"]]).unwrap();
    let (a, b) = (side(tmp.path(), "a"), side(tmp.path(), "b"));
    for s in [&a, &b] {
        bridge.login(&s.home, 0).unwrap();
    }
    let folder_id = a.add_folder("ordered").unwrap();
    std::fs::write(a.folder.join("plan.txt"), b"v1").unwrap();
    let _pa = start(&a);
    assert!(
        wait_for(60, || {
            harp(
                &b.home,
                &["folder", "accept", &folder_id, b.folder.to_str().unwrap()],
            )
            .unwrap()
            .status
            .success()
        })
        .is_some()
    );
    let pb = start(&b);
    assert!(
        wait_for(60, || tree(&a.folder) == tree(&b.folder)).is_some(),
        "first sync"
    );

    drop(pb);
    std::fs::write(a.folder.join("plan.txt"), b"A's plan").unwrap();
    // A's daemon claims its version on the bridge (its link appends nothing else).
    let db = bridge.db.as_ref().unwrap();
    let entries = || {
        serde_json::from_str::<serde_json::Value>(&bridge_cli(db, &["status"]).unwrap()).unwrap()["entries"]
            .as_i64()
            .unwrap()
    };
    let before = entries();
    assert!(
        wait_for(30, || entries() > before).is_some(),
        "A's edit never reached the bridge"
    );
    std::fs::write(b.folder.join("plan.txt"), b"B's plan, offline").unwrap();
    let _pb = start(&b);
    let settled = wait_for(90, || {
        let t = tree(&b.folder);
        t == tree(&a.folder) && t.keys().any(|k| k.contains(".conflict-"))
    });
    assert!(
        settled.is_some(),
        "A: {:?}\nB: {:?}",
        tree(&a.folder).keys().collect::<Vec<_>>(),
        tree(&b.folder).keys().collect::<Vec<_>>()
    );
    let t = tree(&a.folder);
    assert_eq!(t["plan.txt"], b"A's plan");
    let copy = t.iter().find(|(k, _)| k.contains(".conflict-")).unwrap();
    assert_eq!(copy.1, b"B's plan, offline");
    // The bridge's history of plan.txt: v1, then A's plan; B's edit is not in it.
    let id = harp::index::Index::open(&dirs(&a.home).index())
        .unwrap()
        .file(&folder_id.parse().unwrap(), "plan.txt")
        .unwrap()
        .unwrap()
        .file_id;
    let verified = bridge_cli(db, &["verify", "alice", &folder_id, &id.to_hex()]).unwrap();
    assert!(
        verified.contains("2 entries") && verified.contains("1 tip(s)"),
        "{verified}"
    );
}

/// A lying bridge: after the daemon accepted a checkpoint of the folder's log, the bridge's
/// database is rolled back, has an entry dropped, entries reordered, an entry rewritten; the
/// daemon catches each (each time from the honest history, put back in between, which it
/// accepts again) and says so in `harp status`, and the bridge's own check names the link
/// whose leaf is gone. A forged device signature in the bridge's copy of a chain is named by
/// that check too. (Split views: the next test; witnesses: `witness.rs`.)
#[test]
fn a_lying_bridge_is_caught_whatever_it_does_to_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bridge = Target::start(&[]).unwrap();
    let a = side(tmp.path(), "a");
    bridge.login(&a.home, 0).unwrap();
    a.add_folder("shared").unwrap();
    for i in 0..3 {
        std::fs::write(a.folder.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    let daemon = || {
        let p = Proc::start_with_env(&[], &a.home, &["daemon"], &[("HARP_BRIDGE_POLL_SECS", "1")])
            .unwrap();
        p.until("daemon ready").unwrap();
        p
    };
    let log = || -> serde_json::Value {
        let out = harp(&a.home, &["status", "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["bridge"]["logs"]["shared"].clone()
    };
    let _pa = daemon();
    let verified = wait_for(60, || {
        log()["state"] == "verified" && log()["size"].as_u64() >= Some(3)
    });
    assert!(verified.is_some(), "{}", log());
    let size = log()["size"].as_u64().unwrap() as i64;
    // The honest database, put back before each lie so that each is caught on its own.
    let db = bridge.db.clone().unwrap();
    let honest = tmp.path().join("honest.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("VACUUM INTO ?1", [honest.to_str().unwrap()])
        .unwrap();
    let sql = |db: &Path, statements: &[String]| {
        let c = rusqlite::Connection::open(db).unwrap();
        for s in statements {
            c.execute(s, []).unwrap();
        }
    };
    let last = size - 1;
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "rolled back: the newest leaf removed",
            vec![format!("DELETE FROM log_leaves WHERE idx = {last}")],
            "rolled back".into(),
        ),
        (
            "an entry dropped: leaf 1 removed, the later ones moved up",
            vec![
                "DELETE FROM log_leaves WHERE idx = 1".into(),
                "UPDATE log_leaves SET idx = -idx WHERE idx > 1".into(),
                "UPDATE log_leaves SET idx = -idx - 1 WHERE idx < 0".into(),
            ],
            format!("rolled back from {size} entries to {last}"),
        ),
        (
            "entries reordered: leaves 0 and 1 swapped",
            vec![
                "UPDATE log_leaves SET idx = -1 WHERE idx = 0".into(),
                "UPDATE log_leaves SET idx = 0 WHERE idx = 1".into(),
                "UPDATE log_leaves SET idx = 1 WHERE idx = -1".into(),
            ],
            format!("two different logs of {size} entries"),
        ),
        (
            "an entry rewritten, and the log longer than before",
            vec![
                "UPDATE log_leaves SET hash = randomblob(32) WHERE idx = 0".into(),
                format!(
                    "INSERT INTO log_leaves (folder_id, idx, hash) SELECT folder_id, {size}, randomblob(32) FROM log_leaves LIMIT 1"
                ),
            ],
            "not an extension".into(),
        ),
    ];
    for (what, statements, expected) in cases {
        bridge
            .restart(|db| {
                std::fs::copy(&honest, db).unwrap();
                let _ = std::fs::remove_file(db.with_extension("sqlite-wal"));
                let _ = std::fs::remove_file(db.with_extension("sqlite-shm"));
                sql(db, &statements);
            })
            .unwrap();
        let caught = wait_for(30, || {
            log()["problem"]
                .as_str()
                .is_some_and(|p| p.contains(&expected))
        });
        assert!(caught.is_some(), "{what}: {}", log());
        let text = String::from_utf8(harp(&a.home, &["status"]).unwrap().stdout).unwrap();
        assert!(text.contains("log of shared: ALARM: "), "{what}: {text}");
        // The bridge's own check names the link whose leaf is gone or moved.
        if what.contains("dropped") || what.contains("reordered") {
            let file = file_of(&db, 1);
            let out = std::process::Command::new(harp_e2e::binary("harp-bridge").unwrap())
                .arg("--db")
                .arg(&db)
                .args(["verify", "alice", &folder_of(&db), &file])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("not_in_log"),
                "{what}: {err}"
            );
        }
        // Back to the honest history: accepted again.
        bridge
            .restart(|db| {
                std::fs::copy(&honest, db).unwrap();
                let _ = std::fs::remove_file(db.with_extension("sqlite-wal"));
                let _ = std::fs::remove_file(db.with_extension("sqlite-shm"));
            })
            .unwrap();
        let back = wait_for(30, || log()["state"] == "verified");
        assert!(back.is_some(), "after {what}: {}", log());
    }

    // A forged device signature in the bridge's copy of a chain (the link recomputed, so it
    // hangs together): the bridge's own check names it.
    bridge
        .restart(|db| {
            let c = rusqlite::Connection::open(db).unwrap();
            let (entry, prev): (Vec<u8>, Vec<u8>) = c
                .query_row(
                    "SELECT entry, prev FROM entries WHERE log_index = 0",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let mut forged = entry.clone();
            forged[200] ^= 1; // inside the Ed25519 signature (bytes 154..218)
            let prev = harp_protocol::ids::ChainHash::from_bytes(prev.try_into().unwrap());
            let head = harp_protocol::chain::link(&prev, &forged);
            c.execute(
                "UPDATE entries SET entry = ?1, head = ?2 WHERE log_index = 0",
                rusqlite::params![forged, head.as_bytes().to_vec()],
            )
            .unwrap();
        })
        .unwrap();
    let out = std::process::Command::new(harp_e2e::binary("harp-bridge").unwrap())
        .arg("--db")
        .arg(&db)
        .args(["verify", "alice", &folder_of(&db), &file_of(&db, 0)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad_signature"),
        "{err}"
    );
}

/// The folder id in a bridge database (these tests make one folder).
fn folder_of(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT folder_id FROM folders LIMIT 1", [], |r| r.get(0))
        .unwrap()
}

/// The file whose link is leaf `idx` of the log.
fn file_of(db: &Path, idx: i64) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT file_id FROM entries WHERE log_index = ?1",
            [idx],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_bridge_that_shows_two_devices_two_histories_is_caught_when_they_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[]).unwrap();
    let (a, b) = (side(tmp.path(), "a"), side(tmp.path(), "b"));
    for s in [&a, &b] {
        bridge.login(&s.home, 0).unwrap();
    }
    let folder_id = a.add_folder("shared").unwrap();
    for i in 0..3 {
        std::fs::write(a.folder.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    let daemon = |home: &Path| {
        let p = Proc::start_with_env(&[], home, &["daemon"], &[("HARP_BRIDGE_POLL_SECS", "1")])
            .unwrap();
        p.until("daemon ready").unwrap();
        p
    };
    let log = |home: &Path| -> serde_json::Value {
        let out = harp(home, &["status", "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["bridge"]["logs"]["shared"].clone()
    };
    let _pa = daemon(&a.home);
    let verified = wait_for(60, || {
        log(&a.home)["state"] == "verified" && log(&a.home)["size"].as_u64() >= Some(3)
    });
    assert!(verified.is_some(), "{}", log(&a.home));
    // Alice's second device joins (her first device wraps the folder key to it).
    let accepted = wait_for(60, || {
        harp(
            &b.home,
            &["folder", "accept", &folder_id, b.folder.to_str().unwrap()],
        )
        .unwrap()
        .status
        .success()
    });
    assert!(accepted.is_some(), "the second device never got the key");

    // From here the bridge answers the second device from another history: the same size,
    // the first leaf rewritten. Alone, that device cannot tell (it has accepted nothing yet).
    let fork = bridge
        .fork(|db| {
            let c = rusqlite::Connection::open(db).unwrap();
            c.execute(
                "UPDATE log_leaves SET hash = randomblob(32) WHERE idx = 0",
                [],
            )
            .unwrap();
        })
        .unwrap();
    let creds = dirs(&b.home).config.join("bridge.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    c["url"] = fork.base.clone().into();
    std::fs::write(&creds, serde_json::to_vec(&c).unwrap()).unwrap();
    let _pb = daemon(&b.home);
    // The two devices tell each other, peer to peer, which checkpoint they accepted, and
    // neither history extends the other.
    for home in [&a.home, &b.home] {
        let caught = wait_for(90, || {
            log(home)["problem"]
                .as_str()
                .is_some_and(|p| p.contains("split view"))
        });
        assert!(caught.is_some(), "{}", log(home));
    }
}

/// With `device_approval = "manual"`, a device the bridge lists (here a second device of the
/// same account, as a hostile bridge or a stolen account could list one) gets nothing from
/// Alice's device until she approves it there: no folder key, no files. Approved, it syncs;
/// forgotten, it waits again and new files no longer reach it.
#[test]
fn a_device_the_bridge_lists_waits_for_approval_in_manual_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[]).unwrap();
    let (a, b) = (side(tmp.path(), "a"), side(tmp.path(), "b"));
    for s in [&a, &b] {
        bridge.login(&s.home, 0).unwrap();
    }
    edit_config(&a.home, |c| {
        c.device_approval = harp::approval::Mode::Manual;
    })
    .unwrap();
    let folder_id = a.add_folder("private").unwrap();
    std::fs::write(a.folder.join("secret.txt"), b"for approved eyes").unwrap();
    // Full passes a minute apart: what happens sooner below is `harp device` asking for one.
    let pa = Proc::start_with_env(
        &[],
        &a.home,
        &["daemon"],
        &[("HARP_BRIDGE_POLL_SECS", "60")],
    )
    .unwrap();
    pa.until("daemon ready").unwrap();
    let b_id = init_device(&b.home).unwrap();
    let list = || -> serde_json::Value {
        serde_json::from_str(&ok(&a.home, &["device", "list", "--json"])).unwrap()
    };
    let waits = |v: &serde_json::Value| {
        v["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["device"] == b_id.as_str() && w["folders"][0] == "private")
    };
    assert!(
        wait_for(60, || waits(&list())).is_some(),
        "B never shown as waiting: {}",
        list()
    );
    assert_eq!(list()["mode"], "manual");
    // `harp status` says so too (it shows the link's state after each pass).
    let status = || -> serde_json::Value {
        serde_json::from_str(&ok(&a.home, &["status", "--json"])).unwrap()
    };
    assert!(
        wait_for(10, || status()["bridge"]["waiting_devices"][0]
            == b_id.as_str())
        .is_some(),
        "{}",
        status()
    );
    assert_eq!(status()["bridge"]["device_approval"], "manual");
    assert!(
        ok(&a.home, &["status"]).contains("1 device(s) listed by the bridge wait for approval")
    );
    // Approving another device makes the link pass again at once: still no key for B.
    let accept = || {
        harp(
            &b.home,
            &["folder", "accept", &folder_id, b.folder.to_str().unwrap()],
        )
        .unwrap()
        .status
        .success()
    };
    let c_id = init_device(&tmp.path().join("c")).unwrap();
    let told = ok(&a.home, &["device", "approve", &c_id]);
    assert!(told.contains("applies it now"), "{told}");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(!accept(), "B got the folder key without an approval");

    // A bad id is refused with a clear error; the real one is approved.
    let bad = harp(&a.home, &["device", "approve", "not-a-device"]).unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a device id"));
    ok(&a.home, &["device", "approve", &b_id]);
    assert!(
        wait_for(15, accept).is_some(),
        "no key within 15 s of the approval (the next scheduled pass is a minute away)"
    );
    let after = list();
    assert!(!waits(&after), "{after}");
    let approved: Vec<&str> = after["approved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["device"].as_str().unwrap())
        .collect();
    assert!(approved.contains(&b_id.as_str()), "{after}");
    let _pb = start(&b);
    assert!(
        wait_for(90, || tree(&a.folder) == tree(&b.folder)).is_some(),
        "the approved device did not sync"
    );

    // Forgotten: B waits again, and a new file stays on A.
    ok(&a.home, &["device", "forget", &b_id]);
    assert!(
        wait_for(15, || waits(&list())).is_some(),
        "B not waiting again: {}",
        list()
    );
    std::fs::write(a.folder.join("later.txt"), b"not for B").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert!(
        !b.folder.join("later.txt").exists(),
        "a file reached a device whose approval was withdrawn"
    );
    assert_eq!(
        std::fs::read(b.folder.join("secret.txt")).unwrap(),
        b"for approved eyes"
    );
}

/// A daemon whose bridge link does a full pass every 2 s (not 30).
fn fast_daemon(s: &Side) -> Proc {
    let p =
        Proc::start_with_env(&[], &s.home, &["daemon"], &[("HARP_BRIDGE_POLL_SECS", "2")]).unwrap();
    p.until("daemon ready").unwrap();
    p
}

/// Whether `harp folder accept` of `folder` succeeds on `s` within a minute (once a member
/// device has wrapped the key for it).
fn accept(s: &Side, folder: &str) -> bool {
    wait_for(60, || {
        harp(
            &s.home,
            &["folder", "accept", folder, s.folder.to_str().unwrap()],
        )
        .unwrap()
        .status
        .success()
    })
    .is_some()
}

/// Every sealed change and grant of a folder on the bridge, as its owner reads them.
fn stream(bridge: &Target, folder: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let page = bridge.client(0).get(&format!(
            "/folders/{folder}/changes?after={after}&limit=1000"
        ));
        assert_eq!(page.status, 200, "{:?}", page.body);
        for c in page.data["changes"].as_array().unwrap() {
            after = c["cursor"].as_i64().unwrap();
            let bytes = data_encoding::BASE64
                .decode(c["change"].as_str().unwrap().as_bytes())
                .unwrap();
            out.push((c["device"].as_str().unwrap().to_owned(), bytes));
        }
        if page.data["next"].is_null() {
            return out;
        }
    }
}

/// The key epochs a device holds for `folder`, from its key files.
fn ring(home: &Path, folder: &str) -> harp_protocol::epoch::Keyring {
    let d = dirs(home);
    let id: harp_protocol::ids::FolderId = folder.parse().unwrap();
    let key = harp_protocol::keys::FolderKey::from_bytes(
        harp::config::read_secret(&d.folder_key(&id)).unwrap(),
    );
    harp::keyring::load(&d, &id, &key).unwrap()
}

/// Removing a user from a folder rotates its metadata key: what the remaining members write
/// next is sealed in a new epoch, granted to their devices only, so the removed user's device
/// (with every key it had) cannot open it from the bridge; a device that joins afterwards is
/// granted the new epoch and reads the whole history, and finds files by name in both epochs.
#[test]
fn a_removed_member_cannot_read_what_is_written_after_and_a_new_device_reads_it_all() {
    use harp_protocol::epoch::{EpochError, Grant};
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[]).unwrap();
    let (a, b, a2) = (
        side(tmp.path(), "a"),
        side(tmp.path(), "b"),
        side(tmp.path(), "a2"),
    );
    bridge.login(&a.home, 0).unwrap();
    bridge.login(&b.home, 1).unwrap();
    let folder = a.add_folder("shared").unwrap();
    std::fs::write(a.folder.join("before-removal.txt"), b"bob may read this").unwrap();
    ok(&a.home, &["folder", "share", "shared", "--user", "bob"]);
    let _pa = fast_daemon(&a);
    assert!(accept(&b, &folder), "Bob's device never got the folder key");
    let pb = fast_daemon(&b);
    assert!(
        wait_for(90, || tree(&a.folder) == tree(&b.folder)).is_some(),
        "the folder did not reach Bob"
    );
    let epoch = |home: &Path| -> serde_json::Value {
        let s: serde_json::Value = serde_json::from_str(&ok(home, &["status", "--json"])).unwrap();
        s["bridge"]["key_epochs"]["shared"].clone()
    };
    assert_eq!(epoch(&a.home), 0);

    // Alice stops sharing with Bob: her device makes epoch 1, granted to her devices only.
    let removed = bridge
        .client(0)
        .delete(&format!("/folders/{folder}/members/bob"));
    assert_eq!(removed.status, 204, "{:?}", removed.body);
    assert!(
        wait_for(30, || epoch(&a.home) == 1).is_some(),
        "no new epoch: {}",
        epoch(&a.home)
    );
    assert!(
        ok(&a.home, &["status"]).contains("shared: metadata key epoch 1"),
        "{}",
        ok(&a.home, &["status"])
    );
    std::fs::write(a.folder.join("after-removal.txt"), b"not for bob").unwrap();
    let bob_ring = ring(&b.home, &folder);
    let (a_device, b_device) = (a.id.clone(), b.id.clone());
    // Alice's changes after the grant are sealed in epoch 1; Bob's keys open none of them.
    let sealed_after = || -> Vec<Vec<u8>> {
        let all = stream(&bridge, &folder);
        let Some(at) = all.iter().position(|(_, c)| Grant::is_grant(c)) else {
            return vec![];
        };
        all[at + 1..]
            .iter()
            .filter(|(d, c)| *d == a_device && !Grant::is_grant(c))
            .map(|(_, c)| c.clone())
            .collect()
    };
    assert!(
        wait_for(30, || !sealed_after().is_empty()).is_some(),
        "Alice uploaded nothing after the rotation"
    );
    let alice_ring = ring(&a.home, &folder);
    let id: harp_protocol::ids::FolderId = folder.parse().unwrap();
    for c in sealed_after() {
        assert!(alice_ring.open_change(&id, &c).is_ok());
        assert!(
            matches!(
                bob_ring.open_change(&id, &c),
                Err(EpochError::UnknownKey(_))
            ),
            "Bob's keys open a change written after he was removed"
        );
    }
    let grants: Vec<Grant> = stream(&bridge, &folder)
        .iter()
        .filter(|(_, c)| Grant::is_grant(c))
        .map(|(_, c)| Grant::decode(c).unwrap())
        .collect();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let to: Vec<String> = grants[0].to.iter().map(|(d, ..)| d.to_string()).collect();
    assert!(to.contains(&a_device) && !to.contains(&b_device), "{to:?}");
    assert_eq!(
        ring(&b.home, &folder).keys().len(),
        1,
        "Bob's device holds a new epoch"
    );
    drop(pb);

    // A new device of Alice's: her running device wraps it the folder key and grants it
    // epoch 1; it reads every change on the bridge, from either epoch.
    bridge.login(&a2.home, 0).unwrap();
    assert!(
        accept(&a2, &folder),
        "the new device never got the folder key"
    );
    let _pa2 = fast_daemon(&a2);
    assert!(
        wait_for(90, || tree(&a.folder) == tree(&a2.folder)).is_some(),
        "the folder did not reach the new device"
    );
    assert!(
        wait_for(30, || ring(&a2.home, &folder).current().epoch == 1).is_some(),
        "the new device was not granted epoch 1"
    );
    let a2_ring = ring(&a2.home, &folder);
    let all = stream(&bridge, &folder);
    assert!(all.len() > 3, "{}", all.len());
    for (_, c) in all.iter().filter(|(_, c)| !Grant::is_grant(c)) {
        assert!(a2_ring.open_change(&id, c).is_ok());
    }
    // Its link read them all too: no change was left unopened.
    assert_eq!(epoch(&a2.home), 1);
    // Search asks in every epoch: one file was indexed in each.
    assert!(
        wait_for(30, || ok(&a2.home, &["search", "before", "removal"])
            .contains("before-removal.txt")
            && ok(&a2.home, &["search", "after", "removal"])
                .contains("after-removal.txt"))
        .is_some(),
        "{}",
        ok(&a2.home, &["search", "removal"])
    );
}

/// Introductions, with manual approval: Alice's two devices approve each other as
/// introducers; a device she then approves on one is trusted on the other without approving
/// it there (a signed introduction the bridge carries and cannot forge), and is no longer
/// trusted there once she forgets it on the first.
#[test]
fn a_device_approved_on_an_introducer_is_trusted_by_the_devices_that_trust_the_introducer() {
    let tmp = tempfile::tempdir().unwrap();
    let bridge = Target::start(&[]).unwrap();
    let (a, a2, b) = (
        side(tmp.path(), "a"),
        side(tmp.path(), "a2"),
        side(tmp.path(), "b"),
    );
    for (s, user) in [(&a, 0), (&a2, 0), (&b, 1)] {
        bridge.login(&s.home, user).unwrap();
    }
    for s in [&a, &a2] {
        edit_config(&s.home, |c| {
            c.device_approval = harp::approval::Mode::Manual;
        })
        .unwrap();
    }
    ok(&a.home, &["device", "approve", &a2.id, "--introducer"]);
    ok(&a2.home, &["device", "approve", &a.id, "--introducer"]);
    let folder = a.add_folder("shared").unwrap();
    std::fs::write(a.folder.join("from-a.txt"), b"alice").unwrap();
    ok(&a.home, &["folder", "share", "shared", "--user", "bob"]);
    let pa = fast_daemon(&a);
    assert!(accept(&a2, &folder), "A2 never got the folder key");
    let _pa2 = fast_daemon(&a2);
    assert!(wait_for(60, || tree(&a.folder) == tree(&a2.folder)).is_some());

    // Alice approves Bob's device on A only.
    ok(&a.home, &["device", "approve", &b.id]);
    assert!(accept(&b, &folder), "Bob's device never got the folder key");
    let _pb = fast_daemon(&b);
    let list = |home: &Path| -> serde_json::Value {
        serde_json::from_str(&ok(home, &["device", "list", "--json"])).unwrap()
    };
    let introduced = |home: &Path| -> Vec<(String, String)> {
        list(home)["introduced"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["device"].as_str().unwrap().to_owned(),
                    i["by"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert!(
        wait_for(30, || introduced(&a2.home)
            == [(b.id.clone(), a.id.clone())])
        .is_some(),
        "A2 does not trust B through A: {}",
        list(&a2.home)
    );
    assert!(
        ok(&a2.home, &["device", "list"]).contains(&format!("introduced by {}", a.id)),
        "{}",
        ok(&a2.home, &["device", "list"])
    );
    // With A stopped, Bob's new file reaches A2 straight from B: A2 trusts B.
    drop(pa);
    std::fs::write(b.folder.join("from-b.txt"), b"bob").unwrap();
    assert!(
        wait_for(60, || std::fs::read(a2.folder.join("from-b.txt"))
            .ok()
            .as_deref()
            == Some(&b"bob"[..]))
        .is_some(),
        "B's file did not reach A2 with A away"
    );

    // Alice forgets B on A: A says so, and A2 stops trusting B too.
    let _pa = fast_daemon(&a);
    ok(&a.home, &["device", "forget", &b.id]);
    assert!(
        wait_for(30, || introduced(&a2.home).is_empty()).is_some(),
        "A2 still trusts B: {}",
        list(&a2.home)
    );
    assert!(
        wait_for(30, || list(&a2.home)["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["device"] == b.id.as_str()))
        .is_some(),
        "B does not wait for approval on A2: {}",
        list(&a2.home)
    );
}
