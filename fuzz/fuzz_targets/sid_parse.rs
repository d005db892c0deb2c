//! The SID string parsers (`<a_12><b_3>` and one token per string): never a panic; a parsed
//! SID prints back to a string that parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ugr_core::Sid;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(sid) = Sid::parse(&s) {
        assert_eq!(Sid::parse(&sid.to_string()).unwrap(), sid);
    }
    if let Ok(sid) = Sid::parse_tokens(s.split(',')) {
        assert_eq!(Sid::parse(&sid.to_string()).unwrap(), sid);
    }
});
