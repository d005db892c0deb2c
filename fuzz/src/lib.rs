//! Helpers shared by the fuzz targets: a cursor over the fuzzer's bytes, the artifact
//! framing (header + checksum around any payload) and a scratch directory per process.

use std::path::PathBuf;

use ugr_core::artifact::{FORMAT_VERSION, MAGIC};

/// Reads small values off the front of the fuzzer's input; exhausted input reads as zeros.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    /// The next byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        let (first, rest) = self.bytes.split_first().unwrap_or((&0, &[]));
        self.bytes = rest;
        *first
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next `f32` from its bits (any value: NaN, infinities, subnormals).
    pub fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }

    /// Takes up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    /// A length-prefixed chunk (one byte of length, times 16).
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8()) * 16;
        self.take(n)
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    /// Whether the input is exhausted.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// `payload` framed as a version-1 artifact with a correct length and checksum, so the
/// decoder gets past the header to postcard decoding and validation.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A scratch directory of this process (emptied on every call).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ugr-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}
