//! `harp check` on a real folder: sound after a scan; then a byte flipped on disk behind the
//! clock's back (found only by `--read-data`), a forged chain entry and a deleted index row are
//! each named, with exit code 1; a dropped tombstone row is not a fault.
#![allow(clippy::unwrap_used, missing_docs)]

use std::os::unix::fs::FileExt;

use harp_e2e::{dirs, fill, harp, init_device};

fn run(home: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = harp(home, args).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn check_names_a_flipped_byte_a_forged_entry_and_a_deleted_row() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    init_device(&home).unwrap();
    let folder = tmp.path().join("docs");
    assert_eq!(
        run(
            &home,
            &["folder", "add", folder.to_str().unwrap(), "--label", "docs"]
        )
        .0,
        0
    );
    std::fs::write(folder.join("big.bin"), fill(b"check", 3 << 20)).unwrap();
    std::fs::write(folder.join("notes.txt"), b"some notes").unwrap();
    std::fs::write(folder.join("gone.txt"), b"deleted later").unwrap();
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::os::unix::fs::symlink("../notes.txt", folder.join("sub/link")).unwrap();
    assert_eq!(run(&home, &["scan", "docs"]).0, 0);
    std::fs::write(folder.join("notes.txt"), b"some notes, edited").unwrap();
    assert_eq!(run(&home, &["scan", "docs"]).0, 0);

    let (code, out) = run(&home, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("docs: ok"), "{out}");
    let (code, out) = run(&home, &["check", "--read-data", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(
        v[0]["report"]["bytes_read"].as_u64().unwrap() >= 3 << 20,
        "{v}"
    );

    // A byte flipped in place, the mtime put back: only reading the data can tell.
    let big = folder.join("big.bin");
    let mtime = std::fs::metadata(&big).unwrap().modified().unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&big)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 2_000_000).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], 2_000_000).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(run(&home, &["check"]).0, 0, "metadata alone cannot see it");
    let (code, out) = run(&home, &["check", "--read-data"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("big.bin: its bytes differ"), "{out}");
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.write_all_at(&b, 2_000_000).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(run(&home, &["check", "--read-data"]).0, 0);

    // A forged chain entry (one byte of its signed part changed in the index).
    let db = rusqlite::Connection::open(dirs(&home).index()).unwrap();
    let (file_id, entry): (Vec<u8>, Vec<u8>) = db
        .query_row(
            "SELECT f.file_id, c.entry FROM file f JOIN chain_entry c
             ON c.folder = f.folder AND c.file_id = f.file_id AND c.seq = 2
             WHERE f.path = 'notes.txt'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut forged = entry.clone();
    forged[80] ^= 1;
    let set = |e: &[u8]| {
        db.execute(
            "UPDATE chain_entry SET entry = ?1 WHERE file_id = ?2 AND seq = 2",
            rusqlite::params![e, file_id],
        )
        .unwrap()
    };
    set(&forged);
    let (code, out) = run(&home, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("notes.txt: chain:") && out.contains("bad_signature"),
        "{out}"
    );
    set(&entry);
    assert_eq!(run(&home, &["check"]).0, 0);

    // A tombstone whose row was dropped (a duplicate that gave its path to an identical file
    // from another device ends so): its chain verifies and ends in a delete, nothing is lost.
    std::fs::remove_file(folder.join("gone.txt")).unwrap();
    assert_eq!(run(&home, &["scan", "docs"]).0, 0);
    let dropped = db
        .execute(
            "DELETE FROM file WHERE path = 'gone.txt' AND deleted = 1",
            [],
        )
        .unwrap();
    assert_eq!(dropped, 1);
    let (code, out) = run(&home, &["check"]);
    assert_eq!(code, 0, "{out}");

    // A deleted row of a live file: its chain entries are left without one.
    db.execute("DELETE FROM file WHERE path = 'notes.txt'", [])
        .unwrap();
    let (code, out) = run(&home, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has no index row (a lost row)"), "{out}");
}
