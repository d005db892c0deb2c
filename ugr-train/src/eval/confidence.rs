//! How good a model's confidence is (UGR-METHOD section 3, and the calibration figures the
//! paper leaves to us): what `ugr eval` adds to `metrics.json` under `"confidence"`.
//!
//! A collector reads one [`Signal`]: the learned `c = sigmoid(z[C_HIGH] - z[C_LOW])` of a
//! model with confidence tokens (after the RL stage) or the beam posterior (the softmax of
//! the returned items' scores); which one a run reports, and its map, is chosen on
//! validation by [`super::calibrate`], and the engine reports exactly that. A user's
//! confidence is the raw confidence of their top-1 item. Figures:
//!
//! - **ECE** over 15 equal-mass bins and its reliability diagram, for (a) the top-1 item's
//!   confidence against hit@1 and (b) every one of the top-10 items' confidence against "is
//!   the target"; raw, and through the run's calibration map when it has one;
//! - **AUROC** of the user's confidence for hit@1 and for hit@10;
//! - **risk-coverage**: drop the x% least confident users (x = 0, 10, ..., 50) and score
//!   HR@10 / NDCG@10 on the rest;
//! - **item truncation**: keep the top-10 items whose confidence (calibrated if possible)
//!   reaches a threshold; precision, items kept per user and hit rate per threshold;
//! - **hybrid reranking**: the returned list reordered by `h = exp(s) + beta * c`, NDCG@1
//!   and NDCG@10 before and after.
//!
//! The calibration map of a signal is fitted here too ([`ConfidenceCollector::fit_calibration`]):
//! isotonic regression of "is the target" on the raw confidence of the top-10 items of the
//! validation split, so the calibrated confidence of any returned item reads as the
//! probability that it is the one the user takes next.

use serde::{Deserialize, Serialize};
use ugr_core::metrics::{RankingMetrics, Reliability, auroc, reliability};
use ugr_core::{Calibration, Recommendations};

use crate::data::Example;

/// Equal-mass bins of every ECE.
pub const ECE_BINS: usize = 15;
/// Returned items per user that the item-level figures (and the calibration fit) use.
pub const ITEMS_SCORED: usize = 10;
/// Fractions of least-confident users dropped in the risk-coverage table.
pub const DROPPED: [f64; 6] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5];
/// Quantiles of the item confidences used as truncation thresholds.
pub const THRESHOLD_QUANTILES: [f64; 6] = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99];

/// The raw confidence signals a search returns for an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// The learned `c = sigmoid(z[C_HIGH] - z[C_LOW])` (the beam posterior where a model has
    /// no confidence tokens).
    #[default]
    Learned,
    /// The beam posterior: softmax of the returned items' scores.
    Posterior,
}

