//! The engine handle: open (from a path or bytes), describe, look up titles, free.

use core::ffi::c_char;
use std::ffi::CStr;

use ugr_core::Engine;
use ugr_core::{ItemId, SidModel};

use crate::boundary::{boundary, try_ref, try_slice};
use crate::status::{Failure, ugr_status};

/// An opened model bundle (`.ugr`): catalog, SID trie, exported model, calibration, titles.
///
/// Created by `ugr_engine_open` or `ugr_engine_open_bytes`, released by `ugr_engine_free`.
/// Thread safety: one engine may be used by any number of threads at once (every call takes
/// it as `const ugr_engine *` and keeps its scratch memory per call). Only
/// `ugr_engine_free` needs exclusive access: free it after every other call on it returned.
pub struct ugr_engine {
    pub(crate) inner: Engine,
    /// The titles of every catalog this engine served before its current one: title views
    /// handed out stay valid until `ugr_engine_free` (the lock also serialises replacements).
    pub(crate) retired_titles: std::sync::Mutex<Vec<std::sync::Arc<Vec<String>>>>,
}

/// Facts about an opened engine, filled by `ugr_engine_get_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ugr_engine_info {
    /// Items in the catalog (every recommendation is one of them).
    pub items: usize,
    /// SID levels (codebook tokens per item).
    pub levels: u32,
    /// History items the model reads: longer histories are truncated to the most recent ones.
    pub max_history: u32,
    /// 1 when the model has confidence tokens (learned confidence), else 0.
    pub has_learned_confidence: u8,
    /// 1 when the bundle carries a calibration map for the confidence, else 0.
    pub has_calibration: u8,
    /// 1 when the bundle carries item titles, else 0.
    pub has_titles: u8,
    /// The backend that runs the model: `UGR_BACKEND_NATIVE` (libugr's own kernels, chosen
    /// whenever the artifact has a weight section it can run) or `UGR_BACKEND_TRACT` (the
    /// ONNX graphs through tract; only in a libugr built with its `tract` feature).
    pub backend: u8,
}

/// `ugr_engine_info::backend`: libugr's own kernels.
pub const UGR_BACKEND_NATIVE: u8 = 1;
/// `ugr_engine_info::backend`: tract-onnx over the artifact's ONNX graphs.
pub const UGR_BACKEND_TRACT: u8 = 2;

/// A file path from a C string (any bytes on Unix, UTF-8 elsewhere).
fn as_path(path: &CStr) -> Result<&std::path::Path, Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(path.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        Ok(std::path::Path::new(
            path.to_str()
                .map_err(|_| Failure::invalid("`path` is not valid UTF-8"))?,
        ))
    }
}

fn open_path(path: &CStr) -> Result<Engine, Failure> {
    let path = as_path(path)?;
    Engine::open(path).map_err(|e| {
        let mut f = Failure::opening(&e);
        f.message = format!("{}: {}", path.display(), f.message);
        f
    })
}

/// Sets `*engine_out` to NULL first, so that every failure leaves it NULL.
///
/// # Safety
/// A non-NULL `engine_out` points to writable storage for one pointer.
unsafe fn reset_engine_out(engine_out: *mut *mut ugr_engine) -> Result<(), Failure> {
    if engine_out.is_null() {
        return Err(Failure::null("engine_out"));
    }
    // SAFETY: checked non-NULL; the caller provides storage for one pointer.
    unsafe { engine_out.write(std::ptr::null_mut()) };
    Ok(())
}

fn hand_out(engine: Engine, engine_out: *mut *mut ugr_engine) {
    let handle = Box::into_raw(Box::new(ugr_engine {
        inner: engine,
        retired_titles: std::sync::Mutex::new(Vec::new()),
    }));
    // SAFETY: `engine_out` was checked non-NULL by the caller of this helper and points to
    // writable storage for one pointer (the documented contract).
    unsafe { engine_out.write(handle) };
}

