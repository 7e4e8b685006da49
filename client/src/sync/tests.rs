//! Sync rounds between devices in one process: real folders, indexes and documents; the
//! documents are merged directly and chunks are read from the other device's files.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::SigningKey;
use harp_protocol::ids::{ChunkId, DeviceId, FolderId};
use harp_protocol::keys::FolderKey;

use super::apply::{Context, Fetcher, Report, sync_once, tests_hook};
use super::doc::FolderDoc;
use crate::index::Index;
use crate::scan::{Folder, Options, scan};

struct Device {
    _dir: tempfile::TempDir,
    folder: Folder,
    index: Index,
    doc: std::sync::Mutex<FolderDoc>,
    key: SigningKey,
    /// The folder's direction here.
    direction: super::plan::Direction,
    /// A forced round to run next (once).
    force: Option<super::plan::Force>,
    /// Where its rounds show how far they have got.
    progress: super::progress::Progress,
}

impl Device {
    fn new(n: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root: PathBuf = dir.path().join("f");
        std::fs::create_dir_all(root.join(".harp")).unwrap();
        let folder = Folder::new(
            FolderId::from_bytes([1; 16]),
            root,
            FolderKey::from_bytes([2; 32]).schedule(),
        );
        let index = Index::open(&dir.path().join("index.sqlite3")).unwrap();
        Self {
            _dir: dir,
            folder,
            index,
            doc: std::sync::Mutex::new(FolderDoc::in_memory()),
            key: SigningKey::from_bytes(&[n; 32]),
            direction: Default::default(),
            force: None,
            progress: Default::default(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.folder.root.join(rel)
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn scan(&mut self) {
        scan(
            &mut self.index,
            &self.folder,
            &self.key,
            &Options {
                threads: 2,
                progress: None,
                early: None,
            },
        )
        .unwrap();
    }

    /// Scan, then one sync round fetching from `peers`.
    fn round(&mut self, members: &HashSet<DeviceId>, peers: &[&Device]) -> Report {
        self.round_with(members, peers, None)
    }

    /// A round with an orderer (a `server_authoritative` folder).
    fn round_with(
        &mut self,
        members: &HashSet<DeviceId>,
        peers: &[&Device],
        authority: Option<&dyn super::apply::Authority>,
    ) -> Report {
        let r = self.try_round(members, peers, authority).unwrap();
        assert!(
            r.deferred.is_empty()
                || r.deferred
                    .iter()
                    .all(|(_, why)| !why.starts_with("refused")),
            "{r:?}"
        );
        r
    }

    /// Scan, then one sync round, which may fail.
    fn try_round(
        &mut self,
        members: &HashSet<DeviceId>,
        peers: &[&Device],
        authority: Option<&dyn super::apply::Authority>,
    ) -> Result<Report, super::apply::RoundError> {
        self.scan();
        let fetcher = Peers::of(peers);
        let ctx = Context {
            folder: &self.folder,
            device: &self.key,
            members,
            fetcher: &fetcher,
            authority,
            direction: self.direction,
            force: self.force.take(),
            progress: Some(&self.progress),
        };
        sync_once(&mut self.index, &self.doc, &ctx)
    }

    /// Every regular file and link under the root except `.harp`, with content.
    fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.folder.root, &self.folder.root, &mut out);
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".harp" {
            continue;
        }
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            let t = std::fs::read_link(e.path()).unwrap();
            out.insert(rel, format!("-> {}", t.display()).into_bytes());
        } else if ft.is_dir() {
            out.insert(format!("{rel}/"), Vec::new());
            walk(root, &e.path(), out);
        } else {
            out.insert(rel, std::fs::read(e.path()).unwrap());
        }
    }
}

struct Peers(Vec<(Mutex<Index>, Folder)>);

thread_local! {
    /// Every id asked of [`Peers`] on this thread, in order (tests clear it first).
    static FETCHED: std::cell::RefCell<Vec<ChunkId>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Peers {
    /// Fetches from these devices' folders, through indexes of their own.
    fn of(devices: &[&Device]) -> Self {
        Peers(
            devices
                .iter()
                .map(|d| {
                    (
                        Mutex::new(Index::open(&d._dir.path().join("index.sqlite3")).unwrap()),
                        Folder::new(d.folder.id, d.folder.root.clone(), d.folder.keys.clone()),
                    )
                })
                .collect(),
        )
    }
}

impl Fetcher for Peers {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(harp_protocol::blob::CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        let mut left = Vec::new();
        FETCHED.with(|f| f.borrow_mut().extend(ids.iter().copied()));
        'ids: for id in ids {
            for (index, folder) in &self.0 {
                let index = index.lock().unwrap();
                if let Some(b) = crate::chunk::read_blob(&index, folder, &id).unwrap() {
                    sink(harp_protocol::blob::CheckedBlob::check(id, b).unwrap())?;
                    continue 'ids;
                }
            }
            left.push(id);
        }
        Ok(left)
    }
}

fn exchange(a: &mut Device, b: &mut Device) {
    let (da, db) = (a.doc.get_mut().unwrap(), b.doc.get_mut().unwrap());
    da.merge(db).unwrap();
    db.merge(da).unwrap();
}

fn members(ds: &[&Device]) -> HashSet<DeviceId> {
    ds.iter()
        .map(|d| DeviceId::of_signing_key(&d.key))
        .collect()
}

/// Rounds until both are quiet (see [`settle`]); the callers compare the trees.
fn converge(a: &mut Device, b: &mut Device) {
    settle(a, b);
}

#[test]
fn files_links_dirs_renames_modes_and_deletes_reach_the_other_device() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let big = crate::testutil::random(b"big", 700_000);
    a.write("big.bin", &big);
    a.write("docs/notes.txt", b"hello");
    a.write("docs/deep/er/x.txt", b"x");
    std::fs::create_dir_all(a.path("empty")).unwrap();
    std::os::unix::fs::symlink("docs/notes.txt", a.path("link")).unwrap();
    std::fs::set_permissions(
        a.path("docs/notes.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    converge(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    let mode = std::fs::metadata(b.path("docs/notes.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(a.path("big.bin"))
            .unwrap()
            .modified()
            .unwrap(),
        std::fs::metadata(b.path("big.bin"))
            .unwrap()
            .modified()
            .unwrap()
    );

    // B edits in the middle, renames, moves a directory and deletes; A follows.
    let mut edited = big.clone();
    edited.splice(350_000..350_000, *b"inserted");
    b.write("big.bin", &edited);
    std::fs::rename(b.path("docs/notes.txt"), b.path("notes-renamed.txt")).unwrap();
    std::fs::rename(b.path("docs/deep"), b.path("moved")).unwrap();
    std::fs::remove_file(b.path("link")).unwrap();
    converge(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    assert_eq!(std::fs::read(a.path("big.bin")).unwrap(), edited);
    assert!(a.path("moved/er/x.txt").exists());
    // Overwritten and deleted versions on A went to its versions store.
    let kept = a.index.all_versions(&a.folder.id).unwrap();
    assert!(
        kept.iter()
            .any(|v| v.path == "big.bin" && v.reason == "overwrite")
    );
    assert!(
        kept.iter()
            .any(|v| v.path == "link" && v.reason == "delete")
    );
    assert_eq!(a.index.integrity_check().unwrap(), "ok");
}

/// The chunk rows of `rel` on `d`, in order.
fn chunk_rows(d: &Device, rel: &str) -> Vec<crate::index::ChunkLoc> {
    let row = d.index.file(&d.folder.id, rel).unwrap().unwrap();
    d.index.chunks(&d.folder.id, &row.file_id).unwrap()
}

/// Every chunk row of `rel` on `d` has the tag of the bytes `data` holds there.
fn assert_tags(d: &Device, rel: &str, data: &[u8]) {
    let rows = chunk_rows(d, rel);
    assert!(rows.len() > 10);
    for c in rows {
        let bytes = &data[c.offset as usize..][..c.len as usize];
        assert_eq!(
            c.tag,
            Some(crate::chunk::tag_of(&d.folder.keys, bytes)),
            "chunk {} at {}",
            c.idx,
            c.offset
        );
    }
}

#[test]
fn a_received_file_gets_the_chunk_tags_of_its_bytes_as_the_sender_has_them() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    // Large enough for rescans to use the previous chunks (scan::KNOWN_CHUNKS_MIN_SIZE).
    let big = crate::testutil::random(b"tagged", 3 << 20);
    a.write("big.bin", &big);
    converge(&mut a, &mut b);
    assert_tags(&a, "big.bin", &big);
    // B fetched every chunk: the blobs' nonces gave it the tags the cutter recorded.
    assert_tags(&b, "big.bin", &big);

    // B edits; its rescan maps the unchanged chunks by tag, and A rebuilds from its own copy
    // (the chunks it copied keep their tags, the fetched one gets its own).
    let mut edited = big.clone();
    edited[1_500_000..1_504_096].fill(0);
    b.write("big.bin", &edited);
    converge(&mut a, &mut b);
    assert_eq!(std::fs::read(a.path("big.bin")).unwrap(), edited);
    assert_tags(&b, "big.bin", &edited);
    assert_tags(&a, "big.bin", &edited);
}

#[test]
fn a_large_new_file_written_past_the_page_cache_arrives_whole_with_its_tags() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    // Over direct_write::WORTH_IT, and not a multiple of its blocks.
    let size = crate::direct_write::WORTH_IT as usize + 3 * 65_536 + 1234;
    let big = crate::testutil::random(b"direct", size);
    a.write("big.bin", &big);
    converge(&mut a, &mut b);
    assert_big_holds(&b, &big);
    assert_tags(&b, "big.bin", &big);
    // And its next version, built from it (the ordinary writes), is exact too.
    let mut edited = big.clone();
    edited[size / 2..size / 2 + 4096].fill(7);
    a.write("big.bin", &edited);
    converge(&mut a, &mut b);
    assert_big_holds(&b, &edited);
}

#[test]
fn a_large_new_file_that_shares_chunks_with_a_local_file_keeps_the_bytes_copied_from_it() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    // B has the first 4 MiB already (another file); the new file needs more than
    // direct_write::WORTH_IT from the peer besides.
    let size = crate::direct_write::WORTH_IT as usize + (6 << 20) + 777;
    let big = crate::testutil::random(b"shared", size);
    a.write("early-part.bin", &big[..4 << 20]);
    converge(&mut a, &mut b);
    a.write("big.bin", &big);
    let report = {
        let m = members(&[&a, &b]);
        a.round(&m, &[]);
        exchange(&mut a, &mut b);
        b.round(&m, &[&a])
    };
    assert!(report.reused_bytes > 0, "{report:?}");
    assert_big_holds(&b, &big);
}

/// A writes `data` at `rel` and publishes it; B hears of it (nothing fetched yet).
fn published_by_a(a: &mut Device, b: &mut Device, m: &HashSet<DeviceId>, rel: &str, data: &[u8]) {
    a.write(rel, data);
    a.round(m, &[]);
    exchange(a, b);
}

/// A round cut short by one of the test hooks' "kills".
fn assert_killed(r: Result<Report, super::apply::RoundError>) {
    assert!(
        r.as_ref().is_err_and(|e| e.to_string().contains("killed")),
        "{r:?}"
    );
}

/// B's round cut short (as by a kill) right after an edit's bytes went into the file in
/// place, before the index took it.
fn killed_after_patch(b: &mut Device, m: &HashSet<DeviceId>, a: &Device) {
    super::apply::patch_hook::KILL_AFTER_PATCH.with(|k| k.set(true));
    assert_killed(b.try_round(m, &[a], None));
}

/// Asserts that B's `big.bin` holds exactly `bytes` (without printing a large file).
#[track_caller]
fn assert_big_holds(b: &Device, bytes: &[u8]) {
    let held = std::fs::read(b.path("big.bin")).unwrap();
    assert!(
        held == bytes,
        "big.bin differs ({} bytes held, {} expected)",
        held.len(),
        bytes.len()
    );
}

/// A and B in sync on a large file, written in place from here on whatever the file system
/// (see `apply::patch`); returns its content and B's inode of it.
fn large_file_in_sync(a: &mut Device, b: &mut Device) -> (Vec<u8>, u64) {
    use std::os::unix::fs::MetadataExt;
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(Some(true)));
    let size = 20 << 20;
    let big = crate::testutil::random(b"in place", size);
    a.write("big.bin", &big);
    converge(a, b);
    assert_big_holds(b, &big);
    let inode = std::fs::metadata(b.path("big.bin")).unwrap().ino();
    (big, inode)
}

/// `data` with 4 KiB overwritten in its middle.
fn overwritten(data: &[u8], fill: u8) -> Vec<u8> {
    let mut edited = data.to_vec();
    let mid = data.len() / 2 + 1000;
    edited[mid..mid + 4096].fill(fill);
    edited
}

/// B's kept versions of `rel`, oldest first: (bytes, mode, mtime).
fn kept_versions(d: &Device, rel: &str) -> Vec<(Vec<u8>, u32, i64)> {
    d.index
        .versions(&d.folder.id, rel)
        .unwrap()
        .into_iter()
        .map(|v| {
            let file = crate::store::versions_dir(&d.folder).join(&v.stored);
            (std::fs::read(file).unwrap(), v.mode, v.mtime_ns)
        })
        .collect()
}

fn mtime_of(d: &Device, rel: &str) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(d.path(rel)).unwrap();
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

