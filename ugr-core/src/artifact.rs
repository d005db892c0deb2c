//! The versioned, checked artifact: everything an engine needs in one byte string.
//!
//! # Layout (little-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `UGRMODEL` |
//! | 8..12 | format version (`u32`, currently 1) |
//! | 12..16 | flags (`u32`, must be 0) |
//! | 16..24 | payload length in bytes (`u64`) |
//! | 24..28 | CRC-32 (IEEE) of bytes 0..24 followed by the payload |
//! | 28.. | payload: the [`Bundle`] in postcard encoding |
//!
//! Reading checks, in order: magic, version, length (truncated or trailing bytes),
//! checksum, postcard decoding, then every invariant of the catalog, trie and
//! calibration map. Any failure is a typed [`Error`]; no input makes the reader panic
//! (the test suite flips every byte and truncates at every length of a small artifact).
//! A new format version is a new number; readers refuse versions they do not know.
//!
//! # Borrowed reading
//!
//! [`BundleRef::from_bytes`] decodes the same bytes without copying the model section: the
//! graphs and the weight section stay slices of the input ([`ModelSectionRef`]); only the
//! catalog, the calibration map and the titles are decoded into owned values. This is how
//! an engine opens an artifact (from a memory map on `std`, from the caller's buffer
//! otherwise), so that opening never holds a second copy of the file.
//! [`Bundle::from_bytes`] is the same reader followed by one copy of the section.
//!
//! ```
//! use ugr_core::{Bundle, CatalogBuilder, Error, ItemId, Sid, SidVocab};
//! let mut b = CatalogBuilder::new(SidVocab::new(&[4, 4])?);
//! b.push(ItemId::new(0), Sid::new(&[1, 2])?)?;
//! let bundle = Bundle::new(b.build()?);
//! let bytes = bundle.to_bytes()?;
//! assert_eq!(Bundle::from_bytes(&bytes)?, bundle);
//! let mut bad = bytes.clone();
//! bad[30] ^= 0x40;
//! assert!(matches!(Bundle::from_bytes(&bad), Err(Error::ChecksumMismatch { .. })));
//! assert!(matches!(Bundle::from_bytes(&bytes[..20]), Err(Error::Truncated { .. })));
//! # Ok::<(), ugr_core::Error>(())
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::confidence::Calibration;
use crate::error::{Error, Result};

/// First 8 bytes of every artifact.
pub const MAGIC: [u8; 8] = *b"UGRMODEL";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 28;

/// The content of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// Vocabulary, items, SIDs and trie.
    pub catalog: Catalog,
    /// Monotone map from raw to calibrated confidence.
    pub calibration: Option<Calibration>,
    /// Item titles, parallel to [`Catalog::item_ids`] (empty strings where unknown).
    pub titles: Option<Vec<String>>,
    /// The exported model, when the artifact carries one.
    pub model: Option<ModelSection>,
}

/// An exported model inside an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSection {
    /// The model configuration as JSON (its schema belongs to the backend).
    pub config_json: String,
    /// Named graphs (ONNX bytes, for example).
    pub graphs: Vec<Blob>,
}

/// Named bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// Name, unique within its section.
    pub name: String,
    /// Content.
    pub bytes: Vec<u8>,
}

/// An artifact's content with its model section borrowed from the artifact's bytes (see
/// the module docs). Same encoding as [`Bundle`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BundleRef<'a> {
    /// Vocabulary, items, SIDs and trie.
    pub catalog: Catalog,
    /// Monotone map from raw to calibrated confidence.
    pub calibration: Option<Calibration>,
    /// Item titles, parallel to [`Catalog::item_ids`].
    pub titles: Option<Vec<String>>,
    /// The exported model, borrowed.
    #[serde(borrow)]
    pub model: Option<ModelSectionRef<'a>>,
}

/// A [`ModelSection`] whose strings and bytes are borrowed. Same encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSectionRef<'a> {
    /// The model configuration as JSON.
    pub config_json: &'a str,
    /// Named graphs and blobs.
    #[serde(borrow)]
    pub graphs: Vec<BlobRef<'a>>,
}

/// A [`Blob`] borrowed. Same encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef<'a> {
    /// Name.
    pub name: &'a str,
    /// Content.
    pub bytes: &'a [u8],
}

impl ModelSection {
    /// The section borrowed (what the backends read).
    pub fn view(&self) -> ModelSectionRef<'_> {
        ModelSectionRef {
            config_json: &self.config_json,
            graphs: self
                .graphs
                .iter()
                .map(|b| BlobRef {
                    name: &b.name,
                    bytes: &b.bytes,
                })
                .collect(),
        }
    }
}

impl ModelSectionRef<'_> {
    /// The blob named `name`.
    pub fn blob(&self, name: &str) -> Option<&[u8]> {
        self.graphs.iter().find(|b| b.name == name).map(|b| b.bytes)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> ModelSection {
        ModelSection {
            config_json: self.config_json.into(),
            graphs: self
                .graphs
                .iter()
                .map(|b| Blob {
                    name: b.name.into(),
                    bytes: b.bytes.to_vec(),
                })
                .collect(),
        }
    }
}

