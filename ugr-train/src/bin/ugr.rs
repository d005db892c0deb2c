//! The `ugr` command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ugr_train::baselines::Baselines;
use ugr_train::data::index::SidIndex;
use ugr_train::data::{self, LoadOptions, Split, SplitProtocol};
use ugr_train::eval::confidence::ConfidenceCollector;
use ugr_train::eval::{self, MetricTable};
use ugr_train::model::{HistoryEncoding, ItemOutput, ModelConfig};
use ugr_train::sid;
use ugr_train::train::rl::{RewardKind, RlArgs};
use ugr_train::train::{self, DeviceKind, SftArgs};

/// ugr: uncertainty-aware generative recommendation.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole job on a built-in default: train, export, recommend with confidence, evaluate.
    Quickstart(QuickstartArgs),
    /// Train a model.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Evaluate a run on a split: HR@K and NDCG@K (K = 1, 3, 5, 10, 20) next to the baselines.
    Eval(EvalArgs),
    /// Export a run to one artifact: catalog, trie, titles, calibration and ONNX graphs.
    Export(ExportArgs),
    /// Recommend for a history with an exported artifact (the embedded engine).
    Recommend(RecommendArgs),
    /// Dataset tools.
    #[command(subcommand)]
    Data(DataCommand),
    /// Semantic ID tools.
    #[command(subcommand)]
    Sid(SidCommand),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Charts (SVG).
    #[command(subcommand)]
    Plot(PlotCommand),
}

#[derive(Subcommand)]
enum PlotCommand {
    /// RL training curves of several runs on one chart (e.g. the three reward types).
    Curves {
        /// RL run directories (each has curves.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// SVG file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The exported model in the embedded engine: latency p50/p99 and requests/s on 1 and 2
    /// threads, model vs search bookkeeping time, FLOPs against the measured peak, and the
    /// pruning curve (margin vs model rows vs NDCG@10).
    Engine(BenchEngineArgs),
    /// One engine, N threads, many requests: requests/s, resident memory from start to end,
    /// and answers compared with a single-thread reference.
    Soak(BenchSoakArgs),
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

#[derive(Subcommand)]
enum TrainCommand {
    /// Supervised training: next-item SID prediction with teacher forcing.
    Sft(Box<SftCli>),
    /// The UGR reinforcement stage from an SFT run: GRPO with the uncertainty-weighted
    /// reward, difficulty-aware weighting and confidence alignment.
    Rl(Box<RlCli>),
    /// (Re)fit the item-fusion weight of an SFT run on its validation split (`fusion.json`);
    /// `ugr train sft` does it after training when the model has an item head.
    Fuse {
        /// Run directory.
        #[arg(long)]
        run: PathBuf,
        /// Validation rows (0 = all; a fixed seeded sample otherwise; default: the run's --eval-rows).
        #[arg(long)]
        eval_rows: Option<usize>,
    },
}

#[derive(Args)]
struct RlCli {
    /// The SFT run to start from.
    #[arg(long)]
    from: PathBuf,
    /// Run directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    overwrite: bool,
    /// Weights file of the SFT run.
    #[arg(long, default_value = "model.safetensors")]
    from_weights: String,
    #[arg(long, value_enum, default_value_t = RewardKind::Uncertainty)]
    reward: RewardKind,
    /// Temperature of the uncertainty reward.
    #[arg(long, default_value_t = 1.0)]
    tau: f32,
    /// Difficulty-aware weighting of the policy loss: on or off.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    difficulty: bool,
    /// alpha of a group whose target is the top beam (0: solved prompts get no policy gradient).
    #[arg(long, default_value_t = 0.0)]
    alpha_min: f32,
    /// Confidence alignment (trains CONF_Q, C_LOW, C_HIGH): on or off.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    confidence: bool,
    /// Weight of softplus(c_partial - c_gt).
    #[arg(long, default_value_t = 0.0)]
    lambda_p: f32,
    /// Weight of softplus(c_wrong - c_gt).
    #[arg(long, default_value_t = 0.5)]
    lambda_w: f32,
    /// Weight of softplus(c_wrong - c_partial) (the hierarchical ordering).
    #[arg(long, default_value_t = 0.0)]
    lambda_pw: f32,
    /// Group size G: beams (distinct items) per prompt.
    #[arg(long, default_value_t = 16)]
    group: usize,
    /// Prompts per optimiser step.
    #[arg(long, default_value_t = 16)]
    prompts_per_step: usize,
    /// Learning rate (constant); default: the SFT run's peak / 100.
    #[arg(long)]
    lr: Option<f64>,
    /// Linear learning-rate warm-up steps.
    #[arg(long, default_value_t = 10)]
    warmup_steps: usize,
    /// Learning-rate multiplier of the new confidence parameters (CONF_Q, C_LOW, C_HIGH rows).
    #[arg(long, default_value_t = 100.0)]
    confidence_lr_scale: f64,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Prompts per epoch (0 = every training target), a seeded sample.
    #[arg(long, default_value_t = 0)]
    max_prompts: usize,
    /// Stop after this many steps.
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// Validate (HR@10, NDCG@10) every this many steps.
    #[arg(long, default_value_t = 50)]
    eval_every: usize,
    /// Validation rows per check (0 = all), a fixed seeded sample.
    #[arg(long, default_value_t = 2000)]
    eval_rows: usize,
    /// Validation rows the calibration map is fitted on (0 = all).
    #[arg(long, default_value_t = 0)]
    calibration_rows: usize,
}

fn on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

#[derive(Args)]
struct DataArgs {
    /// Dataset directory (LETTER, Amazon-2023, MiniOneRec formats), an interactions CSV, or `builtin:synthetic`.
    #[arg(long, default_value = data::synthetic::BUILTIN)]
    data: PathBuf,
    /// SID index: required for an interactions CSV; for a LETTER or Amazon-2023 directory it
    /// replaces the dataset's own index (e.g. SIDs from `ugr sid build`).
    #[arg(long)]
    index: Option<PathBuf>,
    /// Split protocol for an interactions CSV.
    #[arg(long, value_enum, default_value_t = SplitProtocol::Loo)]
    split_protocol: SplitProtocol,
    /// History items kept (and read by the model).
    #[arg(long, default_value_t = 20)]
    max_history: usize,
    /// Drop interactions with items missing from the index instead of failing.
    #[arg(long)]
    skip_unknown: bool,
}

impl DataArgs {
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            max_history: self.max_history,
            skip_unknown: self.skip_unknown,
            index: self.index.clone(),
            split: self.split_protocol,
        }
    }
}