#[test]
fn a_small_edit_of_a_large_file_is_written_in_place_and_its_previous_version_kept_whole() {
    use std::os::unix::fs::MetadataExt;
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, inode) = large_file_in_sync(&mut a, &mut b);
    let old_mtime = mtime_of(&b, "big.bin");
    let edited = overwritten(&big, 7);
    let m = members(&[&a, &b]);
    published_by_a(&mut a, &mut b, &m, "big.bin", &edited);
    let report = b.round(&m, &[&a]);
    assert_big_holds(&b, &edited);
    // The same file, written where it changed: not a new file built whole.
    assert_eq!(std::fs::metadata(b.path("big.bin")).unwrap().ino(), inode);
    assert_eq!(mtime_of(&b, "big.bin"), mtime_of(&a, "big.bin"));
    assert!(report.fetched_bytes < 1 << 20, "{report:?}");
    assert!(report.reused_bytes > 19 << 20, "{report:?}");
    // The version it replaced is in the versions store, whole, with its mtime.
    let kept = kept_versions(&b, "big.bin");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].0 == big);
    assert_eq!(kept[0].2, old_mtime);
    assert!(
        !b.folder
            .root
            .join(".harp/patches")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
    // The index describes the file as it is: the next round publishes nothing, and the tags
    // are the new bytes'.
    assert_tags(&b, "big.bin", &edited);
    let again = b.round(&m, &[&a]);
    assert_eq!(again.published, 0, "{again:?}");
    converge(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn an_edit_in_place_cut_short_is_rolled_back_at_restart_then_installed_again() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    let old_mtime = mtime_of(&b, "big.bin");
    let edited = overwritten(&big, 9);
    let m = members(&[&a, &b]);
    published_by_a(&mut a, &mut b, &m, "big.bin", &edited);
    killed_after_patch(&mut b, &m, &a);
    // Cut short after the bytes went in, before the index knew.
    assert_big_holds(&b, &edited);
    super::apply::recover_edits_in_place(&b.index, &b.folder);
    assert_big_holds(&b, &big);
    assert_eq!(mtime_of(&b, "big.bin"), old_mtime);
    // The restarted round installs it, and nothing of B's is taken for a local edit.
    let report = b.round(&m, &[&a]);
    assert_eq!(report.published, 0, "{report:?}");
    assert_big_holds(&b, &edited);
    let kept = kept_versions(&b, "big.bin");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].0 == big);
    converge(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    no_conflict_copies(&b.tree());
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn a_version_replaced_in_place_is_kept_at_restart_or_before_the_next_edit_if_cut_short() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    let m = members(&[&a, &b]);
    let mut versions = vec![big];
    for (i, restart) in [(1u8, true), (2, false), (3, false)] {
        let next = overwritten(versions.last().unwrap(), 10 + i);
        published_by_a(&mut a, &mut b, &m, "big.bin", &next);
        super::apply::patch_hook::KILL_BEFORE_KEEP.with(|k| k.set(true));
        assert_killed(b.try_round(&m, &[&a], None));
        assert_big_holds(&b, &next);
        if restart {
            super::apply::recover_edits_in_place(&b.index, &b.folder);
        }
        versions.push(next);
        // Whether kept at the restart or by the next edit's install, before it writes.
        let kept = kept_versions(&b, "big.bin");
        let expect = if restart { 1 } else { i as usize - 1 };
        assert_eq!(kept.len(), expect, "edit {i}");
    }
    converge(&mut a, &mut b);
    super::apply::recover_edits_in_place(&b.index, &b.folder);
    let kept: Vec<Vec<u8>> = kept_versions(&b, "big.bin")
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert!(
        kept == versions[..3],
        "every replaced version is kept, in order"
    );
    assert_big_holds(&b, &versions[3]);
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn an_append_to_a_large_file_and_a_cut_from_its_end_are_written_in_place() {
    use std::os::unix::fs::MetadataExt;
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, inode) = large_file_in_sync(&mut a, &mut b);
    let m = members(&[&a, &b]);
    let mut appended = big.clone();
    appended.extend_from_slice(&crate::testutil::random(b"appended", 300_000));
    let cut = appended[..big.len() - 200_000].to_vec();
    let mut versions = vec![big];
    for next in [appended, cut] {
        published_by_a(&mut a, &mut b, &m, "big.bin", &next);
        let report = b.round(&m, &[&a]);
        assert_big_holds(&b, &next);
        assert_eq!(std::fs::metadata(b.path("big.bin")).unwrap().ino(), inode);
        assert!(report.fetched_bytes < 1 << 20, "{report:?}");
        assert_tags(&b, "big.bin", &next);
        versions.push(next);
    }
    let kept: Vec<Vec<u8>> = kept_versions(&b, "big.bin")
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert!(
        kept == versions[..2],
        "the versions before the append and the cut are kept"
    );
    let again = b.round(&m, &[&a]);
    assert_eq!(again.published, 0, "{again:?}");
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn an_append_in_place_cut_short_is_rolled_back_to_the_old_length() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    let old_mtime = mtime_of(&b, "big.bin");
    let mut appended = overwritten(&big, 5);
    appended.extend_from_slice(b"a few more bytes");
    let m = members(&[&a, &b]);
    published_by_a(&mut a, &mut b, &m, "big.bin", &appended);
    killed_after_patch(&mut b, &m, &a);
    assert_big_holds(&b, &appended);
    super::apply::recover_edits_in_place(&b.index, &b.folder);
    assert_big_holds(&b, &big);
    assert_eq!(mtime_of(&b, "big.bin"), old_mtime);
    let report = b.round(&m, &[&a]);
    assert_eq!(report.published, 0, "{report:?}");
    assert_big_holds(&b, &appended);
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn a_large_file_whose_middle_moved_or_that_changed_too_much_is_built_whole() {
    use std::os::unix::fs::MetadataExt;
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, inode) = large_file_in_sync(&mut a, &mut b);
    let m = members(&[&a, &b]);
    // An insert moves everything after it; 9 MiB overwritten is past the patch's limit.
    let mut inserted = big.clone();
    inserted.insert(big.len() / 2, 1);
    let mut rewritten = inserted.clone();
    rewritten[1 << 20..10 << 20].fill(3);
    let mut inodes = vec![inode];
    for next in [inserted, rewritten] {
        published_by_a(&mut a, &mut b, &m, "big.bin", &next);
        FETCHED.with(|f| f.borrow_mut().clear());
        b.round(&m, &[&a]);
        // Nothing asked twice: the manifest nodes fetched before falling back are kept.
        let asked = FETCHED.with(|f| f.borrow().clone());
        let distinct: HashSet<ChunkId> = asked.iter().copied().collect();
        assert!(
            !asked.is_empty() && distinct.len() == asked.len(),
            "{asked:?}"
        );
        assert_big_holds(&b, &next);
        let now = std::fs::metadata(b.path("big.bin")).unwrap().ino();
        assert!(!inodes.contains(&now), "a new file each time");
        inodes.push(now);
    }
    assert_eq!(kept_versions(&b, "big.bin").len(), 2);
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

fn mode_of(d: &Device, rel: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(d.path(rel)).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_cut_from_the_end_undone_after_a_failed_commit_or_cut_short_gets_its_bytes_and_mode_back() {
    use std::os::unix::fs::PermissionsExt;
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    let (old_mtime, old_mode) = (mtime_of(&b, "big.bin"), mode_of(&b, "big.bin"));
    let cut = big[..big.len() - 100_000].to_vec();
    a.write("big.bin", &cut);
    std::fs::set_permissions(a.path("big.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    let unchanged = |b: &Device| {
        assert_big_holds(b, &big);
        assert_eq!(mtime_of(b, "big.bin"), old_mtime);
        assert_eq!(mode_of(b, "big.bin"), old_mode);
    };
    // The index commit fails after the bytes, mode and mtime changed: undone at once.
    super::apply::patch_hook::FAIL_BEFORE_COMMIT.with(|k| k.set(true));
    let r = b.try_round(&m, &[&a], None).unwrap();
    assert!(
        r.deferred
            .iter()
            .any(|(_, why)| why.contains("failed by the test")),
        "{r:?}"
    );
    unchanged(&b);
    // Cut short after the bytes went in: undone at the restart.
    killed_after_patch(&mut b, &m, &a);
    assert_big_holds(&b, &cut);
    super::apply::recover_edits_in_place(&b.index, &b.folder);
    unchanged(&b);
    let report = b.round(&m, &[&a]);
    assert_eq!(report.published, 0, "{report:?}");
    assert_big_holds(&b, &cut);
    assert_eq!(mode_of(&b, "big.bin"), 0o600);
    assert!(kept_versions(&b, "big.bin")[0].0 == big);
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn a_file_written_into_by_something_else_after_an_edit_was_cut_short_is_not_rolled_back() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    let edited = overwritten(&big, 21);
    let m = members(&[&a, &b]);
    published_by_a(&mut a, &mut b, &m, "big.bin", &edited);
    killed_after_patch(&mut b, &m, &a);
    // Before the restart, a program writes a byte that is neither version's into the range.
    let mut theirs = edited.clone();
    let mid = big.len() / 2 + 1000;
    theirs[mid + 10] = 0x99;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(b.path("big.bin"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x99], (mid + 10) as u64).unwrap();
    drop(f);
    super::apply::recover_edits_in_place(&b.index, &b.folder);
    assert!(
        std::fs::read(b.path("big.bin")).unwrap() == theirs,
        "left as it is"
    );
    assert!(
        !b.folder
            .root
            .join(".harp/patches")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn a_large_file_with_another_name_is_replaced_not_written_into() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    // A hard link outside the folder (a backup made with cp -al) must not see the edit.
    let outside = b._dir.path().join("backup.bin");
    std::fs::hard_link(b.path("big.bin"), &outside).unwrap();
    let edited = overwritten(&big, 22);
    let m = members(&[&a, &b]);
    published_by_a(&mut a, &mut b, &m, "big.bin", &edited);
    b.round(&m, &[&a]);
    assert_big_holds(&b, &edited);
    assert!(std::fs::read(&outside).unwrap() == big);
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn a_previous_version_not_kept_yet_is_kept_before_the_file_is_deleted() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let (big, _) = large_file_in_sync(&mut a, &mut b);
    a.write("other.txt", b"keeps the folder from looking unmounted");
    let edited = overwritten(&big, 23);
    let m = members(&[&a, &b]);
    published_by_a(&mut a, &mut b, &m, "big.bin", &edited);
    super::apply::patch_hook::KILL_BEFORE_KEEP.with(|k| k.set(true));
    assert_killed(b.try_round(&m, &[&a], None));
    std::fs::remove_file(a.path("big.bin")).unwrap();
    converge(&mut a, &mut b);
    assert!(!b.path("big.bin").exists());
    let kept: Vec<Vec<u8>> = kept_versions(&b, "big.bin")
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert!(kept == [big, edited], "both versions kept, oldest first");
    super::apply::patch_hook::IN_PLACE.with(|f| f.set(None));
}

#[test]
fn concurrent_edits_keep_both_versions_and_both_devices_agree() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"base");
    converge(&mut a, &mut b);
    // Both edit before they hear of each other, and both publish.
    a.write("f.txt", b"from a");
    b.write("f.txt", b"from b, longer");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    let conflicts: Vec<_> = tree.keys().filter(|k| k.contains(".conflict-")).collect();
    assert_eq!(conflicts.len(), 1, "{tree:?}");
    let mut contents: Vec<&[u8]> = vec![&tree["f.txt"], &tree[conflicts[0]]];
    contents.sort();
    assert_eq!(contents, vec![&b"from a"[..], &b"from b, longer"[..]]);
}

#[test]
fn an_edit_beats_a_concurrent_delete() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("keep.txt", b"v1");
    // (A folder emptied completely reads as an unmounted disk: keep something else in it.)
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    std::fs::remove_file(a.path("keep.txt")).unwrap();
    b.write("keep.txt", b"v2 edited");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    assert_eq!(std::fs::read(a.path("keep.txt")).unwrap(), b"v2 edited");
    assert_eq!(a.tree(), b.tree());
}

/// A and B agree on `keep.txt`; A deletes it and B changes only its mode, concurrently.
fn a_deletes_while_b_changes_the_mode() -> (Device, Device, HashSet<DeviceId>) {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("keep.txt", b"v1");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    std::fs::remove_file(a.path("keep.txt")).unwrap();
    std::fs::set_permissions(
        b.path("keep.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let m = members(&[&a, &b]);
    (a, b, m)
}

/// A delete won over a mode change: gone everywhere, B's file kept in B's versions store.
fn the_delete_won(a: &Device, b: &Device) {
    assert_eq!(a.tree(), b.tree());
    assert!(!a.tree().contains_key("keep.txt"), "{:?}", a.tree());
    assert!(kept_contents(b).contains(b"v1".as_slice()));
}

#[test]
fn a_delete_beats_a_mode_change_made_after_it_was_seen() {
    // Found by the random sequences: B saw A's delete before publishing its mode change. A
    // mode change makes no chain link (links are for content and paths), so B published the
    // version that A's delete had followed: with a third device holding a new file at that
    // path, nobody ever moved, and the folder never settled.
    let (mut a, mut b, m) = a_deletes_while_b_changes_the_mode();
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut b, &mut a);
    the_delete_won(&a, &b);
}

#[test]
fn a_delete_beats_a_concurrent_mode_change() {
    // The same, with both published before either saw the other's: the document keeps the
    // delete, which descends from the version the mode change was made on.
    let (mut a, mut b, m) = a_deletes_while_b_changes_the_mode();
    a.round(&m, &[]);
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    the_delete_won(&a, &b);
}

/// Rounds on every device until all are quiet; then their trees must match.
fn converge_all(ds: &mut [Device]) {
    let m: HashSet<DeviceId> = ds
        .iter()
        .map(|d| DeviceId::of_signing_key(&d.key))
        .collect();
    converge_among(ds, &m);
}

/// [`converge_all`] for devices of a folder whose members `m` may include absent ones.
fn converge_among(ds: &mut [Device], m: &HashSet<DeviceId>) {
    for _ in 0..12 {
        exchange_all(ds);
        let mut changed = false;
        for k in 0..ds.len() {
            let (before, rest) = ds.split_at_mut(k);
            let (me, after) = rest.split_first_mut().unwrap();
            let others: Vec<&Device> = before.iter().chain(after.iter()).collect();
            let r = me.round(m, &others);
            changed |= r.changed() || !r.deferred.is_empty();
        }
        if !changed {
            let trees: Vec<_> = ds.iter().map(Device::tree).collect();
            assert!(trees.iter().all(|t| *t == trees[0]), "{trees:?}");
            return;
        }
    }
    panic!(
        "no convergence: {:?}",
        ds.iter().map(Device::tree).collect::<Vec<_>>()
    );
}

/// Devices 0 and 1 each make a different `p.txt`; the third device gets only the one that
/// loses the path (the larger id), from its author. Returns the devices, the members, and the
/// indexes of the loser's author and of the keeper's.
fn a_third_device_got_the_file_that_loses_p_txt() -> (Vec<Device>, HashSet<DeviceId>, usize, usize)
{
    let mut ds: Vec<Device> = (1..=3).map(Device::new).collect();
    ds[0].write("other.txt", b"o");
    converge_all(&mut ds);
    ds[0].write("p.txt", b"made on 1");
    ds[1].write("p.txt", b"made on 2");
    ds[0].scan();
    ds[1].scan();
    let id = |d: &Device| file_id(d, "p.txt");
    let (author, keeper) = if id(&ds[0]) > id(&ds[1]) {
        (0, 1)
    } else {
        (1, 0)
    };
    let m = members(&ds.iter().collect::<Vec<_>>());
    ds[author].round(&m, &[]);
    {
        let (l, r) = ds.split_at_mut(2);
        exchange(&mut l[author], &mut r[0]);
        r[0].round(&m, &[&l[author]]);
    }
    (ds, m, author, keeper)
}

#[test]
fn the_author_of_a_file_that_lost_its_path_moves_it_even_when_another_device_touched_it() {
    // Found by the random sequences (3 devices): a device that only touched the losing file
    // (same bytes, new mtime) published it; the author, whose copy now differed from the
    // document in its mtime alone, waited to take the touch, which it could not install at
    // a path the loser does not keep, and never moved the file aside.
    let (mut ds, m, author, keeper) = a_third_device_got_the_file_that_loses_p_txt();
    // The third device touches it.
    let touched = std::fs::read(ds[2].path("p.txt")).unwrap();
    assert_eq!(touched, format!("made on {}", author + 1).into_bytes());
    std::thread::sleep(std::time::Duration::from_millis(20));
    ds[2].write("p.txt", &touched);
    ds[2].round(&m, &[]);
    ds[keeper].round(&m, &[]);
    converge_all(&mut ds);
    let tree = ds[0].tree();
    assert_eq!(
        tree["p.txt"],
        format!("made on {}", keeper + 1).into_bytes()
    );
    let copies: Vec<_> = tree.keys().filter(|k| k.contains(".conflict-")).collect();
    assert_eq!(copies.len(), 1, "{tree:?}");
    assert_eq!(tree[copies[0]], touched);
}

#[test]
fn a_file_that_lost_its_path_is_moved_aside_even_if_its_author_never_comes_back() {
    // The author made the losing file and went away for good after a third device took it.
    // The third device holds the loser at the contested path: if only the author may move
    // it, the path waits forever, the keeper never reaches the third device and the loser
    // never reaches the keeper's.
    let (mut ds, m, author, keeper) = a_third_device_got_the_file_that_loses_p_txt();
    let loser = format!("made on {}", author + 1).into_bytes();
    assert_eq!(std::fs::read(ds[2].path("p.txt")).unwrap(), loser);
    // The author leaves; the other two carry on (it stays a member).
    let gone = ds.remove(author);
    let mut rest = ds;
    converge_among(&mut rest, &m);
    let tree = rest[0].tree();
    let keeper_bytes = format!("made on {}", keeper + 1).into_bytes();
    assert_eq!(tree["p.txt"], keeper_bytes, "{tree:?}");
    let copies: Vec<_> = tree.keys().filter(|k| k.contains(".conflict-")).collect();
    assert_eq!(copies.len(), 1, "{tree:?}");
    assert_eq!(tree[copies[0]], loser);
    // The name says whose version it is: the author's, not the device that moved it.
    let named = super::apply::parse_conflict_name(copies[0]).unwrap();
    let author_id = DeviceId::of_signing_key(&gone.key).to_string();
    assert!(author_id.starts_with(&named.device), "{named:?}");
    // The author comes back and ends with the same tree, still one copy of its file.
    let mut all = rest;
    all.insert(author, gone);
    converge_all(&mut all);
    assert_eq!(all[author].tree(), tree);
}

#[test]
fn one_file_renamed_two_ways_at_once_ends_under_one_name_without_a_copy() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"renamed twice");
    converge(&mut a, &mut b);
    std::fs::rename(a.path("f.txt"), a.path("g.txt")).unwrap();
    std::fs::rename(b.path("f.txt"), b.path("h.txt")).unwrap();
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    b.round(&m, &[]);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree.len(), 1, "{tree:?}");
    let (name, bytes) = tree.iter().next().unwrap();
    assert!(name == "g.txt" || name == "h.txt", "{tree:?}");
    assert_eq!(bytes, b"renamed twice");
    assert_eq!(file_id(&a, name), file_id(&b, name));
}

