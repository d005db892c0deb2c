//! Paired comparisons of two models on the same rows (`ugr compare`): the difference of HR@K
//! and NDCG@K (K = 1, 5, 10) with a paired bootstrap 95% interval.
//!
//! `ugr eval` writes every row's rank of the target (`ranks-<split>.json`, [`RowRanks`]) for
//! the served (fused) search and, when it fuses, the generative-only one. Two runs evaluated
//! on the same rows are compared row by row: the per-row differences `d_i = m_B(i) - m_A(i)`
//! are resampled with replacement (the same rows for every metric of one resample) and the
//! interval is the 2.5th and 97.5th percentiles of the resampled means. A paired interval is
//! much narrower than two separate standard errors: both models see the same hard and easy
//! rows.
//!
//! Either side may be a group of runs, typically the seeds of one configuration
//! ([`paired_groups`]): a row's metric is then the mean over the group's runs, and the rows
//! are resampled as before. The interval carries the rows' variation given those seeds; it
//! does not resample the seeds themselves, so with three seeds it says "these seeds on
//! average", not "any seed".

use std::path::Path;

use anyhow::{Result, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use ugr_core::metrics::row_metrics;

/// The cutoffs a comparison reports.
pub const KS: [usize; 3] = [1, 5, 10];

/// Every row's 0-based rank of the target item (`None`: not in the returned list).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RowRanks {
    /// The dataset's name.
    pub dataset: String,
    /// The split (`test`, `valid`).
    pub split: String,
    /// The served search (fused when the model has an item head and a weight).
    pub served: Vec<Option<u32>>,
    /// The generative-only search, when the served one fuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generative: Option<Vec<Option<u32>>>,
}

impl RowRanks {
    /// The file name in a run directory for `split`.
    pub fn file_name(split: &str) -> String {
        format!("ranks-{split}.json")
    }

    /// Reads `ranks-<split>.json` of a run (written by `ugr eval --split <split>`).
    pub fn read(run: &Path, split: &str) -> Result<RowRanks> {
        let path = run.join(Self::file_name(split));
        ensure!(
            path.exists(),
            "{}: no per-row ranks; run `ugr eval --run {} --split {split}` first",
            path.display(),
            run.display()
        );
        crate::run::read_json(&path)
    }

    /// The ranks of one ranking: `served` or `generative` (the served ones when the run does
    /// not fuse).
    pub fn ranking(&self, generative: bool) -> &[Option<u32>] {
        match (&self.generative, generative) {
            (Some(g), true) => g,
            _ => &self.served,
        }
    }
}

/// One metric of a comparison.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Difference {
    /// `HR` or `NDCG`.
    pub metric: &'static str,
    /// The cutoff.
    pub k: usize,
    /// The base model's value.
    pub base: f64,
    /// The other model's value.
    pub other: f64,
    /// `other - base`.
    pub diff: f64,
    /// The paired bootstrap 95% interval of `diff`.
    pub low: f64,
    /// Its upper end.
    pub high: f64,
}

/// The row's HR@K or NDCG@K ([`ugr_core::metrics::row_metrics`]).
fn gain(rank: Option<u32>, k: usize, ndcg: bool) -> f64 {
    let (hit, gain) = row_metrics(rank.map(|r| r as usize), k);
    if ndcg { gain } else { hit }
}

