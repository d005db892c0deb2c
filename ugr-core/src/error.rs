//! The one error type of ugr-core.
//!
//! Every fallible operation returns [`Error`]: a `#[non_exhaustive]` enum with
//! structured fields (expected / got), never a formatted `String`. The C ABI maps
//! each variant to a stable status code, so variants are only ever added.

use alloc::boxed::Box;

use crate::ids::{ItemId, TokenId};
use crate::vocab::{MAX_CODEBOOK, MAX_LEVELS};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A boxed error from a model backend (candle, tract, a test model).
pub type BoxedModelError = Box<dyn core::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in ugr-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vocabulary was declared with no level or more than [`MAX_LEVELS`].
    #[error("SIDs have 1 to {max} levels, got {got}", max = MAX_LEVELS)]
    LevelCount {
        /// Levels requested.
        got: usize,
    },
    /// A codebook size outside `1..=MAX_CODEBOOK`.
    #[error("level {level} codebook size {size} is outside 1..={max}", max = MAX_CODEBOOK)]
    CodebookSize {
        /// Zero-based level.
        level: usize,
        /// Size requested.
        size: u32,
    },
    /// A code is not in its level's codebook.
    #[error("code {code} at level {level} is outside its codebook of {size}")]
    CodeOutOfRange {
        /// Zero-based level.
        level: usize,
        /// The offending code.
        code: u32,
        /// The codebook size at that level.
        size: u32,
    },
    /// A SID with a different number of levels than the vocabulary.
    #[error("SID has {got} levels, the vocabulary has {expected}")]
    SidLength {
        /// Levels of the vocabulary.
        expected: usize,
        /// Levels of the SID.
        got: usize,
    },
    /// A SID string such as `<a_12><b_3>` could not be parsed.
    #[error("cannot parse SID at byte {offset}: {reason}")]
    SidParse {
        /// Byte offset of the problem in the input.
        offset: usize,
        /// What was expected there.
        reason: SidParseReason,
    },
    /// A token id that is not in the vocabulary.
    #[error("token {0} is not in the vocabulary")]
    UnknownToken(TokenId),
    /// The same item was added twice to a catalog.
    #[error("item {0} appears twice in the catalog")]
    DuplicateItem(ItemId),
    /// An item id that the catalog does not hold.
    #[error("item {0} is not in the catalog")]
    UnknownItem(ItemId),
    /// A catalog without items.
    #[error("the catalog is empty")]
    EmptyCatalog,
    /// A search or build option is out of range.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// What is allowed.
        reason: &'static str,
    },
    /// A model returned a logits buffer of the wrong size.
    #[error("the model returned {got} logits, expected {expected}")]
    ModelOutput {
        /// `rows * width` as requested.
        expected: usize,
        /// Length of the returned buffer.
        got: usize,
    },
    /// A model returned NaN or `+inf`, or a row whose logits are all `-inf`.
    #[error("the model returned a NaN or +inf logit, or no finite logit, in row {row}")]
    NonFiniteLogits {
        /// Row of the model output.
        row: usize,
    },
    /// The model backend failed.
    #[error("model backend failed: {0}")]
    Model(#[source] BoxedModelError),
    /// The bytes do not start with the artifact magic.
    #[error("not a ugr artifact (bad magic bytes)")]
    BadMagic,
    /// The artifact was written by an incompatible format version.
    #[error("artifact format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The artifact is shorter than its header says.
    #[error("artifact truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the header announces.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The artifact is longer than its header says.
    #[error("artifact has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// Bytes after the announced end.
        extra: u64,
    },
    /// The stored checksum does not match the content.
    #[error("artifact checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// The payload could not be encoded or decoded.
    #[error("artifact payload: {0}")]
    Codec(#[source] postcard::Error),
    /// The payload decoded but violates an invariant (a trie edge out of range, ...).
    #[error("artifact is inconsistent: {0}")]
    Corrupt(&'static str),
    /// A file could not be read.
    #[cfg(feature = "std")]
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
}

/// Why a SID string did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SidParseReason {
    /// The string holds no token.
    #[error("empty SID")]
    Empty,
    /// Expected `<`.
    #[error("expected '<'")]
    ExpectedOpen,
    /// The level letter does not match the token's position (`a` first, then `b`, ...).
    #[error("expected level letter '{expected}'")]
    LevelLetter {
        /// The letter for this position.
        expected: char,
    },
    /// Expected `_` after the level letter.
    #[error("expected '_'")]
    ExpectedUnderscore,
    /// Expected decimal digits.
    #[error("expected a decimal code")]
    ExpectedCode,
    /// The code does not fit in 0..=65535.
    #[error("code larger than 65535")]
    CodeTooLarge,
    /// Expected `>`.
    #[error("expected '>'")]
    ExpectedClose,
    /// More than [`MAX_LEVELS`] tokens.
    #[error("more than 8 levels")]
    TooManyLevels,
}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        Error::Codec(e)
    }
}