impl Signal {
    /// The other signal.
    pub fn other(self) -> Self {
        match self {
            Signal::Learned => Signal::Posterior,
            Signal::Posterior => Signal::Learned,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct ItemRecord {
    raw: f32,
    calibrated: f32,
    hybrid: f32,
    is_target: bool,
}

/// Per-row records of an evaluation, collected from the search results: one signal, and
/// the calibration map fitted on that signal when there is one (applied here, so one search
/// feeds a collector per signal).
#[derive(Clone, Debug, Default)]
pub struct ConfidenceCollector {
    rows: Vec<Vec<ItemRecord>>,
    learned: bool,
    signal: Signal,
    map: Option<Calibration>,
    beta: f32,
}

/// Which raw confidence the figures are about.
pub fn source_name(learned: bool) -> &'static str {
    if learned {
        "learned (sigmoid(z[C_HIGH] - z[C_LOW]) after CONF_Q)"
    } else {
        "beam posterior (softmax of the returned scores)"
    }
}

impl ConfidenceCollector {
    /// A collector of `signal`, calibrated by `map` when given; `beta` weighs the raw
    /// confidence in the hybrid score `exp(score) + beta * raw`.
    pub fn new(signal: Signal, map: Option<Calibration>, beta: f32) -> Self {
        ConfidenceCollector {
            signal,
            map,
            beta,
            ..ConfidenceCollector::default()
        }
    }

    /// Records one row's result (items best first by score).
    pub fn add(&mut self, e: &Example, r: &Recommendations) {
        let learned = self.signal == Signal::Learned;
        self.learned |= learned && r.items.iter().any(|i| i.learned_confidence.is_some());
        let (map, beta) = (self.map.as_ref(), self.beta);
        self.rows.push(
            r.items
                .iter()
                .map(|i| {
                    let raw = match i.learned_confidence {
                        Some(c) if learned => c,
                        _ => i.posterior,
                    };
                    ItemRecord {
                        raw,
                        calibrated: map.map_or(raw, |m| m.apply(raw)),
                        hybrid: i.score.exp() + beta * raw,
                        is_target: i.item == e.target,
                    }
                })
                .collect(),
        );
    }

    /// Rows recorded.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    fn items(&self, calibrated: bool) -> (Vec<f32>, Vec<bool>) {
        self.rows
            .iter()
            .flat_map(|r| r.iter().take(ITEMS_SCORED))
            .map(|i| (if calibrated { i.calibrated } else { i.raw }, i.is_target))
            .unzip()
    }

    fn top1(&self, calibrated: bool) -> (Vec<f32>, Vec<bool>) {
        self.rows
            .iter()
            .map(|r| {
                r.first().map_or((0.0, false), |i| {
                    (if calibrated { i.calibrated } else { i.raw }, i.is_target)
                })
            })
            .unzip()
    }

    /// The isotonic calibration map of these rows (see the module docs).
    pub fn fit_calibration(&self) -> ugr_core::Result<Calibration> {
        let (raw, hit) = self.items(false);
        Calibration::fit_isotonic(&raw, &hit)
    }

    /// Whether the rows carried the learned confidence (else the figures are the posterior's).
    pub fn is_learned(&self) -> bool {
        self.learned
    }

    /// The report of the recorded rows.
    pub fn report(&self) -> ConfidenceReport {
        let (calibrated, beta) = (self.map.is_some(), self.beta);
        let (top_raw, hit1) = self.top1(false);
        let hit10: Vec<bool> = self
            .rows
            .iter()
            .map(|r| r.iter().take(10).any(|i| i.is_target))
            .collect();
        let (item_raw, item_hit) = self.items(false);
        let cal = |f: &dyn Fn(bool) -> (Vec<f32>, Vec<bool>)| {
            calibrated.then(|| {
                let (c, h) = f(true);
                reliability(&c, &h, ECE_BINS)
            })
        };
        let top1_calibrated = cal(&|c| self.top1(c));
        let items_calibrated = cal(&|c| self.items(c));
        let positions: Vec<Option<usize>> = self
            .rows
            .iter()
            .map(|r| r.iter().position(|i| i.is_target))
            .collect();
        // risk-coverage: users by decreasing confidence (stable, so ties keep row order)
        let mut by_conf: Vec<usize> = (0..self.rows.len()).collect();
        by_conf.sort_by(|&a, &b| top_raw[b].total_cmp(&top_raw[a]));
        let risk_coverage = DROPPED
            .iter()
            .map(|&drop| {
                let keep = ((1.0 - drop) * self.rows.len() as f64).round() as usize;
                let mut m = RankingMetrics::default();
                for &u in &by_conf[..keep] {
                    m.add(positions[u]);
                }
                CoveragePoint {
                    dropped: drop,
                    users: keep,
                    hr10: m.hr(10),
                    ndcg10: m.ndcg(10),
                }
            })
            .collect::<Vec<_>>();
        let ratio = match (risk_coverage.first(), risk_coverage.last()) {
            (Some(all), Some(half)) if all.ndcg10 > 0.0 => half.ndcg10 / all.ndcg10,
            _ => f64::NAN,
        };
        ConfidenceReport {
            source: source_name(self.learned).into(),
            calibrated,
            users: self.rows.len(),
            top1_vs_hit1: top1_calibrated
                .clone()
                .unwrap_or_else(|| reliability(&top_raw, &hit1, ECE_BINS)),
            top1_vs_hit1_raw: reliability(&top_raw, &hit1, ECE_BINS),
            items_vs_target: items_calibrated
                .clone()
                .unwrap_or_else(|| reliability(&item_raw, &item_hit, ECE_BINS)),
            items_vs_target_raw: reliability(&item_raw, &item_hit, ECE_BINS),
            auroc_hit1: auroc(&top_raw, &hit1),
            auroc_hit10: auroc(&top_raw, &hit10),
            risk_coverage,
            ndcg10_confident_half_over_all: ratio,
            truncation: self.truncation(calibrated),
            hybrid: self.hybrid(beta, &positions),
        }
    }

    fn truncation(&self, calibrated: bool) -> Vec<TruncationPoint> {
        let (conf, _) = self.items(calibrated);
        let mut sorted = conf.clone();
        sorted.sort_by(f32::total_cmp);
        let mut out: Vec<TruncationPoint> = Vec::new();
        for q in THRESHOLD_QUANTILES {
            let Some(&t) =
                sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            else {
                break;
            };
            if out.last().is_some_and(|p| p.threshold == t) {
                continue;
            }
            let (mut kept, mut hits, mut users_hit) = (0usize, 0usize, 0usize);
            for r in &self.rows {
                let mut hit = false;
                for i in r.iter().take(ITEMS_SCORED) {
                    let c = if calibrated { i.calibrated } else { i.raw };
                    if c >= t {
                        kept += 1;
                        if i.is_target {
                            hits += 1;
                            hit = true;
                        }
                    }
                }
                users_hit += usize::from(hit);
            }
            out.push(TruncationPoint {
                quantile: q,
                threshold: t,
                items_per_user: kept as f64 / self.rows.len().max(1) as f64,
                precision: if kept > 0 {
                    hits as f64 / kept as f64
                } else {
                    f64::NAN
                },
                hit_rate: users_hit as f64 / self.rows.len().max(1) as f64,
            });
        }
        out
    }

    fn hybrid(&self, beta: f32, positions: &[Option<usize>]) -> HybridRerank {
        let (mut by_score, mut by_hybrid) = (RankingMetrics::default(), RankingMetrics::default());
        for (r, &pos) in self.rows.iter().zip(positions) {
            by_score.add(pos);
            let mut order: Vec<&ItemRecord> = r.iter().collect();
            order.sort_by(|a, b| b.hybrid.total_cmp(&a.hybrid));
            by_hybrid.add(order.iter().position(|i| i.is_target));
        }
        HybridRerank {
            beta,
            ndcg1_score: by_score.ndcg(1),
            ndcg1_hybrid: by_hybrid.ndcg(1),
            ndcg10_score: by_score.ndcg(10),
            ndcg10_hybrid: by_hybrid.ndcg(10),
        }
    }
}

/// The confidence figures of one evaluation (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfidenceReport {
    /// Which raw confidence.
    pub source: String,
    /// Whether a calibration map was applied (then the ECEs without `_raw` are calibrated).
    pub calibrated: bool,
    /// Users (rows).
    pub users: usize,
    /// Top-1 confidence vs hit@1 (calibrated when a map is set).
    pub top1_vs_hit1: Reliability,
    /// The same on the raw confidence.
    pub top1_vs_hit1_raw: Reliability,
    /// Every top-10 item's confidence vs "is the target" (calibrated when a map is set).
    pub items_vs_target: Reliability,
    /// The same on the raw confidence.
    pub items_vs_target_raw: Reliability,
    /// AUROC of the user's confidence for hit@1.
    pub auroc_hit1: Option<f64>,
    /// AUROC of the user's confidence for hit@10.
    pub auroc_hit10: Option<f64>,
    /// HR@10 / NDCG@10 after dropping the least confident users.
    pub risk_coverage: Vec<CoveragePoint>,
    /// NDCG@10 of the 50% most confident users over NDCG@10 of all.
    pub ndcg10_confident_half_over_all: f64,
    /// Items kept by a confidence threshold.
    pub truncation: Vec<TruncationPoint>,
    /// Reranking by the hybrid score.
    pub hybrid: HybridRerank,
}

