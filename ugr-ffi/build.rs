//! Link flags of libugr.so on Linux:
//! - a SONAME carrying the compatibility version, so services pick up compatible updates
//!   and refuse incompatible ones: `libugr.so.MAJOR`, and `libugr.so.0.MINOR` before 1.0
//!   (where a minor version may break the ABI);
//! - `-z noexecstack`: one of tract's assembly objects has no GNU-stack note, which would
//!   otherwise mark the library as needing an executable stack (newer glibc refuses to load
//!   such a library).
//!
//! The static library gets the same `-z noexecstack` from the CMake and pkg-config files
//! that `ugr-ffi/package.sh` writes (the final link happens in the user's build).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
        let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
        let abi = if major == "0" { format!("0.{minor}") } else { major };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libugr.so.{abi}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,noexecstack");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
