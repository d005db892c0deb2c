//! libugr: the C ABI of the ugr engine, for C and C++ recommender services.
//!
//! The header `include/ugr.h` is generated from this crate by a pinned cbindgen and
//! committed; the `header` test fails when it is stale. `include/ugr.hpp` adds C++17 RAII
//! wrappers on top of it.
//!
//! Conventions (the same for every export):
//! - Fallible calls return a [`ugr_status`]; on failure [`ugr_last_error`] describes it.
//! - Pointer arguments are checked for NULL first (`UGR_STATUS_NULL_PARAMETER`); a
//!   `(NULL, 0)` pointer/length pair is an empty array.
//! - Every body runs inside `catch_unwind`: a panic becomes `UGR_STATUS_PANIC`, never an
//!   abort or undefined behaviour.
//! - Handles are opaque; whoever receives one from an `_open` call owns it and releases it
//!   with the matching `_free`. Output arrays are always owned by the caller; borrowed views
//!   returned by libugr (titles, error messages) state how long they live.
//! - One engine may be shared by any number of threads.
//!
//! ```
//! use ugr::*;
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/tiny-model.ugr\0");
//! let mut engine = std::ptr::null_mut();
//! // SAFETY: a NUL-terminated path and a valid output pointer.
//! assert_eq!(unsafe { ugr_engine_open(path.as_ptr().cast(), &mut engine) }, ugr_status::Ok);
//! let history = [1u32, 2, 3];
//! let mut out = [ugr_recommendation::default(); 10];
//! let mut n = 0;
//! // SAFETY: every pointer is valid for the lengths given.
//! let status = unsafe {
//!     ugr_recommend(engine, history.as_ptr(), 3, std::ptr::null(), out.as_mut_ptr(), 10, &mut n)
//! };
//! assert_eq!((status, n), (ugr_status::Ok, 10));
//! assert!(out[0].score >= out[9].score);
//! // SAFETY: the engine came from ugr_engine_open and is freed once.
//! unsafe { ugr_engine_free(engine) };
//! ```

#![allow(unsafe_code)] // the C ABI: raw pointers and `#[no_mangle]` exports
#![allow(non_camel_case_types)] // C names: `ugr_engine`, `ugr_status`, ...

use core::ffi::c_char;

mod boundary;
mod engine;
mod recommend;
mod rules;
mod status;

pub use boundary::ugr_last_error;
pub use engine::{
    UGR_BACKEND_NATIVE, UGR_BACKEND_TRACT, ugr_engine, ugr_engine_free, ugr_engine_get_info, ugr_engine_info,
    ugr_engine_open, ugr_engine_open_bytes, ugr_engine_replace_catalog, ugr_engine_title, ugr_engine_warm,
};
pub use recommend::{
    ugr_options, ugr_options_default, ugr_pruning, ugr_rank_by, ugr_recommend, ugr_recommend_batch,
    ugr_recommend_batch_constrained, ugr_recommend_constrained, ugr_recommendation,
};
pub use rules::{
    ugr_availability_change, ugr_constraints, ugr_constraints_default, ugr_engine_is_available,
    ugr_engine_update_availability,
};
pub use status::{ugr_status, ugr_status_name};

/// Major version of libugr. The SONAME is `libugr.so.MAJOR` (`libugr.so.0.MINOR` before 1.0,
/// where a minor version may change the ABI).
pub const UGR_VERSION_MAJOR: u32 = 0;
/// Minor version of libugr.
pub const UGR_VERSION_MINOR: u32 = 1;
/// Patch version of libugr.
pub const UGR_VERSION_PATCH: u32 = 0;

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a static NUL-terminated string "MAJOR.MINOR.PATCH". Compare it
/// with the `UGR_VERSION_*` macros of the header you compiled against. Never free it.
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
