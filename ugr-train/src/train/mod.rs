//! Supervised fine-tuning (SFT) and the run directory.
//!
//! A run directory holds everything needed to evaluate, resume or export a model:
//!
//! | file | content |
//! |---|---|
//! | `run.json` | data path and load options, training arguments, model configuration |
//! | `config.json` | the model configuration alone |
//! | `model.safetensors` | best weights by validation NDCG@10 (the model `ugr eval` uses) |
//! | `last.safetensors`, `optimizer.safetensors`, `state.json` | the last epoch, for `--resume` |
//! | `log.jsonl` | one JSON line per epoch: loss, learning rate, validation HR/NDCG@10, speed |
//!
//! An RL run ([`rl`]) has the same `run.json` (plus its `rl` arguments), `config.json`,
//! `model.safetensors` (the final model), and `best.safetensors`, `curves.json`,
//! `curves.svg`, `summary.json` and `calibration.json`.
//!
//! Determinism: parameters are initialised from the seed (see [`crate::model::init`]),
//! the batch order of epoch `e` and the dropout masks of step `s` are seeded by
//! `(seed, e)` and `(seed, s)`, so a resumed run continues exactly as an uninterrupted one
//! (checkpoints are taken at epoch ends).

pub mod batches;
pub mod ema;
pub mod grpo;
pub mod optim;
pub mod rl;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use self::optim::{AdamW, AdamWParams, learning_rate};
use crate::data::{self, Dataset, Example, LoadOptions};
use crate::eval::{self, EvalResult};
use crate::model::layers::Dropout;
use crate::model::{ModelConfig, SidTransformer, init};

/// Where to compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum DeviceKind {
    /// The CPU (all cores).
    #[default]
    Cpu,
    /// The first CUDA GPU (needs the `cuda` feature).
    Cuda,
}

impl DeviceKind {
    /// The candle device.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda => {
                if cfg!(feature = "cuda") {
                    Ok(Device::new_cuda(0)?)
                } else {
                    bail!("this ugr was built without the `cuda` feature: rebuild with --features cuda")
                }
            }
        }
    }
}

/// Training arguments (saved in `run.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SftArgs {
    /// Dataset directory or file, or `builtin:synthetic`.
    pub data: PathBuf,
    /// Reader options.
    pub load: LoadOptions,
    /// Device.
    pub device: DeviceKind,
    /// Maximum epochs.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Gradient clipping (global L2 norm).
    pub clip: f64,
    /// Seed of everything.
    pub seed: u64,
    /// Stop after this many epochs without a better validation NDCG@10.
    pub patience: usize,
    /// Beam width of the validation search.
    pub eval_beam: usize,
    /// Validation rows used for early stopping (0 = all), a fixed seeded sample.
    pub eval_rows: usize,
    /// Requests per search call.
    pub eval_batch: usize,
    /// Stop after this many optimiser steps in total (smoke tests, benchmarks).
    pub max_steps: Option<usize>,
    /// Validate and keep an exponential moving average of the weights with this decay
    /// ([`ema`]); `None` = the live weights.
    #[serde(default)]
    pub ema: Option<f64>,
}

impl Default for SftArgs {
    fn default() -> Self {
        SftArgs {
            data: PathBuf::from(data::synthetic::BUILTIN),
            load: LoadOptions::default(),
            device: DeviceKind::Cpu,
            epochs: 30,
            batch_size: 128,
            lr: 1e-3,
            warmup_steps: 200,
            min_lr_ratio: 0.05,
            weight_decay: 0.01,
            clip: 1.0,
            seed: 42,
            patience: 5,
            eval_beam: 20,
            eval_rows: 0,
            eval_batch: 256,
            max_steps: None,
            ema: None,
        }
    }
}

/// The run-directory format this build writes; [`read_run_info`] refuses newer ones.
pub const RUN_FORMAT: u32 = 1;

/// `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run-directory format ([`RUN_FORMAT`]); 0 = written before the field existed (read
    /// as format 1).
    #[serde(default)]
    pub format: u32,
    /// Training arguments.
    pub sft: SftArgs,
    /// Model configuration.
    pub model: ModelConfig,
    /// The RL stage's arguments, when this run is one (`ugr train rl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rl: Option<rl::RlArgs>,
}

