//! `ugr bench engine`: the exported model served by the embedded engine, printed as tables.
//!
//! 1. **Latency**: p50 / p99 per request and requests per second at the given beam and top-K,
//!    one request per call (a service's view), on 1 and 2 threads sharing one engine; the
//!    time inside the model backend is measured separately, so the rest is the trie and
//!    beam bookkeeping of ugr-core's search. Rows: tract with its symbolic plan, tract with
//!    plans concretised for the beam width ([`Engine::warm`]), and, with the `ort` feature
//!    and `--ort-dylib`, onnxruntime running the same graphs with the same inputs.
//! 2. **FLOPs** per request (an analytic count from the model contract and the rows the
//!    search evaluated) against this machine's measured single-thread f32 matmul peak.
//! 3. **Pruning curve**: margin vs model rows vs NDCG@10 on a split, for fixed and
//!    adaptive difficulty-aware pruning (UGR-METHOD section 4).
//! 4. **Business rules** (`--rules`): latency of constrained requests (denylists, a category
//!    rule, items marked unavailable) against unconstrained ones, interleaved in one thread
//!    so that the machine's drift hits every configuration alike ([`rule_latency`]).
//!
//! Figures are measured on the machine it runs on; nothing here is asserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;
use ugr_core::Engine;
use ugr_core::contract::{HistoryPositions, ModelContract};
use ugr_core::{
    Availability, BeamSearch, Catalog, ItemId, Pruning, Request, SearchOptions, Sid, SidModel, Step,
};

use crate::data::Example;
use crate::eval;

/// Wraps a model and adds up the wall time spent inside it.
pub struct Timed<'m, M> {
    inner: &'m M,
    nanos: AtomicU64,
}

impl<'m, M> Timed<'m, M> {
    /// Wraps `inner` with a zero clock.
    pub fn new(inner: &'m M) -> Self {
        Timed {
            inner,
            nanos: AtomicU64::new(0),
        }
    }

    /// Seconds spent in `prefill` and `step` so far.
    pub fn seconds(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }

    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl<M: SidModel> SidModel for Timed<'_, M> {
    type Cache = M::Cache;
    type Error = M::Error;

    fn has_confidence(&self) -> bool {
        self.inner.has_confidence()
    }

    fn new_cache(&self) -> Self::Cache {
        self.inner.new_cache()
    }

    fn prefill(
        &self,
        cache: &mut Self::Cache,
        histories: &[&[Sid]],
        logits_for: std::ops::Range<u32>,
    ) -> Result<(), Self::Error> {
        self.time(|| self.inner.prefill(cache, histories, logits_for))
    }

    fn step(&self, cache: &mut Self::Cache, step: &Step<'_>) -> Result<(), Self::Error> {
        self.time(|| self.inner.step(cache, step))
    }

    fn logits<'a>(&'a self, cache: &'a Self::Cache) -> &'a [f32] {
        self.inner.logits(cache)
    }

    fn item_logits<'a>(&'a self, cache: &'a Self::Cache) -> Option<&'a [f32]> {
        self.inner.item_logits(cache)
    }

    fn item_shortlist<'a>(&'a self, cache: &'a Self::Cache) -> Option<ugr_core::ItemShortlist<'a>> {
        self.inner.item_shortlist(cache)
    }

    fn item_logit(&self, cache: &Self::Cache, r: usize, sid: u32) -> Option<f32> {
        self.inner.item_logit(cache, r, sid)
    }

    fn item_weight(&self) -> Option<f32> {
        self.inner.item_weight()
    }
}

/// One latency row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyRow {
    /// Backend and plan.
    pub backend: String,
    /// Threads sharing the engine.
    pub threads: usize,
    /// Median latency per call (one request, or `batch` requests in a batched row), ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests per second over all threads.
    pub requests_per_s: f64,
    /// Share of the time spent inside the model backend.
    pub model_share: f64,
    /// Mean model rows per request.
    pub model_rows: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Serves `histories` `batch` requests per call (1: one request per call), split over one
