//! The C ABI, called from Rust exactly as C calls it: results equal the engine's, batches
//! equal single calls, 8 threads equal one, and every misuse gives its status code.
//! (`tests/ffi/` runs the same kind of checks from C++ under AddressSanitizer.)

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use ugr::*;
use ugr_core::Engine;
use ugr_core::{ItemId, SearchOptions};

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr")
}

fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(ugr_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// An engine handle freed on drop.
struct Handle(*mut ugr_engine);

// SAFETY: the engine is documented as shareable between threads.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle from ugr_engine_open*, freed once.
        unsafe { ugr_engine_free(self.0) };
    }
}

fn open() -> Handle {
    let path = CString::new(model_path().to_str().unwrap()).unwrap();
    let mut engine = null_mut();
    // SAFETY: valid string and output pointer.
    let status = unsafe { ugr_engine_open(path.as_ptr(), &mut engine) };
    assert_eq!(status, ugr_status::Ok, "{}", last_error());
    assert!(!engine.is_null());
    Handle(engine)
}

fn recommend(h: &Handle, history: &[u32], opts: &ugr_options) -> Result<Vec<ugr_recommendation>, ugr_status> {
    let mut out = vec![ugr_recommendation::default(); opts.k];
    let mut n = usize::MAX;
    // SAFETY: every pointer is valid for its length.
    let status = unsafe {
        ugr_recommend(
            h.0,
            history.as_ptr(),
            history.len(),
            opts,
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        )
    };
    if status != ugr_status::Ok {
        assert_eq!(n, 0, "out_len is 0 on failure");
        assert!(!last_error().is_empty(), "a failure leaves a message");
        return Err(status);
    }
    assert!(last_error().is_empty());
    out.truncate(n);
    Ok(out)
}

/// Deterministic histories over the catalog's items, lengths 0..=24.
fn histories(items: &[ItemId], n: usize) -> Vec<Vec<u32>> {
    let mut x = 0x9e37_79b9_u64;
    (0..n)
        .map(|u| {
            (0..u % 25)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    items[(x % items.len() as u64) as usize].as_u32()
                })
                .collect()
        })
        .collect()
}

#[test]
fn results_equal_the_rust_engine() {
    let h = open();
    let engine = Engine::open(model_path()).unwrap();
    let mut info = ugr_engine_info::default();
    // SAFETY: live handle, valid output.
    assert_eq!(unsafe { ugr_engine_get_info(h.0, &mut info) }, ugr_status::Ok);
    assert_eq!(info.items, engine.catalog().len());
    assert_eq!(info.levels as usize, engine.catalog().vocab().levels());
    assert_eq!(info.has_titles, 1);

    let mut opts = ugr_options_default();
    opts.exclude_history = 1;
    let rust_opts = SearchOptions {
        exclude_history: true,
        ..SearchOptions::default()
    };
    for history in histories(engine.catalog().item_ids(), 40) {
        let got = recommend(&h, &history, &opts).unwrap();
        let ids: Vec<ItemId> = history.iter().map(|&i| ItemId::new(i)).collect();
        let want = engine.recommend(&ids, &rust_opts).unwrap();
        assert_eq!(got.len(), want.items.len());
        for (g, w) in got.iter().zip(&want.items) {
            assert_eq!(*g, ugr_recommendation::from(w));
            assert!(!history.contains(&g.item));
        }
    }
    // Titles are views into the engine.
    let first = engine.catalog().item_ids()[0];
    let (mut ptr, mut len) = (null(), 0);
    // SAFETY: live handle, valid outputs.
    let status = unsafe { ugr_engine_title(h.0, first.as_u32(), &mut ptr, &mut len) };
    assert_eq!(status, ugr_status::Ok);
    // SAFETY: a view of `len` bytes that lives as long as the engine.
    let title = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    assert_eq!(std::str::from_utf8(title).unwrap(), engine.title(first).unwrap());
}

/// A batch runs the model at another batch size, so float sums may round differently:
/// same length, scores within 1e-4 rank by rank, and any item that moved is tied there.
fn same_up_to_rounding(a: &[ugr_recommendation], b: &[ugr_recommendation], user: usize) {
    assert_eq!(a.len(), b.len(), "user {user}");
    for (x, y) in a.iter().zip(b) {
        assert!((x.score - y.score).abs() <= 1e-4, "user {user}: {x:?} vs {y:?}");
        let tied = b
            .iter()
            .any(|z| z.item == x.item && (z.score - x.score).abs() <= 1e-4);
        assert!(x.item == y.item || tied, "user {user}: {x:?} vs {y:?}");
    }
}

