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
use ugr_core::metrics::{CUTOFFS, RankingMetrics};
use ugr_core::{BeamSearch, Catalog, ItemId, SearchOptions, Sid};

use crate::data::Example;
use crate::model::{CandleModel, SidTransformer};

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

/// Evaluates `model` on `rows`: beam `beam`, top-20 returned, `batch` requests per search call.
pub fn evaluate(
    model: &SidTransformer,
    catalog: &Catalog,
    rows: &[Example],
    beam: usize,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<EvalResult> {
    let start = Instant::now();
    let decoder = CandleModel::new(model, catalog);
    let mut search = BeamSearch::new(catalog);
    let opts = SearchOptions {
        beam,
        top_k: *CUTOFFS.last().unwrap_or(&20),
        learned_confidence: false,
        normalization: model.config().normalization(),
        ..SearchOptions::default()
    };
    let mut item = RankingMetrics::default();
    let mut sid = RankingMetrics::default();
    let mut model_rows = 0u64;
    let mut done = 0;
    for chunk in rows.chunks(batch.max(1)) {
        let histories: Vec<&[ItemId]> = chunk.iter().map(|e| e.history.as_slice()).collect();
        let results = search
            .run(&decoder, &histories, &opts)
            .map_err(candle_core::Error::wrap)?;
        for (e, r) in chunk.iter().zip(&results) {
            let returned: Vec<ItemId> = r.items.iter().map(|x| x.item).collect();
            let (pi, ps) = ranks(catalog, &returned, e.target);
            item.add(pi);
            sid.add(ps);
            model_rows += u64::from(r.stats.model_rows);
        }
        done += chunk.len();
        progress(done);
    }
    let wall_s = start.elapsed().as_secs_f64();
    Ok(EvalResult {
        item: MetricTable::of(&item),
        sid: MetricTable::of(&sid),
        rows: rows.len(),
        wall_s,
        recs_per_s: rows.len() as f64 / wall_s.max(1e-9),
        model_rows_per_request: model_rows as f64 / rows.len().max(1) as f64,
    })
}

/// The SIDs of a history (items unknown to the catalog are an error).
pub fn history_sids(catalog: &Catalog, history: &[ItemId]) -> Result<Vec<Sid>> {
    history
        .iter()
        .map(|&i| catalog.sid_of(i).map_err(candle_core::Error::wrap))
        .collect()
}