/// thread per entry of `models` (the same model may be passed several times when it is
/// `Sync`). Latencies are per call; requests/s and model rows are per request.
pub fn latency<M: SidModel + Sync>(
    catalog: &Catalog,
    models: &[&M],
    backend: &str,
    histories: &[&[ItemId]],
    batch: usize,
    opts: &SearchOptions,
) -> Result<LatencyRow> {
    let batch = batch.max(1);
    let threads = models.len().max(1);
    let per_thread = histories.len().div_ceil(threads).max(1);
    let start = Instant::now();
    let results: Vec<Result<(Vec<f64>, u64, f64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = histories
            .chunks(per_thread)
            .zip(models)
            .map(|(chunk, &model)| {
                s.spawn(move || -> Result<(Vec<f64>, u64, f64)> {
                    let model = Timed::new(model);
                    let mut lat = Vec::with_capacity(chunk.len());
                    let mut rows = 0u64;
                    let mut search = BeamSearch::new(catalog);
                    for group in chunk.chunks(batch) {
                        let t = Instant::now();
                        let r = search.run(&model, group, opts)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        rows += r.iter().map(|x| u64::from(x.stats.model_rows)).sum::<u64>();
                    }
                    Ok((lat, rows, model.seconds()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("bench thread panicked")))
            })
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let (mut rows, mut in_model) = (0, 0.0);
    for r in results {
        let (l, n, m) = r?;
        lat.extend(l);
        rows += n;
        in_model += m;
    }
    lat.sort_by(f64::total_cmp);
    let busy: f64 = lat.iter().sum::<f64>() * 1e-3;
    Ok(LatencyRow {
        backend: backend.to_owned(),
        threads,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        requests_per_s: histories.len() as f64 / wall,
        model_share: in_model / busy.max(1e-12),
        model_rows: rows as f64 / histories.len().max(1) as f64,
    })
}

/// One configuration of [`rule_latency`]: a name, the requests (a history with its rules
/// each) and the items marked unavailable.
pub struct RuleConfig<'a> {
    /// Shown as the row's backend column.
    pub name: String,
    /// The requests, served one per call.
    pub requests: Vec<Request<'a>>,
    /// Catalog availability during the run (`None`: every item available).
    pub live: Option<Availability>,
}

/// Latency of each configuration, one request per call on one thread, the configurations
/// interleaved in `rounds` rounds (each round serves a slice of every configuration's
/// requests in turn) so that the machine's drift hits them alike.
pub fn rule_latency<M: SidModel>(
    catalog: &Catalog,
    model: &M,
    configs: &[RuleConfig<'_>],
    rounds: usize,
    opts: &SearchOptions,
) -> Result<Vec<LatencyRow>> {
    let rounds = rounds.max(1);
    let model = Timed::new(model);
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut rows = vec![0u64; configs.len()];
    let mut in_model = vec![0f64; configs.len()];
    let mut cache = model.new_cache();
    let mut out = Vec::new();
    for round in 0..rounds {
        for (c, config) in configs.iter().enumerate() {
            let per = config.requests.len().div_ceil(rounds);
            let slice = config.requests.chunks(per.max(1)).nth(round).unwrap_or(&[]);
            let mut search = BeamSearch::new(catalog).with_availability(config.live.as_ref());
            let before = model.seconds();
            for request in slice {
                let t = Instant::now();
                search.run_requests_with_cache(
                    &model,
                    &mut cache,
                    std::slice::from_ref(request),
                    opts,
                    &mut out,
                )?;
                lat[c].push(t.elapsed().as_secs_f64() * 1e3);
                rows[c] += u64::from(out[0].stats.model_rows);
            }
            in_model[c] += model.seconds() - before;
        }
    }
    Ok(configs
        .iter()
        .enumerate()
        .map(|(c, config)| {
            let l = &mut lat[c];
            l.sort_by(f64::total_cmp);
            let busy: f64 = l.iter().sum::<f64>() * 1e-3;
            LatencyRow {
                backend: config.name.clone(),
                threads: 1,
                p50_ms: percentile(l, 0.5),
                p99_ms: percentile(l, 0.99),
                requests_per_s: l.len() as f64 / busy.max(1e-12),
                model_share: in_model[c] / busy.max(1e-12),
                model_rows: rows[c] as f64 / l.len().max(1) as f64,
            }
        })
        .collect())
}

/// Floating-point operations (2 per multiply-add) of one request, counted from the contract:
/// the encoder over the history's positions, then `model_rows` rows through the SID head.
pub fn flops_per_request(c: &ModelContract, history_items: f64, model_rows: f64) -> f64 {
    let (encoder_layers, d_ff) = (f64::from(c.encoder_layers), f64::from(c.d_ff));
    let d = f64::from(c.d_model);
    let levels = c.codebooks.len() as f64;
    let positions = 1.0
        + match c.history {
            HistoryPositions::Item => history_items,
            HistoryPositions::Token => history_items * levels,
        };
    let block = 4.0 * d * d + 2.0 * d * d_ff;
    let encoder = encoder_layers * (positions * block + positions * positions * d);
    let mean_codebook = c.codebooks.iter().map(|&x| f64::from(x)).sum::<f64>() / levels;
    let head_row = f64::from(c.head_layers) * (block + 2.0 * levels * d) + d * mean_codebook;
    2.0 * (encoder + model_rows * head_row)
}

/// This machine's single-thread f32 matmul rate (GFLOP/s) with candle's CPU kernels, the
/// best of a few 512 x 512 x 512 products.
pub fn measured_peak_gflops() -> Result<f64> {
    use candle_core::{Device, Tensor};
    let n = 512;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        std::hint::black_box(c.sum_all()?.to_scalar::<f32>()?);
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n * n * n) as f64 / best * 1e-9)
}

/// One point of the pruning curve.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PruningPoint {
    /// The mode, as `--prune` spells it.
    pub mode: String,
    /// Mean model rows per request.
    pub model_rows: f64,
    /// NDCG@10.
    pub ndcg10: f64,
    /// HR@10.
    pub hr10: f64,
}

/// Evaluates `rows` with the engine for each pruning mode.
pub fn pruning_curve(
    engine: &Engine,
    rows: &[Example],
    base: &SearchOptions,
    modes: &[(String, Pruning)],
) -> Result<Vec<PruningPoint>> {
    let mut out = Vec::new();
    for (name, pruning) in modes {
        let opts = SearchOptions {
            pruning: *pruning,
            ..*base
        };
        let (r, _) =
            eval::evaluate_search(engine.model(), &engine.catalog(), rows, &opts, 64, false, |_| {})?;
        out.push(PruningPoint {
            mode: name.clone(),
            model_rows: r.model_rows_per_request,
            ndcg10: r.item.ndcg_at(10),
            hr10: r.item.hr_at(10),
        });
    }
    Ok(out)
}
