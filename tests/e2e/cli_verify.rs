//! `harp verify` as a user runs it: on the golden proofs of `protocol/tests/vectors`, valid and
//! broken, checking exit status and the one line it prints.
#![allow(clippy::unwrap_used, missing_docs)]

use harp_e2e::{harp, workspace_root};
use serde_json::Value;

fn vectors() -> Value {
    let path = workspace_root().join("protocol/tests/vectors/proofs.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn folder_key() -> String {
    let path = workspace_root().join("protocol/tests/vectors/keys.json");
    let keys: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    keys["folder_key"].as_str().unwrap().to_owned()
}

fn write_proof(dir: &std::path::Path, name: &str, hex: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap(),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_valid_proof_verifies_with_and_without_the_folder_key() {
    let home = tempfile::tempdir().unwrap();
    let v = vectors();
    let valid = &v["valid"][0];
    let file = write_proof(home.path(), "ok.proof", valid["proof"].as_str().unwrap());

    let out = harp(home.path(), &["verify", &file]).unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("ok: version 10 (modify)"), "{line}");
    assert!(line.contains("checked: signatures, sequence\n"), "{line}");

    let key = folder_key();
    let trusted: Vec<&str> = valid["policy"]["trusted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let mut args = vec!["verify", &file, "--folder-key", &key, "--json"];
    for t in &trusted {
        args.extend(["--trust", t]);
    }
    let out = harp(home.path(), &args).unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["seq"], 10);
    assert_eq!(json["head"], valid["expect"]["head"]);
    assert_eq!(json["genesis_checked"], true);
    assert_eq!(json["authors_checked"], true);

    // The witnessed proof, under its policy: log key, two witnesses, quorum 2.
    let witnessed = &v["valid"][2];
    let file = write_proof(
        home.path(),
        "logged.proof",
        witnessed["proof"].as_str().unwrap(),
    );
    let policy = policy_file(home.path(), 99, &witnessed["policy"]).unwrap();
    let out = harp(
        home.path(),
        &["verify", &file, "--folder-key", &key, "--policy", &policy],
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.contains("logged as leaf 19 of 25 (signed by the bridge's log key, cosigned by w0.example, w1.example)"),
        "{line}"
    );
}

/// A `--policy` file for a vector's log key, witnesses and quorum (none when it has no log).
fn policy_file(dir: &std::path::Path, i: usize, policy: &serde_json::Value) -> Option<String> {
    let log = policy["log"].as_str()?;
    let mut text = format!("log {log}\n");
    for w in policy["witnesses"].as_array().into_iter().flatten() {
        text.push_str(&format!("witness {}\n", w.as_str().unwrap()));
    }
    text.push_str(&format!(
        "quorum {}\n",
        policy["quorum"].as_u64().unwrap_or(0)
    ));
    let path = dir.join(format!("policy{i}.txt"));
    std::fs::write(&path, text).unwrap();
    Some(path.to_str().unwrap().to_owned())
}

#[test]
fn every_broken_proof_exits_1_naming_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let key = folder_key();
    for (i, b) in vectors()["broken"].as_array().unwrap().iter().enumerate() {
        let file = write_proof(
            home.path(),
            &format!("bad{i}.proof"),
            b["proof"].as_str().unwrap(),
        );
        let mut args = vec!["verify".to_owned(), file];
        if b["policy"]["chain_seed"] == true {
            args.extend(["--folder-key".to_owned(), key.clone()]);
        }
        for t in b["policy"]["trusted"].as_array().into_iter().flatten() {
            args.extend(["--trust".to_owned(), t.as_str().unwrap().to_owned()]);
        }
        if let Some(policy) = policy_file(home.path(), i, &b["policy"]) {
            args.extend(["--policy".to_owned(), policy]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = harp(home.path(), &refs).unwrap();
        assert_eq!(out.status.code(), Some(1), "{}: {out:?}", b["name"]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        let code = b["error"].as_str().unwrap();
        assert!(err.contains(&format!("[{code}]")), "{}: {err}", b["name"]);
    }
}

#[test]
fn unreadable_files_and_bad_keys_are_one_line_errors() {
    let home = tempfile::tempdir().unwrap();
    let out = harp(home.path(), &["verify", "/nonexistent/proof"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/proof"));
    let file = write_proof(
        home.path(),
        "ok.proof",
        vectors()["valid"][0]["proof"].as_str().unwrap(),
    );
    let out = harp(home.path(), &["verify", &file, "--folder-key", "abc"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
}