#[derive(Args)]
struct SftCli {
    #[command(flatten)]
    data: DataArgs,
    /// Run directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last epoch.
    #[arg(long)]
    resume: bool,
    /// Replace a run already in --out (without it, an existing run is never overwritten).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Training windows (user sequences) per batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 200)]
    warmup_steps: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Early stopping: epochs without a better validation NDCG@10.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Validation rows for early stopping (0 = all; a fixed seeded sample otherwise).
    #[arg(long, default_value_t = 0)]
    eval_rows: usize,
    /// Beam of the validation search.
    #[arg(long, default_value_t = 20)]
    eval_beam: usize,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// User-encoder layers.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 512)]
    d_ff: usize,
    /// SID-head layers.
    #[arg(long, default_value_t = 2)]
    head_layers: usize,
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// One encoder position per history item, or one per SID token.
    #[arg(long, value_enum, default_value_t = HistoryEncoding::Item)]
    history: HistoryEncoding,
    /// Normalise each level's training softmax over the codes the catalog allows after the
    /// prefix (`--trie-loss` alone means on; default on).
    #[arg(long, default_value = "on", value_parser = on_off, num_args = 0..=1, default_missing_value = "on")]
    trie_loss: bool,
    /// Add a learned identity vector per catalog SID to each history item (default on).
    #[arg(long, default_value = "on", value_parser = on_off, num_args = 0..=1, default_missing_value = "on")]
    sid_embeddings: bool,
    /// Weight of the item-level loss, which trains the item head that serving fuses with the
    /// generative score (needs SID embeddings; 0 = off: a generative-only model): a softmax
    /// over every catalog SID from the user state.
    #[arg(long, default_value_t = 1.0)]
    item_loss: f32,
    /// The item head's output table: its own table and per-SID bias (untied, default), or
    /// the SID identity table (tied, as SASRec).
    #[arg(long, value_enum, default_value_t = ItemOutput::Untied)]
    item_output: ItemOutput,
}

#[derive(Args)]
struct EvalArgs {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    #[arg(long, default_value_t = 20)]
    beam: usize,
    /// Requests per search call.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Evaluate only the first N rows.
    #[arg(long)]
    rows: Option<usize>,
    /// Evaluate on another dataset than the run's (same SID index).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Weights file inside the run.
    #[arg(long, default_value = "model.safetensors")]
    weights: String,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// Also evaluate this exported artifact (its engine backend) on the same rows and compare its
    /// top-10 with the run's, row by row.
    #[arg(long)]
    engine: Option<PathBuf>,
    /// Never recommend an item of the user's history, in the model, the engine and the
    /// baselines alike (the serving option of the same name). Off by default: the
    /// published LOO figures do not exclude; on Beauty and Instruments no test target
    /// repeats a history item, so excluding only frees slots.
    #[arg(long)]
    exclude_history: bool,
    /// Item-fusion weight (default: the run's fitted `fusion.json`; 0 ranks by the generative
    /// score over the fused candidates). The generative-only figure is printed beside it.
    #[arg(long)]
    item_weight: Option<f32>,
}

