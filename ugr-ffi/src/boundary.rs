//! The boundary every export goes through: pointer checks first, then the body inside
//! `catch_unwind`, with the outcome recorded for `ugr_last_error` on this thread.

use core::ffi::c_char;
use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{Failure, ugr_status};

thread_local! {
    /// The message of this thread's last libugr call ("" after a success).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

thread_local! {
    /// Whether this thread is inside a libugr call (see [`quiet_panics`]).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// libugr never writes to its host's stderr. A panic caught at the boundary (or inside
/// ugr-core, such as tract failing while running a graph) is reported through the status and
/// `ugr_last_error` only; the process's panic hook would otherwise print its message (and a
/// backtrace under `RUST_BACKTRACE=1`) before the unwind reaches `catch_unwind`. The first
/// libugr call installs, once per process, a hook that stays silent on threads inside a
/// libugr call and hands every other panic to the hook that was installed before it.
fn quiet_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INSIDE.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

fn set_last_error(message: &str) {
    // Interior NULs would cut the message short: replace them.
    let bytes: Vec<u8> = message.bytes().map(|b| if b == 0 { b'?' } else { b }).collect();
    let message = CString::new(bytes).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

fn clear_last_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if !e.as_bytes().is_empty() {
            *e = CString::default();
        }
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic payload"
    }
}

/// Runs `body`, turning a `Failure` into its status and a panic into `UGR_STATUS_PANIC`,
/// and records the message for `ugr_last_error`.
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), Failure>) -> ugr_status {
    quiet_panics();
    let outer = INSIDE.with(|i| i.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(body));
    INSIDE.with(|i| i.set(outer));
    match outcome {
        Ok(Ok(())) => {
            clear_last_error();
            ugr_status::Ok
        }
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            set_last_error(&format!("panic in libugr: {}", panic_message(payload.as_ref())));
            ugr_status::Panic
        }
    }
}

/// `Ok(&T)` for a non-NULL pointer, else a `NullParameter` failure naming it.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid, initialised `T` for the returned lifetime.
pub(crate) unsafe fn try_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees that a non-NULL pointer is valid for 'a.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// `Ok(true)` when `(ptr, len)` names a non-empty array that may be turned into a slice,
/// `Ok(false)` for `(_, 0)` (the empty slice, NULL allowed); NULL with a length, or a byte
/// size beyond `isize::MAX`, fail.
fn check_array<T>(is_null: bool, len: usize, name: &str) -> Result<bool, Failure> {
    if len == 0 {
        return Ok(false);
    }
    if is_null {
        return Err(Failure::null(name));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Failure::invalid(format!("`{name}` length {len} is too large")));
    }
    Ok(true)
}

