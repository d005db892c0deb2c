//! `ugr bench`: the benchmarks that print a table (training throughput, the engine, the soak).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ugr_train::args::ModelArgs;
use ugr_train::data::{self, Split};
use ugr_train::model::{HistoryEncoding, ModelConfig};
use ugr_train::train::DeviceKind;

use super::{BackendArg, DataArgs, parse_pruning};

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// The exported model in the embedded engine: latency p50/p99 and requests/s on 1 and 2
    /// threads, model vs search bookkeeping time, FLOPs against the measured peak, and the
    /// pruning curve (margin vs model rows vs NDCG@10).
    Engine(BenchEngineArgs),
    /// One engine, N threads, many requests: requests/s, resident memory from start to end,
    /// and answers compared with a single-thread reference.
    Soak(BenchSoakArgs),
    /// Batch scoring (what the Python package's `recommend_batch` runs) on histories written
    /// by `ugr data histories`: requests/s at several thread counts.
    Batch(super::bench_batch::BenchBatchArgs),
    /// Business rules inside the search against post-filtering the unconstrained list, the
    /// exhaustive oracle and the transition floor (denylists of 10-90% of the items, a
    /// category rule); availability changes per second on a large synthetic catalog.
    Rules(super::bench_rules::BenchRulesArgs),
    /// Cold start: a model trained without some items (`--cold-items`), served with them added
    /// (`ugr catalog --add`): the new items' rows against popularity and random among them,
    /// the other rows against the model served without them.
    Cold(super::bench_cold::BenchColdArgs),
    /// Synthetic catalogs of 100k to 10M items with a real model's architecture: open time,
    /// resident memory and single-request latency per size, each in a fresh process.
    Scale(super::bench_scale::BenchScaleArgs),
    /// Training and evaluation throughput at the default model size, item vs token history positions.
    Train {
        #[command(flatten)]
        data: DataArgs,
        /// Timed optimiser steps per configuration.
        #[arg(long, default_value_t = 30)]
        steps: usize,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Test rows for the evaluation speed.
        #[arg(long, default_value_t = 1000)]
        eval_rows: usize,
        #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
        device: DeviceKind,
    },
}

#[derive(Args)]
pub(crate) struct BenchEngineArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// The dataset whose histories are served (and scored, for the pruning curve).
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub(crate) split: Split,
    /// Requests timed per latency row.
    #[arg(long, default_value_t = 2000)]
    pub(crate) requests: usize,
    /// Rows scored per point of the pruning curve (0: skip the curve).
    #[arg(long, default_value_t = 5000)]
    pub(crate) rows: usize,
    #[arg(long, default_value_t = 20)]
    pub(crate) beam: usize,
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// Write the tables as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// onnxruntime shared library: adds onnxruntime rows running the same graphs (needs the
    /// `ort` feature; e.g. onnxruntime/capi/libonnxruntime.so.* from the PyPI wheel).
    #[arg(long)]
    pub(crate) ort_dylib: Option<PathBuf>,
    /// Adds latency rows for requests under business rules (a 10-item denylist, 10, 30, 50
    /// and 90% of the items denied, the category rule of `ugr bench rules`, 50% marked
    /// unavailable) against the same requests without, interleaved on one thread (native backend).
    #[arg(long)]
    pub(crate) rules: bool,
}

#[derive(Args)]
pub(crate) struct BenchSoakArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// The dataset whose histories are served.
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub(crate) split: Split,
    /// Distinct histories (the requests cycle through them).
    #[arg(long, default_value_t = 2000)]
    pub(crate) histories: usize,
    /// Requests served in all.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) requests: usize,
    /// Threads sharing the engine.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    #[arg(long, default_value_t = 20)]
    pub(crate) beam: usize,
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub(crate) backend: BackendArg,
    /// Write the report (with every RSS sample) as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// Runs `ugr bench ...`.
pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Engine(a) => bench_engine(&a),
        BenchCommand::Soak(a) => bench_soak(&a),
        BenchCommand::Rules(a) => super::bench_rules::run(&a),
        BenchCommand::Batch(a) => super::bench_batch::run(&a),
        BenchCommand::Cold(a) => super::bench_cold::run(&a),
        BenchCommand::Scale(a) => super::bench_scale::run(&a),
        BenchCommand::Train {
            data,
            steps,
            batch_size,
            eval_rows,
            device,
        } => bench_train(&data, steps, batch_size, eval_rows, device),
    }
}