#[derive(Args)]
struct BenchEngineArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    model: PathBuf,
    /// The dataset whose histories are served (and scored, for the pruning curve).
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Requests timed per latency row.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Rows scored per point of the pruning curve (0: skip the curve).
    #[arg(long, default_value_t = 5000)]
    rows: usize,
    #[arg(long, default_value_t = 20)]
    beam: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Write the tables as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// onnxruntime shared library: adds onnxruntime rows running the same graphs (needs the
    /// `ort` feature; e.g. onnxruntime/capi/libonnxruntime.so.* from the PyPI wheel).
    #[arg(long)]
    ort_dylib: Option<PathBuf>,
}

#[derive(Args)]
struct BenchSoakArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    model: PathBuf,
    /// The dataset whose histories are served.
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Distinct histories (the requests cycle through them).
    #[arg(long, default_value_t = 2000)]
    histories: usize,
    /// Requests served in all.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Threads sharing the engine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 20)]
    beam: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Write the report (with every RSS sample) as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct QuickstartArgs {
    /// Dataset: `builtin:synthetic` (generated here) or any `--data` that `ugr train sft` reads.
    #[arg(long, default_value = data::synthetic::BUILTIN)]
    data: String,
    /// Run directory (replaced if it holds an earlier quickstart run).
    #[arg(long, default_value = "runs/quickstart")]
    out: String,
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Training sequences per batch: the built-in data has 2,000 users, so a small batch gives
    /// the model enough optimiser steps (125 per epoch) in a few minutes.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Users shown with their recommendations.
    #[arg(long, default_value_t = 3)]
    users: usize,
}

#[derive(Args)]
struct ExportArgs {
    /// Run directory.
    #[arg(long)]
    run: PathBuf,
    /// Artifact to write.
    #[arg(long)]
    out: PathBuf,
    /// Store weights as f16 (half the size; compute stays f32).
    #[arg(long)]
    f16: bool,
    /// Weights file inside the run.
    #[arg(long, default_value = "model.safetensors")]
    weights: String,
}

#[derive(Args)]
struct RecommendArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    model: PathBuf,
    /// History item ids, most recent last, separated by spaces or commas.
    #[arg(long, default_value = "")]
    history: String,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value_t = 20)]
    beam: usize,
    /// Never recommend an item of the history.
    #[arg(long)]
    exclude_history: bool,
    /// Beam pruning: off, fixed:<nats>, or adaptive:<min>:<max>.
    #[arg(long, default_value = "off")]
    prune: String,
    /// Drop items whose calibrated confidence is below this.
    #[arg(long)]
    min_confidence: Option<f32>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Backend: auto (native when the artifact has a weight section, tract otherwise),
    /// native or tract.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
}

/// `--backend` of the engine commands.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BackendArg {
    Auto,
    Native,
    Tract,
}

impl From<BackendArg> for ugr_core::BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => ugr_core::BackendChoice::Auto,
            BackendArg::Native => ugr_core::BackendChoice::Native,
            BackendArg::Tract => ugr_core::BackendChoice::Tract,
        }
    }
}

#[derive(Subcommand)]
enum DataCommand {
    /// Read a dataset and print its summary.
    Summary(DataArgs),
}

#[derive(Subcommand)]
enum SidCommand {
    /// Print the shape of a SID index: prefixes and codes per level, collisions, trie size.
    Stats {
        /// The `*.index.json` file.
        #[arg(long)]
        index: PathBuf,
    },
    /// Build Semantic IDs (RQ-KMeans) from item embeddings or from interactions alone.
    Build(SidBuildArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["embeddings", "interactions"])))]