/// A slice from a C `(pointer, length)` pair; `(NULL, 0)` is the empty slice.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` initialised values valid for the returned lifetime.
pub(crate) unsafe fn try_slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if !check_array::<T>(ptr.is_null(), len, name)? {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` valid values; the byte size fits isize.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A mutable slice from a C `(pointer, length)` pair; `(NULL, 0)` is the empty slice.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` writable values, not aliased, for the returned lifetime.
pub(crate) unsafe fn try_slice_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    name: &str,
) -> Result<&'a mut [T], Failure> {
    if !check_array::<T>(ptr.is_null(), len, name)? {
        return Ok(&mut []);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` writable values; the size fits isize.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Item ids from a C array.
pub(crate) fn as_items(ids: &[u32]) -> Vec<ugr_core::ItemId> {
    ids.iter().map(|&i| ugr_core::ItemId::new(i)).collect()
}

/// The largest `struct_size` libugr accepts (a bound on what it reads from a caller's struct).
const MAX_STRUCT_SIZE: usize = 4096;

/// Reads an extensible struct (`ugr_options`, `ugr_constraints`): a `size_t struct_size`
/// first, then fields that are only ever appended. The rule (that of Linux's extensible
/// system calls, `openat2` and `clone3`):
/// - `struct_size` below `min` (the first sized version) is `INVALID_ARGUMENT`;
/// - libugr reads `min(struct_size, its own size)` bytes; fields it knows beyond the
///   caller's size keep their defaults (a caller built against an older header works);
/// - bytes beyond libugr's own size must be zero, the default of every field added later
///   (a newer caller that asks for a feature this libugr lacks is refused, not ignored).
///
/// # Safety
/// `ptr` is non-NULL and points to at least `struct_size` readable bytes; `T` is
/// plain old data (integers, floats, raw pointers: every bit pattern valid).
pub(crate) unsafe fn read_sized<T: Copy>(
    ptr: *const T,
    default: T,
    min: usize,
    name: &str,
) -> Result<T, Failure> {
    // SAFETY: by contract the struct starts with a readable size_t (it may be unaligned
    // when the caller packed it: read it byte-wise).
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    let ours = size_of::<T>();
    if size < min || size > MAX_STRUCT_SIZE {
        return Err(Failure::invalid(format!(
            "`{name}.struct_size` is {size}: set it to sizeof({name}) (start from {name}_default())"
        )));
    }
    if size > ours {
        // SAFETY: the caller's struct holds `size` readable bytes.
        let tail = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().add(ours), size - ours) };
        if tail.iter().any(|&b| b != 0) {
            return Err(Failure::invalid(format!(
                "`{name}` sets fields this libugr does not know (struct_size {size} > {ours}): upgrade libugr"
            )));
        }
    }
    let mut value = default;
    // SAFETY: `value` is a live T of `ours` bytes, the source holds at least `min(size, ours)`
    // readable bytes, the two do not overlap, and any bit pattern is a valid T.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut value).cast::<u8>(), size.min(ours));
    }
    Ok(value)
}

/// The message of the last failed libugr call on this thread, as a NUL-terminated string;
/// `""` when that call succeeded or no call was made yet. Never NULL.
///
/// Lifetime: the string belongs to libugr and stays valid until the next libugr call on the
/// same thread (any export except `ugr_last_error`, `ugr_version` and `ugr_status_name`);
/// copy it to keep it. Never free it. Each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: ugr_last_error returns a valid NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(ugr_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = boundary(|| panic!("boom {}", 7));
        assert_eq!(status, ugr_status::Panic);
        assert_eq!(last(), "panic in libugr: boom 7");
        assert_eq!(boundary(|| Ok(())), ugr_status::Ok);
        assert_eq!(last(), "");
    }

    /// Run in a child process (a fresh panic hook, stderr captured): a caught panic leaves
    /// stderr empty even with `RUST_BACKTRACE=1`, and a panic outside libugr still reaches
    /// the previous hook.
    #[test]
    fn a_caught_panic_writes_nothing_to_stderr() {
        const NAME: &str = "boundary::tests::a_caught_panic_writes_nothing_to_stderr";
        if std::env::var_os("UGR_PANIC_CHILD").is_some() {
            assert_eq!(boundary(|| panic!("inside-libugr")), ugr_status::Panic);
            assert_eq!(last(), "panic in libugr: inside-libugr");
            let outside = std::thread::spawn(|| panic!("outside-libugr")).join();
            assert!(outside.is_err());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("UGR_PANIC_CHILD", "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed: {stderr}");
        assert!(
            !stderr.contains("inside-libugr"),
            "libugr wrote to stderr: {stderr}"
        );
        assert!(
            stderr.contains("outside-libugr"),
            "the previous hook was lost: {stderr}"
        );
    }

    #[test]
    fn failures_keep_their_message_without_interior_nuls() {
        let status = boundary(|| Err(Failure::invalid("bad\0value")));
        assert_eq!(status, ugr_status::InvalidArgument);
        assert_eq!(last(), "bad?value");
    }

    #[test]
    fn null_and_empty_slices() {
        // SAFETY: NULL with length 0 is the documented empty slice.
        let s = unsafe { try_slice::<u32>(std::ptr::null(), 0, "x") }.unwrap();
        assert!(s.is_empty());
        // SAFETY: NULL with a length is rejected before any read.
        let e = unsafe { try_slice::<u32>(std::ptr::null(), 3, "x") }.unwrap_err();
        assert_eq!(e.status, ugr_status::NullParameter);
        let dangling = std::ptr::NonNull::<u32>::dangling().as_ptr();
        // SAFETY: a length whose byte size overflows is rejected before any read.
        let e = unsafe { try_slice::<u32>(dangling, usize::MAX / 2, "x") }.unwrap_err();
        assert_eq!(e.status, ugr_status::InvalidArgument);
    }
}