#[test]
fn a_batch_equals_single_calls() {
    let h = open();
    let engine = Engine::open(model_path()).unwrap();
    let hs = histories(engine.catalog().item_ids(), 70); // more than one internal chunk
    let mut items = Vec::new();
    let mut offsets = vec![5usize]; // offsets[0] need not be 0
    items.extend([0u32; 5]);
    for hist in &hs {
        items.extend_from_slice(hist);
        offsets.push(items.len());
    }
    let opts = ugr_options_default();
    let mut out = vec![ugr_recommendation::default(); hs.len() * opts.k];
    let mut lens = vec![usize::MAX; hs.len()];
    // SAFETY: every pointer is valid for its length.
    let status = unsafe {
        ugr_recommend_batch(
            h.0,
            items.as_ptr(),
            offsets.as_ptr(),
            hs.len(),
            &opts,
            out.as_mut_ptr(),
            out.len(),
            lens.as_mut_ptr(),
        )
    };
    assert_eq!(status, ugr_status::Ok, "{}", last_error());
    for (u, hist) in hs.iter().enumerate() {
        let single = recommend(&h, hist, &opts).unwrap();
        same_up_to_rounding(&out[u * opts.k..u * opts.k + lens[u]], &single, u);
    }
    // An unknown item anywhere fails the batch and names the user.
    let mut bad = items.clone();
    let at = offsets[3];
    bad[at] = u32::MAX;
    // SAFETY: as above.
    let status = unsafe {
        ugr_recommend_batch(
            h.0,
            bad.as_ptr(),
            offsets.as_ptr(),
            hs.len(),
            &opts,
            out.as_mut_ptr(),
            out.len(),
            lens.as_mut_ptr(),
        )
    };
    assert_eq!(status, ugr_status::UnknownItem);
    assert!(last_error().contains("user 3"), "{}", last_error());
    assert!(lens.iter().all(|&l| l == 0));
    // Decreasing offsets, a short output buffer, NULL offsets.
    let mut dec = offsets.clone();
    dec.swap(4, 5);
    dec[4] = dec[5] + 1;
    let call = |offsets: *const usize, cap: usize, out: &mut [ugr_recommendation], lens: &mut [usize]| {
        // SAFETY: pointers valid for the lengths given (or NULL).
        unsafe {
            ugr_recommend_batch(
                h.0,
                items.as_ptr(),
                offsets,
                hs.len(),
                &opts,
                out.as_mut_ptr(),
                cap,
                lens.as_mut_ptr(),
            )
        }
    };
    assert_eq!(
        call(dec.as_ptr(), out.len(), &mut out, &mut lens),
        ugr_status::InvalidArgument
    );
    assert_eq!(
        call(offsets.as_ptr(), out.len() - 1, &mut out, &mut lens),
        ugr_status::BufferTooSmall
    );
    assert_eq!(
        call(null(), out.len(), &mut out, &mut lens),
        ugr_status::NullParameter
    );
    // No users: a no-op even with NULL arrays.
    // SAFETY: n_users = 0 reads nothing.
    let status = unsafe { ugr_recommend_batch(h.0, null(), null(), 0, null(), null_mut(), 0, null_mut()) };
    assert_eq!(status, ugr_status::Ok);
}

#[test]
fn eight_threads_equal_one() {
    let h = open();
    let engine = Engine::open(model_path()).unwrap();
    let hs = histories(engine.catalog().item_ids(), 50);
    let opts = ugr_options_default();
    let want: Vec<_> = hs
        .iter()
        .map(|hist| recommend(&h, hist, &opts).unwrap())
        .collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (h, hs, want) = (&h, &hs, &want);
            s.spawn(move || {
                for i in 0..1000 {
                    let u = (i * 7 + t) % hs.len();
                    assert_eq!(
                        recommend(h, &hs[u], &opts).unwrap(),
                        want[u],
                        "thread {t} request {i}"
                    );
                }
            });
        }
    });
}

