//! Readers of the public benchmark formats (see `../shared/data/README.md`).

pub mod index;

use std::path::PathBuf;

/// Where the shared benchmark data lives: `$UGR_DATA_DIR`, else `../shared/data` next
/// to the repository. `None` when absent (tests then skip with a message).
pub fn shared_data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("UGR_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    dir.is_dir().then_some(dir)
}