pub(crate) fn bench_train(
    data: &DataArgs,
    steps: usize,
    batch_size: usize,
    eval_rows: usize,
    device: DeviceKind,
) -> Result<()> {
    let ds = data::load(&data.data, &data.load_options())?;
    let dev = device.device()?;
    println!(
        "ugr bench train: {} ({} train targets), batch {batch_size}, {steps} timed steps, device {device:?}, \
         CANDLE_NUM_THREADS={} RAYON_NUM_THREADS={}",
        ds.name,
        ds.train.iter().map(|s| s.targets()).sum::<usize>(),
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_default(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(all cores)".into()),
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "configuration", "params", "ms/step", "tokens/s", "targets/s", "eval req/s"
    );
    for (history, threads) in [
        (HistoryEncoding::Item, 1),
        (HistoryEncoding::Item, 2),
        (HistoryEncoding::Token, 2),
    ] {
        let cfg = ModelConfig {
            history,
            ..ModelArgs::default().config(&ds.catalog, data.load.max_history)
        };
        let name = format!("recipe, {history:?} pos., {threads} thr.");
        let r =
            ugr_train::bench::bench_training(&ds, &cfg, &name, batch_size, steps, eval_rows, threads, &dev)?;
        println!(
            "{:<28} {:>10} {:>10.1} {:>12.0} {:>12.0} {:>14.1}",
            r.name, r.parameters, r.ms_per_step, r.tokens_per_s, r.targets_per_s, r.eval_requests_per_s
        );
    }
    Ok(())
}

pub(crate) fn bench_engine(a: &BenchEngineArgs) -> Result<()> {
    use ugr_train::bench_engine as be;
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let engine = ugr_core::Engine::from_bytes(&bytes)?;
    let ds = data::load(&a.data.data, &a.data.load_options())?;
    anyhow::ensure!(
        *engine.catalog() == ds.catalog,
        "{} was exported with another catalog",
        a.model.display()
    );
    let contract = engine.model().contract().clone();
    let all = ds.examples(a.split, contract.max_history as usize);
    let requests = ugr_train::train::sample_rows(&all, a.requests, 7);
    let histories: Vec<&[ugr_core::ItemId]> = requests.iter().map(|e| e.history.as_slice()).collect();
    let opts = ugr_core::SearchOptions {
        beam: a.beam,
        top_k: a.k,
        normalization: engine.model().normalization(),
        ..ugr_core::SearchOptions::default()
    };
    println!(
        "ugr bench engine: {} ({} bytes, weights {}), {} {:?} requests, beam {}, top-{}, learned confidence {}",
        a.model.display(),
        bytes.len(),
        contract.weights,
        ds.name,
        a.split,
        a.beam,
        a.k,
        ugr_core::SidModel::has_confidence(engine.model()),
    );
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>10} {:>11} {:>11}",
        "backend", "threads", "p50 ms", "p99 ms", "req/s", "model rows", "search %"
    );
    let mut rows = Vec::new();
    let print = |r: &be::LatencyRow| {
        println!(
            "{:<34} {:>7} {:>9.3} {:>9.3} {:>10.1} {:>11.1} {:>10.1}%",
            r.backend,
            r.threads,
            r.p50_ms,
            r.p99_ms,
            r.requests_per_s,
            r.model_rows,
            100.0 * (1.0 - r.model_share)
        );
    };
    let warmup = &histories[..histories.len().min(50)];
    // The native backend (when the artifact has a weight section), one request per call and
    // 32 per call; then tract on the same graphs (symbolic plan, then plans concretised for
    // this beam width), after a warm-up each.
    match ugr_core::Engine::from_bytes_with(&bytes, ugr_core::BackendChoice::Native) {
        Ok(native) => {
            let m = native.model();
            be::latency(&native.catalog(), &[m], "warm-up", warmup, 1, &opts)?;
            for (name, batch) in [("native", 1), ("native, batched 32 per call", 32)] {
                for models in [vec![m], vec![m, m]] {
                    let r = be::latency(&native.catalog(), &models, name, &histories, batch, &opts)?;
                    print(&r);
                    rows.push(r);
                }
            }
        }
        Err(e) => println!("{:<34} not run: {e}", "native"),
    }
    if a.rules {
        let native = ugr_core::Engine::from_bytes_with(&bytes, ugr_core::BackendChoice::Native)?;
        println!("business rules, one thread, the configurations interleaved (p50 against `rules: none`):");
        let table = super::bench_rules::rule_latency(&native, &requests, &all, &opts)?;
        for r in &table {
            print(r);
            println!("{:<34} p50 {:.3}x", "", r.p50_ms / table[0].p50_ms);
        }
        rows.extend(table);
    }
    let tract_engine = ugr_core::Engine::from_bytes_with(&bytes, ugr_core::BackendChoice::Tract)?;
    let tract = tract_engine.model();
    be::latency(&engine.catalog(), &[tract], "warm-up", warmup, 1, &opts)?;
    for (name, warm) in [
        ("tract, symbolic plan", false),
        ("tract, plans concretised for R", true),
    ] {
        if warm {
            tract_engine.warm(a.beam)?;
        }
        for models in [vec![tract], vec![tract, tract]] {
            let r = be::latency(&engine.catalog(), &models, name, &histories, 1, &opts)?;
            print(&r);
            rows.push(r);
        }
    }
    if let Some(dylib) = &a.ort_dylib {
        rows.extend(bench_ort(dylib, &bytes, &engine, &requests, &opts, &print)?);
    }
    let mean_hist = histories
        .iter()
        .map(|h| h.len().min(contract.max_history as usize))
        .sum::<usize>() as f64
        / histories.len().max(1) as f64;
    let best = rows
        .iter()
        .filter(|r| r.threads == 1 && !r.backend.contains("batched"))
        .min_by(|x, y| x.p50_ms.total_cmp(&y.p50_ms));
    let peak = be::measured_peak_gflops()?;
    if let Some(best) = best {
        let flops = be::flops_per_request(&contract, mean_hist, best.model_rows);
        println!(
            "FLOPs per request {:.2} M (history {:.1} items, {:.1} model rows); single-thread f32 matmul peak \
             {:.1} GFLOP/s -> FLOP bound {:.3} ms; best p50 {:.3} ms = {:.1}% of peak",
            flops * 1e-6,
            mean_hist,
            best.model_rows,
            peak,
            flops / (peak * 1e9) * 1e3,
            best.p50_ms,
            100.0 * flops / (peak * 1e9) / (best.p50_ms * 1e-3)
        );
    }
    let mut curve = Vec::new();
    if a.rows > 0 {
        let scored = ugr_train::train::sample_rows(&all, a.rows, 11);
        let base = ugr_core::SearchOptions {
            learned_confidence: false,
            ..opts
        };
        let modes: Vec<(String, ugr_core::Pruning)> = [
            "off",
            "fixed:8",
            "fixed:6",
            "fixed:4",
            "fixed:3",
            "fixed:2",
            "adaptive:2:8",
            "adaptive:3:6",
            "adaptive:2:5",
            "adaptive:1:4",
        ]
        .iter()
        .map(|m| Ok((m.to_string(), parse_pruning(m)?)))
        .collect::<Result<_>>()?;
        curve = be::pruning_curve(&engine, &scored, &base, &modes)?;
        println!(
            "\npruning curve on {} {:?} rows (beam {}, top-{}):",
            scored.len(),
            a.split,
            a.beam,
            a.k
        );
        println!(
            "{:<14} {:>11} {:>12} {:>9} {:>9} {:>14}",
            "--prune", "model rows", "rows saved x", "NDCG@10", "HR@10", "NDCG@10 change"
        );
        let (rows0, ndcg0) = (curve[0].model_rows, curve[0].ndcg10);
        for p in &curve {
            println!(
                "{:<14} {:>11.1} {:>12.2} {:>9.4} {:>9.4} {:>13.2}%",
                p.mode,
                p.model_rows,
                rows0 / p.model_rows.max(1e-9),
                p.ndcg10,
                p.hr10,
                100.0 * (p.ndcg10 - ndcg0) / ndcg0.max(1e-12)
            );
        }
    }
    if let Some(path) = &a.json {
        let json = serde_json::json!({ "latency": rows, "pruning": curve, "peak_gflops": peak });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

pub(crate) fn bench_soak(a: &BenchSoakArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let engine = ugr_core::Engine::from_bytes_with(&bytes, a.backend.into())?;
    let ds = data::load(&a.data.data, &a.data.load_options())?;
    anyhow::ensure!(
        *engine.catalog() == ds.catalog,
        "{} was exported with another catalog",
        a.model.display()
    );
    let max_history = engine.model().contract().max_history as usize;
    let all = ds.examples(a.split, max_history);
    let rows = ugr_train::train::sample_rows(&all, a.histories, 7);
    let histories: Vec<&[ugr_core::ItemId]> = rows.iter().map(|e| e.history.as_slice()).collect();
    let opts = ugr_core::SearchOptions {
        beam: a.beam,
        top_k: a.k,
        ..ugr_core::SearchOptions::default()
    };
    let r = ugr_train::bench_soak::soak(&engine, &histories, &opts, a.threads, a.requests)?;
    println!(
        "ugr bench soak: {} ({}), {} distinct {:?} histories, beam {}, top-{}",
        a.model.display(),
        r.backend,
        histories.len(),
        a.split,
        a.beam,
        a.k
    );
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "threads",
        "requests",
        "seconds",
        "req/s",
        "RSS start MB",
        "RSS warm MB",
        "RSS peak MB",
        "RSS end MB",
        "mismatches"
    );
    println!(
        "{:>7} {:>9} {:>9.1} {:>9.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>10}",
        r.threads,
        r.requests,
        r.seconds,
        r.requests_per_s,
        r.rss_start_mb,
        r.rss_warm_mb,
        r.rss_peak_mb,
        r.rss_end_mb,
        r.mismatches
    );
    println!(
        "RSS growth after warm-up: {:+.1} MB over {} requests",
        r.rss_end_mb - r.rss_warm_mb,
        r.requests
    );
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}

