//! Fixtures shared by the unit tests of this crate.

use std::path::PathBuf;

use harp_protocol::ids::FolderId;
use harp_protocol::keys::FolderKey;

use crate::scan::Folder;

/// A folder rooted in a fresh temporary directory (`<tmp>/f`), with fixed id and key.
pub(crate) fn temp_folder() -> (tempfile::TempDir, Folder) {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("f");
    std::fs::create_dir_all(&root).unwrap();
    let folder = Folder::new(
        FolderId::from_bytes([1; 16]),
        root,
        FolderKey::from_bytes([2; 32]).schedule(),
    );
    (dir, folder)
}

/// Deterministic pseudo-random bytes (a BLAKE3 output stream of `seed`).
pub(crate) fn random(seed: &[u8], len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed)
        .finalize_xof()
        .fill(&mut v);
    v
}
