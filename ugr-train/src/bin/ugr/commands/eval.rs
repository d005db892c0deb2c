//! `ugr eval`: a run on a split next to the baselines, the exported engine and its parity, confidence quality.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use ugr_train::baselines::Baselines;
use ugr_train::data::{self, Split};
use ugr_train::eval::calibrate;
use ugr_train::eval::compare::RowRanks;
use ugr_train::eval::confidence::{ConfidenceCollector, ConfidenceReport};
use ugr_train::eval::{self, MetricTable};
use ugr_train::run::LoadedRun;
use ugr_train::train::DeviceKind;

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Run directory.
    #[arg(long)]
    pub(crate) run: PathBuf,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub(crate) split: Split,
    /// Evaluate on the run's RL prompts instead of a split: the training targets its SFT run
    /// held out (`ugr train sft --rl-holdout N`), else every training target (use `--rows`).
    /// Writes `metrics-prompts.json` and `ranks-prompts.json` (a split's go to
    /// `metrics.json` and `ranks-<split>.json`).
    #[arg(long, conflicts_with = "split")]
    pub(crate) prompts: bool,
    #[arg(long, default_value_t = 20)]
    pub(crate) beam: usize,
    /// Requests per search call.
    #[arg(long, default_value_t = ugr_train::args::SEARCH_BATCH)]
    pub(crate) batch: usize,
    /// Evaluate only the first N rows.
    #[arg(long)]
    pub(crate) rows: Option<usize>,
    /// Evaluate on another dataset than the run's (same SID index).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Weights file inside the run.
    #[arg(long, default_value = ugr_train::files::MODEL)]
    pub(crate) weights: String,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub(crate) device: DeviceKind,
    /// Also evaluate this exported artifact (its engine backend) on the same rows and compare its
    /// top-10 with the run's, row by row.
    #[arg(long)]
    pub(crate) engine: Option<PathBuf>,
    /// Never recommend an item of the user's history, in the model, the engine and the
    /// baselines alike (the serving option of the same name). Off by default: the
    /// published LOO figures do not exclude; on Beauty and Instruments no test target
    /// repeats a history item, so excluding only frees slots.
    #[arg(long)]
    pub(crate) exclude_history: bool,
    /// Item-fusion weight (default: the run's fitted `fusion.json`; 0 ranks by the generative
    /// score over the fused candidates). The generative-only figure is printed beside it.
    #[arg(long)]
    pub(crate) item_weight: Option<f32>,
}

/// The name of the rows evaluated: the split's, or `prompts` (`--prompts`).
fn rows_name(a: &EvalArgs) -> &'static str {
    if a.prompts { PROMPTS } else { split_name(a.split) }
}

/// The rows' name under `--prompts`.
const PROMPTS: &str = "prompts";

pub(crate) fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Valid => "valid",
        Split::Test => "test",
    }
}