/// One row of the risk-coverage table.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CoveragePoint {
    /// Fraction of least confident users dropped.
    pub dropped: f64,
    /// Users kept.
    pub users: usize,
    /// HR@10 of the kept users.
    pub hr10: f64,
    /// NDCG@10 of the kept users.
    pub ndcg10: f64,
}

/// One row of the item-truncation table.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TruncationPoint {
    /// Quantile of the item confidences the threshold sits at.
    pub quantile: f64,
    /// The threshold (on the calibrated confidence when a map is set).
    pub threshold: f32,
    /// Top-10 items kept per user.
    pub items_per_user: f64,
    /// Fraction of kept items that are the target.
    pub precision: f64,
    /// Fraction of users whose target is among their kept items.
    pub hit_rate: f64,
}

/// Reranking the returned list by `exp(s) + beta * c`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct HybridRerank {
    /// The weight of the confidence.
    pub beta: f32,
    /// NDCG@1 ranked by score.
    pub ndcg1_score: f64,
    /// NDCG@1 ranked by the hybrid score.
    pub ndcg1_hybrid: f64,
    /// NDCG@10 ranked by score.
    pub ndcg10_score: f64,
    /// NDCG@10 ranked by the hybrid score.
    pub ndcg10_hybrid: f64,
}

