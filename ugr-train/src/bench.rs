//! `ugr bench train`: training and evaluation throughput at a given model size, printed
//! as a table (speed targets live in benchmarks, never in timed tests).

use std::time::Instant;

use anyhow::Result;
use candle_core::Device;

use crate::data::Dataset;
use crate::eval;
use crate::model::ModelConfig;
use crate::model::new_model;
use crate::train::batches::{epoch_batches, windows};
use crate::train::optim::{AdamW, AdamWParams};
use crate::train::sample_rows;
use crate::train::{SHARDS, Sharding, sharded_grads};

/// One measured configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub name: String,
    /// Parameters.
    pub parameters: usize,
    /// Milliseconds per optimiser step.
    pub ms_per_step: f64,
    /// SID tokens per second (history tokens read + target tokens).
    pub tokens_per_s: f64,
    /// Next-item targets per second.
    pub targets_per_s: f64,
    /// Evaluation requests per second (beam 20, top-20).
    pub eval_requests_per_s: f64,
}

/// Times `steps` training steps (after 3 warm-up steps) and an evaluation of `eval_rows` rows,
/// on `threads` threads (the batch is split into [`SHARDS`] parts whatever the thread count,
/// as in training).
#[allow(clippy::too_many_arguments)]
pub fn bench_training(
    ds: &Dataset,
    cfg: &ModelConfig,
    name: &str,
    batch_size: usize,
    steps: usize,
    eval_rows: usize,
    threads: usize,
    device: &Device,
) -> Result<BenchRow> {
    crate::set_threads(threads);
    let (model, varmap) = new_model(cfg, 1, device)?;
    let parameters = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let named = crate::train::named_vars(&varmap)?;
    let vars = varmap.all_vars();
    let mut opt = AdamW::new(named, AdamWParams::default())?;
    let ws = windows(&ds.train, cfg.max_history);
    let order = epoch_batches(&ws, batch_size, 1, 0);
    let l = cfg.levels();
    let (mut tokens, mut targets) = (0usize, 0usize);
    let mut start = Instant::now();
    for (i, b) in order.iter().cycle().take(steps + 3).enumerate() {
        if i == 3 {
            start = Instant::now();
            tokens = 0;
            targets = 0;
        }
        let sharding = Sharding {
            seed: 1,
            step: i,
            shards: SHARDS,
            threads,
        };
        let (grads, _, n_targets) = sharded_grads(&model, ds, &ws, b, sharding, &vars, device)?;
        opt.step(&grads, 1.0)?;
        let read: usize = b.iter().map(|&w| ws[w].end - ws[w].start - 1).sum();
        tokens += (read + n_targets) * l;
        targets += n_targets;
    }
    let secs = start.elapsed().as_secs_f64();
    let rows = sample_rows(&ds.test, eval_rows, 1);
    let e = eval::evaluate(&model, &ds.catalog, &rows, 20, crate::args::SEARCH_BATCH, |_| {})?;
    crate::set_threads(0);
    Ok(BenchRow {
        name: name.to_owned(),
        parameters,
        ms_per_step: secs * 1e3 / steps as f64,
        tokens_per_s: tokens as f64 / secs,
        targets_per_s: targets as f64 / secs,
        eval_requests_per_s: e.recs_per_s,
    })
}
