//! The WebAssembly exports: the crate's only `unsafe` (raw pointers from JavaScript and
//! `#[no_mangle]`). JavaScript allocates input buffers in the module's memory with
//! `ugr_alloc`, calls a function, reads the UTF-8 output (JSON, or the error message when
//! the call returned a negative number) from `ugr_output_ptr()` / its returned length, and
//! frees its buffers with `ugr_free`.
//!
//! | export | returns |
//! |---|---|
//! | `ugr_alloc(len) -> ptr`, `ugr_free(ptr, len)` | memory for inputs |
//! | `ugr_open(ptr, len) -> handle` | > 0, or `-(error length)` |
//! | `ugr_recommend(handle, hist_ptr, hist_len, k, beam, exclude) -> len` | JSON length, or `-(error length)` |
//! | `ugr_recommend_rules(handle, hist_ptr, hist_len, k, beam, exclude, use_allow, allow_ptr, allow_len, deny_ptr, deny_len, prefix_ptr, prefix_len) -> len` | the same under business rules (prefixes: UTF-8 SID prefixes separated by spaces) |
//! | `ugr_set_available(handle, items_ptr, items_len, available) -> n` | items that changed state, or `-(error length)` |
//! | `ugr_items(handle) -> len` | the catalog's item ids as a JSON array |
//! | `ugr_close(handle)` | |
//! | `ugr_output_ptr() -> ptr` | the last output |
#![allow(unsafe_code)] // the export surface: raw pointers from JavaScript and `#[no_mangle]`

use std::cell::RefCell;

use crate::{Rules, Session};

thread_local! {
    static SESSION: RefCell<Session> = RefCell::new(Session::default());
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Stores `result`'s text as the output; its length, negated for an error.
fn publish(result: Result<String, String>) -> i32 {
    let (text, sign) = match result {
        Ok(t) => (t, 1),
        Err(e) => (e, -1),
    };
    let len = text.len().min(i32::MAX as usize) as i32;
    OUTPUT.with(|o| *o.borrow_mut() = text.into_bytes());
    sign * len
}

/// # Safety
/// `ptr..ptr + len` must be readable (a buffer from [`ugr_alloc`] that JavaScript filled).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// A buffer of `len` bytes for JavaScript to fill (null when `len` is 0).
#[unsafe(no_mangle)]
pub extern "C" fn ugr_alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::null_mut();
    }
    let mut v = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(len));
    v.as_mut_ptr()
}

