//! Evaluation with ugr-core's beam search and ugr-core's metrics.
//!
//! Full catalog, exact trie-constrained beam search. Two hit definitions, both reported:
//!
//! - **item**: the target counts as found at the position of the returned item that *is*
//!   the target item (the published protocol);
//! - **SID**: the target counts as found at the first returned item whose SID equals the
//!   target's SID. Items sharing a SID are indistinguishable to a generative model, so
//!   this is the model's ceiling under the given index; it differs from the item figure
//!   only on SID collisions.

use std::time::Instant;

use candle_core::Result;
use serde::{Deserialize, Serialize};
use ugr_core::metrics::{CUTOFFS, Exposure, RankingMetrics, exposure};
use ugr_core::{
    BeamSearch, Calibration, Catalog, ItemId, Normalization, Recommendations, SearchOptions, Sid, SidModel,
};

use crate::data::Example;
use crate::model::{CandleModel, SidTransformer};

pub mod calibrate;
pub mod compare;
pub mod confidence;
pub mod fusion;

/// What an evaluation measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalResult {
    /// Hit = the returned item is the target.
    pub item: MetricTable,
    /// Hit = the returned item's SID is the target's SID.
    pub sid: MetricTable,
    /// Rows evaluated.
    pub rows: usize,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Requests (rows) per second.
    pub recs_per_s: f64,
    /// Model rows evaluated by the search (per request, mean).
    pub model_rows_per_request: f64,
    /// How the rows' top-10 lists spread over the catalog (coverage, Gini).
    #[serde(default)]
    pub exposure10: Exposure,
    /// Each row's 0-based rank of the target item (`None`: not returned), in row order: what
    /// paired comparisons of two runs on the same rows read ([`compare`]).
    #[serde(skip)]
    pub item_ranks: Vec<Option<u32>>,
}

/// HR@K and NDCG@K for K in 1, 3, 5, 10, 20.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetricTable {
    /// `(K, HR@K)`.
    pub hr: Vec<(usize, f64)>,
    /// `(K, NDCG@K)`.
    pub ndcg: Vec<(usize, f64)>,
}

impl MetricTable {
    /// The table of an accumulator.
    pub fn of(m: &RankingMetrics) -> Self {
        MetricTable {
            hr: CUTOFFS.iter().map(|&k| (k, m.hr(k))).collect(),
            ndcg: CUTOFFS.iter().map(|&k| (k, m.ndcg(k))).collect(),
        }
    }

    /// HR@K.
    pub fn hr_at(&self, k: usize) -> f64 {
        self.hr.iter().find(|e| e.0 == k).map_or(f64::NAN, |e| e.1)
    }

    /// NDCG@K.
    pub fn ndcg_at(&self, k: usize) -> f64 {
        self.ndcg.iter().find(|e| e.0 == k).map_or(f64::NAN, |e| e.1)
    }

    /// One formatted table row.
    pub fn row(&self, name: &str) -> String {
        let mut s = format!("{name:<34}");
        for (_, v) in self.hr.iter().chain(&self.ndcg) {
            s.push_str(&format!(" {v:>7.4}"));
        }
        s
    }

    /// The header matching [`row`](Self::row).
    pub fn header() -> String {
        let mut s = format!("{:<34}", "");
        for k in CUTOFFS {
            s.push_str(&format!(" {:>7}", format!("HR@{k}")));
        }
        for k in CUTOFFS {
            s.push_str(&format!(" {:>7}", format!("N@{k}")));
        }
        s
    }
}

/// Positions of the target in a returned list, by item and by SID.
pub fn ranks(catalog: &Catalog, returned: &[ItemId], target: ItemId) -> (Option<usize>, Option<usize>) {
    let target_sid = catalog.sid_index_of(target).ok();
    let item = returned.iter().position(|&i| i == target);
    let sid = returned
        .iter()
        .position(|&i| catalog.sid_index_of(i).ok() == target_sid && target_sid.is_some());
    (item, sid)
}