impl<'a> BundleRef<'a> {
    /// Reads and fully validates an artifact, borrowing its model section from `bytes`.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<BundleRef<'a>> {
        BundleRef::from_bytes_releasing(bytes, &mut |_| {})
    }

    /// As [`from_bytes`](Self::from_bytes); `done` is told each range of `bytes` (at most
    /// [`CHECKSUM_CHUNK`] long) once the checksum has read it, so that a memory-mapped
    /// caller can let those pages go before the next are read.
    pub fn from_bytes_releasing(
        bytes: &'a [u8],
        done: &mut dyn FnMut(core::ops::Range<usize>),
    ) -> Result<BundleRef<'a>> {
        let header = read_header(bytes)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&bytes[..24]);
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            let end = bytes.len().min(at + CHECKSUM_CHUNK);
            h.update(&bytes[at..end]);
            done(at..end);
            at = end;
        }
        let computed = h.finalize();
        if computed != header.checksum {
            return Err(Error::ChecksumMismatch {
                stored: header.checksum,
                computed,
            });
        }
        let (bundle, rest): (BundleRef<'a>, &[u8]) = postcard::take_from_bytes(&bytes[HEADER_LEN..])?;
        if !rest.is_empty() {
            return Err(Error::Corrupt("payload has bytes after the bundle"));
        }
        bundle.validate()?;
        Ok(bundle)
    }

    /// Checks the invariants of the decoded parts (as [`Bundle::validate`]).
    fn validate(&self) -> Result<()> {
        validate_parts(&self.catalog, self.calibration.as_ref(), self.titles.as_deref())
    }

    /// An owned bundle (copies the model section).
    pub fn into_owned(self) -> Bundle {
        Bundle {
            model: self.model.as_ref().map(ModelSectionRef::to_owned),
            catalog: self.catalog,
            calibration: self.calibration,
            titles: self.titles,
        }
    }
}

/// Bytes the checksum reads between two calls of the `done` hint of
/// [`BundleRef::from_bytes_releasing`].
pub const CHECKSUM_CHUNK: usize = 1 << 22;

fn validate_parts(
    catalog: &Catalog,
    calibration: Option<&Calibration>,
    titles: Option<&[String]>,
) -> Result<()> {
    catalog.validate()?;
    if let Some(c) = calibration {
        c.validate().map_err(|_| Error::Corrupt("calibration map"))?;
    }
    if titles.is_some_and(|t| t.len() != catalog.len()) {
        return Err(Error::Corrupt("titles do not match the catalog"));
    }
    Ok(())
}

/// The fixed-size header of an artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Payload length.
    pub payload_len: u64,
    /// Stored CRC-32.
    pub checksum: u32,
}

impl Bundle {
    /// A bundle holding only a catalog.
    pub fn new(catalog: Catalog) -> Self {
        Bundle {
            catalog,
            calibration: None,
            titles: None,
            model: None,
        }
    }

    /// Checks the bundle's invariants (done by [`from_bytes`](Self::from_bytes) and
    /// [`to_bytes`](Self::to_bytes)).
    pub fn validate(&self) -> Result<()> {
        validate_parts(&self.catalog, self.calibration.as_ref(), self.titles.as_deref())
    }

    /// Serialises to the artifact layout (header + checksum + postcard payload).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let payload = postcard::to_allocvec(self)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let crc = checksum(&out, &payload);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Reads and fully validates an artifact ([`BundleRef::from_bytes`], then one copy of
    /// the model section).
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle> {
        Ok(BundleRef::from_bytes(bytes)?.into_owned())
    }
}

/// Reads and checks the header: magic, version, flags and length against `bytes.len()`.
pub fn read_header(bytes: &[u8]) -> Result<Header> {
    let available = bytes.len() as u64;
    let field = |at: usize, len: usize| bytes.get(at..at + len);
    match field(0, 8) {
        Some(m) if m == MAGIC => {}
        Some(_) => return Err(Error::BadMagic),
        None if MAGIC.starts_with(bytes) => {
            return Err(Error::Truncated {
                needed: HEADER_LEN as u64,
                available,
            });
        }
        None => return Err(Error::BadMagic),
    }
    let u32_at = |at| field(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let truncated = Error::Truncated {
        needed: HEADER_LEN as u64,
        available,
    };
    let version = u32_at(8).ok_or(truncated)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let flags = u32_at(12).ok_or(Error::Truncated {
        needed: HEADER_LEN as u64,
        available,
    })?;
    if flags != 0 {
        return Err(Error::Corrupt("unknown header flags"));
    }
    let len = field(16, 8).ok_or(Error::Truncated {
        needed: HEADER_LEN as u64,
        available,
    })?;
    let payload_len = u64::from_le_bytes([len[0], len[1], len[2], len[3], len[4], len[5], len[6], len[7]]);
    let checksum = u32_at(24).ok_or(Error::Truncated {
        needed: HEADER_LEN as u64,
        available,
    })?;
    let needed = (HEADER_LEN as u64).saturating_add(payload_len);
    if available < needed {
        return Err(Error::Truncated { needed, available });
    }
    if available > needed {
        return Err(Error::TrailingBytes {
            extra: available - needed,
        });
    }
    Ok(Header {
        version,
        payload_len,
        checksum,
    })
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..24]);
    h.update(payload);
    h.finalize()
}
