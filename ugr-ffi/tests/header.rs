//! The committed `include/ugr.h` must equal what the pinned cbindgen generates.
//! Run with `UGR_BLESS=1` to rewrite it after changing the ABI.

use std::path::PathBuf;

#[test]
fn committed_header_is_current() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/ugr.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not parse ugr-ffi")
        .write(&mut generated);
    if std::env::var_os("UGR_BLESS").is_some() {
        std::fs::write(&header, &generated).expect("write include/ugr.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/ugr.h is stale: run `UGR_BLESS=1 cargo test -p ugr-ffi --test header` and commit it"
    );
}
