//! An artifact file opened for reading (`std`): memory-mapped on Unix, read into memory
//! elsewhere. One of ugr-core's two modules with `unsafe` code (the other is
//! [`native::kernels`](crate::native::kernels)): the `mmap`, `madvise` and `munmap` calls.
//!
//! Why a map: an engine decodes the catalog and packs the weights once, and needs nothing
//! else of the file afterwards (the ONNX graphs only when tract runs). Reading the file into
//! a buffer would hold all of it (graphs, both weight copies) at the moment the packed
//! weights are built; a private read-only map holds only the pages being read, and
//! [`ArtifactFile::release`] lets pages go once the checksum or the model fingerprint has
//! read them. Peak memory while opening is then close to what the engine keeps
//! (docs/results/memory.md).
//!
//! The rule that comes with a map: **replace an artifact by renaming a new file over it,
//! never by rewriting it in place.** A file truncated by another process while an engine
//! opens it would end the process with `SIGBUS` (as with any memory-mapped model file).
//! Once opened, an engine holds no map: the file can then be replaced or deleted freely.

use std::io::{Error, ErrorKind, Result};
use std::path::Path;
#[cfg(not(unix))]
use std::vec::Vec;

/// The bytes of an artifact file (see the module docs).
pub(crate) struct ArtifactFile {
    #[cfg(unix)]
    map: Option<unix::Map>,
    #[cfg(not(unix))]
    bytes: Vec<u8>,
}

impl ArtifactFile {
    /// Opens a regular file of at most `limit` bytes: without blocking (Unix, `O_NONBLOCK`),
    /// then checked through the descriptor opened, so what is checked is what is read.
    pub(crate) fn open(path: &Path, limit: u64) -> Result<ArtifactFile> {
        let invalid = |what: &str| Error::new(ErrorKind::InvalidInput, what);
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = options.open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(invalid("not a regular file"));
        }
        if meta.len() > limit {
            return Err(invalid("larger than Engine::MAX_ARTIFACT_BYTES"));
        }
        let len = usize::try_from(meta.len()).map_err(|_| invalid("larger than this platform's memory"))?;
        #[cfg(unix)]
        {
            let map = if len == 0 {
                None
            } else {
                Some(unix::Map::new(&file, len)?)
            };
            Ok(ArtifactFile { map })
        }
        #[cfg(not(unix))]
        {
            use std::io::Read;
            // The file may grow between the check and the read: read one byte past the limit at most.
            let mut bytes = Vec::with_capacity(len);
            file.take(limit + 1).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > limit {
                return Err(invalid("larger than Engine::MAX_ARTIFACT_BYTES"));
            }
            Ok(ArtifactFile { bytes })
        }
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        #[cfg(unix)]
        return self.map.as_ref().map_or(&[], unix::Map::bytes);
        #[cfg(not(unix))]
        return &self.bytes;
    }

    /// A hint that `part` (a sub-slice of [`bytes`](Self::bytes)) will not be read again
    /// soon: its whole pages are dropped from memory (read again from the file if they are).
    /// Nothing happens for a slice from elsewhere, or without a map.
    pub(crate) fn release(&self, part: &[u8]) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            map.release(part);
        }
        #[cfg(not(unix))]
        let _ = part;
    }
}

#[cfg(unix)]
mod unix {
    #![allow(unsafe_code)]

    use std::fs::File;
    use std::io::{Error, Result};
    use std::os::unix::io::AsRawFd;

    /// A private, read-only map of a whole file.
    pub(super) struct Map {
        ptr: *mut libc::c_void,
        len: usize,
    }

    impl Map {
        /// Maps the first `len` bytes (`len > 0`) of `file`.
        pub(super) fn new(file: &File, len: usize) -> Result<Map> {
            // SAFETY: a fresh mapping chosen by the kernel (null hint), of a descriptor that
            // is open for reading; the result is checked against MAP_FAILED before use. The
            // mapping is private and read-only, so no write through it can reach the file.
            let ptr = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(Error::last_os_error());
            }
            Ok(Map { ptr, len })
        }

        pub(super) fn bytes(&self) -> &[u8] {
            // SAFETY: `ptr` is a live mapping of `len` readable bytes until `drop`, and the
            // slice cannot outlive `self`. Nothing writes through the mapping (read-only);
            // another process may still change the file (the module's rule on replacing
            // artifacts): bytes read are then the changed ones, or SIGBUS past a truncation.
            unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
        }

        pub(super) fn release(&self, part: &[u8]) {
            let base = self.ptr as usize;
            let (start, end) = (part.as_ptr() as usize, part.as_ptr() as usize + part.len());
            if start < base || end > base + self.len {
                return;
            }
            // Whole pages inside `part` only: a neighbour's bytes stay where they are.
            let page = page_size();
            let first = (start - base).div_ceil(page) * page;
            let last = (end - base) / page * page;
            if last <= first {
                return;
            }
            // SAFETY: `[first, last)` lies inside the mapping (checked above) and starts on a
            // page boundary. MADV_DONTNEED on a private, never-written file mapping only drops
            // the pages: a later read faults them in again from the file, with the same bytes.
            // Slices handed out by `bytes` stay valid. The result is a hint; failure is ignored.
            unsafe {
                libc::madvise(
                    self.ptr.cast::<u8>().add(first).cast(),
                    last - first,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }

    fn page_size() -> usize {
        // SAFETY: sysconf with a valid name has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
    }

    impl Drop for Map {
        fn drop(&mut self) {
            // SAFETY: `ptr`/`len` are the mapping made in `new`, unmapped once here; no slice
            // from `bytes` outlives `self`.
            unsafe {
                libc::munmap(self.ptr, self.len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::format;
    use std::vec::Vec;

    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn a_mapped_file_reads_its_bytes_and_survives_releases() {
        let dir = std::env::temp_dir().join(format!("ugr-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        let data: Vec<u8> = (0..3 * 4096 + 123).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = ArtifactFile::open(&path, 1 << 20).unwrap();
        assert_eq!(f.bytes(), &data[..]);
        f.release(&f.bytes()[100..9000]);
        f.release(f.bytes());
        f.release(&data[..]); // not from the map: ignored
        assert_eq!(f.bytes(), &data[..], "released pages read back the same bytes");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(ArtifactFile::open(&path, 1 << 20).unwrap().bytes(), b"");
        std::fs::write(&path, &data).unwrap();
        let e = ArtifactFile::open(&path, 100).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
