//! The artifact decoder on raw bytes: never a panic; whatever decodes re-encodes to a
//! bundle that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ugr_core::Bundle;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::from_bytes(data) {
        let bytes = bundle.to_bytes().expect("a decoded bundle re-encodes");
        assert_eq!(Bundle::from_bytes(&bytes).expect("and decodes again"), bundle);
    }
});