/// `a` moves `f.txt` to `to` while `b` edits it, before they hear of each other; `b_first`:
/// `b`'s change is the older one (so `a`'s wins the ranking), else the other way round.
fn a_moves_while_b_edits(to: &str, b_first: bool) -> (Device, Device) {
    let (mut a, mut b, _) = a_moves_while_b_edits_unsynced(to, b_first);
    converge(&mut a, &mut b);
    (a, b)
}

/// [`a_moves_while_b_edits`] before they sync.
fn a_moves_while_b_edits_unsynced(to: &str, b_first: bool) -> (Device, Device, HashSet<DeviceId>) {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"the first text");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    let edit = |b: &mut Device| {
        b.write("f.txt", b"the first text, edited");
        b.round(&m, &[]);
    };
    let mv = |a: &mut Device| {
        std::fs::create_dir_all(a.path(to).parent().unwrap()).unwrap();
        std::fs::rename(a.path("f.txt"), a.path(to)).unwrap();
        a.round(&m, &[]);
    };
    if b_first {
        edit(&mut b);
        std::thread::sleep(std::time::Duration::from_millis(5));
        mv(&mut a);
    } else {
        mv(&mut a);
        std::thread::sleep(std::time::Duration::from_millis(5));
        edit(&mut b);
    }
    (a, b, m)
}

#[test]
fn a_merge_cut_short_right_after_its_move_is_still_one_merged_file() {
    // B's edit is the older change: B merges by moving its edited file to A's path, and is
    // killed right after that rename, before recording it. Its restarted scan signs the move
    // itself, so its local version is the merge already: it is published, not set aside.
    let (mut a, mut b, m) = a_moves_while_b_edits_unsynced("g.txt", true);
    exchange(&mut a, &mut b);
    super::apply::tests_hook::KILL_AFTER_KEEP.with(|k| k.set(true));
    let r = b.try_round(&m, &[&a], None);
    assert!(r.is_err_and(|e| e.to_string().contains("killed")));
    assert!(b.path("g.txt").exists() && !b.path("f.txt").exists());
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(
        tree,
        BTreeMap::from([("g.txt".to_owned(), b"the first text, edited".to_vec())])
    );
}

#[test]
fn a_move_and_a_concurrent_edit_merge_into_the_edited_file_at_the_new_path() {
    for b_first in [true, false] {
        let (a, b) = a_moves_while_b_edits("g.txt", b_first);
        let tree = a.tree();
        assert_eq!(tree, b.tree(), "b first: {b_first}");
        assert_eq!(
            tree,
            BTreeMap::from([("g.txt".to_owned(), b"the first text, edited".to_vec())]),
            "b first: {b_first}"
        );
        assert_eq!(file_id(&a, "g.txt"), file_id(&b, "g.txt"));
        // The chains hold both changes, and the version each replaced is in the store.
        let ids: HashSet<_> = a.doc.lock().unwrap().files().into_keys().collect();
        assert_eq!(ids.len(), 1);
    }
}

#[test]
fn a_move_and_an_edit_do_not_merge_through_a_path_another_file_holds() {
    // Found by the random sequences: A moved p.txt away and made a new file at p.txt; B
    // edited the moved file, later. A's merge would install B's version at p.txt first, where
    // A's new file is; A saw no collision (the merged file is at q.txt) and so never moved
    // its new file aside, while the others saw the new file lose p.txt: nobody moved.
    for _attempt in 0..20 {
        let mut a = Device::new(1);
        let mut b = Device::new(2);
        a.write("p.txt", b"first");
        converge(&mut a, &mut b);
        let m = members(&[&a, &b]);
        std::fs::rename(a.path("p.txt"), a.path("q.txt")).unwrap();
        a.scan();
        a.write("p.txt", b"a new file where the old one was");
        a.round(&m, &[]);
        if file_id(&a, "q.txt") > file_id(&a, "p.txt") {
            // The new file keeps p.txt wherever the moved one is: not this case.
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        b.write("p.txt", b"first, edited on b");
        b.round(&m, &[]);
        converge(&mut a, &mut b);
        let tree = a.tree();
        assert_eq!(tree, b.tree());
        let contents: HashSet<&[u8]> = tree.values().map(Vec::as_slice).collect();
        assert!(
            contents.contains(&b"a new file where the old one was"[..])
                && contents.contains(&b"first, edited on b"[..]),
            "{tree:?}"
        );
        return;
    }
    panic!("the moved file never had the smaller id in 20 attempts");
}

#[test]
fn a_directory_move_and_an_edit_inside_it_merge() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("d/x.txt", b"x");
    a.write("d/y.txt", b"y");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    std::fs::rename(a.path("d"), a.path("e")).unwrap();
    a.round(&m, &[]);
    b.write("d/x.txt", b"x, edited");
    b.round(&m, &[]);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    let files: BTreeMap<_, _> = tree
        .into_iter()
        .filter(|(k, _)| !k.ends_with('/'))
        .collect();
    // Either the move or the edit came second; both survive either way, in one file each.
    let moved = BTreeMap::from([
        ("e/x.txt".to_owned(), b"x, edited".to_vec()),
        ("e/y.txt".to_owned(), b"y".to_vec()),
    ]);
    assert_eq!(files, moved);
}

#[test]
fn two_new_files_on_one_path_both_survive() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("same.txt", b"made on a");
    b.write("same.txt", b"made on b");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    let mut contents: Vec<&Vec<u8>> = tree.values().filter(|v| !v.is_empty()).collect();
    contents.sort();
    assert_eq!(
        contents,
        vec![&b"made on a".to_vec(), &b"made on b".to_vec()]
    );
}

/// One round on `b` whose first file install is cut short right after its rename, as by a
/// kill -9 there: the version is on disk, the index still says the previous one.
fn killed_after_rename(b: &mut Device, m: &HashSet<DeviceId>, a: &Device) {
    killed_at_rename(b, m, a, 1);
}

/// One round on `b` "killed" right after the rename of its `n`th file install.
fn killed_at_rename(b: &mut Device, m: &HashSet<DeviceId>, a: &Device, n: usize) {
    super::apply::tests_hook::KILL_AT_RENAME.with(|k| k.set(n));
    let r = b.try_round(m, &[a], None);
    assert!(
        r.as_ref().is_err_and(|e| e.to_string().contains("killed")),
        "{r:?}"
    );
}

/// A and B in sync on `f.txt`; A writes `v2`, and B's install of it is killed after the
/// rename.
fn b_killed_installing_v2() -> (Device, Device, HashSet<DeviceId>) {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"v1");
    // (A folder emptied completely reads as an unmounted disk: keep something else in it.)
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    a.write("f.txt", b"v2 from a");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    killed_after_rename(&mut b, &m, &a);
    assert_eq!(std::fs::read(b.path("f.txt")).unwrap(), b"v2 from a");
    (a, b, m)
}

fn no_conflict_copies(tree: &BTreeMap<String, Vec<u8>>) {
    assert!(
        !tree.keys().any(|k| k.contains(".conflict-")),
        "a conflict copy: {tree:?}"
    );
}

#[test]
fn a_version_published_in_a_round_cut_short_then_edited_again_is_not_its_own_rival() {
    // Found by the random sequences with kills: the base of a published record is recorded
    // at the round's end, so a kill in between leaves the record in the document and the
    // older base in the index. Edited again, the file looked changed on both sides.
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("x.txt", b"v1");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    // Something for A to install, so that A's next round has a rename to be killed at.
    b.write("from-b.txt", b"made on b");
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    a.write("x.txt", b"v2 from a");
    killed_at_rename(&mut a, &m, &b, 1);
    assert!(
        a.doc
            .lock()
            .unwrap()
            .files()
            .values()
            .flatten()
            .any(|r| r.path == "x.txt" && r.size == 9),
        "the killed round published v2 first"
    );
    exchange(&mut a, &mut b);
    // Edited again before anyone fetched v2: v2's bytes are now on no disk.
    a.write("x.txt", b"v3 from a, after the restart");
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    no_conflict_copies(&tree);
    assert_eq!(tree["x.txt"], b"v3 from a, after the restart");
    assert_eq!(tree["from-b.txt"], b"made on b");
}

#[test]
fn a_version_installed_but_unrecorded_at_a_kill_is_not_taken_for_an_edit() {
    let (mut a, mut b, m) = b_killed_installing_v2();
    // A writes again before B comes back; B's restarted scan finds v2 where its index says v1.
    a.write("f.txt", b"v3 from a, longer");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["f.txt"], b"v3 from a, longer");
    no_conflict_copies(&tree);
    // v2 was kept when v3 replaced it on B.
    assert!(kept_contents(&b).contains(b"v2 from a".as_slice()));
    // B's chain is A's: the "edit" its scan signed is gone.
    let chain = |d: &Device| {
        d.index
            .chain_links(&d.folder.id, &file_id(d, "f.txt"))
            .unwrap()
    };
    assert_eq!(chain(&a), chain(&b));
}

#[test]
fn a_version_installed_but_unrecorded_at_a_kill_does_not_undo_a_later_delete() {
    let (mut a, mut b, m) = b_killed_installing_v2();
    std::fs::remove_file(a.path("f.txt")).unwrap();
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert!(
        !tree.contains_key("f.txt"),
        "the delete was undone: {tree:?}"
    );
    no_conflict_copies(&tree);
    assert!(kept_contents(&b).contains(b"v2 from a".as_slice()));
}

/// A new file `n.txt` on A; B's install of it is killed after the rename (B's restarted scan
/// will find it with no row: a new file, to the scan); then A edits it.
fn b_killed_installing_new_file_then_a_edits() -> (Device, Device, HashSet<DeviceId>) {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    a.write("n.txt", b"new on a");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    killed_after_rename(&mut b, &m, &a);
    assert_eq!(std::fs::read(b.path("n.txt")).unwrap(), b"new on a");
    a.write("n.txt", b"new on a, then edited");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    (a, b, m)
}

/// The id of the file at `path` on `d`.
fn file_id(d: &Device, path: &str) -> harp_protocol::ids::FileId {
    d.index.file(&d.folder.id, path).unwrap().unwrap().file_id
}

#[test]
fn a_new_file_installed_but_unrecorded_at_a_kill_keeps_its_id_and_path() {
    let (mut a, mut b, _) = b_killed_installing_new_file_then_a_edits();
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["n.txt"], b"new on a, then edited");
    no_conflict_copies(&tree);
    let id = |d: &Device| file_id(d, "n.txt");
    assert_eq!(id(&a), id(&b));
    // Only A's chain: the id B's scan made up never reached the document.
    assert_eq!(a.doc.lock().unwrap().files().len(), 2);
}

#[test]
fn an_edit_of_a_taken_back_file_before_its_install_is_a_conflict_on_a_valid_chain() {
    let (mut a, mut b, m) = b_killed_installing_new_file_then_a_edits();
    // B comes back with A out of reach: it takes n.txt back as A's first version, but cannot
    // fetch the second.
    let r = b.round(&m, &[]);
    assert!(!r.deferred.is_empty(), "{r:?}");
    let id = |d: &Device| file_id(d, "n.txt");
    assert_eq!(id(&a), id(&b));
    // Its user edits it meanwhile: a real conflict, settled on chains A accepts.
    b.write("n.txt", b"edited on b");
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    let mut contents: Vec<&[u8]> = tree
        .iter()
        .filter(|(k, _)| k.starts_with("n."))
        .map(|(_, v)| v.as_slice())
        .collect();
    contents.sort();
    assert_eq!(
        contents,
        vec![&b"edited on b"[..], &b"new on a, then edited"[..]],
        "{tree:?}"
    );
    for d in [&a, &b] {
        for row in d.index.files(&d.folder.id).unwrap().values() {
            let links = d.index.chain(&d.folder.id, &row.file_id).unwrap();
            assert_eq!(links.len() as u64, row.seq, "{}", row.path);
        }
    }
}

