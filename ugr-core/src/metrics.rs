//! Ranking metrics with one relevant item per row (HR@K and NDCG@K), and the quality of a
//! confidence as a predictor of a hit (ECE with a reliability diagram, AUROC).
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

use alloc::vec::Vec;

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

/// One row's `(HR@K, NDCG@K)` for a target at 0-based rank `pos` (or not returned): what
/// [`RankingMetrics`] averages, and what paired comparisons of two models compare row by row.
pub fn row_metrics(pos: Option<usize>, k: usize) -> (f64, f64) {
    match pos {
        Some(p) if p < k => (1.0, 1.0 / libm::log2(p as f64 + 2.0)),
        _ => (0.0, 0.0),
    }
}

impl RankingMetrics {
    /// Adds one row whose target was returned at 0-based rank `pos` (or not at all).
    pub fn add(&mut self, pos: Option<usize>) {
        self.rows += 1;
        for (i, &k) in CUTOFFS.iter().enumerate() {
            let (hit, gain) = row_metrics(pos, k);
            self.hits[i] += hit;
            self.gains[i] += gain;
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

/// How widely recommendations spread over a catalog: from how often each catalog item was
/// recommended (its exposure; items never recommended count as 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// Catalog items recommended at least once.
    pub distinct: usize,
    /// `distinct / catalog items` (catalog coverage).
    pub coverage: f64,
    /// Gini coefficient of the exposure counts over every catalog item: 0 when every item is
    /// recommended equally often, towards 1 when a few items take every slot.
    pub gini: f64,
}

/// The [`Exposure`] of per-item recommendation counts (one entry per catalog item).
///
/// ```
/// use ugr_core::metrics::exposure;
/// let even = exposure(&[3, 3, 3, 3]);
/// assert_eq!((even.distinct, even.coverage, even.gini), (4, 1.0, 0.0));
/// let one = exposure(&[0, 0, 0, 8]);
/// assert_eq!((one.distinct, one.coverage), (1, 0.25));
/// assert!((one.gini - 0.75).abs() < 1e-12); // (n - 1) / n for n = 4
/// ```
pub fn exposure(counts: &[u64]) -> Exposure {
    let n = counts.len();
    let distinct = counts.iter().filter(|&&c| c > 0).count();
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    let gini = if n == 0 || total == 0.0 {
        0.0
    } else {
        let mut sorted = counts.to_vec();
        sorted.sort_unstable();
        // G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n, i = 1..n over ascending counts.
        let weighted: f64 = sorted
            .iter()
            .enumerate()
            .map(|(i, &c)| (i + 1) as f64 * c as f64)
            .sum();
        2.0 * weighted / (n as f64 * total) - (n as f64 + 1.0) / n as f64
    };
    Exposure {
        distinct,
        coverage: if n == 0 { 0.0 } else { distinct as f64 / n as f64 },
        gini,
    }
}

/// The 0-based position of the first element equal to `target`.
pub fn rank_of<T: PartialEq>(list: impl IntoIterator<Item = T>, target: &T) -> Option<usize> {
    list.into_iter().position(|x| x == *target)
}

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lowest confidence in the bin.
    pub lo: f64,
    /// Highest confidence in the bin.
    pub hi: f64,
    /// Mean confidence.
    pub confidence: f64,
    /// Fraction of hits.
    pub accuracy: f64,
    /// Samples.
    pub count: u64,
}

/// Expected calibration error and the reliability diagram it comes from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    /// `sum_b (n_b / n) |accuracy_b - confidence_b|`.
    pub ece: f64,
    /// The bins, by increasing confidence.
    pub bins: Vec<ReliabilityBin>,
    /// Samples.
    pub count: u64,
}

