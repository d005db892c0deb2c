//! Supervised fine-tuning (SFT): batches, the optimiser and schedule, early stopping,
//! checkpoints, and the end-of-run fits (item fusion, confidence calibration); the RL stage
//! is [`rl`]. The run directory's files are listed in [`crate::run`].
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
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use self::optim::{AdamW, AdamWParams, learning_rate};
pub use crate::args::{DeviceKind, SftArgs};
use crate::data::{self, Dataset, Example, TrainSequence};
use crate::eval::{self, EvalResult};
use crate::files;
use crate::model::layers::Dropout;
use crate::model::{ModelConfig, SidTransformer, new_model};
use crate::run::{self, RUN_FORMAT, RunInfo, read_json, write_json};

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
/// At the end the best weights get their item-fusion weight ([`fit_fusion`]) and, unless
/// `args.calibrate` is off, their confidence calibration ([`calibrate`]).
pub fn train_sft(args: &SftArgs, cfg: &ModelConfig, out: &Path, resume: bool) -> Result<TrainState> {
    let device = args.device.device()?;
    let ds = load_training_data(args, cfg)?;
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
        state = read_json(&out.join(files::STATE_JSON))?;
        varmap.load(out.join(files::LAST))?;
        opt.load(&out.join(files::OPTIMIZER), &device)?;
        opt.step_count = state.steps;
        if let Some(ema) = &mut ema {
            ema.load(&out.join(ema::FILE), &device)?;
        }
        eprintln!(
            "resuming after epoch {} (step {})",
            state.epochs_done, state.steps
        );
    } else {
        let info = RunInfo {
            format: RUN_FORMAT,
            sft: args.clone(),
            model: cfg.clone(),
            rl: None,
        };
        run::write_run_info(out, &info)?;
        let _ = std::fs::remove_file(out.join(files::LOG_JSONL));
    }
    let params_count: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    eprintln!(
        "model: {} parameters, d_model {}, {} + {} layers, {:?} history positions, device {:?}",
        params_count, cfg.d_model, cfg.layers, cfg.head_layers, cfg.history, args.device
    );
    let plan = Schedule::new(args, &ds, cfg);
    let valid_rows = sample_rows(&ds.valid, args.eval_rows, args.seed);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join(files::LOG_JSONL))?;
    let epoch_run = Epochs {
        model: &model,
        ds: &ds,
        args,
        plan: &plan,
        vars: varmap.all_vars(),
        device: &device,
    };
    for epoch in state.epochs_done..args.epochs {
        if state.steps >= plan.total_steps {
            break;
        }
        let trained = epoch_run.train(epoch, &mut state, &mut opt, ema.as_mut())?;
        let entry = epoch_run.validate(epoch, trained, &valid_rows, ema.as_mut(), state.steps)?;
        state.epochs_done = epoch + 1;
        let improved = entry.valid_ndcg10 > state.best_ndcg10 || state.best_epoch == 0;
        if improved {
            state.best_ndcg10 = entry.valid_ndcg10;
            state.best_epoch = epoch + 1;
            state.epochs_without_improvement = 0;
            varmap.save(out.join(files::MODEL))?;
        } else {
            state.epochs_without_improvement += 1;
        }
        if let Some(ema) = &mut ema {
            ema.swap()?;
            ema.save(&out.join(ema::FILE))?;
        }
        varmap.save(out.join(files::LAST))?;
        opt.save(&out.join(files::OPTIMIZER))?;
        write_json(&out.join(files::STATE_JSON), &state)?;
        writeln!(log, "{}", serde_json::to_string(&entry)?)?;
        eprintln!("{}", entry.line(improved));
        if state.epochs_without_improvement >= args.patience {
            eprintln!(
                "early stop: no improvement for {} epochs (best epoch {})",
                args.patience, state.best_epoch
            );
            break;
        }
    }
    if state.best_epoch > 0 {
        varmap.load(out.join(files::MODEL))?;
        let fusion = if model.has_item_head() {
            fit_fusion(&model, &ds, &valid_rows, args, out)?
        } else {
            None
        };
        if args.calibrate {
            calibrate(
                &model,
                &ds.catalog,
                &valid_rows,
                args.eval_beam,
                fusion.map(|f| f.weight),
                out,
            )?;
        }
    }
    Ok(state)
}