#[test]
fn misuse_gives_status_codes() {
    let h = open();
    let opts = ugr_options_default();
    let history = [1u32, 2, 3];
    let mut out = vec![ugr_recommendation::default(); 10];
    let mut n = 0usize;
    let rec = |engine: *const ugr_engine,
               history: *const u32,
               hlen: usize,
               opts: *const ugr_options,
               out: *mut ugr_recommendation,
               cap: usize,
               n: *mut usize| {
        // SAFETY: each case passes NULL or pointers valid for the lengths given.
        unsafe { ugr_recommend(engine, history, hlen, opts, out, cap, n) }
    };
    let (hp, op, np) = (history.as_ptr(), out.as_mut_ptr(), &mut n as *mut usize);
    use ugr_status::*;
    assert_eq!(rec(null(), hp, 3, &opts, op, 10, np), NullParameter);
    assert_eq!(rec(h.0, null(), 3, &opts, op, 10, np), NullParameter);
    assert_eq!(rec(h.0, hp, 3, &opts, null_mut(), 10, np), NullParameter);
    assert_eq!(rec(h.0, hp, 3, &opts, op, 10, null_mut()), NullParameter);
    assert_eq!(
        rec(h.0, hp, 3, null(), op, 10, np),
        Ok,
        "NULL options are the defaults"
    );
    assert_eq!(
        rec(h.0, null(), 0, &opts, op, 10, np),
        Ok,
        "(NULL, 0) is an empty history"
    );
    assert_eq!(rec(h.0, hp, 3, &opts, op, 9, np), BufferTooSmall);
    assert!(last_error().contains("k is 10"), "{}", last_error());

    let bad = |f: &dyn Fn(&mut ugr_options)| {
        let mut o = ugr_options_default();
        f(&mut o);
        recommend(&h, &history, &o).unwrap_err()
    };
    assert_eq!(bad(&|o| o.k = 0), InvalidArgument);
    assert_eq!(bad(&|o| o.beam = 0), InvalidArgument);
    assert_eq!(bad(&|o| o.beam = 1 << 20), InvalidArgument);
    assert_eq!(bad(&|o| o.pruning = 7), InvalidArgument);
    assert_eq!(bad(&|o| o.rank_by = 2), InvalidArgument);
    assert_eq!(bad(&|o| o.min_confidence = f32::NAN), InvalidArgument);
    assert_eq!(bad(&|o| o.min_confidence = 1.5), InvalidArgument);
    assert_eq!(bad(&|o| o.min_confidence = -1.0), InvalidArgument);
    assert_eq!(bad(&|o| o.min_confidence = f32::NEG_INFINITY), InvalidArgument);
    let mut zero = ugr_options_default();
    zero.min_confidence = -0.0;
    assert!(recommend(&h, &history, &zero).is_ok(), "-0.0 is in [0, 1]");
    assert_eq!(bad(&|o| (o.pruning, o.prune_margin) = (1, -1.0)), InvalidArgument);
    assert_eq!(
        bad(&|o| (o.pruning, o.prune_min_margin) = (2, 9.0)),
        InvalidArgument
    );
    assert_eq!(bad(&|o| o.beta = f32::INFINITY), InvalidArgument);

    // Unknown items, long and empty histories, K beyond the catalog.
    assert_eq!(
        recommend(&h, &[1, 4_000_000_000], &opts).unwrap_err(),
        UnknownItem
    );
    assert!(last_error().contains("4000000000"), "{}", last_error());
    assert_eq!(recommend(&h, &[], &opts).unwrap().len(), 10);
    let long: Vec<u32> = (0..100_000).map(|i| [1u32, 2, 3, 5, 8][i % 5]).collect();
    let tail = &long[long.len() - 20..];
    assert_eq!(
        recommend(&h, &long, &opts).unwrap(),
        recommend(&h, tail, &opts).unwrap()
    );
    let mut info = ugr_engine_info::default();
    // SAFETY: live handle, valid output.
    assert_eq!(unsafe { ugr_engine_get_info(h.0, &mut info) }, Ok);
    let mut big = ugr_options_default();
    big.k = info.items + 50;
    big.beam = 5;
    let all = recommend(&h, &history, &big).unwrap();
    assert_eq!(
        all.len(),
        info.items,
        "K beyond the catalog returns the whole catalog"
    );
    let mut ids: Vec<u32> = all.iter().map(|r| r.item).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), info.items);
    big.exclude_history = 1;
    assert_eq!(recommend(&h, &history, &big).unwrap().len(), info.items - 3);

    // Abstention and the hybrid ranking.
    let mut strict = ugr_options_default();
    strict.min_confidence = 1.0;
    assert!(recommend(&h, &history, &strict).unwrap().len() < 10);
    let mut hybrid = ugr_options_default();
    hybrid.rank_by = ugr_rank_by::Hybrid as u32;
    let r = recommend(&h, &history, &hybrid).unwrap();
    assert!(r.windows(2).all(|w| w[0].hybrid >= w[1].hybrid));

    // Info, titles and warm-up.
    // SAFETY: NULL arguments are checked before use.
    unsafe {
        assert_eq!(ugr_engine_get_info(null(), &mut info), NullParameter);
        assert_eq!(ugr_engine_get_info(h.0, null_mut()), NullParameter);
        let (mut p, mut l) = (null(), 0);
        assert_eq!(ugr_engine_title(h.0, u32::MAX, &mut p, &mut l), UnknownItem);
        assert!(p.is_null() && l == 0);
        assert_eq!(ugr_engine_title(null(), 1, &mut p, &mut l), NullParameter);
        assert_eq!(ugr_engine_title(h.0, 1, null_mut(), &mut l), NullParameter);
        assert_eq!(ugr_engine_title(h.0, 1, &mut p, null_mut()), NullParameter);
        assert_eq!(ugr_engine_warm(h.0, 0), InvalidArgument);
        assert_eq!(ugr_engine_warm(null(), 20), NullParameter);
        assert_eq!(ugr_engine_warm(h.0, 20), Ok);
        ugr_engine_free(null_mut());
    }
    let name = |s: u32| {
        // SAFETY: status_name accepts any number and returns a static string.
        unsafe { CStr::from_ptr(ugr_status_name(s)) }
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(UnknownItem as u32), "UGR_STATUS_UNKNOWN_ITEM");
    assert_eq!(name(12345), "UGR_STATUS_UNKNOWN");
}

