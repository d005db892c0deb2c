//! The UGR reinforcement stage (`ugr train rl`): GRPO from an SFT run with the
//! uncertainty-weighted reward, difficulty-aware weighting and confidence alignment
//! (the UGR method, arXiv 2602.11719, section 2; the per-group formulas are in [`super::grpo`]).
//!
//! # One step
//! 1. **Rollouts.** `prompts_per_step` training prompts (a history and its next item) go
//!    through ugr-core's [`BeamSearch`] over the candle model with `G` beams: `G` distinct
//!    valid SIDs per prompt, best first, with their scores `s_k` (mean token log-prob); the
//!    prompts are searched in [`ROLLOUT_PARTS`] fixed parts on up to that many threads
//!    (`UGR_THREADS`, default every core), so a run does not depend on the thread count.
//!    Items sharing a SID are one sequence, so a group can hold fewer than `G` sequences
//!    under SID collisions; a beam is correct iff its SID is the target's SID.
//! 2. **Group figures** on plain numbers: rewards, advantages (Bessel std + 1e-4),
//!    `alpha`, the beam classes and the confidence pairs.
//! 3. **Loss.** Only groups that contain the target produce a loss (the others have zero
//!    advantages and no confidence loss), so only they are recomputed: one batched,
//!    teacher-forced pass per step ([`SidTransformer::score_sids`]) gives every sequence's
//!    token log-probs and, after `CONF_Q`, its confidence logit, with gradients. Per group
//!    `L = alpha * mean_k mean_tokens(-A_k log pi) + sum_pairs w softplus(c_i - c_j)`; the
//!    step's loss is the mean over all its prompts (TRL averages over the whole batch).
//! 4. **Update**: one AdamW step per rollout (so the PPO ratio is 1 and clipping never
//!    fires), no KL term, gradient norm clipped to 1.
//!
//! Decisions where the method is silent:
//! - the policy (`policy`, [`PolicyKind`]): by default the rollouts rank by the generative
//!   score alone, never fused with the item head ([`ugr_core::ItemFusion`]): GRPO's policy
//!   is the generative head, as in the method, and the item head keeps its SFT weights
//!   while serving still fuses it at the SFT run's fitted weight (`fusion.json` is carried
//!   over). Measured, that trains a ranking the engine does not serve (docs/results/rl.md). An addition of ours, [`PolicyKind::Served`], makes the policy what serving
//!   returns: the rollouts are the fused search at the SFT run's weight `w`, a group's
//!   scores are the fused scores, and a sequence's log-probability is that of the fused
//!   score, `sum_tokens log pi + L * w * log p_item` (the fused score is the mean token
//!   log-prob plus `w log p_item`; the factor `L` keeps the ratio), so the same advantages
//!   train both heads and the encoder under them. Validation then measures the served
//!   ranking too;
//! - the rollouts and the recompute run without dropout: the policy that samples is the
//!   policy that is differentiated, which keeps the ratio exactly 1;
//! - the learning rate is constant after a short linear warm-up (default: the SFT peak /
//!   100), so that late-training behaviour is not hidden by a vanishing step size; the
//!   warm-up keeps Adam's first, uncorrected steps from jolting the SFT model;
//! - the confidence parameters that SFT never trained (the `CONF_Q`, `C_LOW`, `C_HIGH`
//!   embedding rows, their output biases and the `CONF_Q` position) learn
//!   `confidence_lr_scale` (default 100) times faster: at the RL rate they barely move in
//!   a few thousand steps, while the paper's LoRA-adapted LLM starts from strong features;
//! - prompts are every next-item target of the training sequences (the SFT targets),
//!   shuffled per epoch, or, when the SFT run held some out (`ugr train sft --rl-holdout N`),
//!   only those: prompts the model has not memorised; `max_prompts` caps an epoch for
//!   CPU-budget runs;
//! - confidence tokens: the SFT checkpoint already has rows for `CONF_Q`, `C_LOW` and
//!   `C_HIGH` (they are reserved in every vocabulary and never trained by SFT).
//!   `C_LOW` and `C_HIGH` are reset to equal (zero) rows and biases, so
//!   `z[C_HIGH] - z[C_LOW] = 0` and every confidence starts at exactly 0.5; `CONF_Q` keeps
//!   its small random row.
//! - `model.safetensors` is the **final** model (what `ugr eval` and `ugr export` use);
//!   `best.safetensors` is the best by validation NDCG@10, for comparison, and
//!   `epoch-N.safetensors` the model after each epoch but the last. With the constant rate
//!   a shorter schedule is exactly a prefix of a longer one (same seed, same order), so
//!   `ugr eval --weights epoch-1.safetensors` is the one-epoch run;
//! - an addition of ours, off by default (`lambda_bce`): a proper-scoring term, the binary
//!   cross-entropy of every beam's confidence against "this beam is the target", over every
//!   group. The paper's pairwise loss only sees groups that contain the target and only
//!   differences within a group, so nothing in it ranks one user's confidence against
//!   another's (what AUROC and risk-coverage measure) or anchors its level.
//! - At the end the reported confidence is chosen and calibrated on the validation split
//!   ([`crate::eval::calibrate`]: the learned confidence or the beam posterior, whichever
//!   ranks users better, with its isotonic map in `calibration.json`); `ugr export` puts
//!   the map into the artifact.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use candle_core::{D, DType, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use ugr_core::vocab::Special;
use ugr_core::{BeamSearch, Catalog, ItemFusion, SearchOptions, Sid};