/// Loads the training data and checks it against the model configuration; with
/// `--rl-holdout N`, each user's last N training targets are left out ([`rl_holdout`]).
fn load_training_data(args: &SftArgs, cfg: &ModelConfig) -> Result<Dataset> {
    let mut ds =
        data::load(&args.data, &args.load).with_context(|| format!("loading {}", args.data.display()))?;
    eprint!("{}", ds.summary());
    if args.rl_holdout > 0 {
        let (kept, held) = rl_holdout(&ds.train, args.rl_holdout, cfg.max_history);
        eprintln!(
            "--rl-holdout {}: {} training targets kept out of SFT for the RL stage",
            args.rl_holdout,
            held.len()
        );
        ds.train = kept;
    }
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
    Ok(ds)
}

/// Splits each training sequence's last `n` targets off (sequences with more than `n`
/// targets; the others stay whole): the shortened sequences, and the held-out targets as
/// prompts (history of at most `max_history` items, target), in sequence order.
pub fn rl_holdout(
    train: &[TrainSequence],
    n: usize,
    max_history: usize,
) -> (Vec<TrainSequence>, Vec<Example>) {
    let mut kept = Vec::with_capacity(train.len());
    let mut held = Vec::new();
    for s in train {
        if n == 0 || s.targets() <= n {
            kept.push(s.clone());
            continue;
        }
        let cut = s.items.len() - n;
        for t in cut..s.items.len() {
            held.push(Example {
                user: s.user,
                history: s.items[t.saturating_sub(max_history)..t].to_vec(),
                target: s.items[t],
            });
        }
        kept.push(TrainSequence {
            items: s.items[..cut].to_vec(),
            ..s.clone()
        });
    }
    (kept, held)
}

/// The run's step plan: windows, steps, warm-up and data-parallel shards.
struct Schedule {
    windows: Vec<batches::Window>,
    total_steps: usize,
    warmup: usize,
    shards: usize,
    threads: usize,
}

impl Schedule {
    fn new(args: &SftArgs, ds: &Dataset, cfg: &ModelConfig) -> Schedule {
        let windows = batches::windows(&ds.train, cfg.max_history);
        let steps_per_epoch = windows.len().div_ceil(args.batch_size.max(1));
        let total_steps = args
            .max_steps
            .unwrap_or(usize::MAX)
            .min(steps_per_epoch * args.epochs);
        // Warm-up relative to the run: never more than a tenth of its steps.
        let warmup = args.warmup_steps.min(total_steps / 10);
        // Data-parallel: every batch is split into `shards` fixed parts (dropout seeded per
        // part), run on up to `threads` threads; gradients are the target-weighted mean, so
        // the result does not depend on the thread count.
        let shards = if matches!(args.device, DeviceKind::Cpu) {
            SHARDS
        } else {
            1
        };
        let threads = crate::threads().min(shards);
        eprintln!(
            "{steps_per_epoch} steps per epoch, {total_steps} at most, warm-up {warmup}, {shards} shards on {threads} threads"
        );
        Schedule {
            windows,
            total_steps,
            warmup,
            shards,
            threads,
        }
    }
}

/// What one epoch's training pass measured.
#[derive(Clone, Copy)]
struct Trained {
    loss: f64,
    lr: f64,
    tokens: usize,
    targets: usize,
    seconds: f64,
}

/// What every epoch of a run shares.
struct Epochs<'a> {
    model: &'a SidTransformer,
    ds: &'a Dataset,
    args: &'a SftArgs,
    plan: &'a Schedule,
    vars: Vec<candle_core::Var>,
    device: &'a Device,
}

