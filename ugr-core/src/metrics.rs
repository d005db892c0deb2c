//! Ranking metrics with one relevant item per row: HR@K and NDCG@K.
//!
//! `pos` is the 0-based rank of the target among the returned items (`None` when it is
//! absent). `HR@K = 1[pos < K]`, `NDCG@K = 1[pos < K] / log2(pos + 2)` (UGR-METHOD section 1).
//! This is the project's only metrics routine: evaluation, RL validation and the
//! benchmarks all accumulate into [`RankingMetrics`].
//!
//! ```
//! use ugr_core::metrics::RankingMetrics;
//! let mut m = RankingMetrics::default();
//! m.add(Some(0)); // hit at rank 1
//! m.add(Some(2)); // hit at rank 3
//! m.add(None); // miss
//! assert_eq!(m.rows(), 3);
//! assert!((m.hr(1) - 1.0 / 3.0).abs() < 1e-12);
//! assert!((m.hr(3) - 2.0 / 3.0).abs() < 1e-12);
//! assert!((m.ndcg(3) - (1.0 + 0.5) / 3.0).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// The cutoffs K reported everywhere.
pub const CUTOFFS: [usize; 5] = [1, 3, 5, 10, 20];

/// Sums of HR@K and NDCG@K over rows, for K in [`CUTOFFS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    rows: u64,
    hits: [f64; CUTOFFS.len()],
    gains: [f64; CUTOFFS.len()],
}

impl RankingMetrics {
    /// Adds one row whose target was returned at 0-based rank `pos` (or not at all).
    pub fn add(&mut self, pos: Option<usize>) {
        self.rows += 1;
        if let Some(p) = pos {
            let gain = 1.0 / libm::log2(p as f64 + 2.0);
            for (i, &k) in CUTOFFS.iter().enumerate() {
                if p < k {
                    self.hits[i] += 1.0;
                    self.gains[i] += gain;
                }
            }
        }
    }

    /// Adds the rows of another accumulator.
    pub fn merge(&mut self, other: &RankingMetrics) {
        self.rows += other.rows;
        for i in 0..CUTOFFS.len() {
            self.hits[i] += other.hits[i];
            self.gains[i] += other.gains[i];
        }
    }

    /// Rows added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn at(&self, k: usize, sums: &[f64; CUTOFFS.len()]) -> f64 {
        match CUTOFFS.iter().position(|&c| c == k) {
            Some(i) if self.rows > 0 => sums[i] / self.rows as f64,
            _ => f64::NAN,
        }
    }

    /// Mean HR@K (= Recall@K with one target); NaN for a K not in [`CUTOFFS`] or no rows.
    pub fn hr(&self, k: usize) -> f64 {
        self.at(k, &self.hits)
    }

    /// Mean NDCG@K; NaN for a K not in [`CUTOFFS`] or no rows.
    pub fn ndcg(&self, k: usize) -> f64 {
        self.at(k, &self.gains)
    }
}

/// The 0-based position of the first element equal to `target`.
pub fn rank_of<T: PartialEq>(list: impl IntoIterator<Item = T>, target: &T) -> Option<usize> {
    list.into_iter().position(|x| x == *target)
}