/// Opens the model bundle at `path` (a NUL-terminated file path).
///
/// On success, `*engine_out` receives a new engine that the caller owns and must release
/// with `ugr_engine_free`. On failure, `*engine_out` is set to NULL (when `engine_out` is
/// not NULL) and the status says why: `UGR_STATUS_IO` (missing or unreadable file),
/// `UGR_STATUS_CORRUPT_MODEL`, `UGR_STATUS_UNSUPPORTED_VERSION`, `UGR_STATUS_NULL_PARAMETER`.
/// The file is read once; it may change or disappear afterwards.
///
/// # Safety
/// `path` is NULL or a valid NUL-terminated string; `engine_out` is NULL or points to
/// writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_open(
    path: *const c_char,
    engine_out: *mut *mut ugr_engine,
) -> ugr_status {
    boundary(|| {
        // SAFETY: by contract, a non-NULL `engine_out` is writable storage for one pointer.
        unsafe { reset_engine_out(engine_out) }?;
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        // SAFETY: non-NULL and, by contract, NUL-terminated.
        let path = unsafe { CStr::from_ptr(path) };
        hand_out(open_path(path)?, engine_out);
        Ok(())
    })
}

/// Opens a model bundle from `len` bytes at `bytes` (for bundles shipped inside an app or
/// fetched over the network). The bytes are copied as needed: the caller keeps ownership
/// and may free them as soon as this returns.
///
/// Ownership and failures as for `ugr_engine_open` (no `UGR_STATUS_IO`). `(NULL, 0)` is an
/// empty buffer, hence `UGR_STATUS_CORRUPT_MODEL`.
///
/// # Safety
/// `bytes` is NULL or points to `len` readable bytes; `engine_out` is NULL or points to
/// writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_open_bytes(
    bytes: *const u8,
    len: usize,
    engine_out: *mut *mut ugr_engine,
) -> ugr_status {
    boundary(|| {
        // SAFETY: by contract, a non-NULL `engine_out` is writable storage for one pointer.
        unsafe { reset_engine_out(engine_out) }?;
        // SAFETY: by contract, a non-NULL `bytes` holds `len` readable bytes.
        let bytes = unsafe { try_slice(bytes, len, "bytes") }?;
        let engine = Engine::from_bytes(bytes).map_err(|e| Failure::opening(&e))?;
        hand_out(engine, engine_out);
        Ok(())
    })
}

/// Releases an engine and everything it holds. NULL is accepted and ignored.
///
/// # Safety
/// `engine` is NULL or a pointer returned by `ugr_engine_open*` that was not freed yet, and
/// no other thread is using it. The pointer is invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_free(engine: *mut ugr_engine) {
    if engine.is_null() {
        return;
    }
    // A panic while dropping is caught and ignored: there is no status to return it in.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: by contract, the pointer came from Box::into_raw in `hand_out` and is freed once.
        drop(unsafe { Box::from_raw(engine) });
    }));
}

/// Fills `*info_out` with facts about the engine.
///
/// # Safety
/// `engine` is NULL or a live engine; `info_out` is NULL or points to writable storage for
/// one `ugr_engine_info`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_get_info(
    engine: *const ugr_engine,
    info_out: *mut ugr_engine_info,
) -> ugr_status {
    boundary(|| {
        // SAFETY: by contract, a non-NULL engine is live.
        let engine = &unsafe { try_ref(engine, "engine") }?.inner;
        if info_out.is_null() {
            return Err(Failure::null("info_out"));
        }
        let model = engine.model();
        let info = ugr_engine_info {
            items: engine.catalog().len(),
            levels: engine.catalog().vocab().levels() as u32,
            max_history: model.contract().max_history,
            has_learned_confidence: u8::from(model.has_confidence()),
            has_calibration: u8::from(engine.has_calibration()),
            has_titles: u8::from(engine.has_titles()),
            backend: match engine.backend() {
                ugr_core::Backend::Native => UGR_BACKEND_NATIVE,
                ugr_core::Backend::Tract => UGR_BACKEND_TRACT,
            },
        };
        // SAFETY: checked non-NULL; the caller provides storage for one struct.
        unsafe { info_out.write(info) };
        Ok(())
    })
}