use super::grpo::{self, ConfidenceWeights, Reward};
use super::optim::{AdamW, AdamWParams};
use super::{named_vars, sample_rows};
use crate::args::SftArgs;
pub use crate::args::{PolicyKind, RewardKind, RlArgs, RolloutKind};
use crate::curves::{CurvePoint, Curves};
use crate::data::{self, Dataset, Example};
use crate::eval;
use crate::files;
use crate::model::{CandleModel, ModelConfig, SidTransformer};
use crate::run::{self, RunInfo, read_run_info, write_json};

/// What a run ended with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlSummary {
    /// Steps taken.
    pub steps: usize,
    /// Validation NDCG@10 at the start (the SFT model).
    pub start_ndcg10: f64,
    /// Best validation NDCG@10 and its step.
    pub best_ndcg10: f64,
    /// Step of the best.
    pub best_step: usize,
    /// Final validation NDCG@10.
    pub final_ndcg10: f64,
    /// Seconds.
    pub wall_s: f64,
    /// Prompts per second (rollout + update).
    pub prompts_per_s: f64,
}

/// The per-group reward.
fn reward_fn(args: &RlArgs) -> Reward {
    match args.reward {
        RewardKind::Binary => Reward::Binary,
        RewardKind::Rank => Reward::Rank,
        RewardKind::Uncertainty => Reward::Uncertainty { tau: args.tau },
    }
}

/// The RL stage's prompts for a run trained by `sft`: the targets the SFT run held out
/// (`--rl-holdout N`), which the model has not memorised, else every SFT training target.
/// `ugr eval --prompts` scores a run on the same rows.
pub fn rl_prompts(ds: &Dataset, sft: &SftArgs, max_history: usize) -> Vec<Example> {
    if sft.rl_holdout > 0 {
        super::rl_holdout(&ds.train, sft.rl_holdout, max_history).1
    } else {
        ds.examples(data::Split::Train, max_history)
    }
}

/// Sets the confidence tokens so that every confidence starts at 0.5 (see the module docs).
pub fn init_confidence_tokens(varmap: &VarMap) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned var map"))?;
    let (lo, hi) = (
        Special::CLow.token().as_u32() as usize,
        Special::CHigh.token().as_u32() as usize,
    );
    for name in ["tok_emb.weight", "out_bias"] {
        let var = data
            .get(name)
            .with_context(|| format!("checkpoint has no {name}"))?;
        let t = var.as_tensor();
        let dims = t.dims().to_vec();
        let width: usize = dims[1..].iter().product();
        let mut v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        for row in [lo, hi] {
            v[row * width..(row + 1) * width].fill(0.0);
        }
        var.set(&Tensor::from_vec(v, dims, t.device())?.to_dtype(t.dtype())?)?;
    }
    Ok(())
}

struct Group {
    prompt: usize,
    sids: Vec<Sid>,
    /// Catalog SID index of each of `sids` (the item head's columns).
    sid_rows: Vec<u32>,
    advantages: Vec<f32>,
    alpha: f32,
    pairs: Vec<(usize, usize, f32)>,
    correct: Vec<bool>,
    /// Whether the group contains the target (else it is there for the proper-scoring term).
    hit: bool,
}

#[derive(Default)]
struct Accum {
    steps: usize,
    /// Distinct SIDs over the groups (sampled rollouts may repeat one).
    unique: usize,
    rollouts: usize,
    reward: f64,
    groups: usize,
    hit_groups: usize,
    top1: usize,
    policy: f64,
    conf: f64,
    alpha: f64,
    c_correct: (f64, usize),
    c_wrong: (f64, usize),
}