#[test]
fn a_file_made_at_the_path_of_a_peer_file_deleted_before_is_new_not_taken_back() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    a.write("x.txt", b"old x");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    std::fs::remove_file(a.path("x.txt")).unwrap();
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    // B, new to the folder, records x.txt's delete: it has no row for it.
    b.round(&m, &[&a]);
    assert!(!b.path("x.txt").exists());
    // Its user puts a copy of the old x.txt back: a new file, which must reach A and stay.
    b.write("x.txt", b"old x");
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(
        tree.get("x.txt").map(Vec::as_slice),
        Some(&b"old x"[..]),
        "{tree:?}"
    );
}

#[test]
fn a_move_applied_but_unrecorded_at_a_kill_is_not_taken_for_a_move_made_here() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"moved on a");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    std::fs::rename(a.path("f.txt"), a.path("g.txt")).unwrap();
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    killed_after_rename(&mut b, &m, &a);
    assert!(b.path("g.txt").exists() && !b.path("f.txt").exists());
    // A edits the file at its new path before B comes back.
    a.write("g.txt", b"moved on a, then edited");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["g.txt"], b"moved on a, then edited");
    assert!(!tree.contains_key("f.txt"), "{tree:?}");
    no_conflict_copies(&tree);
    assert_eq!(file_id(&a, "g.txt"), file_id(&b, "g.txt"));
}

#[test]
fn a_directory_made_but_unrecorded_at_a_kill_is_not_taken_for_one_made_here() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    a.write("d/x.txt", b"in d");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    // The directory is created first; the kill comes right after.
    killed_after_rename(&mut b, &m, &a);
    assert!(b.path("d").is_dir() && !b.path("d/x.txt").exists());
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["d/x.txt"], b"in d");
    no_conflict_copies(&tree);
    assert_eq!(file_id(&a, "d"), file_id(&b, "d"));
    assert_eq!(a.doc.lock().unwrap().files().len(), 3);
}

/// A and B in sync on `f.txt`; A moves it to `g.txt` and edits it, and B has the document
/// (nothing installed yet).
fn a_moved_and_edited_f_to_g() -> (Device, Device, HashSet<DeviceId>) {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"before the move");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    std::fs::rename(a.path("f.txt"), a.path("g.txt")).unwrap();
    a.write("g.txt", b"moved and edited on a");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    (a, b, m)
}

#[test]
fn a_move_with_an_edit_applied_but_unrecorded_at_a_kill_leaves_one_file() {
    let (mut a, mut b, m) = a_moved_and_edited_f_to_g();
    // Killed after the new version's rename, before the old path's file went to the versions
    // store: B has both.
    killed_after_rename(&mut b, &m, &a);
    assert!(b.path("g.txt").exists() && b.path("f.txt").exists());
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["g.txt"], b"moved and edited on a");
    assert!(!tree.contains_key("f.txt"), "{tree:?}");
    no_conflict_copies(&tree);
    assert!(kept_contents(&b).contains(b"before the move".as_slice()));
    assert_eq!(file_id(&a, "g.txt"), file_id(&b, "g.txt"));
    // The id B's scan gave the new version never reached the document.
    assert_eq!(a.doc.lock().unwrap().files().len(), 2);
}

#[test]
fn one_new_file_made_on_two_devices_with_the_same_content_ends_as_one_file() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    a.write("p.txt", b"the same on both");
    b.write("p.txt", b"the same on both");
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["p.txt"], b"the same on both");
    no_conflict_copies(&tree);
    assert_eq!(file_id(&a, "p.txt"), file_id(&b, "p.txt"));
}

#[test]
fn a_file_given_up_to_an_equal_one_in_a_round_cut_short_is_still_given_up() {
    // Found by the random sequences: B published its new file in a round killed before its
    // base was recorded; in a later round it gave the file's id up to A's equal file at that
    // path (a delete link, its row taken over) and was killed again before the document with
    // the delete was saved. B then held no row, no base and a chain ending in that delete,
    // while the document still said the file was live: every device waited for good to fetch
    // a version no disk held any more.
    for _attempt in 0..20 {
        let mut a = Device::new(1);
        let mut b = Device::new(2);
        let doc_path = b._dir.path().join("doc.automerge");
        b.doc = Mutex::new(FolderDoc::open(&doc_path).unwrap());
        let m = members(&[&a, &b]);
        a.write("q.txt", b"q");
        a.round(&m, &[]);
        exchange(&mut a, &mut b);
        // B publishes p.txt, then its install of q.txt is killed after the rename: the round
        // never records p.txt's base.
        b.write("p.txt", b"made on both");
        super::apply::tests_hook::KILL_AT_RENAME.with(|k| k.set(1));
        let r = b.try_round(&m, &[&a], None);
        assert!(r.is_err_and(|e| e.to_string().contains("killed")));
        a.write("p.txt", b"made on both");
        a.round(&m, &[]);
        if file_id(&b, "p.txt") < file_id(&a, "p.txt") {
            // B's file keeps the path: A gives its own up, which is not this case.
            continue;
        }
        exchange(&mut a, &mut b);
        // B gives its id up to A's file and is killed before saving the document.
        super::apply::tests_hook::KILL_AFTER_KEEP.with(|k| k.set(true));
        let r = b.try_round(&m, &[&a], None);
        assert!(r.is_err_and(|e| e.to_string().contains("killed")));
        b.doc = Mutex::new(FolderDoc::open(&doc_path).unwrap());
        converge(&mut a, &mut b);
        // Once A moves its file away, nothing may come back at p.txt: B's file is gone for
        // good (its id was given up), not a live file waiting for a free path.
        std::fs::rename(a.path("p.txt"), a.path("r.txt")).unwrap();
        converge(&mut a, &mut b);
        let tree = a.tree();
        assert_eq!(tree, b.tree());
        assert_eq!(
            tree,
            BTreeMap::from([
                ("q.txt".to_owned(), b"q".to_vec()),
                ("r.txt".to_owned(), b"made on both".to_vec())
            ])
        );
        return;
    }
    panic!("B's file never lost the path in 20 attempts");
}

#[test]
fn a_directory_deleted_on_one_device_while_the_other_adds_a_file_in_it_keeps_the_file() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    a.write("d/old.txt", b"old");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    std::fs::remove_dir_all(a.path("d")).unwrap();
    a.round(&m, &[]);
    b.write("d/new.txt", b"made on b meanwhile");
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["d/new.txt"], b"made on b meanwhile");
    assert!(!tree.contains_key("d/old.txt"), "{tree:?}");
    assert!(kept_contents(&b).contains(b"old".as_slice()));
}

#[test]
fn a_received_version_stays_recognised_until_its_successor_is_installed() {
    let (mut a, mut b, m) = b_killed_installing_v2();
    a.write("f.txt", b"v3 from a, longer");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    // B comes back with A out of reach: its scan signs v2 as an edit of its own, at v2's seq;
    // v3 cannot be fetched. The journal entry must outlive this round.
    let r = b.round(&m, &[]);
    assert!(!r.deferred.is_empty(), "{r:?}");
    // Then A deletes the file: the delete holds, and no copy of v2 appears.
    std::fs::remove_file(a.path("f.txt")).unwrap();
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert!(
        !tree.contains_key("f.txt"),
        "the delete was undone: {tree:?}"
    );
    no_conflict_copies(&tree);
    assert!(kept_contents(&b).contains(b"v2 from a".as_slice()));
}

#[test]
fn a_move_with_an_edit_cut_short_then_edited_again_makes_no_conflict_copy() {
    let (mut a, mut b, m) = a_moved_and_edited_f_to_g();
    killed_after_rename(&mut b, &m, &a);
    a.write("g.txt", b"moved, edited, and edited again on a");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["g.txt"], b"moved, edited, and edited again on a");
    assert!(!tree.contains_key("f.txt"), "{tree:?}");
    no_conflict_copies(&tree);
}

#[test]
fn a_move_with_an_edit_killed_after_the_old_file_was_kept_leaves_one_file() {
    let (mut a, mut b, m) = a_moved_and_edited_f_to_g();
    // Killed after the old path's file went to the versions store, before the record: B's
    // restarted scan sees f.txt deleted and g.txt new.
    super::apply::tests_hook::KILL_AFTER_KEEP.with(|k| k.set(true));
    let r = b.try_round(&m, &[&a], None);
    assert!(r.is_err_and(|e| e.to_string().contains("killed")));
    assert!(b.path("g.txt").exists() && !b.path("f.txt").exists());
    a.write("g.txt", b"moved, edited, and edited again on a");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["g.txt"], b"moved, edited, and edited again on a");
    assert!(!tree.contains_key("f.txt"), "{tree:?}");
    no_conflict_copies(&tree);
    assert_eq!(file_id(&a, "g.txt"), file_id(&b, "g.txt"));
    // Neither a delete of the file nor a made-up id reached the document.
    assert_eq!(a.doc.lock().unwrap().files().len(), 2);
}

#[test]
fn a_file_moved_onto_a_path_where_the_other_device_made_a_new_file_keeps_both() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"moved by a");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    std::fs::rename(a.path("f.txt"), a.path("g.txt")).unwrap();
    a.round(&m, &[]);
    b.write("g.txt", b"new on b");
    b.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    let mut contents: Vec<&[u8]> = tree.values().map(Vec::as_slice).collect();
    contents.sort();
    assert_eq!(
        contents,
        vec![&b"moved by a"[..], &b"new on b"[..], &b"o"[..]],
        "{tree:?}"
    );
}

#[test]
fn a_file_and_a_directory_made_at_one_path_on_two_devices_keep_everything() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    a.write("d", b"d is a file on a");
    b.write("d/x.txt", b"in the directory d on b");
    b.write("d/y.txt", b"also in it");
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    let mut contents: Vec<&[u8]> = tree
        .iter()
        .filter(|(k, _)| !k.ends_with('/'))
        .map(|(_, v)| v.as_slice())
        .collect();
    contents.sort();
    assert_eq!(
        contents,
        vec![
            &b"also in it"[..],
            &b"d is a file on a"[..],
            &b"in the directory d on b"[..],
            &b"o"[..]
        ],
        "{tree:?}"
    );
}

#[test]
fn directories_of_one_name_made_on_two_devices_merge_their_files() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    a.write("photos/2026/a.jpg", b"from a");
    a.write("photos/same.jpg", b"on both");
    b.write("photos/2026/b.jpg", b"from b");
    b.write("photos/same.jpg", b"on both");
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    no_conflict_copies(&tree);
    let files: Vec<&str> = tree
        .keys()
        .filter(|k| !k.ends_with('/'))
        .map(String::as_str)
        .collect();
    assert_eq!(
        files,
        vec![
            "other.txt",
            "photos/2026/a.jpg",
            "photos/2026/b.jpg",
            "photos/same.jpg"
        ]
    );
    for p in ["photos", "photos/2026", "photos/same.jpg"] {
        assert_eq!(file_id(&a, p), file_id(&b, p), "{p}");
    }
}

#[test]
fn an_editor_that_saves_by_renaming_a_new_file_over_the_old_one_makes_an_edit() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"v1");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let id = file_id(&a, "f.txt");
    // Save as many editors do: write a temp file beside it, rename it over the original.
    a.write(".f.txt.swp", b"v2, saved by rename");
    std::fs::rename(a.path(".f.txt.swp"), a.path("f.txt")).unwrap();
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["f.txt"], b"v2, saved by rename");
    no_conflict_copies(&tree);
    assert_eq!(tree.len(), 2, "{tree:?}");
    assert_eq!(file_id(&a, "f.txt"), id);
    assert_eq!(file_id(&b, "f.txt"), id);
    assert!(kept_contents(&b).contains(b"v1".as_slice()));
}

#[test]
fn a_temp_file_scanned_before_it_was_renamed_over_the_original_leaves_one_file() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"v1");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    a.write(".f.txt.swp", b"v2, saved by rename");
    // A scan (and a round) sees the temp file before the editor renames it.
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    std::fs::rename(a.path(".f.txt.swp"), a.path("f.txt")).unwrap();
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["f.txt"], b"v2, saved by rename");
    no_conflict_copies(&tree);
    assert_eq!(tree.len(), 2, "{tree:?}");
    assert!(kept_contents(&b).contains(b"v1".as_slice()));
}

#[test]
fn a_user_s_edit_equal_to_a_version_a_peer_passed_through_is_an_edit_not_an_install() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("f.txt", b"v1");
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    let v2 = b"v2, which b's user also writes";
    a.write("f.txt", v2);
    a.round(&m, &[]);
    a.write("f.txt", b"v3 from a");
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    // B's user writes v2's bytes on their own, before B installs anything: B never installed
    // v2 (its install journal says so), so this is B's edit, concurrent with A's v3.
    b.write("f.txt", v2);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["f.txt"], b"v3 from a");
    assert!(
        tree.iter()
            .any(|(k, v)| k.contains(".conflict-") && v.as_slice() == v2),
        "B's edit is not beside A's: {tree:?}"
    );
}