pub(crate) fn run(a: &EvalArgs) -> Result<()> {
    let device = a.device.device()?;
    let run = ugr_train::run::load_run(&a.run, &a.weights, &device)?;
    let data_path = a.data.clone().unwrap_or_else(|| run.info.sft.data.clone());
    let ds = data::load(&data_path, &run.info.sft.load)
        .with_context(|| format!("loading {}", data_path.display()))?;
    eprint!("{}", ds.summary());
    let mut rows = if a.prompts {
        ugr_train::train::rl::rl_prompts(&ds, &run.info.sft, run.info.model.max_history)
    } else {
        ds.examples(a.split, run.info.model.max_history)
    };
    if let Some(n) = a.rows {
        rows.truncate(n);
    }
    let searched = search(a, &run, &ds, &rows)?;
    let (engine, engine_lines) = match &a.engine {
        Some(path) => {
            let (json, lines) = eval_engine(path, &ds, &rows, a, &searched.lists)?;
            (Some(json), lines)
        }
        None => (None, Vec::new()),
    };
    let baselines = Baselines::fit(&ds.catalog, &ds.train);
    let (pop, trans) = baselines.evaluate(&rows, a.exclude_history);
    let (pop, trans) = (MetricTable::of(&pop), MetricTable::of(&trans));
    print_ranking(a, &ds.name, rows.len(), &searched, &trans, &pop, &engine_lines);
    write_ranks(a, &ds.name, &searched)?;
    print_confidence(&searched);
    write_reliability(a, &ds.name, &searched.confidence)?;
    let metrics = serde_json::json!({
        "dataset": ds.name,
        "split": rows_name(a),
        "beam": a.beam,
        "exclude_history": a.exclude_history,
        "rows": searched.result.rows,
        "wall_s": searched.result.wall_s,
        "recommendations_per_s": searched.result.recs_per_s,
        "model_rows_per_request": searched.result.model_rows_per_request,
        "model_item": searched.result.item,
        "model_sid": searched.result.sid,
        "exposure10": searched.result.exposure10,
        "exposure10_generative": searched.generative.as_ref().map(|g| g.0.exposure10),
        "item_weight": searched.item_weight.filter(|_| searched.generative.is_some()),
        "model_generative_item": searched.generative.as_ref().map(|g| &g.0.item),
        "confidence_generative": searched.generative.as_ref().map(|g| &g.1),
        "confidence_generative_not_reported": searched.generative.as_ref().and_then(|g| g.2.as_ref()),
        "baseline_last_item_transitions": trans,
        "baseline_popularity": pop,
        "confidence": searched.confidence,
        "confidence_not_reported": searched.other_confidence,
        "engine": engine,
    });
    let path = a.run.join(if a.prompts {
        ugr_train::files::METRICS_PROMPTS_JSON
    } else {
        ugr_train::files::METRICS_JSON
    });
    std::fs::write(&path, serde_json::to_string_pretty(&metrics)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// What the run's own searches gave on the rows.
struct Searched {
    /// The served search (fused when the model has an item head and a weight).
    result: eval::EvalResult,
    /// The fusion weight used, if any.
    item_weight: Option<f32>,
    /// The quality of the confidence the run reports.
    confidence: ConfidenceReport,
    /// The other signal, where the model has both (for comparison).
    other_confidence: Option<ConfidenceReport>,
    /// The generative-only search on the same rows, its confidence and the other signal's,
    /// when the served one fuses.
    generative: Option<(eval::EvalResult, ConfidenceReport, Option<ConfidenceReport>)>,
    /// Every row's list (kept only to compare with `--engine`).
    lists: Vec<eval::Ranked>,
}

/// The served search over `rows` with the confidence collectors, and the generative-only
/// search beside it when the served one fuses the item head.
fn search(a: &EvalArgs, run: &LoadedRun, ds: &data::Dataset, rows: &[data::Example]) -> Result<Searched> {
    let pb = indicatif::ProgressBar::new(rows.len() as u64);
    let fusion = eval::fusion::read(&a.run)?;
    let item_weight = a.item_weight.or(fusion.as_ref().map(|f| f.weight));
    let decoder = ugr_train::model::CandleModel::new(&run.model, &ds.catalog).with_item_weight(item_weight);
    // Learned confidence when the model has it (the search skips it otherwise).
    let opts = ugr_core::SearchOptions {
        learned_confidence: true,
        exclude_history: a.exclude_history,
        ..eval::eval_options(a.beam, run.info.model.normalization())
    };
    // The signal the run reports (`confidence.json`) through its map, and where the model
    // has both signals the other one through its own map, for comparison.
    let source = calibrate::source(&a.run, run.info.model.confidence)?;
    let choice = calibrate::read(&a.run)?;
    let calibration = ugr_train::export::run_calibration(&a.run)?;
    let keep = a.engine.is_some();
    let mut lists: Vec<eval::Ranked> = Vec::new();
    let mut collector = ConfidenceCollector::new(source, calibration.clone(), opts.beta);
    let mut other = run.info.model.confidence.then(|| {
        let map = choice.as_ref().and_then(|c| c.map(source.other()).cloned());
        ConfidenceCollector::new(source.other(), map, opts.beta)
    });
    let result = eval::search_rows(
        &decoder,
        &ds.catalog,
        None,
        rows,
        &opts,
        a.batch,
        |n| pb.set_position(n as u64),
        |e, r| {
            collector.add(e, r);
            if let Some(o) = other.as_mut() {
                o.add(e, r);
            }
            if keep {
                lists.push(r.items.iter().map(|x| (x.item, x.score)).collect());
            }
        },
    )?;
    pb.finish_and_clear();
    let fused = run.model.has_item_head() && item_weight.is_some();
    let generative = if fused {
        let opts = ugr_core::SearchOptions {
            item_fusion: ugr_core::ItemFusion::Off,
            ..opts
        };
        let mut collector = ConfidenceCollector::new(source, calibration, opts.beta);
        let mut other = run.info.model.confidence.then(|| {
            let map = choice.as_ref().and_then(|c| c.map(source.other()).cloned());
            ConfidenceCollector::new(source.other(), map, opts.beta)
        });
        let result = eval::search_rows(
            &decoder,
            &ds.catalog,
            None,
            rows,
            &opts,
            a.batch,
            |_| {},
            |e, r| {
                collector.add(e, r);
                if let Some(o) = other.as_mut() {
                    o.add(e, r);
                }
            },
        )?;
        Some((
            result,
            collector.report(),
            other.as_ref().map(ConfidenceCollector::report),
        ))
    } else {
        None
    };
    Ok(Searched {
        result,
        item_weight,
        confidence: collector.report(),
        other_confidence: other.as_ref().map(ConfidenceCollector::report),
        generative,
        lists,
    })
}

/// The ranking table: the model (fused and generative-only), the floors, the engine.
fn print_ranking(
    a: &EvalArgs,
    name: &str,
    rows: usize,
    s: &Searched,
    trans: &MetricTable,
    pop: &MetricTable,
    engine_lines: &[String],
) {
    println!(
        "{} {:?} split: {} rows, beam {}{}",
        name,
        a.split,
        rows,
        a.beam,
        if a.exclude_history {
            ", history items excluded"
        } else {
            ""
        }
    );
    println!("{}", MetricTable::header());
    if let (Some((g, _, _)), Some(w)) = (&s.generative, s.item_weight) {
        println!(
            "{}",
            s.result.item.row(&format!("model, fused w={w} (hit = item)"))
        );
        println!("{}", s.result.sid.row(&format!("model, fused w={w} (hit = SID)")));
        println!("{}", g.item.row("model, generative only (item)"));
    } else {
        println!("{}", s.result.item.row("model (hit = target item)"));
        println!("{}", s.result.sid.row("model (hit = target SID)"));
    }
    println!("{}", trans.row("last-item transitions (floor)"));
    println!("{}", pop.row("popularity"));
    for line in engine_lines {
        println!("{line}");
    }
    let exposure = |e: &ugr_core::metrics::Exposure| {
        format!(
            "coverage {:.4} ({} items), Gini {:.4}",
            e.coverage, e.distinct, e.gini
        )
    };
    println!("top-10 exposure: {}", exposure(&s.result.exposure10));
    if let Some((g, _, _)) = &s.generative {
        println!("top-10 exposure, generative only: {}", exposure(&g.exposure10));
    }
    println!(
        "wall {:.1}s, {:.1} recommendations/s, {:.1} model rows per request",
        s.result.wall_s, s.result.recs_per_s, s.result.model_rows_per_request
    );
}

/// Every row's rank of the target (`ranks-<split>.json`), for `ugr compare`.
fn write_ranks(a: &EvalArgs, dataset: &str, s: &Searched) -> Result<()> {
    let ranks = RowRanks {
        dataset: dataset.to_owned(),
        split: rows_name(a).to_owned(),
        served: s.result.item_ranks.clone(),
        generative: s.generative.as_ref().map(|g| g.0.item_ranks.clone()),
    };
    let path = a.run.join(RowRanks::file_name(rows_name(a)));
    ugr_train::run::write_json(&path, &ranks)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The confidence figures: the reported signal, the generative-only search's, the other signal's.
fn print_confidence(s: &Searched) {
    let f = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
    for line in s.confidence.lines() {
        println!("{line}");
    }
    if let Some((_, g, other)) = &s.generative {
        println!(
            "  (generative-only search: AUROC hit@1 {}, hit@10 {}; ECE top-1 {:.4} raw)",
            f(g.auroc_hit1),
            f(g.auroc_hit10),
            g.top1_vs_hit1_raw.ece
        );
        if let Some(o) = other {
            println!(
                "  (generative-only search, {}: AUROC hit@1 {}, hit@10 {})",
                o.source,
                f(o.auroc_hit1),
                f(o.auroc_hit10)
            );
        }
    }
    if let Some(o) = &s.other_confidence {
        println!(
            "  (not reported, for comparison: {}{}: AUROC hit@1 {}, hit@10 {}; ECE top-1 {:.4}, top-10 items {:.4}; \
             50% most confident / all {:.3})",
            o.source,
            if o.calibrated { ", calibrated" } else { ", raw" },
            f(o.auroc_hit1),
            f(o.auroc_hit10),
            o.top1_vs_hit1.ece,
            o.items_vs_target.ece,
            o.ndcg10_confident_half_over_all
        );
    }
}

/// The reliability diagram of the reported confidence, raw and calibrated, as SVG in the run.
fn write_reliability(a: &EvalArgs, name: &str, confidence: &ConfidenceReport) -> Result<()> {
    let diagram = a.run.join(format!("reliability-{}.svg", rows_name(a)));
    let mut curves = vec![("top-1 vs hit@1, raw", &confidence.top1_vs_hit1_raw)];
    if confidence.calibrated {
        curves.push(("top-1 vs hit@1, calibrated", &confidence.top1_vs_hit1));
    }
    curves.push(("top-10 items vs target, raw", &confidence.items_vs_target_raw));
    if confidence.calibrated {
        curves.push(("top-10 items vs target, calibrated", &confidence.items_vs_target));
    }
    ugr_train::plot::reliability_svg(
        &diagram,
        &format!(
            "{} {}: reliability ({} bins)",
            name,
            rows_name(a),
            eval::confidence::ECE_BINS
        ),
        &curves,
    )?;
    eprintln!("wrote {}", diagram.display());
    Ok(())
}

/// Evaluates an exported artifact on the same rows and compares its lists with the run's.
pub(crate) fn eval_engine(
    path: &Path,
    ds: &data::Dataset,
    rows: &[data::Example],
    a: &EvalArgs,
    reference: &[eval::Ranked],
) -> Result<(serde_json::Value, Vec<String>)> {
    let engine = ugr_core::Engine::open(path).with_context(|| format!("opening {}", path.display()))?;
    anyhow::ensure!(
        *engine.catalog() == ds.catalog,
        "{} was exported with another catalog than {}",
        path.display(),
        ds.name
    );
    let opts = ugr_core::SearchOptions {
        exclude_history: a.exclude_history,
        ..eval::eval_options(a.beam, engine.model().normalization())
    };
    let pb = indicatif::ProgressBar::new(rows.len() as u64);
    let (result, lists) = eval::evaluate_search(
        engine.model(),
        &engine.catalog(),
        rows,
        &opts,
        a.batch,
        true,
        |n| pb.set_position(n as u64),
    )?;
    pb.finish_and_clear();
    let parity = eval::parity(reference, &lists, 10);
    let label = format!("engine ({}; hit = item)", engine.backend().name());
    let mut lines = vec![result.item.row(&label)];
    lines.push(format!(
        "parity, top-10: {}/{} rows identical in items and order; max score difference {:.2e}; \
         engine {:.1} recommendations/s",
        parity.identical, parity.rows, parity.max_score_diff, result.recs_per_s
    ));
    for e in parity.exceptions.iter().take(20) {
        lines.push(format!(
            "  row {:>6} rank {:>2}: candle {} ({:.6}) vs engine {} ({:.6}), score gap {:.2e}",
            e.row,
            e.rank + 1,
            e.want.0,
            e.want.1,
            e.got.0,
            e.got.1,
            e.score_gap
        ));
    }
    if parity.exceptions.len() > 20 {
        lines.push(format!(
            "  ... {} more (all in metrics.json)",
            parity.exceptions.len() - 20
        ));
    }
    Ok((
        serde_json::json!({ "artifact": path, "result": result, "parity": parity }),
        lines,
    ))
}