/// `other` against `base` on the same rows, HR and NDCG at [`KS`], with `resamples`
/// bootstrap resamples drawn from `seed`. Fails when the row counts differ or are zero.
pub fn paired(
    base: &[Option<u32>],
    other: &[Option<u32>],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Difference>> {
    paired_groups(&[base], &[other], resamples, seed)
}

/// [`paired`] for groups of runs on the same rows: a row's metric is its mean over the
/// group's runs. Fails when a group is empty or any two evaluations differ in rows.
pub fn paired_groups(
    base: &[&[Option<u32>]],
    other: &[&[Option<u32>]],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Difference>> {
    ensure!(
        !base.is_empty() && !other.is_empty(),
        "a comparison needs a run on each side"
    );
    let n = base[0].len();
    for ranks in base.iter().chain(other) {
        ensure!(
            ranks.len() == n && n > 0,
            "the evaluations have {} and {} rows: compare evaluations of the same rows",
            n,
            ranks.len()
        );
    }
    let metrics: Vec<(&'static str, usize, bool)> = [("HR", false), ("NDCG", true)]
        .iter()
        .flat_map(|&(name, ndcg)| KS.iter().map(move |&k| (name, k, ndcg)))
        .collect();
    // A group's metric on row i: the mean over its runs.
    let row = |group: &[&[Option<u32>]], i: usize, k: usize, ndcg: bool| -> f64 {
        group.iter().map(|r| gain(r[i], k, ndcg)).sum::<f64>() / group.len() as f64
    };
    let diffs: Vec<Vec<f64>> = metrics
        .iter()
        .map(|&(_, k, ndcg)| {
            (0..n)
                .map(|i| row(other, i, k, ndcg) - row(base, i, k, ndcg))
                .collect()
        })
        .collect();
    let mut means: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); metrics.len()];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sums = vec![0.0; metrics.len()];
    for _ in 0..resamples {
        sums.fill(0.0);
        for _ in 0..n {
            let i = rng.random_range(0..n);
            for (s, d) in sums.iter_mut().zip(&diffs) {
                *s += d[i];
            }
        }
        for (m, s) in means.iter_mut().zip(&sums) {
            m.push(s / n as f64);
        }
    }
    let quantile = |v: &mut Vec<f64>, q: f64| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(metrics
        .iter()
        .zip(diffs.iter().zip(means.iter_mut()))
        .map(|(&(metric, k, ndcg), (d, m))| {
            let mean =
                |group: &[&[Option<u32>]]| (0..n).map(|i| row(group, i, k, ndcg)).sum::<f64>() / n as f64;
            Difference {
                metric,
                k,
                base: mean(base),
                other: mean(other),
                diff: d.iter().sum::<f64>() / n as f64,
                low: quantile(m, 0.025),
                high: quantile(m, 0.975),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_models_differ_by_exactly_zero() {
        let ranks: Vec<Option<u32>> = (0..500).map(|i| (i % 3 == 0).then_some(i % 12)).collect();
        for d in paired(&ranks, &ranks, 200, 1).unwrap() {
            assert_eq!((d.diff, d.low, d.high), (0.0, 0.0, 0.0), "{d:?}");
        }
    }

    #[test]
    fn a_better_model_has_an_interval_above_zero() {
        // The other model finds the target at rank 0 on every row where the base missed it
        // and 1 row in 4 of those; elsewhere both agree.
        let base: Vec<Option<u32>> = (0..2000).map(|i| (i % 2 == 0).then_some(3)).collect();
        let other: Vec<Option<u32>> = base
            .iter()
            .enumerate()
            .map(|(i, &r)| if r.is_none() && i % 8 == 1 { Some(0) } else { r })
            .collect();
        let diffs = paired(&base, &other, 500, 7).unwrap();
        let hr1 = diffs.iter().find(|d| d.metric == "HR" && d.k == 1).unwrap();
        assert!((hr1.diff - 0.125).abs() < 1e-12, "{hr1:?}");
        assert!(
            hr1.low > 0.1 && hr1.high < 0.15 && hr1.low < hr1.diff && hr1.diff < hr1.high,
            "{hr1:?}"
        );
        let hr5 = diffs.iter().find(|d| d.metric == "HR" && d.k == 5).unwrap();
        assert!((hr5.base - 0.5).abs() < 1e-12 && (hr5.other - 0.625).abs() < 1e-12);
    }

    #[test]
    fn different_row_counts_are_refused() {
        assert!(paired(&[Some(0)], &[Some(0), None], 10, 1).is_err());
        assert!(paired(&[], &[], 10, 1).is_err());
        let one: &[Option<u32>] = &[Some(0)];
        assert!(paired_groups(&[one], &[one, &[None, None]], 10, 1).is_err());
        assert!(paired_groups(&[], &[one], 10, 1).is_err());
    }

    #[test]
    fn a_group_scores_each_row_by_its_runs_mean() {
        // Two seeds of the other model: one hits every row at rank 0, one never; pooled,
        // HR@1 is 0.5 on every row, so the difference to a base that never hits is exactly
        // 0.5 in every resample.
        let miss: Vec<Option<u32>> = vec![None; 300];
        let hit: Vec<Option<u32>> = vec![Some(0); 300];
        let diffs = paired_groups(&[&miss], &[&hit, &miss], 100, 3).unwrap();
        let hr1 = diffs.iter().find(|d| d.metric == "HR" && d.k == 1).unwrap();
        assert_eq!(
            (hr1.base, hr1.other, hr1.diff, hr1.low, hr1.high),
            (0.0, 0.5, 0.5, 0.5, 0.5)
        );
        // A group of one is the plain comparison.
        assert_eq!(
            paired_groups(&[&miss], &[&hit], 50, 9).unwrap(),
            paired(&miss, &hit, 50, 9).unwrap()
        );
    }
}