#[test]
fn a_batch_of_new_files_lost_to_a_kill_is_recovered_without_copies_or_new_ids() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("other.txt", b"o");
    converge(&mut a, &mut b);
    let m = members(&[&a, &b]);
    let name = |i: usize| format!("d{}/s{i}.txt", i % 7);
    for i in 0..600 {
        a.write(&name(i), format!("small file {i}").as_bytes());
    }
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    // Killed in its second batch of installs: the first batch is recorded, the rest of the
    // files B renamed into place are not.
    killed_at_rename(&mut b, &m, &a, 300);
    let after_kill = b.tree();
    let on_disk = after_kill.keys().filter(|k| k.ends_with(".txt")).count();
    let recorded = b
        .index
        .files(&b.folder.id)
        .unwrap()
        .values()
        .filter(|r| r.kind == harp_protocol::manifest::EntryKind::File)
        .count();
    assert!(
        on_disk > recorded,
        "{on_disk} files on disk, {recorded} recorded"
    );
    // A changes some of them, deletes others, before B comes back.
    for i in (0..600).step_by(10) {
        a.write(&name(i), format!("small file {i}, edited").as_bytes());
    }
    for i in (5..600).step_by(10) {
        std::fs::remove_file(a.path(&name(i))).unwrap();
    }
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    no_conflict_copies(&tree);
    for i in (0..600).step_by(10) {
        assert_eq!(tree[&name(i)], format!("small file {i}, edited").as_bytes());
    }
    // A's deletes hold on B too, also of files whose install the kill cut short: the install
    // journal says B put them there, so they are A's files, not new files of B's.
    for i in (5..600).step_by(10) {
        assert!(!tree.contains_key(&name(i)), "{} came back", name(i));
    }
    assert_eq!(
        tree.keys().filter(|k| k.ends_with(".txt")).count(),
        1 + 600 - 60
    );
    // Those B had on disk are in its versions store.
    let kept = kept_contents(&b);
    for i in (5..600).step_by(10) {
        if let Some(bytes) = after_kill.get(&name(i)) {
            assert!(kept.contains(bytes), "{} was not kept", name(i));
        }
    }
    // One id per file on both devices, and no id B made up reached the document.
    let ids = |d: &Device| {
        d.index
            .files(&d.folder.id)
            .unwrap()
            .into_values()
            .filter(|r| !r.deleted)
            .map(|r| (r.path, r.file_id))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(ids(&a), ids(&b));
    // other.txt, the 600 files (60 of them deleted) and their 7 directories.
    assert_eq!(a.doc.lock().unwrap().files().len(), 1 + 600 + 7);
    // Every install is recorded now: the journal is empty.
    assert_eq!(
        super::journal::InstallJournal::open(&b.folder)
            .unwrap()
            .earlier(),
        &[]
    );
    assert_eq!(b.index.integrity_check().unwrap(), "ok");
}

#[test]
fn a_stranger_s_changes_are_refused() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("x.txt", b"from a stranger");
    let only_b: HashSet<DeviceId> = members(&[&b]);
    a.round(&members(&[&a]), &[]);
    exchange(&mut a, &mut b);
    b.scan();
    let ctx = Context {
        folder: &b.folder,
        device: &b.key,
        members: &only_b,
        fetcher: &super::apply::NoPeers,
        authority: None,
        direction: Default::default(),
        force: None,
        progress: None,
    };
    let r = sync_once(&mut b.index, &b.doc, &ctx).unwrap();
    assert_eq!(r.installed, 0);
    assert!(
        r.deferred
            .iter()
            .any(|(_, why)| why.contains("not a member")),
        "{r:?}"
    );
    assert!(!b.path("x.txt").exists());
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Every file under `root/.harp/versions` (what the versions store kept), by content.
fn kept_contents(d: &Device) -> HashSet<Vec<u8>> {
    let mut out = BTreeMap::new();
    let versions = d.folder.root.join(".harp/versions");
    if versions.exists() {
        walk(&versions, &versions, &mut out);
    }
    out.into_values().collect()
}

