//! libugr: the C ABI of the ugr engine.
//!
//! The header `include/ugr.h` is generated from this crate by cbindgen and committed;
//! the `header` test fails when it is stale. Until the engine lands (issue `[export]`), the ABI
//! exposes the library version only; the full surface (engine handles, recommend,
//! status codes) comes with the `[ffi]` issue.

#![allow(unsafe_code)] // `#[no_mangle]` exports are unsafe attributes

use core::ffi::c_char;

/// Major version of libugr.
pub const UGR_VERSION_MAJOR: u32 = 0;
/// Minor version of libugr.
pub const UGR_VERSION_MINOR: u32 = 1;
/// Patch version of libugr.
pub const UGR_VERSION_PATCH: u32 = 0;

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a NUL-terminated string "MAJOR.MINOR.PATCH".
///
/// The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_the_string() {
        // SAFETY: ugr_version returns a pointer to a static NUL-terminated string.
        let s = unsafe { core::ffi::CStr::from_ptr(ugr_version()) }
            .to_str()
            .unwrap();
        let want = format!("{UGR_VERSION_MAJOR}.{UGR_VERSION_MINOR}.{UGR_VERSION_PATCH}");
        assert_eq!(s, want);
    }
}