/// ECE over `bins` **equal-mass** bins: samples sorted by confidence, cut into `bins` runs of
/// (nearly) equal size. Equal-mass bins keep every bin populated when confidences crowd
/// into a narrow range, where equal-width bins would leave most empty. Equal confidences
/// are never split across bins (a cut moves past the tie), so the result does not depend
/// on the samples' order; a calibrated map's plateaus can therefore leave fewer bins.
///
/// ```
/// use ugr_core::metrics::reliability;
/// // perfectly calibrated halves: 0.2 with 1 hit in 5, 0.8 with 4 hits in 5
/// let conf = [0.2; 5].into_iter().chain([0.8; 5]).collect::<Vec<f32>>();
/// let hit = [true, false, false, false, false, true, true, true, true, false];
/// let r = reliability(&conf, &hit, 2);
/// assert!(r.ece < 1e-6);
/// assert_eq!(r.bins.len(), 2);
/// ```
pub fn reliability(confidence: &[f32], hit: &[bool], bins: usize) -> Reliability {
    let n = confidence.len().min(hit.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| confidence[a].total_cmp(&confidence[b]));
    let bins = bins.clamp(1, n.max(1));
    let mut out = Reliability {
        count: n as u64,
        ..Reliability::default()
    };
    let mut start = 0;
    for b in 0..bins {
        let mut end = ((b + 1) * n / bins).max(start);
        while end > 0 && end < n && confidence[order[end]] == confidence[order[end - 1]] {
            end += 1;
        }
        if start == end {
            continue;
        }
        let idx = &order[start..end];
        let m = idx.len() as f64;
        let conf = idx.iter().map(|&i| f64::from(confidence[i])).sum::<f64>() / m;
        let acc = idx.iter().filter(|&&i| hit[i]).count() as f64 / m;
        out.ece += (m / n as f64) * (acc - conf).abs();
        out.bins.push(ReliabilityBin {
            lo: f64::from(confidence[idx[0]]),
            hi: f64::from(confidence[idx[idx.len() - 1]]),
            confidence: conf,
            accuracy: acc,
            count: idx.len() as u64,
        });
        start = end;
    }
    out
}

/// Area under the ROC curve of `score` as a predictor of `label` (ties count one half);
/// `None` when either class is empty.
///
/// ```
/// use ugr_core::metrics::auroc;
/// assert_eq!(auroc(&[0.9, 0.8, 0.3, 0.1], &[true, true, false, false]), Some(1.0));
/// assert_eq!(auroc(&[0.5, 0.5], &[true, false]), Some(0.5));
/// assert_eq!(auroc(&[0.5], &[true]), None);
/// ```
pub fn auroc(score: &[f32], label: &[bool]) -> Option<f64> {
    let n = score.len().min(label.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    // Mann-Whitney U with mid-ranks for ties.
    let (mut rank_sum, mut pos) = (0.0f64, 0u64);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if label[k] {
                rank_sum += mid;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = n as u64 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (p, q) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_of_an_overconfident_predictor() {
        // all at 0.9, half right: ECE = 0.4 whatever the binning
        let conf = [0.9f32; 10];
        let hit = [true, false, true, false, true, false, true, false, true, false];
        for bins in [1, 3, 15] {
            assert!((reliability(&conf, &hit, bins).ece - 0.4).abs() < 1e-6);
        }
        let r = reliability(&conf, &hit, 15);
        assert_eq!(r.bins.len(), 1); // ties stay in one bin
        let spread: Vec<f32> = (0..10).map(|i| i as f32 / 10.0).collect();
        assert_eq!(reliability(&spread, &hit, 15).bins.len(), 10); // no more bins than samples
        assert_eq!(r.bins.iter().map(|b| b.count).sum::<u64>(), 10);
        assert_eq!(reliability(&[], &[], 15).ece, 0.0);
    }

    #[test]
    fn auroc_counts_pairs() {
        // positives at 0.8, 0.4; negatives at 0.6, 0.2: 3 of 4 pairs ordered
        let a = auroc(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]);
        assert_eq!(a, Some(0.75));
        assert_eq!(auroc(&[0.1, 0.9], &[true, false]), Some(0.0));
    }
}