/// Evaluates `model` on `rows` with the pure generative search: beam `beam`, top-20
/// returned, `batch` requests per search call.
pub fn evaluate(
    model: &SidTransformer,
    catalog: &Catalog,
    rows: &[Example],
    beam: usize,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<EvalResult> {
    evaluate_with(model, catalog, rows, beam, batch, None, progress)
}

/// Like [`evaluate`], fusing the item head at `item_weight` when the model has one.
pub fn evaluate_with(
    model: &SidTransformer,
    catalog: &Catalog,
    rows: &[Example],
    beam: usize,
    batch: usize,
    item_weight: Option<f32>,
    progress: impl FnMut(usize),
) -> Result<EvalResult> {
    let decoder = CandleModel::new(model, catalog).with_item_weight(item_weight);
    let opts = eval_options(beam, model.config().normalization());
    let (result, _) = evaluate_search(&decoder, catalog, rows, &opts, batch, false, progress)
        .map_err(candle_core::Error::wrap)?;
    Ok(result)
}

/// The search options of an evaluation: top-20 returned, no learned-confidence step.
pub fn eval_options(beam: usize, normalization: Normalization) -> SearchOptions {
    SearchOptions {
        beam,
        top_k: *CUTOFFS.last().unwrap_or(&20),
        learned_confidence: false,
        normalization,
        ..SearchOptions::default()
    }
}

/// The returned list of one row: `(item, score)` best first.
pub type Ranked = Vec<(ItemId, f32)>;

/// Evaluates any [`SidModel`] (the candle model, the exported engine's tract model) with
/// ugr-core's beam search and `opts`; `keep` also returns every row's list (for parity).
pub fn evaluate_search<M: SidModel + Sync>(
    model: &M,
    catalog: &Catalog,
    rows: &[Example],
    opts: &SearchOptions,
    batch: usize,
    keep: bool,
    progress: impl FnMut(usize),
) -> ugr_core::Result<(EvalResult, Vec<Ranked>)> {
    let mut lists = Vec::new();
    let result = search_rows(model, catalog, None, rows, opts, batch, progress, |_, r| {
        if keep {
            lists.push(r.items.iter().map(|x| (x.item, x.score)).collect());
        }
    })?;
    Ok((result, lists))
}

/// The evaluation loop: searches `rows` in chunks of `batch` (with `calibration` applied to
/// the confidences) on [`crate::threads`] threads (contiguous parts of `rows`, one search and
/// model cache each; the results do not depend on the thread count), accumulates the ranking
/// metrics, and hands every row's result to `each` in row order (confidence reports, parity
/// lists).
#[allow(clippy::too_many_arguments)]
pub fn search_rows<M: SidModel + Sync>(
    model: &M,
    catalog: &Catalog,
    calibration: Option<&Calibration>,
    rows: &[Example],
    opts: &SearchOptions,
    batch: usize,
    mut progress: impl FnMut(usize),
    mut each: impl FnMut(&Example, &Recommendations),
) -> ugr_core::Result<EvalResult> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let start = Instant::now();
    let threads = crate::threads().min(rows.len().div_ceil(batch.max(1))).max(1);
    let part_len = rows.len().div_ceil(threads).max(1);
    let done = AtomicUsize::new(0);
    let work = |part: &[Example], mut tick: Option<&mut dyn FnMut(usize)>| {
        let mut search = BeamSearch::new(catalog).with_calibration(calibration);
        let mut cache = model.new_cache();
        let mut results: Vec<Recommendations> = Vec::with_capacity(part.len());
        let mut out = Vec::new();
        for chunk in part.chunks(batch.max(1)) {
            let histories: Vec<&[ItemId]> = chunk.iter().map(|e| e.history.as_slice()).collect();
            search.run_with_cache(model, &mut cache, &histories, opts, &mut out)?;
            results.append(&mut out);
            let n = done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
            if let Some(t) = tick.as_mut() {
                t(n);
            }
        }
        Ok::<_, ugr_core::Error>(results)
    };
    let mut parts = rows.chunks(part_len);
    let first = parts.next().unwrap_or(&[]);
    let results: Vec<Vec<Recommendations>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts.map(|p| s.spawn(|| work(p, None))).collect();
        let mut all = vec![work(first, Some(&mut progress))];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
        );
        all.into_iter().collect::<ugr_core::Result<Vec<_>>>()
    })?;
    progress(rows.len());
    let mut item = RankingMetrics::default();
    let mut sid = RankingMetrics::default();
    let mut model_rows = 0u64;
    let mut exposed = std::collections::HashMap::<ItemId, u64>::new();
    let mut item_ranks = Vec::with_capacity(rows.len());
    for (e, r) in rows.iter().zip(results.iter().flatten()) {
        let returned: Vec<ItemId> = r.items.iter().map(|x| x.item).collect();
        let (pi, ps) = ranks(catalog, &returned, e.target);
        item.add(pi);
        sid.add(ps);
        item_ranks.push(pi.map(|p| p as u32));
        for &i in returned.iter().take(10) {
            *exposed.entry(i).or_default() += 1;
        }
        model_rows += u64::from(r.stats.model_rows);
        each(e, r);
    }
    let counts: Vec<u64> = catalog
        .item_ids()
        .iter()
        .map(|i| exposed.get(i).copied().unwrap_or(0))
        .collect();
    let wall_s = start.elapsed().as_secs_f64();
    Ok(EvalResult {
        item: MetricTable::of(&item),
        sid: MetricTable::of(&sid),
        rows: rows.len(),
        wall_s,
        recs_per_s: rows.len() as f64 / wall_s.max(1e-9),
        model_rows_per_request: model_rows as f64 / rows.len().max(1) as f64,
        exposure10: exposure(&counts),
        item_ranks,
    })
}

