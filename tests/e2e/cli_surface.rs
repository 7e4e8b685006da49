//! Every `harp` command's exit code and `--json` output, through the real binary: 0 and one
//! JSON document on stdout for each listing; 1 and one line on stderr, with a hint, for each
//! failure; 2 for a usage error (clap). Commands that talk to the daemon are run without one
//! (an error naming `harp daemon`) and with one.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use harp_e2e::{Side, harp};
use serde_json::Value;

/// Runs `harp ARGS`: exit code, stdout, stderr.
fn run(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = harp(home, args).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `harp ARGS` succeeds and prints exactly one JSON document.
fn json(home: &Path, args: &[&str]) -> Value {
    let (code, out, err) = run(home, args);
    assert_eq!(code, 0, "harp {args:?}: {err}");
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("harp {args:?} printed no JSON ({e}): {out}"))
}

/// `harp ARGS` fails with exit code 1 and one line on stderr containing `hint`.
fn fails(home: &Path, args: &[&str], hint: &str) {
    let (code, _, err) = run(home, args);
    assert_eq!(code, 1, "harp {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "harp {args:?}: {err}");
    assert!(err.contains(hint), "harp {args:?}: {err}");
}

#[test]
fn every_command_has_its_exit_codes_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Side::new(tmp.path(), "a").unwrap();
    let h = a.home.as_path();
    let docs = a.folder.to_str().unwrap();

    // Before anything: a usage error is 2, and an unknown folder is 1 with a hint.
    assert_eq!(run(h, &["folder", "frobnicate"]).0, 2);
    assert_eq!(run(h, &["scan", "--no-such-flag"]).0, 2);
    fails(h, &["scan", "docs"], "harp folder list");

    let init = json(h, &["init", "--json"]);
    assert!(init["device_id"].is_string(), "{init}");
    let added = json(h, &["folder", "add", docs, "--label", "docs", "--json"]);
    assert_eq!(added["label"], "docs");
    std::fs::write(a.folder.join("report.txt"), b"first").unwrap();
    std::fs::write(
        a.folder.join("plan.conflict-20251121-221530-abcdefg.txt"),
        b"theirs",
    )
    .unwrap();
    json(h, &["scan", "docs", "--json"]);
    std::fs::write(a.folder.join("report.txt"), b"second, longer").unwrap();
    json(h, &["scan", "docs", "--json"]);

    let list = json(h, &["folder", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let policy = json(h, &["folder", "policy", "docs", "--json"]);
    assert_eq!(policy["quorum"], 0, "{policy}");
    let conflicts = json(h, &["conflicts", "--json"]);
    assert_eq!(conflicts[0]["original"], "plan.txt", "{conflicts}");
    assert_eq!(conflicts[0]["device"], "abcdefg", "{conflicts}");
    assert_eq!(json(h, &["conflicts", "docs", "--json"]), conflicts);
    let report = a.folder.join("report.txt");
    let report = report.to_str().unwrap();
    let versions = json(h, &["versions", report, "--json"]);
    assert_eq!(
        versions.as_array().unwrap().len(),
        0,
        "no replaced version yet: {versions}"
    );
    let proof_file = tmp.path().join("report.proof");
    let proof = json(
        h,
        &[
            "proof",
            report,
            "-o",
            proof_file.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(
        (proof["version"].as_u64(), proof["op"].as_str()),
        (Some(2), Some("modify"))
    );
    let verified = json(h, &["verify", proof_file.to_str().unwrap(), "--json"]);
    assert_eq!(verified["ok"], true, "{verified}");
    let check = json(h, &["check", "--json"]);
    assert!(check.is_array(), "{check}");
    let key = json(
        h,
        &[
            "witness",
            "key",
            "--name",
            "w.example",
            "--dir",
            tmp.path().join("w").to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        key["key"].as_str().unwrap().starts_with("w.example+"),
        "{key}"
    );

    let devices = json(h, &["device", "list", "--json"]);
    assert_eq!(devices["mode"], "bridge", "{devices}");
    assert_eq!(devices["waiting"], serde_json::json!([]), "{devices}");
    let other = init["device_id"].as_str().unwrap();
    assert_eq!(run(h, &["device", "approve", other]).0, 0);
    let devices = json(h, &["device", "list", "--json"]);
    assert_eq!(devices["approved"][0]["device"], other, "{devices}");
    assert_eq!(run(h, &["device", "forget", other]).0, 0);

    // Failures: one line each, with what to do.
    fails(h, &["device", "forget", other], "not approved");
    fails(h, &["device", "approve", "nonsense"], "not a device id");
    fails(h, &["peers", "--json"], "harp daemon");
    fails(h, &["status"], "harp daemon");
    fails(h, &["ui"], "harp daemon");
    fails(h, &["search", "report"], "harp login");
    fails(h, &["restore", report, "--version", "9"], "version");
    fails(h, &["versions", "/elsewhere/file"], "not inside");
    let bad_policy = tmp.path().join("bad.policy");
    std::fs::write(&bad_policy, "quorum 3\n").unwrap();
    fails(
        h,
        &[
            "folder",
            "policy",
            "docs",
            "--set",
            bad_policy.to_str().unwrap(),
        ],
        "never be met",
    );
    let (code, _, err) = run(h, &["verify", "/nonexistent.proof"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    let (code, out, _) = run(h, &["verify", "/nonexistent.proof", "--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], false, "{v}");

    // With the daemon: its listings answer, and removing a folder it syncs is refused.
    let (daemon, _) = a.start().unwrap();
    let peers = json(h, &["peers", "--json"]);
    assert!(peers["peers"].is_array(), "{peers}");
    let status = json(h, &["status", "--json"]);
    assert_eq!(status["folders"][0]["label"], "docs", "{status}");
    let ui = json(h, &["ui", "--json"]);
    assert!(
        ui["url"].as_str().unwrap().starts_with("http://127.0.0.1:"),
        "{ui}"
    );
    assert_eq!(ui["token"].as_str().unwrap().len(), 64);
    fails(h, &["folder", "remove", "docs"], "stop it first");
    drop(daemon);

    // Removing a folder: the device forgets it, its files stay.
    let removed = json(h, &["folder", "remove", "docs", "--json"]);
    assert_eq!(removed["label"], "docs");
    assert_eq!(
        json(h, &["folder", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(
        std::fs::read(a.folder.join("report.txt")).unwrap(),
        b"second, longer"
    );
    assert!(a.folder.join(".harp").is_dir());
    fails(h, &["folder", "remove", "docs"], "harp folder list");
}

/// `harp bench sync` (small, without Syncthing) runs its four scenarios between two real
/// daemons and reports each with its measurements: a bench that silently broke would only be
/// found when someone needs its figures. No time is asserted: speed lives in the benchmarks.
#[test]
fn bench_sync_reports_every_scenario_with_sizes_that_add_up() {
    let tmp = tempfile::tempdir().unwrap();
    let report = json(
        tmp.path(),
        &[
            "bench",
            "sync",
            "--size-mib",
            "2",
            "--small-files",
            "40",
            "--no-syncthing",
            "--json",
        ],
    );
    assert_eq!(report["size_bytes"], 2 << 20);
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 1, "{report}");
    assert!(rounds[0]["syncthing"]["skipped"].is_string(), "{report}");
    assert!(rounds[0]["raw_libp2p_stream_seconds"].as_f64().unwrap() > 0.0);
    let scenarios = rounds[0]["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "new_file",
            "insert_1_byte",
            "overwrite_4_kib",
            "small_files"
        ]
    );
    for s in scenarios {
        assert!(s["seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{s}");
        let sides = s["peak_rss_bytes_by_side"].as_array().unwrap();
        assert_eq!(sides.len(), 2, "{s}");
        assert_eq!(
            sides.iter().map(|v| v.as_u64().unwrap()).max(),
            s["peak_rss_bytes"].as_u64()
        );
    }
    let wire = |i: usize| scenarios[i]["wire_bytes"].as_u64().unwrap();
    // The whole new file crossed the wire; an edit of it moved a small part of that.
    assert!(wire(0) >= 2 << 20, "{}", wire(0));
    assert!(wire(1) < (2 << 20) / 2, "{}", wire(1));
    assert!(wire(2) < (2 << 20) / 2, "{}", wire(2));
    // 40 files of at least 1 KiB each.
    assert!(wire(3) >= 40 * 1024, "{}", wire(3));
    // The summary of one round holds that round's figures, and no Syncthing ratio.
    let summary = &report["summary"]["scenarios"];
    assert_eq!(summary.as_array().unwrap().len(), 4, "{report}");
    for (i, s) in summary.as_array().unwrap().iter().enumerate() {
        assert_eq!(s["scenario"], scenarios[i]["scenario"]);
        assert_eq!(s["harp"]["seconds"]["median"], scenarios[i]["seconds"]);
        assert!(s["ratio_to_syncthing"].is_null(), "{s}");
    }
    assert_eq!(
        summary[0]["ratio_to_raw_stream"]["median"],
        scenarios[0]["ratio_to_raw_stream"]
    );
}