/// Runs the RL stage; writes the run directory `out`.
pub fn train_rl(args: &RlArgs, out: &Path) -> Result<RlSummary> {
    let device = args.device.device()?;
    let sft: RunInfo = read_run_info(&args.from)?;
    if sft.model.confidence {
        bail!(
            "{} already has confidence tokens (an RL run): start from an SFT run",
            args.from.display()
        );
    }
    let mut args = args.clone();
    let lr = args.lr.unwrap_or(sft.sft.lr / 100.0);
    args.lr = Some(lr);
    args.validate()?;
    let ds = data::load(&sft.sft.data, &sft.sft.load)
        .with_context(|| format!("loading {}", sft.sft.data.display()))?;
    eprint!("{}", ds.summary());
    ensure!(!ds.train.is_empty(), "{} has no training split", ds.name);
    let (cfg, model, varmap) = start_model(&args, &sft.model, &device)?;
    let served = served_weight(&args, &model)?;
    prepare_run_dir(out, &sft, &cfg, &args)?;

    let mut opt = AdamW::new(
        named_vars(&varmap)?,
        AdamWParams {
            lr,
            weight_decay: 0.0,
            ..AdamWParams::default()
        },
    )?;
    if args.confidence {
        confidence_lr_scales(&mut opt, &cfg, args.confidence_lr_scale, &device)?;
    }
    let all_prompts = rl_prompts(&ds, &sft.sft, cfg.max_history);
    ensure!(!all_prompts.is_empty(), "no RL prompts in {}", ds.name);
    let search_opts = SearchOptions {
        beam: args.group,
        top_k: args.group,
        learned_confidence: false,
        normalization: cfg.normalization(),
        item_fusion: served.map_or(ItemFusion::Off, ItemFusion::Weight),
        ..SearchOptions::default()
    };
    search_opts.validate()?;
    let stepper = Stepper {
        model: &model,
        catalog: &ds.catalog,
        opts: search_opts,
        args: &args,
        served,
        conf_weights: ConfidenceWeights {
            partial: args.lambda_p,
            wrong: args.lambda_w,
            wrong_below_partial: args.lambda_pw,
        },
    };
    let per_epoch = if args.max_prompts == 0 {
        all_prompts.len()
    } else {
        args.max_prompts.min(all_prompts.len())
    };
    let steps_per_epoch = per_epoch.div_ceil(args.prompts_per_step);
    let total_steps = args
        .max_steps
        .unwrap_or(usize::MAX)
        .min(steps_per_epoch * args.epochs);
    eprintln!(
        "RL ({}): {} prompts/epoch of {} ({}), {} steps of {} prompts x G {}, lr {:.1e}, from {}",
        args.label(),
        per_epoch,
        all_prompts.len(),
        if sft.sft.rl_holdout > 0 {
            "targets SFT held out"
        } else {
            "the SFT training targets"
        },
        total_steps,
        args.prompts_per_step,
        args.group,
        lr,
        args.from.display()
    );

    let mut checks = Checks::start(&args, &model, &varmap, &ds, served, out)?;
    let mut step = 0;
    let mut prompts_done = 0;
    let mut acc = Accum::default();
    let mut search = BeamSearch::new(&ds.catalog);
    let pb = super::progress_bar(total_steps as u64, "  rl".into());
    'epochs: for epoch in 0..args.epochs {
        let mut order: Vec<usize> = (0..all_prompts.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            args.seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9),
        ));
        order.truncate(per_epoch);
        for chunk in order.chunks(args.prompts_per_step) {
            if step >= total_steps {
                break 'epochs;
            }
            let batch: Vec<&Example> = chunk.iter().map(|&i| &all_prompts[i]).collect();
            opt.params.lr = lr * ((step + 1) as f64 / args.warmup_steps.max(1) as f64).min(1.0);
            let (policy, conf) = stepper.step(&mut search, &batch, step, &mut opt, &mut acc)?;
            if !(policy.is_finite() && conf.is_finite()) {
                bail!("RL diverged at step {step}: policy loss {policy}, confidence loss {conf}");
            }
            step += 1;
            prompts_done += batch.len();
            pb.inc(1);
            if step % args.eval_every == 0 || step == total_steps {
                let line = checks.check(step, prompts_done, &acc)?;
                acc = Accum::default();
                pb.suspend(|| eprintln!("{line}"));
            }
        }
        if step == steps_per_epoch * (epoch + 1) && epoch + 1 < args.epochs {
            varmap.save(out.join(format!("epoch-{}.safetensors", epoch + 1)))?;
        }
    }
    pb.finish_and_clear();
    varmap.save(out.join(files::MODEL))?;
    let wall_s = checks.finish()?;

    // The reported confidence and its calibration map, chosen and fitted on the validation
    // split with the final model through the serving (fused) search.
    let calib_rows = sample_rows(&ds.valid, args.calibration_rows, args.seed ^ 0xca1);
    let item_weight = eval::fusion::read(out)?.map(|f| f.weight);
    super::calibrate(&model, &ds.catalog, &calib_rows, args.eval_beam, item_weight, out)?;
    let summary = RlSummary {
        steps: step,
        start_ndcg10: checks.start_ndcg10,
        best_ndcg10: checks.best.0,
        best_step: checks.best.1,
        final_ndcg10: checks.curves.points.last().map_or(f64::NAN, |p| p.valid_ndcg10),
        wall_s,
        prompts_per_s: prompts_done as f64 / wall_s.max(1e-9),
    };
    write_json(&out.join(files::SUMMARY_JSON), &summary)?;
    Ok(summary)
}