/// One random change on `d`; returns the content it wrote, if any.
fn random_op(d: &Device, rng: &mut Rng, step: usize) -> Option<Vec<u8>> {
    // (The return value documents the op; the test tracks synced versions instead.)
    let files: Vec<String> = d
        .tree()
        .into_iter()
        .filter(|(k, _)| !k.ends_with('/') && !k.contains(".conflict-"))
        .map(|(k, _)| k)
        .collect();
    let dirs = ["", "a/", "a/b/", "c/"];
    let pick = |rng: &mut Rng| files[rng.below(files.len() as u64) as usize].clone();
    let content = |rng: &mut Rng| {
        let len = [0, 1, 100, 5000, 70_000, 300_000][rng.below(6) as usize];
        let mut v = crate::testutil::random(format!("{step}-{}", rng.next()).as_bytes(), len);
        v.truncate(len);
        v
    };
    let op = if files.is_empty() { 0 } else { rng.below(10) };
    match op {
        0 => {
            let name = format!("{}f{step}.bin", dirs[rng.below(4) as usize]);
            let v = content(rng);
            d.write(&name, &v);
            Some(v)
        }
        8 => {
            // A name other devices may use too: made on two devices before they sync, it is
            // two files wanting one path (written here, where it exists, it is an edit).
            let name = format!("{}shared{}.txt", dirs[rng.below(2) as usize], rng.below(3));
            let v = content(rng);
            d.write(&name, &v);
            Some(v)
        }
        1 | 2 => {
            let f = pick(rng);
            let v = content(rng);
            d.write(&f, &v);
            Some(v)
        }
        3 => {
            // Insert in the middle.
            let f = pick(rng);
            let mut v = std::fs::read(d.path(&f)).ok()?;
            let at = rng.below(v.len() as u64 + 1) as usize;
            v.splice(at..at, *b"inserted bytes");
            d.write(&f, &v);
            Some(v)
        }
        4 => {
            let f = pick(rng);
            let mut v = std::fs::read(d.path(&f)).ok()?;
            v.truncate(v.len() / 2);
            d.write(&f, &v);
            Some(v)
        }
        5 => {
            let f = pick(rng);
            let to = format!("{}r{step}.bin", dirs[rng.below(4) as usize]);
            let t = d.path(&to);
            std::fs::create_dir_all(t.parent().unwrap()).unwrap();
            std::fs::rename(d.path(&f), t).ok();
            None
        }
        6 => {
            // Keep at least one file: an emptied folder reads as an unmounted disk.
            if files.len() > 1 {
                std::fs::remove_file(d.path(&pick(rng))).ok();
            }
            None
        }
        7 => {
            let f = pick(rng);
            let mode = [0o600, 0o644, 0o755][rng.below(3) as usize];
            std::fs::set_permissions(
                d.path(&f),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .ok();
            None
        }
        _ => {
            // Move a directory with what is in it.
            let from = d.path("a/b");
            if from.exists() {
                let to = d.path(&format!("c/moved{step}"));
                std::fs::create_dir_all(d.path("c")).unwrap();
                std::fs::rename(from, to).ok();
            }
            None
        }
    }
}

fn exchange_all(ds: &mut [Device]) {
    for i in 0..ds.len() {
        for j in 0..ds.len() {
            if i != j {
                let (a, b) = if i < j {
                    let (l, r) = ds.split_at_mut(j);
                    (&mut l[i], &mut r[0])
                } else {
                    let (l, r) = ds.split_at_mut(i);
                    (&mut r[0], &mut l[j])
                };
                exchange(a, b);
            }
        }
    }
}

/// For a failed convergence: every file whose devices disagree, as each device and its
/// document have it, with the chain links behind each value.
fn dump_unsettled(ds: &[Device]) {
    let doc = ds[0].doc.lock().unwrap();
    let short = |h: &dyn std::fmt::Display| h.to_string()[..8].to_owned();
    for (id, values) in doc.files() {
        let rows: Vec<_> = ds
            .iter()
            .map(|d| d.index.file_by_id(&d.folder.id, &id).unwrap())
            .collect();
        let agreed = rows.iter().all(|r| {
            r.as_ref().map(|r| (r.chain_head, r.deleted))
                == rows[0].as_ref().map(|r| (r.chain_head, r.deleted))
        }) && values.len() == 1
            && (values[0].deleted || rows[0].as_ref().is_some_and(|r| !r.deleted));
        if agreed {
            continue;
        }
        eprintln!("file {id}:");
        for r in &values {
            let e = doc.entry(&r.chain_head).map(|(_, e)| e);
            eprintln!(
                "  doc: {:?} size {} content {} seq {} head {} deleted {} by {:?} at {:?}",
                r.path,
                r.size,
                short(&r.content_root),
                r.seq,
                short(&r.chain_head),
                r.deleted,
                e.as_ref().map(|e| short(&e.author)),
                e.as_ref().map(|e| e.timestamp_ms % 100_000)
            );
        }
        for (k, (d, row)) in ds.iter().zip(&rows).enumerate() {
            let links = d.index.chain_links(&d.folder.id, &id).unwrap();
            eprintln!(
                "  device {k} ({}): {:?}; chain {:?}",
                short(&DeviceId::of_signing_key(&d.key)),
                row.as_ref().map(|r| (
                    r.path.clone(),
                    r.size,
                    short(&r.content_root),
                    r.seq,
                    short(&r.chain_head),
                    r.deleted
                )),
                links
                    .iter()
                    .map(|(e, h)| (e.seq, e.op, short(&e.content_root), short(h)))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// `ordered`: a `server_authoritative` folder, the bridge's rules ordering every change.
fn random_sequences(n_devices: u8, seed: u64, steps: usize, ordered: bool) {
    random_sequences_with(n_devices, seed, steps, ordered, None)
}

/// [`random_sequences`], with the last device's folder `one_way` (`send_only` or
/// `receive_only`) throughout: at the end, once all are quiet, it overrides or reverts, and
/// then every tree must be the same.
fn random_sequences_with(
    n_devices: u8,
    seed: u64,
    steps: usize,
    ordered: bool,
    one_way: Option<super::plan::Direction>,
) {
    let mut ds: Vec<Device> = (1..=n_devices).map(Device::new).collect();
    if let (Some(d), Some(last)) = (one_way, ds.last_mut()) {
        last.direction = d;
    }
    let orderer = ordered.then(|| BridgeOrderer::for_devices(&ds.iter().collect::<Vec<_>>()));
    let authority = orderer.as_ref().map(|o| o as &dyn super::apply::Authority);
    let m: HashSet<DeviceId> = ds
        .iter()
        .map(|d| DeviceId::of_signing_key(&d.key))
        .collect();
    let mut rng = Rng(seed);
    // Kills draw from their own generator, so a seed's changes stay what they were without.
    let mut kills = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut killed = 0;
    // Documents on disk, so that a killed round can lose what it had not saved.
    let doc_path = |d: &Device| d._dir.path().join("doc.automerge");
    for d in ds.iter_mut() {
        d.doc = Mutex::new(FolderDoc::open(&doc_path(d)).unwrap());
    }
    ds[0].write("keep.txt", b"always here");
    ds[0].scan();
    let mut online = vec![true; ds.len()];
    for step in 0..steps {
        if rng.below(12) == 0 {
            // The same new file made on every device, online or not (a file copied into each
            // by hand): one file in the end, under one id.
            let name = format!("{}same{step}.bin", ["", "a/"][rng.below(2) as usize]);
            let v = crate::testutil::random(format!("same-{seed}-{step}").as_bytes(), 2000);
            for d in ds.iter_mut() {
                d.write(&name, &v);
                d.scan();
            }
        } else {
            let i = rng.below(ds.len() as u64) as usize;
            random_op(&ds[i], &mut rng, step);
            // Every write is scanned before the next change on that device (a version
            // overwritten before any scan saw it was never Harp's to keep).
            ds[i].scan();
        }
        if rng.below(5) == 0 {
            let k = rng.below(ds.len() as u64) as usize;
            online[k] = !online[k];
        }
        if rng.below(3) == 0 {
            // Online devices sync with each other; offline ones only work locally.
            for k in 0..ds.len() {
                if !online[k] {
                    continue;
                }
                let (before, rest) = ds.split_at_mut(k);
                let (me, after) = rest.split_first_mut().unwrap();
                let others: Vec<&Device> = before
                    .iter()
                    .chain(after.iter())
                    .enumerate()
                    .filter(|(p, _)| {
                        let idx = if *p < k { *p } else { *p + 1 };
                        online[idx]
                    })
                    .map(|(_, d)| d)
                    .collect();
                // A sync round never destroys content: whatever it replaced or deleted is
                // still in the tree (moved, or as a conflict copy) or in the versions store.
                let before: HashSet<Vec<u8>> = me.tree().into_values().collect();
                // Now and then the round is "killed" (kill -9) right after one of its
                // installs' renames, or right after a moved file's old version was kept: the
                // next round is the restarted daemon's.
                match kills.below(8) {
                    0 => tests_hook::KILL_AT_RENAME.with(|k| k.set(1 + kills.below(3) as usize)),
                    1 => tests_hook::KILL_AFTER_KEEP.with(|k| k.set(true)),
                    _ => {}
                }
                let r = me.try_round(&m, &others, authority);
                tests_hook::KILL_AT_RENAME.with(|k| k.set(0));
                tests_hook::KILL_AFTER_KEEP.with(|k| k.set(false));
                match r {
                    Ok(r) => assert!(
                        r.deferred
                            .iter()
                            .all(|(_, why)| !why.starts_with("refused")),
                        "seed {seed}, step {step}: {r:?}"
                    ),
                    Err(e) if e.to_string().contains("killed") => {
                        killed += 1;
                        // Half the time the kill also loses the document's changes since its
                        // last save (the other half, a peer had them already).
                        if kills.below(2) == 0 {
                            me.doc = Mutex::new(FolderDoc::open(&doc_path(me)).unwrap());
                        }
                    }
                    Err(e) => panic!("seed {seed}, step {step}, device {k}: {e}"),
                }
                let mut after: HashSet<Vec<u8>> = me.tree().into_values().collect();
                after.extend(kept_contents(me));
                for v in &before {
                    assert!(
                        after.contains(v),
                        "seed {seed}, step {step}, device {k}: a sync round lost {} bytes",
                        v.len()
                    );
                }
            }
            let live: Vec<usize> = (0..ds.len()).filter(|&k| online[k]).collect();
            for &x in &live {
                for &y in &live {
                    if x < y {
                        let (l, r) = ds.split_at_mut(y);
                        exchange(&mut l[x], &mut r[0]);
                    }
                }
            }
        }
    }
    if std::env::var_os("HARP_SYNC_SEEDS").is_some() {
        eprintln!("seed {seed}: {killed} rounds killed");
    }
    // Everyone comes back online: rounds until quiet (then the one-way device settles its
    // differences, and rounds until quiet again).
    let mut quiet = quiet_rounds(&mut ds, &m, authority, seed);
    if let Some(direction) = one_way.filter(|_| quiet) {
        if let Some(last) = ds.last_mut() {
            last.force = Some(match direction {
                super::plan::Direction::SendOnly => super::plan::Force::Override,
                _ => super::plan::Force::Revert,
            });
        }
        quiet = quiet_rounds(&mut ds, &m, authority, seed);
    }
    let trees: Vec<_> = ds.iter().map(Device::tree).collect();
    if !quiet {
        dump_unsettled(&ds);
        let doc = ds[0].doc.lock().unwrap();
        for (id, values) in doc.files() {
            for r in values {
                let mut head = r.chain_head;
                let mut n = 0;
                while let Some((prev, e)) = doc.entry(&head) {
                    head = prev;
                    n += 1;
                    let _ = e;
                }
                let genesis = harp_protocol::chain::genesis(
                    &ds[0].folder.id,
                    &id,
                    &ds[0].folder.keys.chain_seed,
                );
                if head != genesis {
                    eprintln!(
                        "{id} {:?} seq {} deleted {}: walk stopped after {n} at {head}",
                        r.path, r.seq, r.deleted
                    );
                    for (k, d) in ds.iter().enumerate() {
                        let links = d.index.chain_links(&d.folder.id, &id).unwrap();
                        eprintln!(
                            "  device {k}: {:?}",
                            links
                                .iter()
                                .map(|(e, h)| (e.seq, e.op, h.to_string()[..8].to_owned()))
                                .collect::<Vec<_>>()
                        );
                    }
                }
            }
        }
    }
    assert!(quiet, "seed {seed}: still changing after 12 rounds");
    for t in &trees[1..] {
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            trees[0].keys().collect::<Vec<_>>(),
            "seed {seed}"
        );
        assert!(*t == trees[0], "seed {seed}: contents differ");
    }
    for d in &ds {
        assert_eq!(d.index.integrity_check().unwrap(), "ok");
    }
}

/// All devices online: rounds (documents exchanged between them) until none changes
/// anything or waits (at most 12); whether they got there.
fn quiet_rounds(
    ds: &mut [Device],
    m: &HashSet<DeviceId>,
    authority: Option<&dyn super::apply::Authority>,
    seed: u64,
) -> bool {
    for _ in 0..12 {
        exchange_all(ds);
        let mut changed = false;
        for k in 0..ds.len() {
            let (before, rest) = ds.split_at_mut(k);
            let (me, after) = rest.split_first_mut().unwrap();
            let others: Vec<&Device> = before.iter().chain(after.iter()).collect();
            let r = me.round_with(m, &others, authority);
            if r.changed() || !r.deferred.is_empty() {
                eprintln!("seed {seed}, device {k}: {r:?}");
            }
            changed |= r.changed() || !r.deferred.is_empty();
        }
        exchange_all(ds);
        if !changed {
            return true;
        }
    }
    false
}

/// Seeds per test: 4 by default, more with `HARP_SYNC_SEEDS=N` (the longer run in
/// docs/benchmarks.md), from the `HARP_SYNC_SEED_FROM`-th on.
fn seeds(base: u64) -> Vec<u64> {
    // `HARP_SYNC_SEED=S` runs that one seed (to look into a failure).
    if let Some(seed) = std::env::var("HARP_SYNC_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![seed];
    }
    let n = std::env::var("HARP_SYNC_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4u64);
    // `HARP_SYNC_SEED_FROM=K` starts at the K-th seed, so a long run can go past the seeds
    // earlier runs covered.
    let from = std::env::var("HARP_SYNC_SEED_FROM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1u64);
    (from..from + n).map(|i| i * base).collect()
}

#[test]
fn random_sequences_on_two_devices_converge_and_lose_nothing() {
    for seed in seeds(7919) {
        random_sequences(2, seed, 60, false);
    }
}

#[test]
fn random_sequences_on_three_devices_converge_and_lose_nothing() {
    for seed in seeds(104_729) {
        random_sequences(3, seed, 60, false);
    }
}

#[test]
fn random_sequences_with_a_receive_only_device_revert_to_the_others_and_lose_nothing() {
    for seed in seeds(15_485_863) {
        random_sequences_with(
            3,
            seed,
            60,
            false,
            Some(super::plan::Direction::ReceiveOnly),
        );
    }
}

#[test]
fn random_sequences_with_a_send_only_device_override_the_others_and_lose_nothing() {
    for seed in seeds(32_452_843) {
        random_sequences_with(3, seed, 60, false, Some(super::plan::Direction::SendOnly));
    }
}

#[test]
fn random_sequences_with_one_way_devices_in_a_server_authoritative_folder_lose_nothing() {
    for (i, seed) in seeds(49_979_687).into_iter().enumerate() {
        let direction = [
            super::plan::Direction::SendOnly,
            super::plan::Direction::ReceiveOnly,
        ][i % 2];
        random_sequences_with(3, seed, 60, true, Some(direction));
    }
}

#[test]
fn random_sequences_in_a_server_authoritative_folder_converge_and_lose_nothing() {
    for seed in seeds(15_485_863) {
        random_sequences(3, seed, 60, true);
    }
}

#[test]
#[ignore = "measurement: cargo test --release -p harp --lib many_small -- --ignored --nocapture"]
fn many_small_files_timing() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    for i in 0..5000 {
        a.write(
            &format!("small/f{i:05}.bin"),
            &crate::testutil::random(format!("{i}").as_bytes(), 3000),
        );
    }
    let m = members(&[&a, &b]);
    let t = std::time::Instant::now();
    a.scan();
    eprintln!("scan A {:?}", t.elapsed());
    let t = std::time::Instant::now();
    a.round(&m, &[]);
    eprintln!("round A (publish) {:?}", t.elapsed());
    exchange(&mut a, &mut b);
    let t = std::time::Instant::now();
    {
        let doc = b.doc.lock().unwrap();
        let files = doc.files();
        eprintln!("doc.files {:?} ({} files)", t.elapsed(), files.len());
        let t = std::time::Instant::now();
        for values in files.values() {
            for r in values {
                let _ = doc.entry(&r.chain_head);
            }
        }
        eprintln!("doc.entry x{} {:?}", files.len(), t.elapsed());
    }
    let t = std::time::Instant::now();
    let r = b.round(&m, &[&a]);
    eprintln!(
        "round B (install) {:?}: {} installed",
        t.elapsed(),
        r.installed
    );
}

#[test]
fn every_recorded_base_is_in_the_saved_document() {
    // A crash right after a round must never leave a base that the saved document lacks: on
    // restart that would read as "the document went back" and revert the file.
    let mut a = Device::new(1);
    let path = a._dir.path().join("doc.automerge");
    a.doc = std::sync::Mutex::new(FolderDoc::open(&path).unwrap());
    a.write("x.txt", b"one");
    let m = members(&[&a]);
    a.round(&m, &[]);
    a.write("x.txt", b"two, later");
    a.round(&m, &[]);
    // "Crash": forget the in-memory document, read what was saved.
    let saved = FolderDoc::open(&path).unwrap();
    let bases = a.index.sync_bases(&a.folder.id).unwrap();
    assert!(!bases.is_empty());
    let files = saved.files();
    for (id, digest) in bases {
        let values = files.get(&id).expect("the saved document knows the file");
        assert!(
            values.iter().any(|r| r.digest() == digest),
            "base of {id} is not in the saved document"
        );
    }
}

#[test]
fn a_vanished_folder_is_never_written_into() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("x.txt", b"one");
    converge(&mut a, &mut b);
    // B's disk is "unmounted": its folder moves away; A changes things meanwhile.
    let root = b.folder.root.clone();
    let away = root.with_extension("away");
    std::fs::rename(&root, &away).unwrap();
    a.write("y.txt", b"new on A");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    let ctx = Context {
        folder: &b.folder,
        device: &b.key,
        members: &m,
        fetcher: &super::apply::NoPeers,
        authority: None,
        direction: Default::default(),
        force: None,
        progress: None,
    };
    let err = sync_once(&mut b.index, &b.doc, &ctx).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!root.exists(), "the round recreated the vanished folder");
    // Back in place, it catches up.
    std::fs::rename(&away, &root).unwrap();
    converge(&mut a, &mut b);
    assert_eq!(std::fs::read(b.path("y.txt")).unwrap(), b"new on A");
}

/// Delivers manifest nodes but claims chunks without ever handing them over (a fetcher bug
/// once did this): the install must not leave a file of zeros behind.
struct ClaimsChunks(Peers);

impl Fetcher for ClaimsChunks {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(harp_protocol::blob::CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        for id in ids {
            let (index, _) = &self.0.0[0];
            let node = index.lock().unwrap().manifest_node(&id).unwrap();
            if let Some(b) = node {
                sink(harp_protocol::blob::CheckedBlob::check(id, b).unwrap())?;
            }
        }
        Ok(Vec::new())
    }
}

#[test]
fn chunks_a_fetcher_claims_but_never_delivers_leave_no_file_behind() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("small.txt", b"stays intact");
    a.write("big.bin", &vec![7u8; 300_000]);
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    b.scan();
    let lying = ClaimsChunks(Peers::of(&[&a]));
    let ctx = Context {
        folder: &b.folder,
        device: &b.key,
        members: &m,
        fetcher: &lying,
        authority: None,
        direction: Default::default(),
        force: None,
        progress: None,
    };
    let r = sync_once(&mut b.index, &b.doc, &ctx).unwrap();
    assert_eq!(r.installed, 0, "{r:?}");
    assert_eq!(r.deferred.len(), 2, "{r:?}");
    assert!(
        r.deferred
            .iter()
            .all(|(_, why)| why.contains("bytes arrived")),
        "{r:?}"
    );
    assert!(!b.path("small.txt").exists() && !b.path("big.bin").exists());
    // With an honest peer the same round installs both, intact.
    converge(&mut a, &mut b);
    assert_eq!(std::fs::read(b.path("small.txt")).unwrap(), b"stays intact");
    assert_eq!(b.tree(), a.tree());
}

#[test]
fn hostile_names_and_symlinked_parents_never_lead_outside_the_folder() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.write("ok.txt", b"fine");
    converge(&mut a, &mut b);
    let outside = b._dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    // 1. A member (A, hostile or buggy) puts records whose paths climb out or are absolute.
    //    They do not decode: B ignores them, writes nothing, and keeps syncing.
    let row = a.index.file(&a.folder.id, "ok.txt").unwrap().unwrap();
    for (n, bad) in [
        "../escape.txt",
        "/etc/harp-escape",
        "a/../../escape.txt",
        ".harp/versions/x",
    ]
    .iter()
    .enumerate()
    {
        let mut r = super::apply::local_record(&row);
        r.path = (*bad).to_owned();
        let bytes = r.encode();
        let id = harp_protocol::ids::FileId::from_bytes([0xe0 + n as u8; 16]);
        // Written as raw bytes, as a hostile peer would: `Record::encode` does not validate.
        a.doc.get_mut().unwrap().put_raw_record(&id, bytes).unwrap();
    }
    // 2. A symlink pointing outside, then a file "under" it.
    std::os::unix::fs::symlink(&outside, a.path("link")).unwrap();
    converge(&mut a, &mut b);
    assert!(
        b.path("link")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    std::fs::remove_file(a.path("link")).unwrap();
    std::fs::create_dir(a.path("link")).unwrap();
    a.write("link/x.txt", b"would land outside");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    // B still has the symlink (its delete and the new directory may arrive in any order);
    // whatever order, nothing may be written through it.
    for _ in 0..4 {
        b.round(&m, &[&a]);
        exchange(&mut a, &mut b);
        a.round(&m, &[&b]);
        exchange(&mut a, &mut b);
    }
    assert!(
        !outside.join("x.txt").exists(),
        "a file was written through a symlink"
    );
    assert!(!b._dir.path().join("escape.txt").exists());
    assert!(!std::path::Path::new("/etc/harp-escape").exists());
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    // And the legitimate outcome arrives: the link became a directory with the file.
    assert_eq!(
        std::fs::read(b.path("link/x.txt")).unwrap(),
        b"would land outside"
    );
}

/// The rules of the real bridge (`harp-bridge`, in process, its own SQLite file) as the
/// orderer of a `server_authoritative` folder.
struct BridgeOrderer {
    _dir: tempfile::TempDir,
    bridge: harp_bridge::rules::Bridge,
    folder: FolderId,
}

impl BridgeOrderer {
    /// A bridge with user alice, her devices `keys` registered, and the folder created.
    fn new(folder: FolderId, key: &FolderKey, keys: &[&SigningKey]) -> Self {
        use data_encoding::BASE64;
        use harp_bridge::{db, rules, wire};
        let dir = tempfile::tempdir().unwrap();
        let bridge = rules::Bridge::new(
            db::open(&dir.path().join("bridge.sqlite")).unwrap(),
            rules::Versioning::ServerAuthoritative,
        )
        .unwrap();
        bridge.add_user("alice").unwrap();
        for k in keys {
            let id = DeviceId::of_signing_key(k);
            let x = harp_protocol::wrap::x25519_public(&[9; 32]);
            let sig = ed25519_dalek::Signer::sign(
                *k,
                &harp_protocol::wrap::registration_message("alice", &id, &x),
            );
            let reg = wire::DeviceRegistration {
                device_id: id.to_base32(),
                name: "test".into(),
                x25519_public: BASE64.encode(&x),
                signature: BASE64.encode(&sig.to_bytes()),
            };
            bridge.register_device("alice", &reg).unwrap();
        }
        let me = DeviceId::of_signing_key(keys[0]);
        let w = harp_protocol::wrap::wrap(
            &folder,
            key,
            &me,
            &harp_protocol::wrap::x25519_public(&[9; 32]),
            keys[0],
            [5; 32],
            [6; 24],
        );
        let creation = wire::FolderCreation {
            folder_id: folder.to_string(),
            label: "ordered".into(),
            index_mode: "encrypted".into(),
            versioning: Some("server_authoritative".into()),
            wrapped_key: wire::WrappedKey {
                device_id: me.to_base32(),
                ephemeral_public: BASE64.encode(&w.ephemeral_public),
                nonce: BASE64.encode(&w.nonce),
                ciphertext: BASE64.encode(&w.ciphertext),
                wrapped_by: me.to_base32(),
                signature: BASE64.encode(&w.signature),
            },
        };
        bridge.create_folder("alice", &creation).unwrap();
        Self {
            _dir: dir,
            bridge,
            folder,
        }
    }
}

impl BridgeOrderer {
    /// The bridge ordering the test folder of `devices` (made by [`Device::new`]).
    fn for_devices(devices: &[&Device]) -> Self {
        Self::new(
            devices[0].folder.id,
            &FolderKey::from_bytes([2; 32]),
            &devices.iter().map(|d| &d.key).collect::<Vec<_>>(),
        )
    }
}

impl super::apply::Authority for BridgeOrderer {
    fn orders(&self) -> bool {
        true
    }

    fn claim(
        &self,
        file: &harp_protocol::ids::FileId,
        prev: &harp_protocol::ids::ChainHash,
        entry: &harp_protocol::chain::Entry,
        head: &harp_protocol::ids::ChainHash,
    ) -> Result<super::apply::Claim, String> {
        use harp_bridge::rules::Failure;
        let body = harp_bridge::wire::NewEntry {
            prev: prev.to_hex(),
            entry: data_encoding::BASE64.encode(&entry.encode()),
            head: head.to_hex(),
            expected_head: (entry.seq > 1).then(|| prev.to_hex()),
        };
        match self
            .bridge
            .append_entry("alice", &self.folder.to_string(), &file.to_hex(), &body)
        {
            Ok(_) => Ok(super::apply::Claim::Accepted),
            Err(Failure::HeadMoved { head, .. }) => Ok(super::apply::Claim::Lost(head)),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[test]
fn server_authoritative_every_link_a_device_holds_was_ordered_by_the_bridge() {
    // Found by the random sequences in an ordered folder: a device giving a file's id up
    // (the same file made on two devices) signed the delete link and put it in the document
    // without claiming it. The bridge never saw it, so any later link of that file was
    // refused for good, against a head no document held.
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let m = members(&[&a, &b]);
    let orderer = BridgeOrderer::for_devices(&[&a, &b]);
    a.write("other.txt", b"o");
    a.write("same.txt", b"made on both");
    b.write("same.txt", b"made on both");
    for _ in 0..4 {
        a.round_with(&m, &[&b], Some(&orderer));
        exchange(&mut a, &mut b);
        b.round_with(&m, &[&a], Some(&orderer));
        exchange(&mut a, &mut b);
    }
    assert_eq!(a.tree(), b.tree());
    let mut links = 0;
    for d in [&a, &b] {
        let ids: Vec<_> = d.doc.lock().unwrap().files().into_keys().collect();
        for id in ids {
            let ordered: HashSet<String> = orderer
                .bridge
                .read_entries("alice", &d.folder.id.to_string(), &id.to_hex(), 1, 1000)
                .unwrap()
                .into_iter()
                .map(|l| l.head)
                .collect();
            for (e, head) in d.index.chain_links(&d.folder.id, &id).unwrap() {
                assert!(
                    ordered.contains(&head.to_hex()),
                    "link {} ({:?}) of {id} is not on the bridge",
                    e.seq,
                    e.op
                );
                links += 1;
            }
        }
    }
    // Counted per device: the kept file's create on both, and on the device that gave its
    // id up, that id's create and delete too.
    assert!(links >= 4, "{links}");
}

#[test]
fn server_authoritative_the_first_claim_wins_and_the_loser_keeps_a_conflict_copy() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let m = members(&[&a, &b]);
    let orderer = BridgeOrderer::for_devices(&[&a, &b]);
    a.write("x.txt", b"v1");
    a.round_with(&m, &[], Some(&orderer));
    exchange(&mut a, &mut b);
    b.round_with(&m, &[&a], Some(&orderer));
    assert_eq!(std::fs::read(b.path("x.txt")).unwrap(), b"v1");

    // Both edit before hearing of each other; A reaches the bridge first.
    a.write("x.txt", b"A's edit");
    b.write("x.txt", b"B's edit!");
    let ra = a.round_with(&m, &[&b], Some(&orderer));
    assert_eq!(ra.published, 1, "{ra:?}");
    let rb = b.round_with(&m, &[&a], Some(&orderer));
    assert_eq!(rb.published, 0, "B lost the compare-and-swap: {rb:?}");
    assert!(
        rb.deferred
            .iter()
            .any(|(_, why)| why.contains("first on the bridge")),
        "{rb:?}"
    );
    assert_eq!(
        std::fs::read(b.path("x.txt")).unwrap(),
        b"B's edit!",
        "nothing is lost meanwhile"
    );
    // B's losing version never reached its document (only v1 is there).
    let b_doc = b.doc.lock().unwrap().files();
    assert!(b_doc.values().flatten().all(|r| r.seq == 1), "{b_doc:?}");

    // Once A's version is known, B keeps its own as a conflict copy and takes A's.
    for _ in 0..4 {
        exchange(&mut a, &mut b);
        b.round_with(&m, &[&a], Some(&orderer));
        exchange(&mut a, &mut b);
        a.round_with(&m, &[&b], Some(&orderer));
    }
    assert_eq!(a.tree(), b.tree());
    let tree = b.tree();
    assert_eq!(tree.get("x.txt").map(Vec::as_slice), Some(&b"A's edit"[..]));
    let copies: Vec<_> = tree
        .iter()
        .filter(|(k, _)| k.contains(".conflict-"))
        .collect();
    assert_eq!(copies.len(), 1, "{:?}", tree.keys());
    assert_eq!(copies[0].1, b"B's edit!");
    // The bridge holds one history of x.txt: v1 then A's edit.
    let id = a
        .index
        .file(&a.folder.id, "x.txt")
        .unwrap()
        .unwrap()
        .file_id;
    let report = orderer
        .bridge
        .verify_file("alice", &a.folder.id.to_string(), &id.to_hex())
        .unwrap();
    assert_eq!(
        (report.entries, report.last_seq, report.tips.len()),
        (2, 2, 1)
    );
}

#[test]
fn a_second_conflict_of_one_file_within_a_second_gets_a_name_of_its_own() {
    use super::apply::{conflict_name, free_conflict_name};
    let d = Device::new(1);
    let me = DeviceId::of_signing_key(&d.key);
    // Every name the clock could give around now is taken.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for t in (-1..=2).map(|s| now + s * 1000) {
        d.write(&conflict_name("p.bin", &me, t), b"an earlier conflict copy");
    }
    let name = free_conflict_name(&d.folder, "p.bin", &me);
    assert!(!d.path(&name).exists(), "{name} is taken");
    assert!(name.contains(".conflict-"), "{name}");
}

#[test]
fn conflict_names_read_back_and_other_names_do_not() {
    use super::apply::{conflict_name, parse_conflict_name};
    let dev = DeviceId::of_signing_key(&SigningKey::from_bytes(&[9; 32]));
    for rel in [
        "plan.txt",
        "docs/a.tar.gz",
        "noext",
        "dir.d/.bashrc",
        "sub/x.conflict.txt",
    ] {
        let name = conflict_name(rel, &dev, 1_763_763_330_000);
        let parsed = parse_conflict_name(&name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(parsed.original, rel, "{name}");
        assert_eq!(parsed.stamp, "20251121-221530");
        assert!(dev.to_string().starts_with(&parsed.device));
    }
    for other in [
        "plan.txt",
        "plan.conflict-2025-abc.txt",
        "plan.conflict-20251121x221530-abc.txt",
        "plan.conflict-20251121-221530-.txt",
        ".conflict-20251121-221530-abc.txt",
    ] {
        assert_eq!(parse_conflict_name(other), None, "{other}");
    }
}

/// An edit of a large file is built from the receiver's previous version (copied in runs),
/// and only the changed chunks travel; repeated chunks and an insert that shifts every later
/// byte come out byte for byte.
#[test]
fn an_edited_file_is_rebuilt_from_the_previous_version_with_only_the_change_fetched() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let mut data = vec![0u8; 3 << 20];
    blake3::Hasher::new()
        .update(b"edit")
        .finalize_xof()
        .fill(&mut data);
    // A stretch of one repeated 64 KiB block: the same chunk at several offsets.
    let block = data[..65_536].to_vec();
    for i in 0..6 {
        data[(1 << 20) + i * 65_536..(1 << 20) + (i + 1) * 65_536].copy_from_slice(&block);
    }
    a.write("big.bin", &data);
    converge(&mut a, &mut b);
    assert_eq!(std::fs::read(b.path("big.bin")).unwrap(), data);

    // One byte inserted in the middle: everything after it moves by one.
    data.insert(data.len() / 2, 0x5a);
    a.write("big.bin", &data);
    let m = members(&[&a, &b]);
    a.round(&m, &[&b]);
    exchange(&mut a, &mut b);
    let report = b.round(&m, &[&a]);
    assert_eq!(report.installed, 1);
    assert_eq!(
        report.fetched_bytes + report.reused_bytes,
        data.len() as u64
    );
    assert!(
        report.fetched_bytes < 3 * 256 * 1024,
        "fetched {} bytes for a 1-byte insert",
        report.fetched_bytes
    );
    assert_eq!(std::fs::read(b.path("big.bin")).unwrap(), data);
    converge(&mut a, &mut b);

    // 4 KiB overwritten in place and a tail appended: the unchanged stretches keep their
    // offsets, so they go through the kernel's copy (cut at block boundaries; shared blocks
    // on btrfs or XFS).
    let at = data.len() / 3 + 123;
    data[at..at + 4096].fill(0xee);
    data.extend_from_slice(&block[..10_000]);
    a.write("big.bin", &data);
    a.round(&m, &[&b]);
    exchange(&mut a, &mut b);
    let report = b.round(&m, &[&a]);
    assert_eq!(report.installed, 1);
    assert!(
        report.fetched_bytes < 3 * 256 * 1024,
        "fetched {} bytes for an overwrite",
        report.fetched_bytes
    );
    assert!(report.reused_bytes > 2 << 20, "{report:?}");
    assert_eq!(std::fs::read(b.path("big.bin")).unwrap(), data);
    converge(&mut a, &mut b);
}

/// Records the threads that fetched through it.
struct Watched<'a>(&'a Peers, Mutex<Vec<std::thread::ThreadId>>);

impl Fetcher for Watched<'_> {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(harp_protocol::blob::CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        self.1.lock().unwrap().push(std::thread::current().id());
        self.0.fetch(ids, sink)
    }
}

