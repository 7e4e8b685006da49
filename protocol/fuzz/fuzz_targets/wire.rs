#![no_main]
//! Wire frames on arbitrary bytes: never panics; decoded messages re-encode to their frame.
use harp_protocol::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = wire::decode_frame(data) {
        assert_eq!(msg.encode_frame(), &data[..used]);
    }
});