/// The run's validation checks: the curves (`curves.json`, `log.jsonl`) and the best weights.
struct Checks<'a> {
    args: &'a RlArgs,
    model: &'a SidTransformer,
    varmap: &'a VarMap,
    catalog: &'a Catalog,
    rows: Vec<Example>,
    served: Option<f32>,
    out: &'a Path,
    log: std::fs::File,
    curves: Curves,
    start: Instant,
    start_ndcg10: f64,
    /// Best validation NDCG@10 and its step.
    best: (f64, usize),
}

impl<'a> Checks<'a> {
    /// Validates the starting (SFT) model: the curves' first point, and the first best.
    fn start(
        args: &'a RlArgs,
        model: &'a SidTransformer,
        varmap: &'a VarMap,
        ds: &'a Dataset,
        served: Option<f32>,
        out: &'a Path,
    ) -> Result<Checks<'a>> {
        let mut checks = Checks {
            args,
            model,
            varmap,
            catalog: &ds.catalog,
            rows: sample_rows(&ds.valid, args.eval_rows, args.seed),
            served,
            out,
            log: std::fs::File::create(out.join(files::LOG_JSONL))?,
            curves: Curves {
                label: args.label(),
                rl: args.clone(),
                points: Vec::new(),
            },
            start: Instant::now(),
            start_ndcg10: 0.0,
            best: (0.0, 0),
        };
        let start = checks.validate()?;
        let (hr1, hr0, ndcg0) = (start.item.hr_at(1), start.item.hr_at(10), start.item.ndcg_at(10));
        checks.record(CurvePoint {
            valid_hr1: hr1,
            valid_hr10: hr0,
            valid_ndcg10: ndcg0,
            valid_coverage10: start.exposure10.coverage,
            valid_gini10: start.exposure10.gini,
            ..CurvePoint::default()
        })?;
        eprintln!("step     0  valid HR@1 {hr1:.4} HR@10 {hr0:.4} NDCG@10 {ndcg0:.4} (SFT start)");
        checks.start_ndcg10 = ndcg0;
        checks.best = (ndcg0, 0);
        varmap.save(out.join(files::BEST))?;
        Ok(checks)
    }

    /// Validation HR@10 and NDCG@10 of the current weights (the served ranking under the
    /// served policy, the generative one otherwise).
    fn validate(&self) -> Result<eval::EvalResult> {
        Ok(eval::evaluate_with(
            self.model,
            self.catalog,
            &self.rows,
            self.args.eval_beam,
            crate::args::SEARCH_BATCH,
            self.served,
            |_| {},
        )?)
    }

    fn record(&mut self, point: CurvePoint) -> Result<()> {
        writeln!(self.log, "{}", serde_json::to_string(&point)?)?;
        self.curves.points.push(point);
        write_json(&self.out.join(files::CURVES_JSON), &self.curves)
    }

    /// A check after `step` steps: validates, records the point with the rollout figures
    /// accumulated since the last check, keeps the best weights; returns the progress line.
    fn check(&mut self, step: usize, prompts: usize, acc: &Accum) -> Result<String> {
        let valid = self.validate()?;
        let point = acc.point(step, prompts, &valid, self.start.elapsed().as_secs_f64());
        let (hr, ndcg) = (point.valid_hr10, point.valid_ndcg10);
        let better = ndcg > self.best.0;
        let line = format!(
            "step {step:>5}  valid HR@1 {:.4} HR@10 {hr:.4} NDCG@10 {ndcg:.4}{} coverage {:.3}  group hit {:.3} unique {:.2} top-1 {:.3} reward {:+.4} pg {:+.4} conf {:.4} c(gt) {:.3} c(wrong) {:.3}",
            point.valid_hr1,
            if better { " *" } else { "" },
            point.valid_coverage10,
            point.group_hit_rate,
            point.unique_per_group,
            point.top1_hit_rate,
            point.reward,
            point.policy_loss,
            point.confidence_loss,
            point.confidence_correct.unwrap_or(f64::NAN),
            point.confidence_wrong.unwrap_or(f64::NAN),
        );
        self.record(point)?;
        if better {
            self.best = (ndcg, step);
            self.varmap.save(self.out.join(files::BEST))?;
        }
        Ok(line)
    }

    /// Writes the curves and their chart; returns the seconds since the start.
    fn finish(&self) -> Result<f64> {
        write_json(&self.out.join(files::CURVES_JSON), &self.curves)?;
        crate::plot::curves_svg(
            &self.out.join(files::CURVES_SVG),
            std::slice::from_ref(&self.curves),
        )?;
        Ok(self.start.elapsed().as_secs_f64())
    }
}