#[cfg(feature = "ort")]
pub(crate) fn bench_ort(
    dylib: &Path,
    bytes: &[u8],
    engine: &ugr_core::Engine,
    requests: &[data::Example],
    opts: &ugr_core::SearchOptions,
    print: &dyn Fn(&ugr_train::bench_engine::LatencyRow),
) -> Result<Vec<ugr_train::bench_engine::LatencyRow>> {
    use ugr_train::ort_backend::{OrtModel, environment};
    let histories: Vec<&[ugr_core::ItemId]> = requests.iter().map(|e| e.history.as_slice()).collect();
    let histories = histories.as_slice();
    let env = environment(dylib)?;
    let bundle = ugr_core::Bundle::from_bytes(bytes)?;
    let section = bundle.model.as_ref().context("the artifact has no model")?;
    let catalog = std::sync::Arc::new(bundle.catalog.clone());
    let contract = engine.model().contract().clone();
    let open = || OrtModel::new(&env, contract.clone(), section, std::sync::Arc::clone(&catalog));
    let (m1, m2) = (open()?, open()?);
    let be = |models: &[&OrtModel]| {
        ugr_train::bench_engine::latency(
            &catalog,
            models,
            "onnxruntime (same graphs, search)",
            histories,
            1,
            opts,
        )
    };
    be(&[&m1])?; // warm-up: onnxruntime allocates its arenas on first use
    let mut rows = Vec::new();
    for models in [vec![&m1], vec![&m1, &m2]] {
        let r = be(&models)?;
        print(&r);
        rows.push(r);
    }
    // Cross-check: onnxruntime and the engine's backend return the same lists for these requests.
    let (_, want) =
        ugr_train::eval::evaluate_search(engine.model(), &catalog, requests, opts, 64, true, |_| {})?;
    let (_, got) = ugr_train::eval::evaluate_search(&m1, &catalog, requests, opts, 64, true, |_| {})?;
    let p = ugr_train::eval::parity(&want, &got, opts.top_k);
    println!(
        "onnxruntime vs the engine, top-{}: {}/{} requests identical in items and order, max score difference {:.2e}",
        opts.top_k, p.identical, p.rows, p.max_score_diff
    );
    Ok(rows)
}

#[cfg(not(feature = "ort"))]
pub(crate) fn bench_ort(
    _: &Path,
    _: &[u8],
    _: &ugr_core::Engine,
    _: &[data::Example],
    _: &ugr_core::SearchOptions,
    _: &dyn Fn(&ugr_train::bench_engine::LatencyRow),
) -> Result<Vec<ugr_train::bench_engine::LatencyRow>> {
    anyhow::bail!(
        "--ort-dylib needs a build with the ort feature: cargo build --release -p ugr-train --features ort"
    )
}
