//! The command line's one `unsafe` call: a closed pipe ends `ugr` quietly, as it ends any
//! Unix command (`ugr recommend ... | head -1`), instead of a panic in `println!`.

/// Restores the default action of SIGPIPE (terminate), which the Rust runtime sets to ignore.
#[allow(unsafe_code)]
pub(crate) fn restore_default() {
    #[cfg(unix)]
    // SAFETY: `signal` with a valid signal number and `SIG_DFL` only changes this process's
    // disposition of SIGPIPE; it runs at the start of `main`, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