/// The SFT model with the RL stage's configuration: its weights loaded and, with confidence
/// alignment, the confidence tokens reset so that every confidence starts at 0.5.
fn start_model(
    args: &RlArgs,
    sft: &ModelConfig,
    device: &candle_core::Device,
) -> Result<(ModelConfig, SidTransformer, VarMap)> {
    let cfg = ModelConfig {
        confidence: args.confidence,
        ..sft.clone()
    };
    let (model, mut varmap) = crate::model::with_fresh_vars(&cfg, device)?;
    let weights = args.from.join(&args.from_weights);
    varmap
        .load(&weights)
        .with_context(|| format!("loading {}", weights.display()))?;
    if args.confidence {
        init_confidence_tokens(&varmap)?;
    }
    Ok((cfg, model, varmap))
}

/// The served policy fuses the item head at the SFT run's fitted weight (checked before
/// anything is written to the run directory); `None` for the generative policy.
fn served_weight(args: &RlArgs, model: &SidTransformer) -> Result<Option<f32>> {
    match args.policy {
        PolicyKind::Generative => Ok(None),
        PolicyKind::Served => {
            ensure!(
                model.has_item_head(),
                "--policy served needs an item head ({} was trained without one)",
                args.from.display()
            );
            let fit = eval::fusion::read(&args.from)?.with_context(|| {
                format!(
                    "--policy served needs the SFT run's fusion weight: run `ugr train fuse --run {}`",
                    args.from.display()
                )
            })?;
            Ok(Some(fit.weight))
        }
    }
}

/// Creates the run directory: `run.json`, `config.json`, the SFT run's `fusion.json`
/// (serving keeps fusing the item head at its weight), no stale calibration.
fn prepare_run_dir(out: &Path, sft: &RunInfo, cfg: &ModelConfig, args: &RlArgs) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let info = RunInfo {
        format: run::RUN_FORMAT,
        sft: sft.sft.clone(),
        model: cfg.clone(),
        rl: Some(args.clone()),
    };
    run::write_run_info(out, &info)?;
    let _ = std::fs::remove_file(out.join(eval::calibrate::MAP_FILE));
    let _ = std::fs::remove_file(out.join(eval::calibrate::FILE));
    let fusion = args.from.join(eval::fusion::FILE);
    if fusion.exists() {
        std::fs::copy(&fusion, out.join(eval::fusion::FILE))
            .with_context(|| format!("copying {}", fusion.display()))?;
    }
    Ok(())
}

/// Gives the confidence parameters SFT never trained their own learning-rate multiplier.
fn confidence_lr_scales(
    opt: &mut AdamW,
    cfg: &ModelConfig,
    scale: f64,
    device: &candle_core::Device,
) -> Result<()> {
    let vocab = cfg.vocab()?.size() as usize;
    let rows = |n: usize, which: &[usize], shape: &[usize]| -> Result<Tensor> {
        let mut v = vec![1f32; n];
        for &r in which {
            v[r] = scale as f32;
        }
        Ok(Tensor::from_vec(v, shape, device)?)
    };
    let [q, lo, hi] = [Special::ConfQ, Special::CLow, Special::CHigh].map(|s| s.token().as_u32() as usize);
    opt.set_lr_scale("tok_emb.weight", rows(vocab, &[q, lo, hi], &[vocab, 1])?)?;
    opt.set_lr_scale("out_bias", rows(vocab, &[lo, hi], &[vocab])?)?;
    let positions = cfg.head_positions();
    opt.set_lr_scale("head.pos", rows(positions, &[positions - 1], &[positions, 1])?)?;
    Ok(())
}