struct SidBuildArgs {
    /// Item embeddings: `.npy` (float32 items x dim; row i = item i) or CSV (`item_id,v1,v2,...`).
    #[arg(long)]
    embeddings: Option<PathBuf>,
    /// Interactions instead of embeddings (a LETTER directory or a `user,item,timestamp` CSV):
    /// collaborative embeddings from the PPMI co-occurrence matrix by truncated SVD.
    #[arg(long)]
    interactions: Option<PathBuf>,
    /// The index to write (`<name>.index.json`); statistics go to `<name>.stats.json`.
    #[arg(long)]
    out: PathBuf,
    /// SID levels from the clustering.
    #[arg(long, default_value_t = 4)]
    levels: usize,
    /// Codes per level.
    #[arg(long, default_value_t = 256)]
    codebook: usize,
    /// Collision handling.
    #[arg(long, value_enum, default_value_t = sid::Collisions::ExtraLevel)]
    collisions: sid::Collisions,
    /// Size-constrained k-means: every code holds at most ceil(items / codebook) items per level.
    #[arg(long)]
    balanced: bool,
    /// Most k-means iterations per level.
    #[arg(long, default_value_t = 50)]
    iters: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Collaborative embeddings: dimensions.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Collaborative embeddings: co-occurrence window (items apart in a user's sequence).
    #[arg(long, default_value_t = 5)]
    window: usize,
    /// Collaborative embeddings: items held out at the end of each user's sequence (2 keeps the
    /// valid and test targets of a leave-one-out split out of the SIDs; 0 uses everything).
    #[arg(long, default_value_t = 2)]
    holdout: usize,
}

fn main() -> Result<()> {
    ugr_train::configure_runtime();
    dispatch(Cli::parse().command)
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Quickstart(a) => quickstart(&a),
        Command::Train(TrainCommand::Sft(a)) => train_sft(&a),
        Command::Train(TrainCommand::Rl(a)) => train_rl(&a),
        Command::Train(TrainCommand::Fuse { run, eval_rows }) => {
            let loaded = train::load_run(&run, "model.safetensors", &candle_core::Device::Cpu)?;
            let mut args = loaded.info.sft.clone();
            if let Some(n) = eval_rows {
                args.eval_rows = n;
            }
            let ds = data::load(&args.data, &args.load)?;
            let rows = train::sample_rows(&ds.valid, args.eval_rows, args.seed);
            anyhow::ensure!(
                train::fit_fusion(&loaded.model, &ds, &rows, &args, &run)?.is_some(),
                "{} has no item head (train with --sid-embeddings --item-loss W)",
                run.display()
            );
            Ok(())
        }
        Command::Plot(PlotCommand::Curves { runs, out }) => {
            let curves = runs
                .iter()
                .map(|r| train::read_json(&r.join("curves.json")))
                .collect::<Result<Vec<train::rl::Curves>>>()?;
            ugr_train::plot::curves_svg(&out, &curves)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::Eval(a) => eval_run(&a),
        Command::Export(a) => export(&a),
        Command::Recommend(a) => recommend(&a),
        Command::Data(DataCommand::Summary(a)) => {
            let ds = data::load(&a.data, &a.load_options())?;
            print!("{}", ds.summary());
            Ok(())
        }
        Command::Sid(SidCommand::Stats { index }) => sid_stats(&index),
        Command::Sid(SidCommand::Build(args)) => sid_build(&args),
        Command::Bench(BenchCommand::Engine(a)) => bench_engine(&a),
        Command::Bench(BenchCommand::Soak(a)) => bench_soak(&a),
        Command::Bench(BenchCommand::Train {
            data,
            steps,
            batch_size,
            eval_rows,
            device,
        }) => bench_train(&data, steps, batch_size, eval_rows, device),
    }
}

/// Runs each step as the command line a user would type (printed first), through the same parser.
fn quickstart(a: &QuickstartArgs) -> Result<()> {
    let run = |line: Vec<String>| -> Result<()> {
        eprintln!("\n$ ugr {}", line.join(" "));
        let cli = Cli::try_parse_from(std::iter::once("ugr".to_owned()).chain(line))?;
        dispatch(cli.command)
    };
    let s = |x: &str| x.to_owned();
    let model = format!("{}/model.ugr", a.out);
    run(vec![
        s("train"),
        s("sft"),
        s("--data"),
        a.data.clone(),
        s("--out"),
        a.out.clone(),
        s("--epochs"),
        a.epochs.to_string(),
        s("--batch-size"),
        a.batch_size.to_string(),
        s("--lr"),
        a.lr.to_string(),
        s("--overwrite"),
    ])?;
    run(vec![
        s("export"),
        s("--run"),
        a.out.clone(),
        s("--out"),
        model.clone(),
    ])?;
    let info: train::RunInfo = train::read_json(&Path::new(&a.out).join("run.json"))?;
    let ds = data::load(&info.sft.data, &info.sft.load)?;
    for e in ds.test.iter().filter(|e| !e.history.is_empty()).take(a.users) {
        let history: Vec<String> = e
            .history
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|i| i.to_string())
            .collect();
        run(vec![
            s("recommend"),
            s("--model"),
            model.clone(),
            s("--history"),
            history.join(" "),
            s("--k"),
            s("5"),
        ])?;
        eprintln!("(held-out next item: {})", e.target);
    }
    run(vec![
        s("eval"),
        s("--run"),
        a.out.clone(),
        s("--split"),
        s("test"),
        s("--engine"),
        model,
    ])
}

