#![no_main]
//! Parsing ids from arbitrary text and peer ids from arbitrary bytes never panics.
use harp_protocol::ids::{ChunkId, DeviceId, FolderId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<DeviceId>();
        let _ = text.parse::<FolderId>();
        let _ = text.parse::<ChunkId>();
    }
    if let Ok(id) = DeviceId::from_peer_id_bytes(data) {
        assert_eq!(id.to_peer_id_bytes().as_slice(), data);
    }
});
