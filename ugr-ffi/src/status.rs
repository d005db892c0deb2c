//! Status codes: every fallible export returns one; numbers are stable and never reused.

use core::ffi::c_char;

use ugr_core::Error;

/// The result of a libugr call. The numbers are part of the ABI: they never change and
/// a retired code's number is never given to another.
///
/// On any status other than `UGR_STATUS_OK`, `ugr_last_error()` describes the failure.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ugr_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// An argument is out of range: `k` or `beam` of 0 or above 65536, a negative or NaN
    /// margin, `min_confidence` outside [0, 1], an unknown pruning or ranking kind,
    /// decreasing batch offsets, a path that is not valid UTF-8 (non-Unix only).
    InvalidArgument = 2,
    /// The output buffer is smaller than the call needs (`k` entries per user).
    BufferTooSmall = 3,
    /// The model file could not be read.
    Io = 4,
    /// The bytes are not a valid ugr artifact (bad magic, truncated, checksum mismatch,
    /// inconsistent content, unreadable model graphs, or no model section).
    CorruptModel = 5,
    /// The artifact was written by a format version this library does not read.
    UnsupportedVersion = 6,
    /// A history holds an item id that the engine's catalog does not hold.
    UnknownItem = 7,
    /// The model failed while running (a backend error or non-finite output).
    ModelFailed = 8,
    /// A Rust panic was caught at the boundary (a bug in libugr: please report it).
    /// The engine stays usable.
    Panic = 99,
}

/// A failure on its way to the C caller: the status and the message for `ugr_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ugr_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: ugr_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(name: &str) -> Failure {
        Failure::new(ugr_status::NullParameter, format!("`{name}` is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ugr_status::InvalidArgument, message)
    }

    /// An error raised while opening an artifact: everything but i/o and version means
    /// the bytes are not a usable model.
    pub(crate) fn opening(e: &Error) -> Failure {
        let status = match e {
            Error::Io(_) => ugr_status::Io,
            Error::UnsupportedVersion { .. } => ugr_status::UnsupportedVersion,
            _ => ugr_status::CorruptModel,
        };
        Failure::new(status, e.to_string())
    }

    /// An error raised while recommending.
    pub(crate) fn recommending(e: &Error) -> Failure {
        let status = match e {
            Error::UnknownItem(_) => ugr_status::UnknownItem,
            Error::InvalidOption { .. }
            | Error::SidLength { .. }
            | Error::CodeOutOfRange { .. }
            | Error::SidParse { .. } => ugr_status::InvalidArgument,
            _ => ugr_status::ModelFailed,
        };
        Failure::new(status, e.to_string())
    }
}

/// The name of a status code as a static NUL-terminated string (`"UGR_STATUS_OK"`, ...),
/// or `"UGR_STATUS_UNKNOWN"` for a number that is not a status. Never free it.
///
/// Takes the number as `uint32_t` so that any value is accepted.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_status_name(status: u32) -> *const c_char {
    let name: &'static [u8] = match status {
        0 => b"UGR_STATUS_OK\0",
        1 => b"UGR_STATUS_NULL_PARAMETER\0",
        2 => b"UGR_STATUS_INVALID_ARGUMENT\0",
        3 => b"UGR_STATUS_BUFFER_TOO_SMALL\0",
        4 => b"UGR_STATUS_IO\0",
        5 => b"UGR_STATUS_CORRUPT_MODEL\0",
        6 => b"UGR_STATUS_UNSUPPORTED_VERSION\0",
        7 => b"UGR_STATUS_UNKNOWN_ITEM\0",
        8 => b"UGR_STATUS_MODEL_FAILED\0",
        99 => b"UGR_STATUS_PANIC\0",
        _ => b"UGR_STATUS_UNKNOWN\0",
    };
    name.as_ptr().cast()
}