impl Accum {
    fn point(&self, step: usize, prompts: usize, valid: &eval::EvalResult, elapsed_s: f64) -> CurvePoint {
        let per = |x: f64, n: usize| if n > 0 { x / n as f64 } else { f64::NAN };
        let some = |x: f64, n: usize| (n > 0).then(|| x / n as f64);
        CurvePoint {
            step,
            prompts,
            reward: per(self.reward, self.rollouts),
            group_hit_rate: per(self.hit_groups as f64, self.groups),
            top1_hit_rate: per(self.top1 as f64, self.groups),
            policy_loss: per(self.policy, self.steps),
            confidence_loss: per(self.conf, self.steps),
            alpha: some(self.alpha, self.hit_groups),
            unique_per_group: per(self.unique as f64, self.groups),
            confidence_correct: some(self.c_correct.0, self.c_correct.1),
            confidence_wrong: some(self.c_wrong.0, self.c_wrong.1),
            valid_hr1: valid.item.hr_at(1),
            valid_hr10: valid.item.hr_at(10),
            valid_ndcg10: valid.item.ndcg_at(10),
            valid_coverage10: valid.exposure10.coverage,
            valid_gini10: valid.exposure10.gini,
            elapsed_s,
        }
    }
}

/// Contiguous parts a step's prompts are split into for the rollouts. Fixed, so that a run
/// does not depend on the thread count: a row's search is not bit-identical across batch
/// compositions (the model's batched matmuls round differently), so the split, not the
/// threads, decides the batches.
pub const ROLLOUT_PARTS: usize = 2;

/// The step's rollouts: [`ROLLOUT_PARTS`] contiguous parts of the prompts, searched on up to
/// [`crate::threads`] threads (one search each, `search` for the first).
fn rollouts(
    model: &CandleModel<'_>,
    catalog: &Catalog,
    search: &mut BeamSearch<'_>,
    histories: &[&[ugr_core::ItemId]],
    opts: &SearchOptions,
) -> ugr_core::Result<Vec<ugr_core::Recommendations>> {
    let parts: Vec<&[&[ugr_core::ItemId]]> = histories
        .chunks(histories.len().div_ceil(ROLLOUT_PARTS).max(1))
        .collect();
    if crate::threads() == 1 || parts.len() == 1 {
        let mut all = Vec::with_capacity(histories.len());
        for p in parts {
            all.extend(search.run(model, p, opts)?);
        }
        return Ok(all);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = parts[1..]
            .iter()
            .map(|&p| s.spawn(move || BeamSearch::new(catalog).run(model, p, opts)))
            .collect();
        let mut all = search.run(model, parts[0], opts)?;
        for h in handles {
            all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?);
        }
        Ok(all)
    })
}

/// Sampled rollouts (`--rollouts sample`): `G` independent draws per prompt through the
/// trie at the run's temperature ([`ugr_core::search::sample`]), best score first (so ranks
/// mean what they mean for beams); a group may repeat a SID. The prompts are drawn in
/// [`ROLLOUT_PARTS`] parts on up to that many threads, each part with its own generator
/// seeded by (seed, step, part), so a run does not depend on the thread count.
fn sampled_rollouts(
    model: &CandleModel<'_>,
    catalog: &Catalog,
    histories: &[&[ugr_core::ItemId]],
    args: &RlArgs,
    opts: &SearchOptions,
    step: usize,
) -> Result<Vec<Vec<(u32, f32)>>> {
    use ugr_core::search::sample::{SplitMix64, sample};
    let parts: Vec<&[&[ugr_core::ItemId]]> = histories
        .chunks(histories.len().div_ceil(ROLLOUT_PARTS).max(1))
        .collect();
    let draw = |k: usize, part: &[&[ugr_core::ItemId]]| {
        let seed = args.seed
            ^ (step as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f)
            ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        sample(
            model,
            catalog,
            part,
            args.group,
            args.temperature,
            opts.normalization,
            &mut SplitMix64::new(seed),
        )
    };
    let drawn: Vec<Vec<ugr_core::search::sample::Draw>> = if crate::threads() == 1 || parts.len() == 1 {
        let mut all = Vec::with_capacity(histories.len());
        for (k, p) in parts.iter().enumerate() {
            all.extend(draw(k, p)?);
        }
        all
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = parts[1..]
                .iter()
                .enumerate()
                .map(|(k, &p)| s.spawn(move || draw(k + 1, p)))
                .collect();
            let mut all = draw(0, parts[0])?;
            for h in handles {
                all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?);
            }
            Ok::<_, ugr_core::Error>(all)
        })?
    };
    Ok(drawn
        .into_iter()
        .map(|group| {
            let mut g: Vec<(u32, f32)> = group.iter().map(|d| (d.sid_index, d.score)).collect();
            g.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            g
        })
        .collect())
}

/// What every RL step shares: the model, the rollout search and the loss settings.
struct Stepper<'a> {
    model: &'a SidTransformer,
    catalog: &'a Catalog,
    opts: SearchOptions,
    args: &'a RlArgs,
    /// The fusion weight of the served policy (`None`: the generative policy).
    served: Option<f32>,
    conf_weights: ConfidenceWeights,
}

