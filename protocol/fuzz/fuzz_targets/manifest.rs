#![no_main]
//! Manifest nodes and records on arbitrary bytes: never panics; canonical round trip.
use harp_protocol::manifest::{Manifest, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = Node::decode(data) {
        assert_eq!(node.encode(), data);
    }
    if let Ok(record) = Manifest::decode(data) {
        assert_eq!(record.encode(), data);
    }
});