/// One row whose two lists differ.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParityException {
    /// Row index in the evaluated split.
    pub row: usize,
    /// First rank where the lists differ.
    pub rank: usize,
    /// The reference's item and score at that rank.
    pub want: (ItemId, f32),
    /// The other backend's item and score at that rank.
    pub got: (ItemId, f32),
    /// `|want score - got score|` at that rank: a near-tie when it is float noise.
    pub score_gap: f32,
}

/// How far two backends' top-`k` lists agree.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Parity {
    /// Rows compared.
    pub rows: usize,
    /// Rows with the same top-`k` items in the same order.
    pub identical: usize,
    /// Largest score difference at equal ranks over all rows.
    pub max_score_diff: f32,
    /// Every row that differs, with the first differing rank.
    pub exceptions: Vec<ParityException>,
}

/// Compares the top-`k` of two evaluations of the same rows.
pub fn parity(want: &[Ranked], got: &[Ranked], k: usize) -> Parity {
    let mut p = Parity {
        rows: want.len().min(got.len()),
        ..Parity::default()
    };
    for (row, (w, g)) in want.iter().zip(got).enumerate() {
        let (w, g) = (&w[..w.len().min(k)], &g[..g.len().min(k)]);
        for (a, b) in w.iter().zip(g) {
            p.max_score_diff = p.max_score_diff.max((a.1 - b.1).abs());
        }
        match w.iter().zip(g).position(|(a, b)| a.0 != b.0) {
            None if w.len() == g.len() => p.identical += 1,
            first => {
                let rank = first.unwrap_or(w.len().min(g.len()));
                let want = w.get(rank).copied().unwrap_or((ItemId::new(u32::MAX), f32::NAN));
                let got = g.get(rank).copied().unwrap_or((ItemId::new(u32::MAX), f32::NAN));
                p.exceptions.push(ParityException {
                    row,
                    rank,
                    want,
                    got,
                    score_gap: (want.1 - got.1).abs(),
                });
            }
        }
    }
    p
}

/// The SIDs of a history (items unknown to the catalog are an error).
pub fn history_sids(catalog: &Catalog, history: &[ItemId]) -> Result<Vec<Sid>> {
    history
        .iter()
        .map(|&i| catalog.sid_of(i).map_err(candle_core::Error::wrap))
        .collect()
}