fn train_sft(a: &SftCli) -> Result<()> {
    anyhow::ensure!(
        a.resume || a.overwrite || !a.out.join("run.json").exists(),
        "{} already holds a run: pass --resume to continue it, --overwrite to replace it, or another --out",
        a.out.display()
    );
    let load = a.data.load_options();
    let args = SftArgs {
        data: a.data.data.clone(),
        load,
        device: a.device,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        warmup_steps: a.warmup_steps,
        weight_decay: a.weight_decay,
        seed: a.seed,
        patience: a.patience,
        eval_rows: a.eval_rows,
        eval_beam: a.eval_beam,
        max_steps: a.max_steps,
        ..SftArgs::default()
    };
    let (args, cfg) = if a.resume {
        let info: train::RunInfo = train::read_json(&a.out.join("run.json"))?;
        (info.sft, info.model)
    } else {
        // The vocabulary comes from the data's SID index.
        let ds = data::load(&args.data, &args.load)?;
        let cfg = ModelConfig {
            d_model: a.d_model,
            layers: a.layers,
            heads: a.heads,
            d_ff: a.d_ff,
            head_layers: a.head_layers,
            dropout: a.dropout,
            max_history: args.load.max_history,
            history: a.history,
            trie_loss: a.trie_loss,
            sid_embeddings: if a.sid_embeddings {
                ds.catalog.sid_count() + 1
            } else {
                0
            },
            item_loss: a.item_loss,
            item_output: a.item_output,
            ..ModelConfig::default_for(ds.catalog.vocab())
        };
        (args, cfg)
    };
    let state = train::train_sft(&args, &cfg, &a.out, a.resume)?;
    eprintln!(
        "done: best validation NDCG@10 {:.4} at epoch {}; weights in {}",
        state.best_ndcg10,
        state.best_epoch,
        a.out.join("model.safetensors").display()
    );
    Ok(())
}

fn train_rl(a: &RlCli) -> Result<()> {
    anyhow::ensure!(
        a.overwrite || !a.out.join("run.json").exists(),
        "{} already holds a run: pass --overwrite to replace it, or another --out",
        a.out.display()
    );
    let args = RlArgs {
        from_weights: a.from_weights.clone(),
        reward: a.reward,
        tau: a.tau,
        difficulty: a.difficulty,
        alpha_min: a.alpha_min,
        confidence: a.confidence,
        lambda_p: a.lambda_p,
        lambda_w: a.lambda_w,
        lambda_pw: a.lambda_pw,
        group: a.group,
        prompts_per_step: a.prompts_per_step,
        lr: a.lr,
        warmup_steps: a.warmup_steps,
        confidence_lr_scale: a.confidence_lr_scale,
        epochs: a.epochs,
        max_prompts: a.max_prompts,
        max_steps: a.max_steps,
        seed: a.seed,
        device: a.device,
        eval_every: a.eval_every,
        eval_rows: a.eval_rows,
        calibration_rows: a.calibration_rows,
        ..RlArgs::reference(a.from.clone())
    };
    let s = train::rl::train_rl(&args, &a.out)?;
    eprintln!(
        "done: {} steps in {:.0}s ({:.1} prompts/s); validation NDCG@10 {:.4} -> {:.4} (best {:.4} at step {}); \
         final weights in {}, calibration map in {}",
        s.steps,
        s.wall_s,
        s.prompts_per_s,
        s.start_ndcg10,
        s.final_ndcg10,
        s.best_ndcg10,
        s.best_step,
        a.out.join("model.safetensors").display(),
        a.out.join("calibration.json").display()
    );
    Ok(())
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Valid => "valid",
        Split::Test => "test",
    }
}

