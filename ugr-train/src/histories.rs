//! A batch of user histories on disk, for batch scoring outside the trainer (the Python
//! package, Ray, Spark) and `ugr bench batch`: three `.npy` files in one directory, the
//! layout of an Arrow list array, which numpy and pyarrow read without copying.
//!
//! - `users.npy`: u32 `[rows]`, the dataset's user number of each row;
//! - `values.npy`: u32 `[n]`, every history's item ids, most recent last, row after row;
//! - `offsets.npy`: u64 `[rows + 1]`, row `r` is `values[offsets[r]..offsets[r + 1]]`.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use ugr_core::ItemId;

use crate::data::Example;

/// Users file name.
pub const USERS_FILE: &str = "users.npy";
/// Values file name.
pub const VALUES_FILE: &str = "values.npy";
/// Offsets file name.
pub const OFFSETS_FILE: &str = "offsets.npy";

/// Histories in the flat layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histories {
    /// User of each row.
    pub users: Vec<u32>,
    /// Item ids, row after row.
    pub values: Vec<ItemId>,
    /// Row boundaries (`rows + 1`).
    pub offsets: Vec<u64>,
}

impl Histories {
    /// The histories of `examples`, in order.
    pub fn from_examples(examples: &[Example]) -> Histories {
        let mut h = Histories {
            offsets: vec![0],
            ..Histories::default()
        };
        for e in examples {
            h.users.push(e.user);
            h.values.extend_from_slice(&e.history);
            h.offsets.push(h.values.len() as u64);
        }
        h
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Row `r`'s history.
    pub fn row(&self, r: usize) -> &[ItemId] {
        &self.values[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }

    /// Writes the three files into `dir` (created when missing).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = |name: &str| -> Result<std::fs::File> {
            let path = dir.join(name);
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))
        };
        ndarray::Array1::from(self.users.clone()).write_npy(file(USERS_FILE)?)?;
        ndarray::Array1::from_iter(self.values.iter().map(|i| i.as_u32())).write_npy(file(VALUES_FILE)?)?;
        ndarray::Array1::from(self.offsets.clone()).write_npy(file(OFFSETS_FILE)?)?;
        Ok(())
    }

    /// Reads what [`Histories::write`] wrote, checking the offsets.
    pub fn read(dir: &Path) -> Result<Histories> {
        // The whole file first, so that a header claiming more than the file holds is refused
        // before anything is allocated for it.
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            crate::data::embeddings::check_npy_sizes(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(bytes)
        };
        let users = ndarray::Array1::<u32>::read_npy(&read(USERS_FILE)?[..]).context(USERS_FILE)?;
        let values = ndarray::Array1::<u32>::read_npy(&read(VALUES_FILE)?[..]).context(VALUES_FILE)?;
        let offsets = ndarray::Array1::<u64>::read_npy(&read(OFFSETS_FILE)?[..]).context(OFFSETS_FILE)?;
        let h = Histories {
            users: users.to_vec(),
            values: values.iter().map(|&v| ItemId::new(v)).collect(),
            offsets: offsets.to_vec(),
        };
        ensure!(
            h.offsets.len() == h.users.len() + 1
                && h.offsets.first() == Some(&0)
                && h.offsets.windows(2).all(|w| w[0] <= w[1])
                && h.offsets.last() == Some(&(h.values.len() as u64)),
            "{}: offsets must rise from 0 to the number of values, one per user plus one",
            dir.display()
        );
        Ok(h)
    }
}
