//! Item embeddings from files (`ugr sid build --embeddings`): `.npy` (2-D float32 or
//! float64) or CSV (`item_id,v1,v2,...`). Collaborative embeddings, learned from the
//! interactions, are in the trainer (`ugr_train::sid::collaborative`).

use std::path::{Path, PathBuf};

use ugr_core::ItemId;

/// Items with one vector each.
#[derive(Clone, Debug)]
pub struct Embeddings {
    /// Item ids, one per row, in increasing order.
    pub items: Vec<ItemId>,
    /// Dimensions per item.
    pub dim: usize,
    /// `items.len() x dim`, row-major.
    pub data: Vec<f32>,
}

/// Why embeddings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The `.npy` file is not a 2-D float32 or float64 array.
    #[error("{path}: expected a 2-D float32 (or float64) .npy array (items x dim): {reason}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        reason: String,
    },
    /// A CSV line is malformed.
    #[error("{path}: line {line}: expected {expected}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was expected there.
        expected: String,
    },
    /// No item, no dimension, a duplicate item or a non-finite value.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Embeddings {
    /// Reads `.npy` (row `i` is item `i`; float32, or float64 converted) or CSV
    /// (`item_id,v1,v2,...` per line; a header line is skipped; rows in any order).
    pub fn read(path: &Path) -> Result<Embeddings, EmbeddingError> {
        let emb = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
            read_npy(path)?
        } else {
            read_csv(path)?
        };
        let invalid = |reason: String| EmbeddingError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if emb.items.is_empty() || emb.dim == 0 {
            return Err(invalid("no items or no dimensions".into()));
        }
        if let Some(i) = emb.data.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "item {} has a non-finite value",
                emb.items[i / emb.dim]
            )));
        }
        Ok(emb)
    }
}

fn read_npy(path: &Path) -> Result<Embeddings, EmbeddingError> {
    let npy = |e: ndarray_npy::ReadNpyError| EmbeddingError::Npy {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let array: ndarray::Array2<f32> = match ndarray_npy::read_npy::<_, ndarray::Array2<f32>>(path) {
        Ok(a) => a,
        Err(ndarray_npy::ReadNpyError::WrongDescriptor(_)) => {
            ndarray_npy::read_npy::<_, ndarray::Array2<f64>>(path)
                .map_err(npy)?
                .mapv(|v| v as f32)
        }
        Err(ndarray_npy::ReadNpyError::Io(source)) => {
            return Err(EmbeddingError::Io {
                path: path.to_owned(),
                source,
            });
        }
        Err(e) => return Err(npy(e)),
    };
    let (n, dim) = array.dim();
    let n32 = u32::try_from(n).map_err(|_| EmbeddingError::Invalid {
        path: path.to_owned(),
        reason: format!("{n} rows do not fit u32 item ids"),
    })?;
    Ok(Embeddings {
        items: (0..n32).map(ItemId::new).collect(),
        dim,
        data: array.iter().copied().collect(),
    })
}

fn read_csv(path: &Path) -> Result<Embeddings, EmbeddingError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(|e| match e.into_kind() {
            csv::ErrorKind::Io(source) => EmbeddingError::Io {
                path: path.to_owned(),
                source,
            },
            other => EmbeddingError::Csv {
                path: path.to_owned(),
                line: 0,
                expected: format!("a CSV file ({other:?})"),
            },
        })?;
    let bad = |line: usize, expected: String| EmbeddingError::Csv {
        path: path.to_owned(),
        line,
        expected,
    };
    let mut rows: Vec<(ItemId, Vec<f32>)> = Vec::new();
    let mut dim = None;
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let r = record.map_err(|e| bad(line, format!("a CSV record ({e})")))?;
        let Ok(id) = r[0].parse::<u32>() else {
            if line == 1 {
                continue; // header
            }
            return Err(bad(line, format!("an integer item id first, found {:?}", &r[0])));
        };
        let values = r
            .iter()
            .skip(1)
            .map(|v| v.parse::<f32>())
            .collect::<Result<Vec<f32>, _>>()
            .map_err(|_| bad(line, "item_id,v1,v2,... with decimal values".into()))?;
        match dim {
            None => dim = Some(values.len()),
            Some(d) if d != values.len() => {
                return Err(bad(
                    line,
                    format!("{d} values like the first row, found {}", values.len()),
                ));
            }
            _ => {}
        }
        rows.push((ItemId::new(id), values));
    }
    rows.sort_by_key(|r| r.0);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(EmbeddingError::Invalid {
            path: path.to_owned(),
            reason: format!("item {} appears twice", w[0].0),
        });
    }
    Ok(Embeddings {
        items: rows.iter().map(|r| r.0).collect(),
        dim: dim.unwrap_or(0),
        data: rows.into_iter().flat_map(|r| r.1).collect(),
    })
}