impl ConfidenceReport {
    /// A few printable lines.
    pub fn lines(&self) -> Vec<String> {
        let f = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
        let mut out = vec![
            format!(
                "confidence: {}{}",
                self.source,
                if self.calibrated { ", calibrated" } else { "" }
            ),
            format!(
                "  ECE (15 equal-mass bins): top-1 vs hit@1 {:.4} (raw {:.4}); top-10 items vs target {:.4} (raw {:.4})",
                self.top1_vs_hit1.ece,
                self.top1_vs_hit1_raw.ece,
                self.items_vs_target.ece,
                self.items_vs_target_raw.ece
            ),
            format!(
                "  AUROC of the top-1 confidence: hit@1 {}, hit@10 {}",
                f(self.auroc_hit1),
                f(self.auroc_hit10)
            ),
        ];
        let rc: Vec<String> = self
            .risk_coverage
            .iter()
            .map(|p| format!("{:.0}%: {:.4}/{:.4}", p.dropped * 100.0, p.hr10, p.ndcg10))
            .collect();
        out.push(format!(
            "  risk-coverage (dropped: HR@10/NDCG@10): {}",
            rc.join(", ")
        ));
        out.push(format!(
            "  NDCG@10 of the 50% most confident users / all: {:.3}",
            self.ndcg10_confident_half_over_all
        ));
        let tr: Vec<String> = self
            .truncation
            .iter()
            .map(|p| {
                format!(
                    "c>={:.3}: {:.2} items, precision {:.4}",
                    p.threshold, p.items_per_user, p.precision
                )
            })
            .collect();
        out.push(format!("  truncation: {}", tr.join("; ")));
        out.push(format!(
            "  hybrid rerank (beta {}): NDCG@1 {:.4} -> {:.4}, NDCG@10 {:.4} -> {:.4}",
            self.hybrid.beta,
            self.hybrid.ndcg1_score,
            self.hybrid.ndcg1_hybrid,
            self.hybrid.ndcg10_score,
            self.hybrid.ndcg10_hybrid
        ));
        out
    }
}
