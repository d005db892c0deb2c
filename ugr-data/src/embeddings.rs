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
    use ndarray_npy::ReadNpyExt;
    let npy = |reason: String| EmbeddingError::Npy {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| EmbeddingError::Io {
        path: path.to_owned(),
        source,
    })?;
    check_npy_sizes(&bytes).map_err(npy)?;
    let array: ndarray::Array2<f32> = match ndarray::Array2::<f32>::read_npy(&bytes[..]) {
        Ok(a) => a,
        Err(ndarray_npy::ReadNpyError::WrongDescriptor(_)) => ndarray::Array2::<f64>::read_npy(&bytes[..])
            .map_err(|e| npy(e.to_string()))?
            .mapv(|v| v as f32),
        Err(e) => return Err(npy(e.to_string())),
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

/// Refuses a `.npy` whose header length or shape claims more than the file holds, before the
/// reader allocates what the header says (a corrupt header once asked for 2.6 GB). Assumes
/// elements of at least 4 bytes.
pub fn check_npy_sizes(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (prefix, header_len) = if bytes[6] == 1 {
        (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]])))
    } else {
        let b = bytes.get(8..12).ok_or("truncated header")?;
        (12, u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let data = bytes
        .len()
        .checked_sub(prefix)
        .and_then(|n| n.checked_sub(header_len))
        .ok_or("the header is longer than the file")?;
    let header = String::from_utf8_lossy(&bytes[prefix..prefix + header_len]);
    if let Some(at) = header.find("shape") {
        let rest = &header[at..];
        let (open, close) = (rest.find('(').unwrap_or(0), rest.find(')').unwrap_or(0));
        if open < close {
            let mut elements: u64 = 1;
            for dim in rest[open + 1..close]
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
            {
                let dim: u64 = dim.parse().map_err(|_| format!("shape dimension {dim:?}"))?;
                elements = elements.checked_mul(dim).ok_or("the shape overflows")?;
            }
            // Every element takes at least 4 bytes (float32 or float64).
            if elements > (data / 4) as u64 {
                return Err(format!(
                    "the shape holds {elements} values, the file {data} bytes"
                ));
            }
        }
    }
    Ok(())
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
