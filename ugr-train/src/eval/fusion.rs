//! Fitting the item-fusion weight on the validation split (`fusion.json` of a run).
//!
//! A model trained with the item-level loss has an item head: a softmax over every catalog
//! SID from the user state. The search fuses it with the generative score
//! ([`ugr_core::ItemFusion`]): `mean token log-prob + w * log p_item`. `w` is chosen here by
//! validation NDCG@10 over a fixed grid (the search is run once per grid point on the same
//! rows; the candidate set does not depend on `w`, only the order does). The chosen weight is
//! stored in the run (`fusion.json`), used by `ugr eval` and written into the exported
//! artifact's model contract, so the engine ranks exactly as the evaluation did.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use ugr_core::{Catalog, ItemFusion, SearchOptions};

use super::{EvalResult, search_rows};
use crate::data::Example;
use crate::model::{CandleModel, SidTransformer};

/// The weights tried, in order (`0` keeps the item head's candidates but ranks by the
/// generative score alone).
pub const GRID: [f32; 11] = [0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 4.0, 8.0];

/// The file in a run directory.
pub const FILE: &str = "fusion.json";

/// One grid point's validation figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FusionPoint {
    /// The weight (`None`: the pure generative search, `ItemFusion::Off`).
    pub weight: Option<f32>,
    /// Validation HR@10.
    pub hr10: f64,
    /// Validation NDCG@10.
    pub ndcg10: f64,
}

/// `fusion.json`: the fitted weight and how it was chosen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FusionFit {
    /// The chosen weight (best validation NDCG@10 on the grid).
    pub weight: f32,
    /// Validation rows used.
    pub rows: usize,
    /// Beam width of the search.
    pub beam: usize,
    /// Every point tried, the generative-only search first.
    pub grid: Vec<FusionPoint>,
}

fn point(weight: Option<f32>, r: &EvalResult) -> FusionPoint {
    FusionPoint {
        weight,
        hr10: r.item.hr_at(10),
        ndcg10: r.item.ndcg_at(10),
    }
}

/// Fits the weight on `rows` (validation examples); `None` when the model has no item head.
pub fn fit(
    model: &SidTransformer,
    catalog: &Catalog,
    rows: &[Example],
    beam: usize,
    batch: usize,
    mut log: impl FnMut(&FusionPoint),
) -> Result<Option<FusionFit>> {
    if !model.has_item_head() {
        return Ok(None);
    }
    let decoder = CandleModel::new(model, catalog);
    let base = super::eval_options(beam, model.config().normalization());
    let run = |fusion: ItemFusion| {
        let opts = SearchOptions {
            item_fusion: fusion,
            ..base
        };
        search_rows(&decoder, catalog, None, rows, &opts, batch, |_| {}, |_, _| {})
    };
    let mut grid = Vec::with_capacity(GRID.len() + 1);
    grid.push(point(None, &run(ItemFusion::Off)?));
    log(&grid[0]);
    for &w in &GRID {
        grid.push(point(Some(w), &run(ItemFusion::Weight(w))?));
        log(grid.last().expect("just pushed"));
    }
    let best = grid
        .iter()
        .filter_map(|p| p.weight.map(|w| (w, p.ndcg10)))
        .fold((0.0f32, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    Ok(Some(FusionFit {
        weight: best.0,
        rows: rows.len(),
        beam,
        grid,
    }))
}

/// The fitted weight of a run directory, when it has one.
pub fn read(run: &Path) -> Result<Option<FusionFit>> {
    let path = run.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(crate::run::read_json(&path)?))
}
