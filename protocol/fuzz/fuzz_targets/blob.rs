#![no_main]
//! Opening arbitrary bytes as a blob never panics and never succeeds without the real key.
use harp_protocol::blob::{self, BlobKind};
use harp_protocol::keys::FolderKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = FolderKey::from_bytes([7; 32]).schedule();
    for kind in [BlobKind::Chunk, BlobKind::ManifestNode, BlobKind::ManifestRecord] {
        assert!(blob::open_unchecked_id(&keys, kind, data).is_err());
    }
});
