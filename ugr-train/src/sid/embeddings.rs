//! Item embeddings for `ugr sid build`: read from `.npy` or CSV, or learned from the
//! interactions alone (collaborative embeddings: truncated SVD of the items' PPMI
//! co-occurrence matrix).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, SymmetricEigen};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
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

/// Settings of [`collaborative`].
#[derive(Clone, Copy, Debug)]
pub struct CollabConfig {
    /// Embedding dimensions.
    pub dim: usize,
    /// Items up to this far apart in a user's sequence co-occur, weighted `1 / distance`.
    pub window: usize,
    /// Items left out at the end of every user's sequence (2 = the valid and test targets
    /// of a leave-one-out split, so SIDs never see evaluation targets; 0 = use everything).
    pub holdout: usize,
    /// Subspace (power) iterations of the randomized SVD.
    pub power_iters: usize,
    /// Seed of the random projection.
    pub seed: u64,
}

impl Default for CollabConfig {
    fn default() -> Self {
        CollabConfig {
            dim: 64,
            window: 5,
            holdout: 2,
            power_iters: 4,
            seed: 0,
        }
    }
}

/// Collaborative item embeddings from interactions alone: the positive PMI of windowed
/// co-occurrence within users' sequences, factorised by a randomized truncated SVD
/// (Halko et al.; `A ~ U S U^T` for the symmetric PPMI matrix, embedding `U sqrt(S)`),
/// rows L2-normalised. Every item of `sequences` gets a row; an item that never
/// co-occurs in the non-held-out part gets the zero vector (and its SID from the
/// clustering of zero).
pub fn collaborative(sequences: &[Vec<ItemId>], cfg: &CollabConfig) -> Embeddings {
    let mut items: Vec<ItemId> = sequences.iter().flatten().copied().collect();
    items.sort_unstable();
    items.dedup();
    let n = items.len();
    let pos = |i: ItemId| items.binary_search(&i).expect("item collected above");
    // Windowed co-occurrence counts, symmetric.
    let mut co: Vec<BTreeMap<u32, f64>> = vec![BTreeMap::new(); n];
    for seq in sequences {
        let seq = &seq[..seq.len().saturating_sub(cfg.holdout)];
        for (a, &x) in seq.iter().enumerate() {
            for (off, &y) in seq[a + 1..].iter().take(cfg.window).enumerate() {
                let (px, py) = (pos(x), pos(y));
                if px != py {
                    let w = 1.0 / (off + 1) as f64;
                    *co[px].entry(py as u32).or_insert(0.0) += w;
                    *co[py].entry(px as u32).or_insert(0.0) += w;
                }
            }
        }
    }
    // PPMI in CSR form.
    let row_sum: Vec<f64> = co.iter().map(|r| r.values().sum()).collect();
    let total: f64 = row_sum.iter().sum();
    let mut indptr = vec![0usize];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for (i, r) in co.iter().enumerate() {
        for (&j, &c) in r {
            let pmi = (c * total / (row_sum[i] * row_sum[j as usize])).ln();
            if pmi > 0.0 {
                indices.push(j as usize);
                values.push(pmi);
            }
        }
        indptr.push(indices.len());
    }
    let spmm = |m: &DMatrix<f64>| {
        let mut out = DMatrix::<f64>::zeros(n, m.ncols());
        for c in 0..m.ncols() {
            let col = m.column(c);
            for i in 0..n {
                let mut s = 0.0;
                for p in indptr[i]..indptr[i + 1] {
                    s += values[p] * col[indices[p]];
                }
                out[(i, c)] = s;
            }
        }
        out
    };
    // Randomized range finder with subspace iterations, then the small eigenproblem.
    let k = (cfg.dim + 10).min(n);
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let omega = DMatrix::<f64>::from_fn(n, k, |_, _| StandardNormal.sample(&mut rng));
    let mut q = spmm(&omega).qr().q();
    for _ in 0..cfg.power_iters {
        q = spmm(&q).qr().q();
    }
    let b = q.transpose() * spmm(&q);
    let b = (&b + b.transpose()) * 0.5;
    let eig = SymmetricEigen::new(b);
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| {
        eig.eigenvalues[b]
            .abs()
            .total_cmp(&eig.eigenvalues[a].abs())
            .then(a.cmp(&b))
    });
    let dim = cfg.dim.min(order.len());
    let u = &q * &eig.eigenvectors;
    let mut data = vec![0f32; n * dim];
    for i in 0..n {
        let row = &mut data[i * dim..(i + 1) * dim];
        for (d, &e) in order[..dim].iter().enumerate() {
            row[d] = (u[(i, e)] * eig.eigenvalues[e].abs().sqrt()) as f32;
        }
        // A fixed sign per dimension (eigenvectors' signs are arbitrary) is not needed for
        // clustering; only the norm is fixed here.
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    Embeddings { items, dim, data }
}