/// The title of `item`, as a borrowed UTF-8 view `(*title_out, *len_out)`, NOT
/// NUL-terminated (print it with `"%.*s"` or wrap it in a `std::string_view`).
///
/// The view belongs to the engine and stays valid until `ugr_engine_free`, also across
/// `ugr_engine_replace_catalog` (the titles of replaced catalogs are kept until then); never free it.
/// An item without a title (or a bundle without titles) gives `UGR_STATUS_OK` with length 0
/// (and a non-NULL pointer). An item outside the catalog gives `UGR_STATUS_UNKNOWN_ITEM`.
/// On failure the outputs are set to `(NULL, 0)` when they are not NULL.
///
/// # Safety
/// `engine` is NULL or a live engine; `title_out` and `len_out` are NULL or point to
/// writable storage for one value each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_title(
    engine: *const ugr_engine,
    item: u32,
    title_out: *mut *const c_char,
    len_out: *mut usize,
) -> ugr_status {
    boundary(|| {
        if title_out.is_null() {
            return Err(Failure::null("title_out"));
        }
        if len_out.is_null() {
            return Err(Failure::null("len_out"));
        }
        // SAFETY: both checked non-NULL; the caller provides storage for one value each.
        unsafe {
            title_out.write(std::ptr::null());
            len_out.write(0);
        }
        // SAFETY: by contract, a non-NULL engine is live.
        let engine = &unsafe { try_ref(engine, "engine") }?.inner;
        let item = ItemId::new(item);
        if engine.catalog().position(item).is_none() {
            return Err(Failure::new(
                ugr_status::UnknownItem,
                format!("item {item} is not in the catalog"),
            ));
        }
        let served = engine.served();
        let title = served.title(item).unwrap_or("");
        // SAFETY: as above; the title lives as long as the engine: in the current catalog's
        // titles, or in the engine's retired titles after a replacement.
        unsafe {
            title_out.write(title.as_ptr().cast());
            len_out.write(title.len());
        }
        Ok(())
    })
}

/// Replaces the catalog an open engine serves with the catalog (and titles) of the artifact
/// at `path`, written by `ugr catalog` from this engine's artifact (items removed, items
/// added; same weights). Atomic for concurrent callers: requests in flight finish on the old
/// catalog, requests that start after this call returns use the new one; items marked
/// unavailable stay so when the new catalog holds them. The engine's model is not reloaded.
/// An artifact of another model gives `UGR_STATUS_INVALID_ARGUMENT`; an unreadable or
/// corrupt file its `_open` status; on failure the engine keeps serving its catalog.
///
/// # Safety
/// `engine` is NULL or a live engine; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_replace_catalog(
    engine: *const ugr_engine,
    path: *const c_char,
) -> ugr_status {
    boundary(|| {
        // SAFETY: by contract, a non-NULL engine is live.
        let handle = unsafe { try_ref(engine, "engine") }?;
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        // SAFETY: non-NULL and NUL-terminated by contract.
        let path = unsafe { CStr::from_ptr(path) };
        let path = as_path(path)?;
        let mut retired = handle
            .retired_titles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = handle.inner.served();
        handle.inner.replace_catalog_from_path(path).map_err(|e| {
            let mut f = match e {
                ugr_core::Error::InvalidOption { .. } => Failure::recommending(&e),
                _ => Failure::opening(&e),
            };
            f.message = format!("{}: {}", path.display(), f.message);
            f
        })?;
        if let Some(titles) = old.titles() {
            retired.push(std::sync::Arc::clone(titles));
        }
        Ok(())
    })
}

/// Prepares the engine for single-user calls at beam width `beam` (builds the model plans
/// for that size ahead of the first request), so the first requests are not slower.
/// Optional. `UGR_STATUS_INVALID_ARGUMENT` for a beam of 0 or above 65536.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_engine_warm(engine: *const ugr_engine, beam: usize) -> ugr_status {
    boundary(|| {
        // SAFETY: by contract, a non-NULL engine is live.
        let engine = &unsafe { try_ref(engine, "engine") }?.inner;
        if beam == 0 || beam > ugr_core::search::MAX_WIDTH {
            return Err(Failure::invalid("`beam` must be in 1..=65536"));
        }
        engine.warm(beam).map_err(|e| Failure::recommending(&e))
    })
}
