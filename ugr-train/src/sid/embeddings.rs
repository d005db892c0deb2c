//! Collaborative item embeddings for `ugr sid build --interactions`: learned from the
//! interactions alone (truncated SVD of the items' PPMI co-occurrence matrix). Embeddings
//! read from files are [`ugr_data::embeddings`].

use std::collections::BTreeMap;

use nalgebra::{DMatrix, SymmetricEigen};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use ugr_core::ItemId;
pub use ugr_data::embeddings::{EmbeddingError, Embeddings};

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