/// Frees a buffer from [`ugr_alloc`].
///
/// # Safety
/// `ptr` and `len` must be exactly those of one earlier `ugr_alloc` call, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_free(ptr: *mut u8, len: usize) {
    if len == 0 || ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` came from `Vec::with_capacity(len)` in `ugr_alloc` and is freed once.
    drop(unsafe { Vec::from_raw_parts(ptr, 0, len) });
}

/// Opens the artifact in `ptr..ptr + len`.
///
/// # Safety
/// `ptr..ptr + len` must be readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_open(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    let artifact = unsafe { bytes(ptr, len) };
    match SESSION.with(|s| s.borrow_mut().open(artifact)) {
        Ok(h) => h as i32,
        Err(e) => publish(Err(e)),
    }
}

/// Recommends `k` items for the `hist_len` item ids (u32, most recent last) at `hist_ptr`.
///
/// # Safety
/// `hist_ptr` must point to `hist_len` readable, 4-byte aligned `u32`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_recommend(
    handle: u32,
    hist_ptr: *const u32,
    hist_len: usize,
    k: u32,
    beam: u32,
    exclude: u32,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let history = unsafe { ids(hist_ptr, hist_len) };
    publish(SESSION.with(|s| s.borrow().recommend(handle, history, k, beam, exclude != 0)))
}

/// # Safety
/// `ptr` must point to `len` readable, 4-byte aligned `u32`s (or be null with `len` 0).
unsafe fn ids<'a>(ptr: *const u32, len: usize) -> &'a [u32] {
    if len == 0 || ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller guarantees `len` aligned u32s at `ptr`.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// [`ugr_recommend`] under business rules: `use_allow` non-zero restricts to the
/// `allow_len` ids at `allow_ptr`; the `deny_len` ids at `deny_ptr` are never returned;
/// `prefix_ptr..+prefix_len` is UTF-8 text of SID prefixes separated by spaces or commas.
///
/// # Safety
/// Each pointer must point to its length of readable values (`u32`s 4-byte aligned), or be
/// null with length 0.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ugr_recommend_rules(
    handle: u32,
    hist_ptr: *const u32,
    hist_len: usize,
    k: u32,
    beam: u32,
    exclude: u32,
    use_allow: u32,
    allow_ptr: *const u32,
    allow_len: usize,
    deny_ptr: *const u32,
    deny_len: usize,
    prefix_ptr: *const u8,
    prefix_len: usize,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let (history, allow, deny, prefixes) = unsafe {
        (
            ids(hist_ptr, hist_len),
            ids(allow_ptr, allow_len),
            ids(deny_ptr, deny_len),
            bytes(prefix_ptr, prefix_len),
        )
    };
    let Ok(prefixes) = std::str::from_utf8(prefixes) else {
        return publish(Err("the prefixes are not UTF-8".into()));
    };
    let rules = Rules {
        allow: (use_allow != 0).then_some(allow),
        deny,
        prefixes,
    };
    publish(SESSION.with(|s| {
        s.borrow()
            .recommend_with(handle, history, k, beam, exclude != 0, &rules)
    }))
}

/// Marks the `items_len` ids at `items_ptr` available (`available` non-zero) or not, as one
/// batch. Returns how many changed state, or `-(error length)` (nothing changed then).
///
/// # Safety
/// `items_ptr` must point to `items_len` readable, 4-byte aligned `u32`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ugr_set_available(
    handle: u32,
    items_ptr: *const u32,
    items_len: usize,
    available: u32,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let items = unsafe { ids(items_ptr, items_len) };
    match SESSION.with(|s| s.borrow().set_available(handle, items, available != 0)) {
        Ok(n) => n.min(i32::MAX as u32) as i32,
        Err(e) => publish(Err(e)),
    }
}

/// The item ids of a model's catalog (JSON array).
#[unsafe(no_mangle)]
pub extern "C" fn ugr_items(handle: u32) -> i32 {
    publish(SESSION.with(|s| s.borrow().items(handle)))
}

/// Closes a handle.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_close(handle: u32) {
    SESSION.with(|s| s.borrow_mut().close(handle));
}

/// The last output's bytes (valid until the next call).
#[unsafe(no_mangle)]
pub extern "C" fn ugr_output_ptr() -> *const u8 {
    OUTPUT.with(|o| o.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(len: i32) -> String {
        let n = len.unsigned_abs() as usize;
        // SAFETY: the output buffer holds the last published text of `n` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(ugr_output_ptr(), n) };
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The pointer protocol as JavaScript drives it (run under Miri in CI).
    #[test]
    fn buffers_and_errors_through_raw_pointers() {
        let junk = b"not an artifact";
        let p = ugr_alloc(junk.len());
        // SAFETY: `p` has `junk.len()` writable bytes from `ugr_alloc`.
        unsafe { std::ptr::copy_nonoverlapping(junk.as_ptr(), p, junk.len()) };
        // SAFETY: `p..p + len` was filled above.
        let h = unsafe { ugr_open(p, junk.len()) };
        assert!(h < 0);
        assert!(!output(h).is_empty());
        // SAFETY: `p` and the length are those of the `ugr_alloc` call.
        unsafe { ugr_free(p, junk.len()) };
        let hist = [1u32, 2, 3];
        // SAFETY: `hist` holds 3 aligned u32s.
        let len = unsafe { ugr_recommend(7, hist.as_ptr(), hist.len(), 10, 20, 0) };
        assert!(len < 0);
        assert!(output(len).contains("no open model with handle 7"));
        // SAFETY: null and zero lengths are accepted.
        unsafe {
            assert!(ugr_open(std::ptr::null(), 0) < 0);
            assert!(ugr_recommend(1, std::ptr::null(), 0, 10, 20, 0) < 0);
            ugr_free(std::ptr::null_mut(), 0);
        }
        // SAFETY: null and zero lengths are accepted.
        unsafe {
            let len = ugr_recommend_rules(
                7,
                std::ptr::null(),
                0,
                10,
                20,
                0,
                1,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
            );
            assert!(output(len).contains("no open model"));
            assert!(ugr_set_available(7, std::ptr::null(), 0, 0) < 0);
            let bad = [0xffu8, 0xfe];
            let len = ugr_recommend_rules(
                7,
                std::ptr::null(),
                0,
                10,
                20,
                0,
                0,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
                bad.as_ptr(),
                2,
            );
            assert!(output(len).contains("UTF-8"));
        }
        assert!(ugr_alloc(0).is_null());
        assert!(ugr_items(3) < 0);
        ugr_close(3);
    }
}