#[test]
fn many_files_install_while_the_next_window_is_fetched_on_another_thread() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    // 40 MiB of 1 MiB files: three windows of fetches ahead.
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let name = format!("d{}/f{i:02}.bin", i % 3);
            let data = crate::testutil::random(name.as_bytes(), 1 << 20);
            (name, data)
        })
        .collect();
    for (name, data) in &files {
        a.write(name, data);
    }
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    b.scan();
    let peers = Peers::of(&[&a]);
    let watched = Watched(&peers, Mutex::new(Vec::new()));
    let ctx = Context {
        folder: &b.folder,
        device: &b.key,
        members: &m,
        fetcher: &watched,
        authority: None,
        direction: Default::default(),
        force: None,
        progress: None,
    };
    let report = sync_once(&mut b.index, &b.doc, &ctx).unwrap();
    assert_eq!(report.installed, 43, "{report:?}"); // 40 files and 3 directories
    assert!(report.deferred.is_empty(), "{report:?}");
    assert_eq!(report.fetched_bytes, 40 << 20);
    for (name, data) in &files {
        assert!(std::fs::read(b.path(name)).unwrap() == *data, "{name}");
    }
    // Every fetch ran on the preparing thread, none on the installing one.
    let threads = watched.1.lock().unwrap().clone();
    assert!(threads.len() >= 3, "{threads:?}");
    assert!(
        threads.iter().all(|t| *t != std::thread::current().id()),
        "{threads:?}"
    );
    // What B recorded matches its disk: a rescan finds nothing to change.
    let again = sync_once(&mut b.index, &b.doc, &ctx).unwrap();
    assert!(!again.changed(), "{again:?}");
    assert_eq!(b.tree(), a.tree());
}