impl Stepper<'_> {
    /// One rollout + update. Returns the step's policy and confidence losses.
    fn step(
        &self,
        search: &mut BeamSearch<'_>,
        batch: &[&Example],
        step: usize,
        opt: &mut AdamW,
        acc: &mut Accum,
    ) -> Result<(f64, f64)> {
        let histories: Vec<&[ugr_core::ItemId]> = batch.iter().map(|e| e.history.as_slice()).collect();
        let model = CandleModel::new(self.model, self.catalog);
        let candidates: Vec<Vec<(u32, f32)>> = match self.args.rollouts {
            RolloutKind::Beam => rollouts(&model, self.catalog, search, &histories, &self.opts)?
                .iter()
                .map(|r| {
                    // Items sharing a SID are one sequence.
                    let mut seen: Vec<(u32, f32)> = Vec::with_capacity(r.items.len());
                    for item in &r.items {
                        if !seen.iter().any(|s| s.0 == item.sid_index) {
                            seen.push((item.sid_index, item.score));
                        }
                    }
                    seen
                })
                .collect(),
            RolloutKind::Sample => {
                sampled_rollouts(&model, self.catalog, &histories, self.args, &self.opts, step)?
            }
        };
        let groups = self.groups(batch, &candidates, acc)?;
        acc.steps += 1;
        if groups.is_empty() {
            return Ok((0.0, 0.0));
        }
        let (loss, policy_value, conf_value) = self.loss(batch, &groups, acc)?;
        let grads = loss.backward()?;
        opt.clipped_step(&grads, self.args.clip)?;
        acc.policy += policy_value;
        acc.conf += conf_value;
        Ok((policy_value, conf_value))
    }

    /// The group figures on plain numbers (rewards, advantages, alpha, confidence pairs) of
    /// every group that produces a loss.
    fn groups(
        &self,
        batch: &[&Example],
        candidates: &[Vec<(u32, f32)>],
        acc: &mut Accum,
    ) -> Result<Vec<Group>> {
        let (args, catalog, conf_weights) = (self.args, self.catalog, &self.conf_weights);
        let reward = reward_fn(args);
        let bce = args.confidence && args.lambda_bce > 0.0;
        let mut groups = Vec::new();
        for (p, (e, group)) in batch.iter().zip(candidates).enumerate() {
            let target = catalog.sid_index_of(e.target)?;
            let seen: Vec<u32> = group.iter().map(|c| c.0).collect();
            let scores: Vec<f32> = group.iter().map(|c| c.1).collect();
            let mut distinct = seen.clone();
            distinct.sort_unstable();
            distinct.dedup();
            acc.unique += distinct.len();
            let correct: Vec<bool> = seen.iter().map(|&s| s == target).collect();
            let rewards = grpo::rewards(reward, &scores, &correct);
            acc.groups += 1;
            acc.rollouts += rewards.len();
            acc.reward += rewards.iter().map(|&x| f64::from(x)).sum::<f64>();
            if !correct.iter().any(|&c| c) {
                // No policy gradient and no pairs; only the proper-scoring term sees these
                // (every beam is wrong), so it is the only term that tells hard prompts apart.
                if bce {
                    groups.push(Group {
                        prompt: p,
                        sids: seen.iter().map(|&s| catalog.sid(s)).collect(),
                        sid_rows: seen.clone(),
                        advantages: vec![0.0; correct.len()],
                        alpha: 0.0,
                        pairs: Vec::new(),
                        correct,
                        hit: false,
                    });
                }
                continue;
            }
            acc.hit_groups += 1;
            acc.top1 += usize::from(correct[0]);
            let alpha = if args.difficulty {
                grpo::difficulty_weight(&correct, args.alpha_min)
            } else {
                1.0
            };
            acc.alpha += f64::from(alpha);
            let sids: Vec<Sid> = seen.iter().map(|&s| catalog.sid(s)).collect();
            let pairs = if args.confidence {
                let target_sid = catalog.sid(target);
                let codes: Vec<&[u16]> = sids.iter().map(Sid::codes).collect();
                let classes = grpo::classify(&codes, target_sid.codes());
                grpo::confidence_pairs(&classes, conf_weights)
            } else {
                Vec::new()
            };
            groups.push(Group {
                prompt: p,
                sids,
                sid_rows: seen.clone(),
                advantages: grpo::advantages(&rewards),
                alpha,
                pairs,
                correct,
                hit: true,
            });
        }
        Ok(groups)
    }

    /// The step's loss (policy term plus confidence terms) with gradients, and the values of
    /// its policy and confidence parts.
    fn loss(&self, batch: &[&Example], groups: &[Group], acc: &mut Accum) -> Result<(Tensor, f64, f64)> {
        let (args, catalog, model, served) = (self.args, self.catalog, self.model, self.served);
        let bce = args.confidence && args.lambda_bce > 0.0;
        let device = model.device();
        let n_prompts = batch.len() as f64;
        let levels = model.config().levels() as f64;
        // user states once per prompt, repeated over its group's rows
        let hist_sids: Vec<Vec<Sid>> = groups
            .iter()
            .map(|g| eval::history_sids(catalog, &batch[g.prompt].history))
            .collect::<candle_core::Result<_>>()?;
        let refs: Vec<&[Sid]> = hist_sids.iter().map(Vec::as_slice).collect();
        let users = model.user_states(catalog, &refs)?;
        let mut rep = Vec::new();
        let mut sids = Vec::new();
        let mut coef = Vec::new();
        let (mut pi, mut pj, mut pw) = (Vec::new(), Vec::new(), Vec::new());
        // proper-scoring term: per row, its weight (mean over the group, then over the prompts)
        // and its label
        let (mut bce_w, mut bce_y) = (Vec::new(), Vec::new());
        for (gi, g) in groups.iter().enumerate() {
            let base = sids.len();
            let n = g.sids.len() as f64;
            for (k, sid) in g.sids.iter().enumerate() {
                rep.push(gi as u32);
                sids.push(*sid);
                coef.push(
                    (-f64::from(g.alpha) * f64::from(g.advantages[k]) / (n * levels * n_prompts)) as f32,
                );
                bce_w.push((f64::from(args.lambda_bce) / (n * n_prompts)) as f32);
                bce_y.push(if g.correct[k] { 1f32 } else { 0.0 });
            }
            for &(i, j, w) in &g.pairs {
                pi.push((base + i) as u32);
                pj.push((base + j) as u32);
                pw.push((f64::from(w) / n_prompts) as f32);
            }
        }
        let rows = sids.len();
        // the served policy's item term: log p_item of each row's SID, from its group's user
        let item_log_probs = match served {
            Some(w) => {
                let scores = model
                    .item_scores(&users)?
                    .context("--policy served needs an item head")?;
                let n_sids = scores.dim(1)?;
                let flat = candle_nn::ops::log_softmax(&scores, D::Minus1)?.flatten_all()?;
                let at: Vec<u32> = groups
                    .iter()
                    .enumerate()
                    .flat_map(|(gi, g)| g.sid_rows.iter().map(move |&s| (gi * n_sids) as u32 + s))
                    .collect();
                Some((flat.index_select(&Tensor::new(at.as_slice(), device)?, 0)? * (levels * f64::from(w)))?)
            }
            None => None,
        };
        let users = users.index_select(&Tensor::new(rep.as_slice(), device)?, 0)?;
        let (log_probs, diff) = model.score_sids(catalog, &users, &sids, args.confidence)?;
        let coef = Tensor::from_vec(coef, rows, device)?;
        let mut sequence = log_probs.sum(D::Minus1)?;
        if let Some(item) = item_log_probs {
            sequence = (sequence + item)?;
        }
        let policy = sequence.mul(&coef)?.sum_all()?;
        let mut loss = policy.clone();
        let mut conf_value = 0.0;
        if let Some(diff) = diff {
            let c = candle_nn::ops::sigmoid(&diff)?;
            let cv = c.to_vec1::<f32>()?;
            let mut k = 0;
            for g in groups {
                for &is in &g.correct {
                    if g.hit {
                        let slot = if is { &mut acc.c_correct } else { &mut acc.c_wrong };
                        slot.0 += f64::from(cv[k]);
                        slot.1 += 1;
                    }
                    k += 1;
                }
            }
            if !pw.is_empty() {
                let n = pw.len();
                let ci = c.index_select(&Tensor::from_vec(pi, n, device)?, 0)?;
                let cj = c.index_select(&Tensor::from_vec(pj, n, device)?, 0)?;
                let softplus = ((ci - cj)?.exp()? + 1.0)?.log()?;
                let conf = softplus.mul(&Tensor::from_vec(pw, n, device)?)?.sum_all()?;
                conf_value = f64::from(conf.to_scalar::<f32>()?);
                loss = (loss + conf)?;
            }
            if bce {
                // BCE on the logit z: softplus(z) - y z, with softplus(z) = relu(z) + ln(1 + e^-|z|)
                let y = Tensor::from_vec(bce_y, rows, device)?;
                let w = Tensor::from_vec(bce_w, rows, device)?;
                let softplus = (diff.relu()? + (diff.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                let term = (softplus - diff.mul(&y)?)?.mul(&w)?.sum_all()?;
                conf_value += f64::from(term.to_scalar::<f32>()?);
                loss = (loss + term)?;
            }
        }
        let policy_value = f64::from(policy.to_scalar::<f32>()?);
        Ok((loss, policy_value, conf_value))
    }
}
