#![no_main]
//! Proof decoding and verification on arbitrary bytes: never panics; anything that decodes
//! re-encodes to the same bytes (the format is canonical).
use harp_protocol::proof::{Policy, Proof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = Proof::decode(data) {
        assert_eq!(proof.encode(), data);
        let _ = proof.verify(&Policy::default());
    }
});