fn eval_run(a: &EvalArgs) -> Result<()> {
    let device = a.device.device()?;
    let run = train::load_run(&a.run, &a.weights, &device)?;
    let data_path = a.data.clone().unwrap_or_else(|| run.info.sft.data.clone());
    let ds = data::load(&data_path, &run.info.sft.load)
        .with_context(|| format!("loading {}", data_path.display()))?;
    eprint!("{}", ds.summary());
    let mut rows = ds.examples(a.split, run.info.model.max_history);
    if let Some(n) = a.rows {
        rows.truncate(n);
    }
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
    let calibration = ugr_train::export::run_calibration(&a.run)?;
    let keep = a.engine.is_some();
    let mut lists: Vec<eval::Ranked> = Vec::new();
    let mut collector = ConfidenceCollector::default();
    let result = eval::search_rows(
        &decoder,
        &ds.catalog,
        calibration.as_ref(),
        &rows,
        &opts,
        a.batch,
        |n| pb.set_position(n as u64),
        |e, r| {
            collector.add(e, r);
            if keep {
                lists.push(r.items.iter().map(|x| (x.item, x.score)).collect());
            }
        },
    )?;
    pb.finish_and_clear();
    let fused = run.model.has_item_head() && item_weight.is_some();
    // The generative-only search on the same rows, and its confidence, beside the fused one.
    let mut generative_collector = ConfidenceCollector::default();
    let generative = if fused {
        let opts = ugr_core::SearchOptions {
            item_fusion: ugr_core::ItemFusion::Off,
            ..opts
        };
        Some(eval::search_rows(
            &decoder,
            &ds.catalog,
            calibration.as_ref(),
            &rows,
            &opts,
            a.batch,
            |_| {},
            |e, r| generative_collector.add(e, r),
        )?)
    } else {
        None
    };
    let confidence = collector.report(calibration.is_some(), opts.beta);
    let (engine, engine_lines) = match &a.engine {
        Some(path) => {
            let (json, lines) = eval_engine(path, &ds, &rows, a, &lists)?;
            (Some(json), lines)
        }
        None => (None, Vec::new()),
    };
    let baselines = Baselines::fit(&ds.catalog, &ds.train);
    let (pop, trans) = baselines.evaluate(&rows, a.exclude_history);
    let (pop, trans) = (MetricTable::of(&pop), MetricTable::of(&trans));
    println!(
        "{} {:?} split: {} rows, beam {}{}",
        ds.name,
        a.split,
        rows.len(),
        a.beam,
        if a.exclude_history {
            ", history items excluded"
        } else {
            ""
        }
    );
    println!("{}", MetricTable::header());
    if let (Some(g), Some(w)) = (&generative, item_weight) {
        println!("{}", result.item.row(&format!("model, fused w={w} (hit = item)")));
        println!("{}", result.sid.row(&format!("model, fused w={w} (hit = SID)")));
        println!("{}", g.item.row("model, generative only (item)"));
    } else {
        println!("{}", result.item.row("model (hit = target item)"));
        println!("{}", result.sid.row("model (hit = target SID)"));
    }
    println!("{}", trans.row("last-item transitions (floor)"));
    println!("{}", pop.row("popularity"));
    for line in &engine_lines {
        println!("{line}");
    }
    println!(
        "wall {:.1}s, {:.1} recommendations/s, {:.1} model rows per request",
        result.wall_s, result.recs_per_s, result.model_rows_per_request
    );
    for line in confidence.lines() {
        println!("{line}");
    }
    let generative_confidence = generative
        .as_ref()
        .map(|_| generative_collector.report(calibration.is_some(), opts.beta));
    if let Some(g) = &generative_confidence {
        let f = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
        println!(
            "  (generative-only search: AUROC hit@1 {}, hit@10 {}; ECE top-1 {:.4} raw)",
            f(g.auroc_hit1),
            f(g.auroc_hit10),
            g.top1_vs_hit1_raw.ece
        );
    }
    let diagram = a.run.join(format!("reliability-{}.svg", split_name(a.split)));
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
            ds.name,
            split_name(a.split),
            eval::confidence::ECE_BINS
        ),
        &curves,
    )?;
    eprintln!("wrote {}", diagram.display());
    let metrics = serde_json::json!({
        "dataset": ds.name,
        "split": a.split,
        "beam": a.beam,
        "exclude_history": a.exclude_history,
        "rows": result.rows,
        "wall_s": result.wall_s,
        "recommendations_per_s": result.recs_per_s,
        "model_rows_per_request": result.model_rows_per_request,
        "model_item": result.item,
        "model_sid": result.sid,
        "item_weight": item_weight.filter(|_| fused),
        "model_generative_item": generative.as_ref().map(|g| &g.item),
        "confidence_generative": generative_confidence,
        "baseline_last_item_transitions": trans,
        "baseline_popularity": pop,
        "confidence": confidence,
        "engine": engine,
    });
    let path = a.run.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(&metrics)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Evaluates an exported artifact on the same rows and compares its lists with the run's.