/// `state.json`: where a run stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Best validation NDCG@10 so far.
    pub best_ndcg10: f64,
    /// Epoch (1-based) of the best.
    pub best_epoch: usize,
    /// Epochs since the best.
    pub epochs_without_improvement: usize,
}

/// One line of `log.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Steps so far.
    pub steps: usize,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Validation HR@10.
    pub valid_hr10: f64,
    /// Validation NDCG@10.
    pub valid_ndcg10: f64,
    /// Seconds training this epoch.
    pub train_s: f64,
    /// Seconds validating.
    pub eval_s: f64,
    /// SID tokens per second read by the encoder plus target tokens (training).
    pub tokens_per_s: f64,
    /// Next-item targets per second (training).
    pub targets_per_s: f64,
    /// With `--ema`: validation HR@10 and NDCG@10 of the live weights, next to the
    /// average's above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_live: Option<(f64, f64)>,
}

/// A loaded run: its description, the model and its variables.
pub struct LoadedRun {
    /// `run.json`.
    pub info: RunInfo,
    /// The model (weights from `model.safetensors`).
    pub model: SidTransformer,
    /// Its variables.
    pub varmap: VarMap,
}

/// Builds a model with deterministic initial weights.
pub fn new_model(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<(SidTransformer, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = SidTransformer::new(cfg, &vb)?;
    init::initialize(&varmap, cfg, seed)?;
    Ok((model, varmap))
}

/// Loads `run.json` and the weights `file` (e.g. `model.safetensors`) of a run directory.
pub fn load_run(dir: &Path, file: &str, device: &Device) -> Result<LoadedRun> {
    let info = read_run_info(dir)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = SidTransformer::new(&info.model, &vb)?;
    let mut varmap = varmap;
    let weights = dir.join(file);
    varmap.load(&weights).with_context(|| {
        format!(
            "{}: expected the safetensors weights that `ugr train` wrote for this run's model",
            weights.display()
        )
    })?;
    Ok(LoadedRun { info, model, varmap })
}

/// Reads `<dir>/run.json`: a typed error when it is missing, malformed or from a newer
/// run format.
pub fn read_run_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join("run.json");
    anyhow::ensure!(
        dir.is_dir(),
        "{}: expected a run directory (from `ugr train sft` or `ugr train rl`)",
        dir.display()
    );
    let info: RunInfo = read_json(&path).with_context(|| {
        format!("expected a run.json of run format {RUN_FORMAT} (a run directory from another ugr version?)")
    })?;
    anyhow::ensure!(
        info.format <= RUN_FORMAT,
        "{}: run format {} is newer than this ugr reads ({RUN_FORMAT}); use the ugr that wrote it",
        path.display(),
        info.format
    );
    Ok(info)
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes a JSON file (pretty), atomically (temporary file + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The model's variables by name (what the optimiser and checkpoints address).
pub fn named_vars(varmap: &candle_nn::VarMap) -> Result<Vec<(String, candle_core::Var)>> {
    Ok(varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned var map"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// A fixed seeded sample of `n` validation rows (all when `n == 0` or larger than the split).
pub fn sample_rows(rows: &[Example], n: usize, seed: u64) -> Vec<Example> {
    use rand::seq::index::sample;
    if n == 0 || n >= rows.len() {
        return rows.to_vec();
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xe7a1);
    let mut idx = sample(&mut rng, rows.len(), n).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| rows[i].clone()).collect()
}

pub(crate) fn progress_bar(len: u64, prefix: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

/// Evaluates on (a sample of) validation rows (fused at [`VALID_ITEM_WEIGHT`] when the
/// model has an item head).
pub fn validate(
    model: &SidTransformer,
    ds: &Dataset,
    rows: &[Example],
    args: &SftArgs,
) -> Result<EvalResult> {
    let pb = progress_bar(rows.len() as u64, "  valid".into());
    let weight = model.has_item_head().then_some(VALID_ITEM_WEIGHT);
    let r = eval::evaluate_with(
        model,
        &ds.catalog,
        rows,
        args.eval_beam,
        args.eval_batch,
        weight,
        |n| pb.set_position(n as u64),
    )?;
    pb.finish_and_clear();
    Ok(r)
}

/// Parts each training batch is split into on the CPU (run in parallel on 2 cores).
pub const SHARDS: usize = 2;

/// Validation during SFT fuses the item head (when the model has one) at this weight; the
/// final weight is fitted on the validation split after training ([`eval::fusion`]).
pub const VALID_ITEM_WEIGHT: f32 = 1.0;

/// One shard's loss, gradients and target count.
struct Shard {
    loss: f64,
    grads: candle_core::backprop::GradStore,
    targets: usize,
}

/// How a training step splits its batch.
#[derive(Clone, Copy, Debug)]
pub struct Sharding {
    /// The run's seed.
    pub seed: u64,
    /// The optimiser step (seeds the dropout masks).
    pub step: usize,
    /// Parts the batch is split into (fixed per run: results depend on it).
    pub shards: usize,
    /// Threads running the parts (results do not depend on it).
    pub threads: usize,
}

/// One training step's gradients: the batch `batch_idx` (window indexes) is split into
/// `sharding.shards` contiguous parts, each part's loss and gradients computed on its own
/// thread (up to `sharding.threads`), with dropout seeded by (seed, step, part). Returns the
/// target-weighted mean gradients, the mean loss and the number of targets.
#[allow(clippy::too_many_arguments)]
pub fn sharded_grads(
    model: &SidTransformer,
    ds: &Dataset,
    windows: &[batches::Window],
    batch_idx: &[usize],
    sharding: Sharding,
    vars: &[candle_core::Var],
    device: &Device,
) -> Result<(candle_core::backprop::GradStore, f64, usize)> {
    let cfg = model.config();
    let shard = |k: usize, part: &[usize]| -> Result<Shard> {
        let batch = batches::build_batch(cfg, &ds.catalog, &ds.train, windows, part, device)?;
        let mut rng = StdRng::seed_from_u64(
            sharding.seed
                ^ (sharding.step as u64).wrapping_mul(0xa076_1d64_78bd_642f)
                ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let mut drop = Some(Dropout {
            p: cfg.dropout,
            rng: &mut rng,
        });
        let loss = model.loss(&batch, &mut drop)?;
        Ok(Shard {
            loss: f64::from(loss.to_scalar::<f32>()?),
            grads: loss.backward()?,
            targets: batch.n_targets,
        })
    };
    let parts: Vec<&[usize]> = batch_idx
        .chunks(batch_idx.len().div_ceil(sharding.shards.max(1)).max(1))
        .collect();
    let results: Vec<Result<Shard>> = if sharding.threads > 1 && parts.len() > 1 {
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, p)| s.spawn(move || shard(k, p)))
                .collect();
            let mut all = vec![shard(0, parts[0])];
            all.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            all
        })
    } else {
        parts.iter().enumerate().map(|(k, p)| shard(k, p)).collect()
    };
    merge_shards(results.into_iter().collect::<Result<_>>()?, vars)
}

/// The target-weighted mean of the shards' gradients and losses.
fn merge_shards(
    shards: Vec<Shard>,
    vars: &[candle_core::Var],
) -> Result<(candle_core::backprop::GradStore, f64, usize)> {
    let total: usize = shards.iter().map(|s| s.targets).sum();
    let mut it = shards.into_iter();
    let Some(mut first) = it.next() else {
        bail!("a batch without shards")
    };
    let rest: Vec<Shard> = it.collect();
    if rest.is_empty() {
        return Ok((first.grads, first.loss, first.targets));
    }
    let weight = |n: usize| n as f64 / total.max(1) as f64;
    let mut loss = first.loss * weight(first.targets);
    for s in &rest {
        loss += s.loss * weight(s.targets);
    }
    for var in vars {
        let mut acc = match first.grads.remove(var) {
            Some(g) => Some((g * weight(first.targets))?),
            None => None,
        };
        for s in &rest {
            if let Some(g) = s.grads.get(var) {
                let g = (g * weight(s.targets))?;
                acc = Some(match acc {
                    Some(a) => (a + g)?,
                    None => g,
                });
            }
        }
        if let Some(a) = acc {
            first.grads.insert(var, a);
        }
    }
    Ok((first.grads, loss, total))
}

/// Trains a model; writes the run directory `out`. With `resume`, continues the run there.
pub fn train_sft(args: &SftArgs, cfg: &ModelConfig, out: &Path, resume: bool) -> Result<TrainState> {
    let device = args.device.device()?;
    let ds =
        data::load(&args.data, &args.load).with_context(|| format!("loading {}", args.data.display()))?;
    eprint!("{}", ds.summary());
    if ds.train.is_empty() {
        bail!("{} has no training split (evaluation only)", args.data.display());
    }
    if cfg.codebooks != ds.catalog.vocab().codebook_sizes() {
        bail!(
            "model codebooks {:?} do not match the data's {:?}",
            cfg.codebooks,
            ds.catalog.vocab().codebook_sizes()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (model, mut varmap) = new_model(cfg, args.seed, &device)?;
    let params = AdamWParams {
        lr: args.lr,
        weight_decay: args.weight_decay,
        ..AdamWParams::default()
    };
    let named = named_vars(&varmap)?;
    let mut ema = args.ema.map(|d| ema::Ema::new(&named, d)).transpose()?;
    let mut opt = AdamW::new(named, params)?;
    let mut state = TrainState::default();
    if resume {
        state = read_json(&out.join("state.json"))?;
        varmap.load(out.join("last.safetensors"))?;
        opt.load(&out.join("optimizer.safetensors"), &device)?;
        opt.step_count = state.steps;
        if let Some(ema) = &mut ema {
            ema.load(&out.join(ema::FILE), &device)?;
        }
        eprintln!(
            "resuming after epoch {} (step {})",
            state.epochs_done, state.steps
        );
    } else {
        write_json(
            &out.join("run.json"),
            &RunInfo {
                format: RUN_FORMAT,
                sft: args.clone(),
                model: cfg.clone(),
                rl: None,
            },
        )?;
        write_json(&out.join("config.json"), cfg)?;
        let _ = std::fs::remove_file(out.join("log.jsonl"));
    }
    let params_count: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    eprintln!(
        "model: {} parameters, d_model {}, {} + {} layers, {:?} history positions, device {:?}",
        params_count, cfg.d_model, cfg.layers, cfg.head_layers, cfg.history, args.device
    );
    let windows = batches::windows(&ds.train, cfg.max_history);
    let steps_per_epoch = windows.len().div_ceil(args.batch_size.max(1));
    let total_steps = args
        .max_steps
        .unwrap_or(usize::MAX)
        .min(steps_per_epoch * args.epochs);
    let valid_rows = sample_rows(&ds.valid, args.eval_rows, args.seed);
    // Warm-up relative to the run: never more than a tenth of its steps.
    let warmup = args.warmup_steps.min(total_steps / 10);
    // Data-parallel: every batch is split into `shards` fixed parts (dropout seeded per part),
    // run on up to `threads` threads; gradients are the target-weighted mean, so the result
    // does not depend on the thread count.
    let shards = if matches!(args.device, DeviceKind::Cpu) {
        SHARDS
    } else {
        1
    };
    let threads = crate::threads().min(shards);
    let all_vars = varmap.all_vars();
    eprintln!(
        "{} steps per epoch, {} at most, warm-up {warmup}, {shards} shards on {threads} threads",
        steps_per_epoch, total_steps
    );
    let l = cfg.levels() as f64;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("log.jsonl"))?;

    for epoch in state.epochs_done..args.epochs {
        if state.steps >= total_steps {
            break;
        }
        let t0 = Instant::now();
        let order = batches::epoch_batches(&windows, args.batch_size, args.seed, epoch);
        let pb = progress_bar(order.len() as u64, format!("epoch {:>3}", epoch + 1));
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        let (mut tokens, mut targets) = (0usize, 0usize);
        let mut lr = args.lr;
        for batch_idx in &order {
            if state.steps >= total_steps {
                break;
            }
            lr = learning_rate(state.steps, warmup, total_steps, args.lr, args.min_lr_ratio);
            opt.params.lr = lr;
            let (grads, lv, n_targets) = sharded_grads(
                &model,
                &ds,
                &windows,
                batch_idx,
                Sharding {
                    seed: args.seed,
                    step: state.steps,
                    shards,
                    threads,
                },
                &all_vars,
                &device,
            )?;
            let norm = opt.grad_norm(&grads)?;
            let scale = if norm > args.clip && args.clip > 0.0 {
                args.clip / norm
            } else {
                1.0
            };
            opt.step(&grads, scale)?;
            if let Some(ema) = &mut ema {
                ema.update(state.steps)?;
            }
            if !lv.is_finite() {
                bail!("training diverged: loss {lv} at step {}", state.steps);
            }
            loss_sum += lv;
            loss_n += 1;
            state.steps += 1;
            let read: usize = batch_idx
                .iter()
                .map(|&w| windows[w].end - windows[w].start - 1)
                .sum();
            tokens += (read + n_targets) * l as usize;
            targets += n_targets;
            pb.inc(1);
            pb.set_message(format!("loss {:.4} lr {:.2e}", loss_sum / loss_n as f64, lr));
        }
        pb.finish_and_clear();
        let train_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        // With --ema, the averaged weights are validated and kept as the best model; the
        // live ones are validated too, for the log.
        let mut valid_live = None;
        if let Some(ema) = &mut ema {
            let live = validate(&model, &ds, &valid_rows, args)?;
            valid_live = Some((live.item.hr_at(10), live.item.ndcg_at(10)));
            ema.swap()?;
        }
        let v = validate(&model, &ds, &valid_rows, args)?;
        let eval_s = t1.elapsed().as_secs_f64();
        state.epochs_done = epoch + 1;
        let entry = EpochLog {
            epoch: epoch + 1,
            steps: state.steps,
            train_loss: loss_sum / loss_n.max(1) as f64,
            lr,
            valid_hr10: v.item.hr_at(10),
            valid_ndcg10: v.item.ndcg_at(10),
            train_s,
            eval_s,
            tokens_per_s: tokens as f64 / train_s.max(1e-9),
            targets_per_s: targets as f64 / train_s.max(1e-9),
            valid_live,
        };
        let improved = entry.valid_ndcg10 > state.best_ndcg10 || state.best_epoch == 0;
        if improved {
            state.best_ndcg10 = entry.valid_ndcg10;
            state.best_epoch = epoch + 1;
            state.epochs_without_improvement = 0;
            varmap.save(out.join("model.safetensors"))?;
        } else {
            state.epochs_without_improvement += 1;
        }
        if let Some(ema) = &mut ema {
            ema.swap()?;
            ema.save(&out.join(ema::FILE))?;
        }
        varmap.save(out.join("last.safetensors"))?;
        opt.save(&out.join("optimizer.safetensors"))?;
        write_json(&out.join("state.json"), &state)?;
        writeln!(log, "{}", serde_json::to_string(&entry)?)?;
        eprintln!(
            "epoch {:>3}  loss {:.4}  valid HR@10 {:.4} NDCG@10 {:.4}{}{}  {:.0}s train ({:.0} tok/s, {:.0} targets/s) + {:.0}s valid",
            entry.epoch,
            entry.train_loss,
            entry.valid_hr10,
            entry.valid_ndcg10,
            if improved { " *" } else { "" },
            entry.valid_live.map_or(String::new(), |(hr, ndcg)| format!(
                "  (live weights: HR@10 {hr:.4} NDCG@10 {ndcg:.4})"
            )),
            train_s,
            entry.tokens_per_s,
            entry.targets_per_s,
            eval_s
        );
        if state.epochs_without_improvement >= args.patience {
            eprintln!(
                "early stop: no improvement for {} epochs (best epoch {})",
                args.patience, state.best_epoch
            );
            break;
        }
    }
    if model.has_item_head() && state.best_epoch > 0 {
        varmap.load(out.join("model.safetensors"))?;
        fit_fusion(&model, &ds, &valid_rows, args, out)?;
    }
    Ok(state)
}

/// Fits the item-fusion weight of the model on `rows` (validation) and writes `fusion.json`.
pub fn fit_fusion(
    model: &SidTransformer,
    ds: &Dataset,
    rows: &[Example],
    args: &SftArgs,
    out: &Path,
) -> Result<Option<eval::fusion::FusionFit>> {
    eprintln!(
        "fitting the item-fusion weight on {} validation rows (beam {})",
        rows.len(),
        args.eval_beam
    );
    let fit = eval::fusion::fit(model, &ds.catalog, rows, args.eval_beam, args.eval_batch, |p| {
        eprintln!(
            "  {:<18} valid HR@10 {:.4} NDCG@10 {:.4}",
            p.weight
                .map_or("generative only".to_owned(), |w| format!("w = {w}")),
            p.hr10,
            p.ndcg10
        )
    })?;
    if let Some(f) = &fit {
        write_json(&out.join(eval::fusion::FILE), f)?;
        eprintln!(
            "item-fusion weight {} -> {}",
            f.weight,
            out.join(eval::fusion::FILE).display()
        );
    }
    Ok(fit)
}
