//! Readers of the public benchmark formats (see `../shared/data/README.md`).

pub mod index;

use std::path::PathBuf;

/// The shared data directory, or `None` after telling the user (on the real stderr, which
/// the test harness does not capture) that `what` is skipped.
pub fn shared_data_or_skip(what: &str) -> Option<PathBuf> {
    let dir = shared_data_dir();
    if dir.is_none() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {what}: ../shared/data not found (set UGR_DATA_DIR to the benchmark data to run it)"
        );
    }
    dir
}

/// Where the shared benchmark data lives: `$UGR_DATA_DIR`, else `../shared/data` next
/// to the repository. `None` when absent (tests then skip with a message).
pub fn shared_data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("UGR_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    dir.is_dir().then_some(dir)
}