fn eval_engine(
    path: &Path,
    ds: &data::Dataset,
    rows: &[data::Example],
    a: &EvalArgs,
    reference: &[eval::Ranked],
) -> Result<(serde_json::Value, Vec<String>)> {
    let engine = ugr_core::Engine::open(path).with_context(|| format!("opening {}", path.display()))?;
    anyhow::ensure!(
        engine.catalog() == &ds.catalog,
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
        engine.catalog(),
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

fn sid_build(a: &SidBuildArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=8).contains(&a.levels) && (1..=65536).contains(&a.codebook),
        "--levels must be 1..=8 and --codebook 1..=65536"
    );
    let start = std::time::Instant::now();
    let emb = match (&a.embeddings, &a.interactions) {
        (Some(path), _) => sid::Embeddings::read(path)?,
        (None, Some(path)) => {
            let seqs = data::raw_sequences(path)?;
            let cfg = sid::CollabConfig {
                dim: a.dim,
                window: a.window.max(1),
                holdout: a.holdout,
                seed: a.seed,
                ..sid::CollabConfig::default()
            };
            let emb = sid::collaborative(&seqs, &cfg);
            println!(
                "collaborative embeddings: {} users, {} items, {} dims ({:.1}s)",
                seqs.len(),
                emb.items.len(),
                emb.dim,
                start.elapsed().as_secs_f64()
            );
            emb
        }
        (None, None) => unreachable!("clap requires one source"),
    };
    let extra = usize::from(a.collisions == sid::Collisions::ExtraLevel);
    anyhow::ensure!(
        a.levels + extra <= 8,
        "--levels {} plus the extra collision level exceeds 8 levels",
        a.levels
    );
    let cfg = sid::BuildConfig {
        levels: a.levels,
        codebook: a.codebook,
        iters: a.iters,
        seed: a.seed,
        balanced: a.balanced,
        collisions: a.collisions,
        ..sid::BuildConfig::default()
    };
    let built = sid::build(&emb, &cfg);
    built
        .write_index(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let stats_path = stats_path(&a.out);
    std::fs::write(&stats_path, serde_json::to_string_pretty(&built.stats)?)
        .with_context(|| format!("writing {}", stats_path.display()))?;
    print!("{}", built.summary());
    println!(
        "wrote {} and {} ({:.1}s)",
        a.out.display(),
        stats_path.display(),
        start.elapsed().as_secs_f64()
    );
    // The written file must read back as an index with one catalog entry per item.
    let index = SidIndex::read(&a.out)?;
    anyhow::ensure!(
        index.sids.len() == built.items.len(),
        "the written index lost items"
    );
    Ok(())
}

/// `x.index.json` -> `x.stats.json` (otherwise `<out>.stats.json`).
fn stats_path(out: &Path) -> PathBuf {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("sid");
    let stem = name.strip_suffix(".index.json").unwrap_or(name);
    out.with_file_name(format!("{stem}.stats.json"))
}

fn sid_stats(path: &Path) -> Result<()> {
    let index = SidIndex::read(path)?;
    let catalog = index.catalog(|_| 0, path)?;
    let s = catalog.stats();
    println!("{}", path.display());
    println!("items {}  distinct SIDs {}  levels {}", s.items, s.sids, s.levels);
    println!("codebook sizes {:?}", catalog.vocab().codebook_sizes());
    println!("level  codes used  prefixes  max items per prefix  child lookup");
    for l in 0..s.levels {
        println!(
            "{:>5}  {:>10}  {:>8}  {:>20}  {}",
            l + 1,
            s.codes_used[l],
            s.prefixes[l],
            s.max_items_per_prefix[l],
            if catalog.trie().is_dense(l) {
                "bitmap"
            } else {
                "binary search"
            }
        );
    }
    println!(
        "collisions: {} SIDs shared by {} items",
        s.colliding_sids, s.colliding_items
    );
    println!(
        "trie: {} nodes, {} bytes; catalog arrays {} bytes",
        catalog.trie().node_count(),
        catalog.trie().heap_bytes(),
        catalog.heap_bytes()
    );
    Ok(())
}

fn bench_train(
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
            max_history: data.max_history,
            ..ModelConfig::recipe_for(&ds.catalog)
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

fn bench_engine(a: &BenchEngineArgs) -> Result<()> {
    use ugr_train::bench_engine as be;
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let engine = ugr_core::Engine::from_bytes(&bytes)?;
    let ds = data::load(&a.data.data, &a.data.load_options())?;
    anyhow::ensure!(
        engine.catalog() == &ds.catalog,
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
            be::latency(native.catalog(), &[m], "warm-up", warmup, 1, &opts)?;
            for (name, batch) in [("native", 1), ("native, batched 32 per call", 32)] {
                for models in [vec![m], vec![m, m]] {
                    let r = be::latency(native.catalog(), &models, name, &histories, batch, &opts)?;
                    print(&r);
                    rows.push(r);
                }
            }
        }
        Err(e) => println!("{:<34} not run: {e}", "native"),
    }
    let tract_engine = ugr_core::Engine::from_bytes_with(&bytes, ugr_core::BackendChoice::Tract)?;
    let tract = tract_engine.model();
    be::latency(engine.catalog(), &[tract], "warm-up", warmup, 1, &opts)?;
    for (name, warm) in [
        ("tract, symbolic plan", false),
        ("tract, plans concretised for R", true),
    ] {
        if warm {
            tract_engine.warm(a.beam)?;
        }
        for models in [vec![tract], vec![tract, tract]] {
            let r = be::latency(engine.catalog(), &models, name, &histories, 1, &opts)?;
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

fn bench_soak(a: &BenchSoakArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let engine = ugr_core::Engine::from_bytes_with(&bytes, a.backend.into())?;
    let ds = data::load(&a.data.data, &a.data.load_options())?;
    anyhow::ensure!(
        engine.catalog() == &ds.catalog,
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
fn bench_ort(
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
    let (_, want) = eval::evaluate_search(engine.model(), &catalog, requests, opts, 64, true, |_| {})?;
    let (_, got) = eval::evaluate_search(&m1, &catalog, requests, opts, 64, true, |_| {})?;
    let p = eval::parity(&want, &got, opts.top_k);
    println!(
        "onnxruntime vs the engine, top-{}: {}/{} requests identical in items and order, max score difference {:.2e}",
        opts.top_k, p.identical, p.rows, p.max_score_diff
    );
    Ok(rows)
}

#[cfg(not(feature = "ort"))]
fn bench_ort(
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

fn export(a: &ExportArgs) -> Result<()> {
    let run = train::load_run(&a.run, &a.weights, &candle_core::Device::Cpu)?;
    let ds = data::load(&run.info.sft.data, &run.info.sft.load)?;
    let calibration = ugr_train::export::run_calibration(&a.run)?;
    let bundle = ugr_train::export::bundle(
        &run,
        &ds,
        calibration,
        ugr_train::export::ExportOptions {
            f16: a.f16,
            item_weight: ugr_train::eval::fusion::read(&a.run)?.map(|f| f.weight),
        },
    )?;
    let bytes = bundle.to_bytes()?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
    let size = |weights: bool| -> usize {
        bundle.model.as_ref().map_or(0, |m| {
            m.graphs
                .iter()
                .filter(|g| (g.name == ugr_core::native::WEIGHTS_BLOB) == weights)
                .map(|g| g.bytes.len())
                .sum()
        })
    };
    eprintln!(
        "wrote {}: {} bytes ({} of ONNX graphs, {} of native weight section; weights {}), {} items",
        a.out.display(),
        bytes.len(),
        size(false),
        size(true),
        if a.f16 { "f16" } else { "f32" },
        bundle.catalog.len()
    );
    Ok(())
}

/// Parses `off`, `fixed:<m>` or `adaptive:<min>:<max>`.
fn parse_pruning(s: &str) -> Result<ugr_core::Pruning> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<f32> {
        parts
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("--prune {s}: missing number"))?
            .parse()
            .with_context(|| format!("--prune {s}"))
    };
    Ok(match parts[0] {
        "off" => ugr_core::Pruning::Off,
        "fixed" => ugr_core::Pruning::Fixed { margin: num(1)? },
        "adaptive" => ugr_core::Pruning::Adaptive {
            min_margin: num(1)?,
            max_margin: num(2)?,
            levels: 1,
        },
        _ => anyhow::bail!("--prune must be off, fixed:<nats> or adaptive:<min>:<max>"),
    })
}

fn recommend(a: &RecommendArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let engine = ugr_core::Engine::from_bytes_with(&bytes, a.backend.into())
        .with_context(|| format!("opening {}", a.model.display()))?;
    let history = a
        .history
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map(ugr_core::ItemId::new)
                .with_context(|| format!("history item {t:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = ugr_core::SearchOptions {
        beam: a.beam,
        top_k: a.k,
        exclude_history: a.exclude_history,
        pruning: parse_pruning(&a.prune)?,
        min_confidence: a.min_confidence,
        ..ugr_core::SearchOptions::default()
    };
    let recs = engine.recommend(&history, &opts)?;
    if a.json {
        let items: Vec<serde_json::Value> = recs
            .items
            .iter()
            .map(|r| {
                serde_json::json!({
                    "item": r.item.as_u32(),
                    "title": engine.title(r.item),
                    "sid": engine.catalog().sid(r.sid_index).to_string(),
                    "score": r.score,
                    "log_prob": r.log_prob,
                    "posterior": r.posterior,
                    "learned_confidence": r.learned_confidence,
                    "confidence": r.confidence,
                    "hybrid": r.hybrid,
                })
            })
            .collect();
        let out = serde_json::json!({ "history": history.iter().map(|i| i.as_u32()).collect::<Vec<_>>(),
            "items": items, "model_rows": recs.stats.model_rows, "backend": engine.backend().name() });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:>4} {:>7}  {:<24} {:>8} {:>9} {:>10}  title",
        "rank", "item", "SID", "score", "posterior", "confidence"
    );
    for (i, r) in recs.items.iter().enumerate() {
        println!(
            "{:>4} {:>7}  {:<24} {:>8.3} {:>9.3} {:>10.3}  {}",
            i + 1,
            r.item.as_u32(),
            engine.catalog().sid(r.sid_index).to_string(),
            r.score,
            r.posterior,
            r.confidence,
            engine.title(r.item).unwrap_or("")
        );
    }
    println!("(backend: {})", engine.backend().name());
    Ok(())
}
