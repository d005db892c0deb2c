//! Cold start, measured: a model trained without some items (`--cold-items`), served with
//! them added to its catalog (`ugr catalog --add`), against the same model served without them.
//!
//! - **New rows** (test rows whose target is a new item): the served ranking (every item),
//!   the served ranking restricted to the new items (an allowlist), popularity among the new
//!   items (counted on the full training split, which the model never saw for them: an
//!   optimistic baseline), and random among the new items (its expectation, `K / new items`).
//! - **Other rows**: the model with the new items against the model without them, paired
//!   by row (histories keep their new items for the first, lose them for the second).

use anyhow::Result;
use ugr_core::metrics::{RankingMetrics, rank_of, row_metrics};
use ugr_core::{Constraints, Engine, ItemId, Request, SearchOptions};

use crate::data::Dataset;
use crate::rules::{Score, parallel};

/// A paired difference of HR@10 (with minus without) over the same rows.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Paired {
    /// Mean difference.
    pub hr10: f64,
    /// Its standard error.
    pub hr10_se: f64,
    /// Mean difference of NDCG@10.
    pub ndcg10: f64,
}

/// The study's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ColdReport {
    /// New items.
    pub new_items: usize,
    /// Test rows whose target is new / the others.
    pub new_rows: u64,
    /// Test rows whose target the model was trained with.
    pub other_rows: u64,
    /// New rows: the served ranking.
    pub served: Score,
    /// New rows: the served catalog ranked by the generative head alone (no item head): how
    /// much of the gap is the item head's share of new SIDs.
    pub served_generative: Score,
    /// New rows: the served ranking restricted to the new items.
    pub served_among_new: Score,
    /// New rows: new items by their (unseen) training popularity.
    pub popularity_among_new: Score,
    /// New rows: random among the new items, HR@10 expectation.
    pub random_among_new_hr10: f64,
    /// Other rows: served with the new items.
    pub other_with: Score,
    /// Other rows: served without them.
    pub other_without: Score,
    /// Other rows: with minus without, paired.
    pub other_difference: Paired,
}

fn options(engine: &Engine) -> SearchOptions {
    SearchOptions {
        learned_confidence: false,
        normalization: engine.model().normalization(),
        ..SearchOptions::default()
    }
}

/// Runs the study on `full`'s test rows (`full` loaded without `--cold-items`).
pub fn study(
    with: &Engine,
    without: &Engine,
    full: &Dataset,
    cold: &[ItemId],
    threads: usize,
) -> Result<ColdReport> {
    let is_new = |i: &ItemId| cold.binary_search(i).is_ok();
    let rows = &full.test;
    // Per row: rank under `with`, under `with` among new items, under `without`.
    let ranks = parallel(rows, threads, |chunk| {
        let mut out = Vec::with_capacity(chunk.len());
        for part in chunk.chunks(32) {
            let histories: Vec<&[ItemId]> = part.iter().map(|e| e.history.as_slice()).collect();
            let served = with.recommend_batch(&histories, &options(with))?;
            let generative = SearchOptions {
                item_fusion: ugr_core::ItemFusion::Off,
                ..options(with)
            };
            let generative = with.recommend_batch(&histories, &generative)?;
            let among: Vec<Request<'_>> = histories
                .iter()
                .map(|h| Request {
                    history: h,
                    constraints: Constraints {
                        allow: Some(cold),
                        ..Constraints::NONE
                    },
                })
                .collect();
            let among = with.recommend_requests(&among, &options(with))?;
            let old: Vec<Vec<ItemId>> = part
                .iter()
                .map(|e| e.history.iter().copied().filter(|i| !is_new(i)).collect())
                .collect();
            let old: Vec<&[ItemId]> = old.iter().map(Vec::as_slice).collect();
            let base = without.recommend_batch(&old, &options(without))?;
            for (i, e) in part.iter().enumerate() {
                let rank = |r: &ugr_core::Recommendations| rank_of(r.items.iter().map(|x| x.item), &e.target);
                out.push((
                    rank(&served[i]),
                    rank(&among[i]),
                    rank(&base[i]),
                    rank(&generative[i]),
                ));
            }
        }
        Ok(out)
    })?;
    let mut popularity: Vec<(u64, ItemId)> = cold.iter().map(|&i| (0, i)).collect();
    for s in &full.train {
        for t in &s.items[s.first_target.min(s.items.len())..] {
            if let Ok(k) = cold.binary_search(t) {
                popularity[k].0 += 1;
            }
        }
    }
    popularity.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let popular: Vec<ItemId> = popularity.iter().take(10).map(|p| p.1).collect();
    let (mut served, mut among, mut pop, mut gen_only) = Default::default();
    let (mut with_m, mut without_m) = (RankingMetrics::default(), RankingMetrics::default());
    let mut diffs: Vec<(f64, f64)> = Vec::new();
    for (e, &(w, a, b, g)) in rows.iter().zip(&ranks) {
        if is_new(&e.target) {
            RankingMetrics::add(&mut served, w);
            RankingMetrics::add(&mut gen_only, g);
            RankingMetrics::add(&mut among, a);
            RankingMetrics::add(&mut pop, rank_of(popular.iter().copied(), &e.target));
        } else {
            with_m.add(w);
            without_m.add(b);
            let (hw, nw) = row_metrics(w, 10);
            let (hb, nb) = row_metrics(b, 10);
            diffs.push((hw - hb, nw - nb));
        }
    }
    let n = diffs.len().max(1) as f64;
    let mean = diffs.iter().map(|d| d.0).sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d.0 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Ok(ColdReport {
        new_items: cold.len(),
        new_rows: served.rows(),
        other_rows: with_m.rows(),
        served: (&served).into(),
        served_generative: (&gen_only).into(),
        served_among_new: (&among).into(),
        popularity_among_new: (&pop).into(),
        random_among_new_hr10: (10.0 / cold.len().max(1) as f64).min(1.0),
        other_with: (&with_m).into(),
        other_without: (&without_m).into(),
        other_difference: Paired {
            hr10: mean,
            hr10_se: (var / n).sqrt(),
            ndcg10: diffs.iter().map(|d| d.1).sum::<f64>() / n,
        },
    })
}
