#![no_main]
//! Chain entries on arbitrary bytes: never panics; canonical round trip.
use harp_protocol::chain::Entry;
use harp_protocol::ids::ChainHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        assert_eq!(entry.encode().as_slice(), data);
        let _ = entry.verify_signature(&ChainHash::from_bytes([0; 32]));
    }
});
