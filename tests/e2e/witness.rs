//! Witnesses end to end: two `harp witness` processes cosign the checkpoints of a folder's log
//! on a real `harp-bridge`, the daemon stores their cosignatures there, `harp proof` carries
//! them and `harp verify` checks them against the folder's policy (quorum met), a stricter
//! policy (too few cosignatures) and a policy naming another witness (unknown witness). Then
//! the bridge rewrites its log: a new device, with no history of its own to compare, accepts
//! the forged checkpoint, and a witness refuses to cosign it (a split view caught by the
//! witness), while the first device catches the rewrite from its own record.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use harp_e2e::bridge::Target;
use harp_e2e::{Proc, Side, harp, wait_for};

fn ok(home: &Path, args: &[&str]) -> String {
    harp_e2e::harp_ok(home, args).unwrap()
}

/// `harp verify` of `proof` with `extra` arguments: exit code and output.
fn verify(home: &Path, proof: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", proof.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = harp(home, &args).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

struct Witness {
    _proc: Proc,
    url: String,
    key: String,
}

fn witness(tmp: &Path, name: &str, log_key: &str) -> Witness {
    let dir = tmp.join(name);
    let proc = Proc::start(
        &[],
        tmp,
        &[
            "witness",
            "serve",
            "--name",
            name,
            "--log",
            log_key,
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
    .unwrap();
    let line = proc.until("listening on").unwrap().pop().unwrap();
    let rest = line.split_once("listening on ").unwrap().1;
    let (url, key) = rest.split_once(" (key ").unwrap();
    Witness {
        _proc: proc,
        url: url.to_owned(),
        key: key.trim_end_matches(')').to_owned(),
    }
}

fn log_status(home: &Path) -> serde_json::Value {
    let out = harp(home, &["status", "--json"]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["bridge"]["logs"]["shared"].clone()
}

fn daemon(home: &Path) -> Proc {
    let p =
        Proc::start_with_env(&[], home, &["daemon"], &[("HARP_BRIDGE_POLL_SECS", "1")]).unwrap();
    p.until("daemon ready").unwrap();
    p
}

#[test]
fn witnesses_cosign_proofs_carry_their_cosignatures_and_a_forged_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bridge = Target::start(&[]).unwrap();
    let log_key = bridge.client(0).get("/capabilities").data["log_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let w1 = witness(tmp.path(), "w1.test", &log_key);
    let w2 = witness(tmp.path(), "w2.test", &log_key);
    // A third witness whose key a policy may name, but which never hears of this log.
    let w3_key = ok(
        tmp.path(),
        &[
            "witness",
            "key",
            "--name",
            "w3.test",
            "--dir",
            tmp.path().join("w3").to_str().unwrap(),
        ],
    );
    let w3_key = w3_key.trim();

    let a = Side::new(tmp.path(), "a").unwrap();
    bridge.login(&a.home, 0).unwrap();
    let folder_id = a.add_folder("shared").unwrap();
    let policy = tmp.path().join("policy");
    std::fs::write(
        &policy,
        format!(
            "# the folder's witnesses\nwitness {} {}\nwitness {} {}\nquorum 2\n",
            w1.key, w1.url, w2.key, w2.url
        ),
    )
    .unwrap();
    let shown = ok(
        &a.home,
        &[
            "folder",
            "policy",
            "shared",
            "--set",
            policy.to_str().unwrap(),
        ],
    );
    assert!(shown.contains(&format!("log {log_key}")), "{shown}");
    assert!(shown.contains("quorum 2"), "{shown}");

    let file = a.folder.join("notes.txt");
    for v in 1..=3 {
        std::fs::write(&file, format!("version {v}")).unwrap();
        ok(&a.home, &["scan", "shared"]);
    }
    let pa = daemon(&a.home);
    let cosigned = wait_for(60, || {
        let s = log_status(&a.home);
        s["size"].as_u64() >= Some(3) && s["cosigned_by"].as_array().is_some_and(|c| c.len() == 2)
    });
    assert!(cosigned.is_some(), "{}", log_status(&a.home));
    let text = String::from_utf8(harp(&a.home, &["status"]).unwrap().stdout).unwrap();
    assert!(
        text.contains("cosigned by w1.test, w2.test (2 of the 2 the policy asks for)"),
        "{text}"
    );

    // The proof carries the checkpoint with both cosignatures.
    let proof = tmp.path().join("notes.harpproof");
    let made = ok(
        &a.home,
        &[
            "proof",
            file.to_str().unwrap(),
            "-o",
            proof.to_str().unwrap(),
        ],
    );
    assert!(made.contains("with 2 cosignature(s)"), "{made}");
    let (code, out) = verify(&a.home, &proof, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("signed by the bridge's log key, cosigned by w1.test, w2.test"),
        "{out}"
    );
    let (code, out) = verify(&a.home, &proof, &["--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["log"]["cosigned_by"].as_array().unwrap().len(), 2, "{v}");

    // Another verifier's policies: all three witnesses; only the one that never cosigned.
    let strict = tmp.path().join("strict");
    std::fs::write(
        &strict,
        format!(
            "log {log_key}\nwitness {}\nwitness {}\nwitness {w3_key}\nquorum 3\n",
            w1.key, w2.key
        ),
    )
    .unwrap();
    let (code, out) = verify(&a.home, &proof, &["--policy", strict.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[too_few_cosignatures]"), "{out}");
    let other = tmp.path().join("other");
    std::fs::write(
        &other,
        format!("log {log_key}\nwitness {w3_key}\nquorum 1\n"),
    )
    .unwrap();
    let (code, out) = verify(&a.home, &proof, &["--policy", other.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[unknown_witness]"), "{out}");
    // A log key that did not sign the checkpoint.
    let wrong_log = tmp.path().join("wrong-log");
    let forged_key = ok(
        tmp.path(),
        &[
            "witness",
            "key",
            "--name",
            "bridge.forged",
            "--dir",
            tmp.path().join("w3").to_str().unwrap(),
        ],
    );
    // (A witness key has the cosignature type: the policy refuses it as a log key.)
    std::fs::write(&wrong_log, format!("log {}", forged_key.trim())).unwrap();
    let (code, out) = verify(&a.home, &proof, &["--policy", wrong_log.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("type 0x01"), "{out}");

    // A second device of Alice's joins the folder, its daemon not started yet.
    let b = Side::new(tmp.path(), "b").unwrap();
    bridge.login(&b.home, 0).unwrap();
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
    ok(
        &b.home,
        &[
            "folder",
            "policy",
            "shared",
            "--set",
            policy.to_str().unwrap(),
        ],
    );

    // The bridge rewrites its log: the first leaf changed, the size the same.
    bridge
        .restart(|db| {
            let c = rusqlite::Connection::open(db).unwrap();
            c.execute(
                "UPDATE log_leaves SET hash = randomblob(32) WHERE idx = 0",
                [],
            )
            .unwrap();
        })
        .unwrap();
    let caught = wait_for(30, || log_status(&a.home)["state"] == "alarm");
    assert!(caught.is_some(), "{}", log_status(&a.home));
    drop(pa);
    // The new device has nothing to compare with; the witnesses do.
    let _pb = daemon(&b.home);
    let refused = wait_for(60, || {
        log_status(&b.home)["problem"]
            .as_str()
            .is_some_and(|p| p.contains("refuses the checkpoint"))
    });
    assert!(refused.is_some(), "{}", log_status(&b.home));
    let text = String::from_utf8(harp(&b.home, &["status"]).unwrap().stdout).unwrap();
    assert!(text.contains("log of shared: ALARM: witness"), "{text}");
}
