//! The local engine as a user drives it, through the real `harp` binary: init, folder add,
//! scan, proof, verify; one-line errors; and kill -9 in the middle of scans of a large tree,
//! after which the index passes `PRAGMA integrity_check` and a rescan records exactly what
//! is on disk.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harp::config::Config;
use harp::index::Index;
use harp_e2e::{binary, dirs, harp};
use harp_protocol::blob::{self, BlobKind};
use harp_protocol::chain::Chain;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

#[test]
fn init_add_scan_prove_verify() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let first = json(&harp(h, &["init", "--name", "laptop", "--json"]).unwrap());
    assert_eq!(first["created"], true);
    let again = json(&harp(h, &["init", "--json"]).unwrap());
    assert_eq!(again["created"], false, "init never replaces an identity");
    assert_eq!(again["device_id"], first["device_id"]);

    let docs = h.join("docs");
    let added = json(&harp(h, &["folder", "add", docs.to_str().unwrap(), "--json"]).unwrap());
    assert_eq!(added["label"], "docs");
    std::fs::write(docs.join("report.txt"), b"draft 1").unwrap();
    std::fs::write(docs.join("data.bin"), fill(1, 300_000)).unwrap();
    let s = json(&harp(h, &["scan", "docs", "--json"]).unwrap());
    assert_eq!(
        (s["created"].as_u64(), s["hashed_bytes"].as_u64()),
        (Some(2), Some(300_007))
    );

    std::fs::write(docs.join("report.txt"), b"draft 2, longer").unwrap();
    let s = json(&harp(h, &["scan", "docs", "--json"]).unwrap());
    assert_eq!(
        (s["modified"].as_u64(), s["unchanged"].as_u64()),
        (Some(1), Some(1))
    );

    let proof = h.join("report.proof");
    let out = harp(
        h,
        &[
            "proof",
            docs.join("report.txt").to_str().unwrap(),
            "-o",
            proof.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    // This device syncs the folder, so verify finds the folder key and checks the genesis too.
    let v = json(
        &harp(
            h,
            &[
                "verify",
                proof.to_str().unwrap(),
                "--json",
                "--trust",
                first["device_id"].as_str().unwrap(),
            ],
        )
        .unwrap(),
    );
    assert_eq!(
        (v["seq"].as_u64(), v["op"].as_str()),
        (Some(2), Some("modify"))
    );
    assert_eq!(
        (
            v["genesis_checked"].as_bool(),
            v["authors_checked"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let out = harp(
        h,
        &[
            "proof",
            docs.join("report.txt").to_str().unwrap(),
            "--version",
            "1",
            "-o",
            proof.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(out.status.success());
    let v = json(&harp(h, &["verify", proof.to_str().unwrap(), "--json"]).unwrap());
    assert_eq!(
        (v["seq"].as_u64(), v["op"].as_str(), v["size"].as_u64()),
        (Some(1), Some("create"), Some(7))
    );

    let list = json(&harp(h, &["folder", "list", "--json"]).unwrap());
    assert_eq!(list.as_array().unwrap().len(), 1);
    let versions = json(
        &harp(
            h,
            &[
                "versions",
                docs.join("report.txt").to_str().unwrap(),
                "--json",
            ],
        )
        .unwrap(),
    );
    assert_eq!(versions.as_array().unwrap().len(), 0);
}

#[test]
fn errors_are_one_line_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = harp(h, &["scan", "docs"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("harp init"), "{err}");

    assert!(harp(h, &["init"]).unwrap().status.success());
    let out = harp(h, &["scan", "nope"]).unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        (out.status.code(), err.lines().count()),
        (Some(1), 1),
        "{err}"
    );
    assert!(err.contains("harp folder list"), "{err}");

    let docs = h.join("docs");
    assert!(
        harp(h, &["folder", "add", docs.to_str().unwrap()])
            .unwrap()
            .status
            .success()
    );
    let nested = docs.join("inner");
    let out = harp(h, &["folder", "add", nested.to_str().unwrap()]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nested"));

    std::fs::write(docs.join("a"), b"a").unwrap();
    assert!(harp(h, &["scan", "docs"]).unwrap().status.success());
    std::fs::remove_file(docs.join("a")).unwrap();
    let out = harp(h, &["scan", "docs"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to record everything as deleted")
    );
}

fn make_tree(root: &Path) {
    for d in 0..20 {
        let dir = root.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..150 {
            let i = d * 1000 + f;
            std::fs::write(
                dir.join(format!("file{f:03}.bin")),
                fill(i, 1000 + (i as usize * 7919) % 40_000),
            )
            .unwrap();
        }
    }
    for b in 0..4 {
        std::fs::write(root.join(format!("big{b}.bin")), fill(100 + b, 24 << 20)).unwrap();
    }
}

/// Every live row of the index describes exactly the file on disk, and every chain verifies.
fn check_index_matches_disk(home: &Path, root: &Path) -> usize {
    let d = dirs(home);
    let config = Config::load(&d).unwrap();
    let node = harp::node::Node::open(d.clone()).unwrap();
    let folder = node.open_folder(&config.folders[0]).unwrap();
    let index = Index::open(&d.index()).unwrap();
    assert_eq!(index.integrity_check().unwrap(), "ok");
    let rows = index.files(&folder.id).unwrap();
    let mut files = 0;
    for row in rows.values().filter(|r| !r.deleted) {
        let path: PathBuf = root.join(&row.path);
        let entries = index.chain(&folder.id, &row.file_id).unwrap();
        let chain =
            Chain::from_entries(folder.id, row.file_id, &folder.keys.chain_seed, entries).unwrap();
        assert_eq!(chain.head(), row.chain_head, "{}", row.path);
        if !path.is_file() {
            continue;
        }
        files += 1;
        let data = std::fs::read(&path).unwrap();
        let chunks = index.chunks(&folder.id, &row.file_id).unwrap();
        let mut at = 0usize;
        for c in chunks {
            let (id, _) = blob::seal(
                &folder.keys,
                BlobKind::Chunk,
                &data[at..at + c.len as usize],
            )
            .unwrap();
            assert_eq!(id, c.id, "{} chunk {}", row.path, c.idx);
            at += c.len as usize;
        }
        assert_eq!(at, data.len(), "{}", row.path);
    }
    files
}

#[test]
fn kill_9_during_scans_leaves_a_sound_index_and_a_correct_rescan() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert!(harp(h, &["init"]).unwrap().status.success());
    let root = h.join("tree");
    make_tree(&root);
    assert!(
        harp(h, &["folder", "add", root.to_str().unwrap()])
            .unwrap()
            .status
            .success()
    );
    let bin = binary("harp").unwrap();
    let mut interrupted = 0;
    for (round, delay_ms) in [40u64, 120, 250, 400, 700, 1000].into_iter().enumerate() {
        // Change some files between rounds, so that later kills land in writes of updates too.
        if round > 0 {
            std::fs::write(
                root.join(format!("dir{round:02}/file000.bin")),
                fill(round as u64 * 77, 5000),
            )
            .unwrap();
            std::fs::write(
                root.join(format!("big{}.bin", round % 4)),
                fill(round as u64 * 99, 20 << 20),
            )
            .unwrap();
        }
        let mut child = Command::new(&bin)
            .args(["scan", "tree"])
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env("XDG_DATA_HOME", h.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let index = Index::open(&dirs(h).index()).unwrap();
        assert_eq!(
            index.integrity_check().unwrap(),
            "ok",
            "after a kill at {delay_ms} ms"
        );
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} kills landed mid-scan: make the tree bigger"
    );
    let out = harp(h, &["scan", "tree", "--json"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    let files = check_index_matches_disk(h, &root);
    assert_eq!(files, 20 * 150 + 4);
    // And a further scan finds nothing to do.
    let s = json(&harp(h, &["scan", "tree", "--json"]).unwrap());
    assert_eq!(
        (
            s["hashed_files"].as_u64(),
            s["created"].as_u64(),
            s["modified"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
}

/// Runs `harp` as the unprivileged user `nobody` (root reads everything, so unreadable files
/// can only be tested without root).
fn harp_as_nobody(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(binary("harp").unwrap())
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .output()
        .unwrap()
}

fn chown_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn unreadable_entries_are_reported_skipped_and_never_taken_for_deleted() {
    let am_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !am_root || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run harp as another user");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let root = h.join("docs");
    std::fs::create_dir_all(root.join("private")).unwrap();
    std::fs::write(root.join("open.txt"), b"open").unwrap();
    std::fs::write(root.join("private/inner.txt"), b"inner").unwrap();
    chown_nobody(h);
    assert!(harp_as_nobody(h, &["init"]).status.success());
    assert!(
        harp_as_nobody(h, &["folder", "add", root.to_str().unwrap()])
            .status
            .success()
    );
    let s = json(&harp_as_nobody(h, &["scan", "docs", "--json"]));
    assert_eq!(s["created"].as_u64(), Some(3));

    // Now a file and a directory only root can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(root.join("secret.txt"), b"root only").unwrap();
    std::fs::set_permissions(
        root.join("secret.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let status = Command::new("chown")
        .args(["-R", "0:0"])
        .arg(root.join("private"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = harp_as_nobody(h, &["scan", "docs", "--json"]);
    let s = json(&out);
    let skipped: Vec<String> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| format!("{}: {}", k["path"], k["reason"]))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .any(|k| k.contains("secret.txt") && k.contains("ermission denied")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|k| k.contains("private") && k.contains("ermission denied")),
        "{skipped:?}"
    );
    // The unreadable directory's contents were not recorded as deleted.
    assert_eq!(
        (s["deleted"].as_u64(), s["created"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
}
