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

/// Every status, for lookups by number.
const STATUSES: [ugr_status; 10] = [
    ugr_status::Ok,
    ugr_status::NullParameter,
    ugr_status::InvalidArgument,
    ugr_status::BufferTooSmall,
    ugr_status::Io,
    ugr_status::CorruptModel,
    ugr_status::UnsupportedVersion,
    ugr_status::UnknownItem,
    ugr_status::ModelFailed,
    ugr_status::Panic,
];

impl ugr_status {
    /// The status's name (`"UGR_STATUS_UNKNOWN_ITEM"`, ...): what `ugr_status_name` returns,
    /// and what the Python package's exceptions carry.
    pub fn name(self) -> &'static str {
        let bytes = self.name_nul();
        // Every name is ASCII; the NUL is not part of the `str`.
        core::str::from_utf8(&bytes[..bytes.len() - 1]).unwrap_or("UGR_STATUS_UNKNOWN")
    }

    fn name_nul(self) -> &'static [u8] {
        match self {
            ugr_status::Ok => b"UGR_STATUS_OK\0",
            ugr_status::NullParameter => b"UGR_STATUS_NULL_PARAMETER\0",
            ugr_status::InvalidArgument => b"UGR_STATUS_INVALID_ARGUMENT\0",
            ugr_status::BufferTooSmall => b"UGR_STATUS_BUFFER_TOO_SMALL\0",
            ugr_status::Io => b"UGR_STATUS_IO\0",
            ugr_status::CorruptModel => b"UGR_STATUS_CORRUPT_MODEL\0",
            ugr_status::UnsupportedVersion => b"UGR_STATUS_UNSUPPORTED_VERSION\0",
            ugr_status::UnknownItem => b"UGR_STATUS_UNKNOWN_ITEM\0",
            ugr_status::ModelFailed => b"UGR_STATUS_MODEL_FAILED\0",
            ugr_status::Panic => b"UGR_STATUS_PANIC\0",
        }
    }

    /// The status of an error raised while opening an artifact: everything but i/o and
    /// version means the bytes are not a usable model.
    pub fn of_opening(e: &Error) -> ugr_status {
        match e {
            Error::Io(_) => ugr_status::Io,
            Error::UnsupportedVersion { .. } => ugr_status::UnsupportedVersion,
            _ => ugr_status::CorruptModel,
        }
    }

    /// The status of an error raised while recommending or changing availability.
    pub fn of_recommending(e: &Error) -> ugr_status {
        match e {
            Error::UnknownItem(_) => ugr_status::UnknownItem,
            Error::InvalidOption { .. }
            | Error::SidLength { .. }
            | Error::CodeOutOfRange { .. }
            | Error::SidParse { .. } => ugr_status::InvalidArgument,
            _ => ugr_status::ModelFailed,
        }
    }
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
        Failure::new(ugr_status::of_opening(e), e.to_string())
    }

    /// An error raised while recommending.
    pub(crate) fn recommending(e: &Error) -> Failure {
        Failure::new(ugr_status::of_recommending(e), e.to_string())
    }
}

/// The name of a status code as a static NUL-terminated string (`"UGR_STATUS_OK"`, ...),
/// or `"UGR_STATUS_UNKNOWN"` for a number that is not a status. Never free it.
///
/// Takes the number as `uint32_t` so that any value is accepted.
#[unsafe(no_mangle)]
pub extern "C" fn ugr_status_name(status: u32) -> *const c_char {
    let name: &'static [u8] = match STATUSES.iter().find(|s| **s as u32 == status) {
        Some(s) => s.name_nul(),
        None => b"UGR_STATUS_UNKNOWN\0",
    };
    name.as_ptr().cast()
}
