//! `Engine::open` on paths that are not regular files: a FIFO never blocks the caller, even
//! when the path is flipped between a regular file and a FIFO while it opens.
#![cfg(all(unix, feature = "std", feature = "native"))]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ugr_core::{Engine, Error};

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn is_not_regular(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidInput)
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempdir();
    let fifo = dir.join("model.ugr");
    mkfifo(&fifo);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Engine::open(&fifo).map(|_| ()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("Engine::open blocked on a FIFO with no writer");
    assert!(r.as_ref().is_err_and(is_not_regular), "{r:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A symlink flipped between a small regular file and a FIFO with no writer by another
/// thread, while this one opens it in a loop: every open returns (a corrupt-artifact error
/// for the file, `InvalidInput` for the FIFO), none blocks.
#[test]
fn opening_a_path_flipping_between_a_file_and_a_fifo_never_blocks() {
    let dir = tempdir();
    let (file, fifo, link) = (dir.join("file"), dir.join("fifo"), dir.join("model.ugr"));
    std::fs::write(&file, b"not an artifact, but a regular file").unwrap();
    mkfifo(&fifo);
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, dir) = (Arc::clone(&stop), dir.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tmp = dir.join("tmp-link");
                let target = if n.is_multiple_of(2) { &fifo } else { &file };
                std::os::unix::fs::symlink(target, &tmp).unwrap();
                std::fs::rename(&tmp, dir.join("model.ugr")).unwrap();
                n += 1;
            }
            n
        })
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut fifo_refusals, mut file_errors, mut opens) = (0u64, 0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            match Engine::open(&link) {
                Err(e) if is_not_regular(&e) => fifo_refusals += 1,
                Err(_) => file_errors += 1,
                Ok(_) => panic!("a string of text opened as an engine"),
            }
            opens += 1;
        }
        let _ = tx.send((opens, fifo_refusals, file_errors));
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    let (opens, fifo_refusals, file_errors) =
        got.expect("Engine::open blocked while the path flipped to a FIFO");
    eprintln!("{opens} opens ({fifo_refusals} FIFO refusals, {file_errors} file errors), {flips} flips");
    assert!(opens > 0 && flips > 0);
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ugr-open-file-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