/// Rounds on both devices (documents exchanged between them) until both are quiet; unlike
/// [`converge`], their trees may differ (one-way folders).
fn settle(a: &mut Device, b: &mut Device) -> (Report, Report) {
    let m = members(&[a, b]);
    exchange(a, b);
    for _ in 0..8 {
        let ra = a.round(&m, &[b]);
        exchange(a, b);
        let rb = b.round(&m, &[a]);
        exchange(a, b);
        if !ra.changed() && !rb.changed() && ra.deferred.is_empty() && rb.deferred.is_empty() {
            return (ra, rb);
        }
    }
    panic!(
        "not settled: {:?} and {:?}",
        a.tree().keys().collect::<Vec<_>>(),
        b.tree().keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_receive_only_folder_takes_changes_keeps_its_own_and_reverts_to_the_others() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    b.direction = super::plan::Direction::ReceiveOnly;
    a.write("kept.txt", b"a's file");
    a.write("edited.txt", b"v1");
    a.write("gone.txt", b"deleted on b");
    settle(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    // B's own changes stay on B: an edit, a delete, a new file.
    // (The new file first: made after the delete, it could take the deleted file's inode,
    // and the scan would see a move.)
    b.write("edited.txt", b"b's edit");
    b.write("new-on-b.txt", b"only on b");
    std::fs::remove_file(b.path("gone.txt")).unwrap();
    let (_, rb) = settle(&mut a, &mut b);
    assert_eq!(
        rb.held_back,
        ["edited.txt", "gone.txt", "new-on-b.txt"],
        "{rb:?}"
    );
    let at_a = a.tree();
    assert_eq!(at_a["edited.txt"], b"v1");
    assert!(at_a.contains_key("gone.txt") && !at_a.contains_key("new-on-b.txt"));
    // A's next edit of the file B changed reaches B; B's edit stays beside it, on B only.
    a.write("edited.txt", b"v2 from a");
    a.write("more.txt", b"new on a");
    settle(&mut a, &mut b);
    let at_b = b.tree();
    assert_eq!(at_b["edited.txt"], b"v2 from a");
    assert_eq!(at_b["more.txt"], b"new on a");
    let copies: Vec<_> = at_b.keys().filter(|k| k.contains(".conflict-")).collect();
    assert_eq!(copies.len(), 1, "{at_b:?}");
    assert_eq!(at_b[copies[0]], b"b's edit");
    assert!(!a.tree().keys().any(|k| k.contains(".conflict-")));
    // Reverted: B has what A has, and what B held only is in its versions store.
    b.force = Some(super::plan::Force::Revert);
    let m = members(&[&a, &b]);
    let r = b.round(&m, &[&a]);
    assert!(r.deferred.is_empty(), "{r:?}");
    settle(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    let kept = kept_contents(&b);
    for content in [&b"only on b"[..], b"b's edit"] {
        assert!(kept.contains(content), "{content:?} not kept");
    }
    let (ra, rb) = settle(&mut a, &mut b);
    assert!(rb.held_back.is_empty() && ra.held_back.is_empty(), "{rb:?}");
}

#[test]
fn a_receive_only_folder_moves_its_own_new_file_aside_for_another_device_s() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    b.direction = super::plan::Direction::ReceiveOnly;
    settle(&mut a, &mut b);
    b.write("p.txt", b"b's unsent file");
    a.write("p.txt", b"a's file");
    let m = members(&[&a, &b]);
    b.round(&m, &[]);
    a.round(&m, &[]);
    settle(&mut a, &mut b);
    let at_b = b.tree();
    assert_eq!(at_b["p.txt"], b"a's file", "{at_b:?}");
    let aside: Vec<_> = at_b.keys().filter(|k| k.contains(".conflict-")).collect();
    assert_eq!(aside.len(), 1, "{at_b:?}");
    assert_eq!(at_b[aside[0]], b"b's unsent file");
    assert_eq!(
        a.tree().len(),
        1,
        "nothing of b's reached a: {:?}",
        a.tree()
    );
}

#[test]
fn a_send_only_folder_keeps_its_files_and_overrides_the_others() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.direction = super::plan::Direction::SendOnly;
    a.write("edited.txt", b"a's v1");
    a.write("deleted.txt", b"deleted on b");
    a.write("moved.txt", b"moved on b");
    settle(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    let before = a.tree();
    // B's changes do not reach A's disk.
    // (The new file before the delete: see the receive-only test.)
    b.write("edited.txt", b"b's edit");
    b.write("new-on-b.txt", b"b's file");
    std::fs::remove_file(b.path("deleted.txt")).unwrap();
    std::fs::rename(b.path("moved.txt"), b.path("moved-by-b.txt")).unwrap();
    let (ra, _) = settle(&mut a, &mut b);
    assert_eq!(a.tree(), before);
    assert_eq!(
        ra.held_back,
        [
            "deleted.txt",
            "edited.txt",
            "moved-by-b.txt",
            "new-on-b.txt"
        ],
        "{ra:?}"
    );
    // A's own changes still go out, a concurrent edit too (B settles the conflict).
    a.write("from-a.txt", b"sent");
    settle(&mut a, &mut b);
    assert_eq!(b.tree()["from-a.txt"], b"sent");
    // Overridden: every device has what A has; what B had is in B's versions store.
    a.force = Some(super::plan::Force::Override);
    let m = members(&[&a, &b]);
    let r = a.round(&m, &[&b]);
    assert!(r.deferred.is_empty(), "{r:?}");
    settle(&mut a, &mut b);
    let at_a = a.tree();
    assert_eq!(at_a, b.tree());
    assert_eq!(at_a["edited.txt"], b"a's v1");
    assert!(at_a.contains_key("deleted.txt") && at_a.contains_key("moved.txt"));
    assert!(!at_a.contains_key("new-on-b.txt") && !at_a.contains_key("moved-by-b.txt"));
    let kept = kept_contents(&b);
    for content in [&b"b's edit"[..], b"b's file"] {
        assert!(kept.contains(content), "{content:?} not kept");
    }
    let (ra, _) = settle(&mut a, &mut b);
    assert!(ra.held_back.is_empty(), "{ra:?}");
}

#[test]
fn a_directory_deleted_elsewhere_stays_in_a_receive_only_folder_while_it_holds_a_local_file() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    b.direction = super::plan::Direction::ReceiveOnly;
    a.write("d/theirs.txt", b"a's");
    a.write(
        "stays.txt",
        b"(a root left empty would be refused as a vanished folder)",
    );
    settle(&mut a, &mut b);
    b.write("d/mine.txt", b"b's, not sent");
    std::fs::remove_dir_all(a.path("d")).unwrap();
    // Quiet, not waiting for good on a directory it cannot empty.
    let (_, rb) = settle(&mut a, &mut b);
    assert_eq!(rb.held_back, ["d/mine.txt"], "{rb:?}");
    assert_eq!(
        b.tree().keys().collect::<Vec<_>>(),
        ["d/", "d/mine.txt", "stays.txt"]
    );
    b.force = Some(super::plan::Force::Revert);
    settle(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    assert!(kept_contents(&b).contains(&b"b's, not sent"[..]));
}

#[test]
fn a_receive_only_folder_made_two_way_again_sends_what_it_held_back() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    b.direction = super::plan::Direction::ReceiveOnly;
    a.write("f.txt", b"v1");
    settle(&mut a, &mut b);
    b.write("f.txt", b"b's edit, held back");
    b.write("new.txt", b"b's new file");
    settle(&mut a, &mut b);
    a.write("f.txt", b"a's edit");
    settle(&mut a, &mut b);
    b.direction = super::plan::Direction::SendReceive;
    converge(&mut a, &mut b);
    let tree = a.tree();
    assert_eq!(tree, b.tree());
    assert_eq!(tree["f.txt"], b"a's edit");
    assert_eq!(tree["new.txt"], b"b's new file");
    assert!(
        tree.values().any(|v| v == b"b's edit, held back"),
        "b's edit reached a as a conflict copy: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_directory_a_send_only_device_deleted_stays_where_a_new_file_lives_in_it() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    a.direction = super::plan::Direction::SendOnly;
    a.write("d/old.txt", b"old");
    a.write(
        "stays.txt",
        b"(a root left empty would be refused as a vanished folder)",
    );
    settle(&mut a, &mut b);
    std::fs::remove_dir_all(a.path("d")).unwrap();
    b.write("d/new.txt", b"b's new file");
    // B keeps the directory its new file lives in: quiet, not waiting for good.
    let (ra, rb) = settle(&mut a, &mut b);
    assert!(rb.deferred.is_empty(), "{rb:?}");
    assert_eq!(ra.held_back, ["d/new.txt"], "{ra:?}");
    assert_eq!(b.tree()["d/new.txt"], b"b's new file");
    a.force = Some(super::plan::Force::Override);
    settle(&mut a, &mut b);
    assert_eq!(a.tree(), b.tree());
    assert!(kept_contents(&b).contains(&b"b's new file"[..]));
}

#[test]
fn a_send_only_device_that_loses_a_claim_keeps_its_version_until_it_overrides() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    b.direction = super::plan::Direction::SendOnly;
    let m = members(&[&a, &b]);
    let orderer = BridgeOrderer::for_devices(&[&a, &b]);
    a.write("x.txt", b"v1");
    a.round_with(&m, &[], Some(&orderer));
    exchange(&mut a, &mut b);
    b.round_with(&m, &[&a], Some(&orderer));
    // (B is send-only: it never installs, so it starts with the same file made by hand.)
    b.write("x.txt", b"v1");
    for _ in 0..2 {
        exchange(&mut a, &mut b);
        b.round_with(&m, &[&a], Some(&orderer));
        a.round_with(&m, &[&b], Some(&orderer));
    }
    // Both edit; A reaches the bridge first.
    a.write("x.txt", b"A's edit");
    b.write("x.txt", b"B's edit!");
    a.round_with(&m, &[&b], Some(&orderer));
    for _ in 0..3 {
        exchange(&mut a, &mut b);
        let rb = b.round_with(&m, &[&a], Some(&orderer));
        assert!(rb.held_back.contains(&"x.txt".to_owned()), "{rb:?}");
        a.round_with(&m, &[&b], Some(&orderer));
    }
    assert_eq!(std::fs::read(b.path("x.txt")).unwrap(), b"B's edit!");
    assert!(!b.tree().keys().any(|k| k.contains(".conflict-")));
    // Overridden: B's version is the next one on the bridge, and A takes it.
    b.force = Some(super::plan::Force::Override);
    for _ in 0..3 {
        exchange(&mut a, &mut b);
        b.round_with(&m, &[&a], Some(&orderer));
        exchange(&mut a, &mut b);
        a.round_with(&m, &[&b], Some(&orderer));
    }
    assert_eq!(std::fs::read(a.path("x.txt")).unwrap(), b"B's edit!");
    assert!(kept_contents(&a).contains(&b"A's edit"[..]));
}

#[test]
fn in_an_ordered_folder_a_directory_a_send_only_device_deleted_is_made_again_for_a_file_in_it() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    b.direction = super::plan::Direction::SendOnly;
    let m = members(&[&a, &b]);
    let orderer = BridgeOrderer::for_devices(&[&a, &b]);
    // B makes directory d and deletes it again, both on the bridge first.
    b.write(
        "b.txt",
        b"(a root left empty would be refused as a vanished folder)",
    );
    std::fs::create_dir(b.path("d")).unwrap();
    b.round_with(&m, &[], Some(&orderer));
    std::fs::remove_dir(b.path("d")).unwrap();
    b.round_with(&m, &[], Some(&orderer));
    // A, before hearing of it, makes d with a file in it.
    a.write("d/f.txt", b"a's file");
    a.round_with(&m, &[], Some(&orderer));
    let mut last = None;
    for _ in 0..4 {
        exchange(&mut a, &mut b);
        let ra = a.round_with(&m, &[&b], Some(&orderer));
        exchange(&mut a, &mut b);
        b.round_with(&m, &[&a], Some(&orderer));
        last = Some(ra);
    }
    let ra = last.unwrap();
    assert!(ra.deferred.is_empty() && !ra.changed(), "{ra:?}");
    assert_eq!(std::fs::read(a.path("d/f.txt")).unwrap(), b"a's file");
    // d is live again in the document: made again on top of B's delete.
    let d = a.doc.lock().unwrap().files();
    assert!(
        d.values()
            .flatten()
            .any(|r| r.path == "d" && !r.deleted && r.seq == 3),
        "{d:?}"
    );
}

/// Takes a look at a round's progress after each blob it delivers.
struct Peeking<'a>(
    &'a Peers,
    &'a super::progress::Progress,
    Mutex<Vec<Option<super::progress::Snapshot>>>,
);

impl Fetcher for Peeking<'_> {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(harp_protocol::blob::CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        self.0.fetch(ids, &mut |b| {
            let r = sink(b);
            self.2.lock().unwrap().push(self.1.snapshot());
            r
        })
    }
}

#[test]
fn a_round_shows_how_far_it_has_got_while_it_runs() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let big = crate::testutil::random(b"big", 8 << 20);
    a.write("big.bin", &big);
    a.write("d/small.txt", b"small");
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    b.scan();
    let peers = Peers::of(&[&a]);
    let progress = super::progress::Progress::default();
    let peeking = Peeking(&peers, &progress, Mutex::new(Vec::new()));
    let ctx = Context {
        folder: &b.folder,
        device: &b.key,
        members: &m,
        fetcher: &peeking,
        authority: None,
        direction: Default::default(),
        force: None,
        progress: Some(&progress),
    };
    let report = sync_once(&mut b.index, &b.doc, &ctx).unwrap();
    assert_eq!(report.installed, 3, "{report:?}"); // two files and a directory
    let seen: Vec<_> = peeking.2.lock().unwrap().clone();
    let seen: Vec<_> = seen
        .into_iter()
        .map(|s| s.expect("a round that fetches shows as running"))
        .collect();
    assert!(seen.len() > 10, "{} looks", seen.len());
    let total = big.len() as u64 + 5;
    assert!(
        seen.iter()
            .all(|s| s.files_total == 3 && s.bytes_total == total),
        "{:?}",
        seen.first()
    );
    // The big file's bytes count as they arrive, and only go up.
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
    assert!(
        seen.iter()
            .any(|s| s.current == "big.bin" && s.bytes_done > 0 && s.bytes_done < total),
        "{:?}",
        seen.iter().map(|s| s.bytes_done).collect::<Vec<_>>()
    );
    assert!(seen.last().unwrap().bytes_done >= big.len() as u64);
    // Once the round is over, nothing runs.
    assert_eq!(progress.snapshot(), None);
    assert_eq!(std::fs::read(b.path("big.bin")).unwrap(), big);
}

/// A fetcher that also hands over files staged early ([`crate::early`]), as the daemon's does.
struct WithStaging<'a>(&'a Peers, &'a crate::early::Staging, FolderId);

impl Fetcher for WithStaging<'_> {
    fn fetch(
        &self,
        ids: Vec<ChunkId>,
        sink: &mut dyn FnMut(harp_protocol::blob::CheckedBlob) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<ChunkId>> {
        self.0.fetch(ids, sink)
    }

    fn take_staged(&self, path: &str, size: u64) -> Option<crate::early::Staged> {
        self.1.take(&self.2, path, size)
    }
}

/// B stages A's new file from `listed` (A's chunk list, maybe altered) as an early offer
/// would, then runs a round; returns its report.
fn install_staged(a: &Device, b: &mut Device, listed: Vec<(ChunkId, u32)>) -> Report {
    let size: u64 = listed.iter().map(|(_, len)| u64::from(*len)).sum();
    let staging = std::sync::Arc::new(crate::early::Staging::default());
    let work = crate::early::StageWork {
        folder: std::sync::Arc::new(Folder::new(
            b.folder.id,
            b.folder.root.clone(),
            b.folder.keys.clone(),
        )),
        fetcher: Box::new(Peers::of(&[a])),
    };
    let peer = libp2p::PeerId::random();
    let mut feed = staging.begin(peer, "big.bin", size, work).unwrap();
    assert!(feed.listed(0, listed));
    feed.end(true);
    let start = std::time::Instant::now();
    while staging
        .progress(&b.folder.id, "big.bin")
        .is_some_and(|(done, _)| done < size)
        && start.elapsed() < std::time::Duration::from_secs(2)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let m = members(&[a, b]);
    let peers = Peers::of(&[a]);
    let fetcher = WithStaging(&peers, &staging, b.folder.id);
    let ctx = Context {
        folder: &b.folder,
        device: &b.key,
        members: &m,
        fetcher: &fetcher,
        authority: None,
        direction: Default::default(),
        force: None,
        progress: None,
    };
    let report = sync_once(&mut b.index, &b.doc, &ctx).unwrap();
    assert!(staging.is_empty(), "the staging file was taken");
    report
}

#[test]
fn a_new_file_staged_early_is_installed_from_its_staging_file_where_it_matches() {
    let mut a = Device::new(1);
    let mut b = Device::new(2);
    let big = crate::testutil::random(b"staged", 6 << 20);
    a.write("big.bin", &big);
    let m = members(&[&a, &b]);
    a.round(&m, &[]);
    exchange(&mut a, &mut b);
    b.scan();
    let row = a.index.file(&a.folder.id, "big.bin").unwrap().unwrap();
    let chunks = a.index.chunks(&a.folder.id, &row.file_id).unwrap();
    let listed: Vec<(ChunkId, u32)> = chunks.iter().map(|c| (c.id, c.len)).collect();
    let report = install_staged(&a, &mut b, listed.clone());
    assert_eq!(std::fs::read(b.path("big.bin")).unwrap(), big);
    assert_eq!(report.early_bytes, big.len() as u64, "{report:?}");
    assert!(report.fetched_bytes >= big.len() as u64, "{report:?}");
    // B knows every chunk's tag, as after an ordinary fetch.
    let b_row = b.index.file(&b.folder.id, "big.bin").unwrap().unwrap();
    let b_chunks = b.index.chunks(&b.folder.id, &b_row.file_id).unwrap();
    assert_eq!(b_chunks.len(), chunks.len());
    assert!(b_chunks.iter().all(|c| c.tag.is_some()));

    // A list that went wrong (a stale scan: two chunks the other way round): only what sits
    // where the record puts it is kept; the rest is fetched, and the file is exact.
    let mut wrong = listed.clone();
    wrong.swap(1, 2);
    // A device without the file: C.
    let mut c = Device::new(3);
    exchange(&mut a, &mut c);
    c.scan();
    let report = install_staged(&a, &mut c, wrong);
    assert_eq!(std::fs::read(c.path("big.bin")).unwrap(), big);
    let moved = u64::from(chunks[1].len + chunks[2].len);
    assert_eq!(report.early_bytes, big.len() as u64 - moved, "{report:?}");
    assert_eq!(c.tree().get("big.bin"), a.tree().get("big.bin"));
}