impl Epochs<'_> {
    /// One pass over the epoch's batches (stops early at the run's step budget).
    fn train(
        &self,
        epoch: usize,
        state: &mut TrainState,
        opt: &mut AdamW,
        mut ema: Option<&mut ema::Ema>,
    ) -> Result<Trained> {
        let (args, plan) = (self.args, self.plan);
        let t0 = Instant::now();
        let order = batches::epoch_batches(&plan.windows, args.batch_size, args.seed, epoch);
        let pb = progress_bar(order.len() as u64, format!("epoch {:>3}", epoch + 1));
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        let (mut tokens, mut targets) = (0usize, 0usize);
        let mut lr = args.lr;
        let levels = self.model.config().levels();
        for batch_idx in &order {
            if state.steps >= plan.total_steps {
                break;
            }
            lr = learning_rate(
                state.steps,
                plan.warmup,
                plan.total_steps,
                args.lr,
                args.min_lr_ratio,
            );
            opt.params.lr = lr;
            let sharding = Sharding {
                seed: args.seed,
                step: state.steps,
                shards: plan.shards,
                threads: plan.threads,
            };
            let (grads, lv, n_targets) = sharded_grads(
                self.model,
                self.ds,
                &plan.windows,
                batch_idx,
                sharding,
                &self.vars,
                self.device,
            )?;
            opt.clipped_step(&grads, args.clip)?;
            if let Some(ema) = ema.as_deref_mut() {
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
                .map(|&w| plan.windows[w].end - plan.windows[w].start - 1)
                .sum();
            tokens += (read + n_targets) * levels;
            targets += n_targets;
            pb.inc(1);
            pb.set_message(format!("loss {:.4} lr {:.2e}", loss_sum / loss_n as f64, lr));
        }
        pb.finish_and_clear();
        Ok(Trained {
            loss: loss_sum / loss_n.max(1) as f64,
            lr,
            tokens,
            targets,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Validates the epoch's weights. With `--ema`, the averaged weights are validated (and
    /// left swapped in, to be kept as the best model); the live ones are validated too, for
    /// the log.
    fn validate(
        &self,
        epoch: usize,
        trained: Trained,
        rows: &[Example],
        ema: Option<&mut ema::Ema>,
        steps: usize,
    ) -> Result<EpochLog> {
        let t1 = Instant::now();
        let mut valid_live = None;
        if let Some(ema) = ema {
            let live = validate(self.model, self.ds, rows, self.args)?;
            valid_live = Some((live.item.hr_at(10), live.item.ndcg_at(10)));
            ema.swap()?;
        }
        let v = validate(self.model, self.ds, rows, self.args)?;
        let train_s = trained.seconds;
        Ok(EpochLog {
            epoch: epoch + 1,
            steps,
            train_loss: trained.loss,
            lr: trained.lr,
            valid_hr10: v.item.hr_at(10),
            valid_ndcg10: v.item.ndcg_at(10),
            train_s,
            eval_s: t1.elapsed().as_secs_f64(),
            tokens_per_s: trained.tokens as f64 / train_s.max(1e-9),
            targets_per_s: trained.targets as f64 / train_s.max(1e-9),
            valid_live,
        })
    }
}

impl EpochLog {
    /// The epoch's progress line (`*` marks a new best).
    fn line(&self, improved: bool) -> String {
        format!(
            "epoch {:>3}  loss {:.4}  valid HR@10 {:.4} NDCG@10 {:.4}{}{}  {:.0}s train ({:.0} tok/s, {:.0} targets/s) + {:.0}s valid",
            self.epoch,
            self.train_loss,
            self.valid_hr10,
            self.valid_ndcg10,
            if improved { " *" } else { "" },
            self.valid_live.map_or(String::new(), |(hr, ndcg)| format!(
                "  (live weights: HR@10 {hr:.4} NDCG@10 {ndcg:.4})"
            )),
            self.train_s,
            self.tokens_per_s,
            self.targets_per_s,
            self.eval_s
        )
    }
}

/// Chooses and calibrates the confidence a run reports ([`eval::calibrate`]) on `rows`
/// (validation), searching as the engine serves (fused at `item_weight` when given), and
/// writes `confidence.json` and `calibration.json`; the end of both SFT and RL. An SFT model
/// has no learned confidence, so there it is the isotonic map of the beam posterior: what
/// `ugr export` puts into the artifact, so that the engine's confidence reads as the
/// probability that an item is the next one.
pub fn calibrate(
    model: &SidTransformer,
    catalog: &ugr_core::Catalog,
    rows: &[Example],
    beam: usize,
    item_weight: Option<f32>,
    out: &Path,
) -> Result<eval::calibrate::ConfidenceChoice> {
    eprintln!(
        "calibrating the confidence on {} validation rows (beam {beam})",
        rows.len()
    );
    let choice = eval::calibrate::fit(model, catalog, rows, beam, crate::args::SEARCH_BATCH, item_weight)?;
    eval::calibrate::write(out, &choice)?;
    for line in choice.lines() {
        eprintln!("  {line}");
    }
    Ok(choice)
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