#[test]
fn bad_bundles_never_open() {
    let open_bytes = |b: &[u8]| {
        let mut e = null_mut();
        // SAFETY: a valid buffer and output pointer.
        let s = unsafe { ugr_engine_open_bytes(b.as_ptr(), b.len(), &mut e) };
        if s == ugr_status::Ok {
            // SAFETY: a live handle, freed once.
            unsafe { ugr_engine_free(e) };
        } else {
            assert!(e.is_null(), "the output is NULL on failure");
        }
        s
    };
    let bytes = std::fs::read(model_path()).unwrap();
    assert_eq!(open_bytes(&bytes), ugr_status::Ok);
    assert_eq!(open_bytes(&[]), ugr_status::CorruptModel);
    for cut in [1, 8, 16, 100, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(
            open_bytes(&bytes[..cut]),
            ugr_status::CorruptModel,
            "truncated at {cut}"
        );
    }
    // Byte flips spread over the file (the header, the catalog, the graphs, the checksum).
    for at in (0..bytes.len())
        .step_by(bytes.len() / 61)
        .chain([bytes.len() - 1])
    {
        let mut b = bytes.clone();
        b[at] ^= 0x5a;
        let s = open_bytes(&b);
        assert!(
            matches!(s, ugr_status::CorruptModel | ugr_status::UnsupportedVersion),
            "flip at {at}: {s:?}"
        );
    }
    let mut e = null_mut();
    // SAFETY: NULL arguments are checked before use; the path is a valid string.
    unsafe {
        assert_eq!(
            ugr_engine_open_bytes(null(), 5, &mut e),
            ugr_status::NullParameter
        );
        assert_eq!(
            ugr_engine_open_bytes(bytes.as_ptr(), bytes.len(), null_mut()),
            ugr_status::NullParameter
        );
        assert_eq!(ugr_engine_open(null(), &mut e), ugr_status::NullParameter);
        let missing = CString::new("/nonexistent/model.ugr").unwrap();
        assert_eq!(ugr_engine_open(missing.as_ptr(), &mut e), ugr_status::Io);
        assert!(
            last_error().contains("/nonexistent/model.ugr"),
            "{}",
            last_error()
        );
        assert!(e.is_null());
        let dir = CString::new(env!("CARGO_MANIFEST_DIR")).unwrap();
        assert_eq!(ugr_engine_open(dir.as_ptr(), &mut e), ugr_status::Io);
        // A device is not read (it would read until memory runs out), and a FIFO is not
        // opened (opening it would block until a writer appears): both are IO at once.
        let zero = CString::new("/dev/zero").unwrap();
        assert_eq!(ugr_engine_open(zero.as_ptr(), &mut e), ugr_status::Io);
        assert!(last_error().contains("not a regular file"), "{}", last_error());
        #[cfg(unix)]
        {
            let fifo = std::env::temp_dir().join(format!("ugr-abi-fifo-{}", std::process::id()));
            let _ = std::fs::remove_file(&fifo);
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                let path = CString::new(fifo.to_str().unwrap()).unwrap();
                assert_eq!(ugr_engine_open(path.as_ptr(), &mut e), ugr_status::Io);
                let _ = std::fs::remove_file(&fifo);
            } else {
                eprintln!("mkfifo is not available: the FIFO case is skipped");
            }
        }
        assert!(e.is_null());
    }
}
