//! The UGR reinforcement stage (`ugr train rl`): GRPO from an SFT run with the
//! uncertainty-weighted reward, difficulty-aware weighting and confidence alignment
//! (`../shared/UGR-METHOD.md` section 2; the per-group formulas are in [`super::grpo`]).
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
//!   over). Measured, that trains a ranking the engine does not serve (the README's RL
//!   section). An addition of ours, [`PolicyKind::Served`], makes the policy what serving
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
//!   shuffled per epoch; `max_prompts` caps an epoch for CPU-budget runs;
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
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use candle_core::{D, DType, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use ugr_core::vocab::Special;
use ugr_core::{BeamSearch, Catalog, ItemFusion, SearchOptions, Sid};

use super::grpo::{self, ConfidenceWeights, Reward};
use super::optim::{AdamW, AdamWParams};
use super::{DeviceKind, RunInfo, named_vars, read_run_info, sample_rows, write_json};
use crate::data::{self, Dataset, Example};
use crate::eval;
use crate::model::{CandleModel, ModelConfig, SidTransformer};

/// The reward of a rollout group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RewardKind {
    /// 1 for the target, 0 otherwise.
    Binary,
    /// MiniOneRec's rank reward: wrong beams penalised by `1 / log2(rank + 2)`, normalised.
    Rank,
    /// UGR: wrong beams penalised by `softmax(s / tau)` over the wrong beams.
    #[default]
    Uncertainty,
}

/// What GRPO treats as the policy (see the module's decisions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// The generative head alone (the method's reference): rollouts by the generative score.
    #[default]
    Generative,
    /// What the engine serves: rollouts through the fused search at the SFT run's fitted
    /// weight, and the fused log-probability differentiated (needs an item head and
    /// `fusion.json`).
    Served,
}

/// Arguments of the RL stage (saved in `run.json` under `rl`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlArgs {
    /// The SFT run it starts from.
    pub from: PathBuf,
    /// Weights file of that run.
    pub from_weights: String,
    /// Reward.
    pub reward: RewardKind,
    /// Temperature of the uncertainty reward.
    pub tau: f32,
    /// Difficulty-aware weighting of the policy loss.
    pub difficulty: bool,
    /// `alpha` of a group whose target is the top beam.
    pub alpha_min: f32,
    /// Confidence alignment (trains CONF_Q / C_LOW / C_HIGH).
    pub confidence: bool,
    /// Weight of partial-vs-gt pairs.
    pub lambda_p: f32,
    /// Weight of wrong-vs-gt pairs.
    pub lambda_w: f32,
    /// Weight of wrong-vs-partial pairs.
    pub lambda_pw: f32,
    /// Weight of the proper-scoring confidence term, ours and not the paper's: the binary
    /// cross-entropy of every rolled-out beam's confidence against "this beam is the
    /// target", over every group, those without the target included. 0: the paper's
    /// pairwise alignment alone (the reference).
    #[serde(default)]
    pub lambda_bce: f32,
    /// The policy GRPO trains: the generative head (reference) or the served, fused ranking.
    #[serde(default)]
    pub policy: PolicyKind,
    /// Group size G (beams per prompt).
    pub group: usize,
    /// Prompts per optimiser step.
    pub prompts_per_step: usize,
    /// Learning rate (constant); `None`: the SFT run's peak / 100 (resolved and saved in `run.json`).
    pub lr: Option<f64>,
    /// Linear learning-rate warm-up steps (then constant).
    #[serde(default)]
    pub warmup_steps: usize,
    /// Learning-rate multiplier of the confidence parameters that SFT never trained (the
    /// `CONF_Q`, `C_LOW`, `C_HIGH` rows and the `CONF_Q` position).
    #[serde(default = "default_confidence_lr_scale")]
    pub confidence_lr_scale: f64,
    /// Epochs over the prompts.
    pub epochs: usize,
    /// Prompts per epoch (0 = all), a seeded sample.
    pub max_prompts: usize,
    /// Stop after this many steps.
    pub max_steps: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Device.
    pub device: DeviceKind,
    /// Validate every this many steps (and at the start and the end).
    pub eval_every: usize,
    /// Validation rows per check (0 = all), a fixed seeded sample.
    pub eval_rows: usize,
    /// Validation rows the calibration map is fitted on (0 = all).
    pub calibration_rows: usize,
    /// Beam of validation.
    pub eval_beam: usize,
    /// Gradient-norm clipping.
    pub clip: f64,
}

impl RlArgs {
    /// The reference settings of UGR-METHOD section 2 for a run at `from`.
    pub fn reference(from: PathBuf) -> Self {
        RlArgs {
            from,
            from_weights: "model.safetensors".into(),
            reward: RewardKind::Uncertainty,
            tau: 1.0,
            difficulty: true,
            alpha_min: 0.0,
            confidence: true,
            lambda_p: 0.0,
            lambda_w: 0.5,
            lambda_pw: 0.0,
            lambda_bce: 0.0,
            policy: PolicyKind::Generative,
            group: 16,
            prompts_per_step: 16,
            lr: None,
            warmup_steps: 10,
            confidence_lr_scale: default_confidence_lr_scale(),
            epochs: 2,
            max_prompts: 0,
            max_steps: None,
            seed: 42,
            device: DeviceKind::Cpu,
            eval_every: 50,
            eval_rows: 2000,
            calibration_rows: 0,
            eval_beam: 20,
            clip: 1.0,
        }
    }

    /// The per-group reward.
    pub fn reward_fn(&self) -> Reward {
        match self.reward {
            RewardKind::Binary => Reward::Binary,
            RewardKind::Rank => Reward::Rank,
            RewardKind::Uncertainty => Reward::Uncertainty { tau: self.tau },
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.group >= 2,
            "--group must be at least 2 (advantages need a group)"
        );
        ensure!(self.prompts_per_step >= 1, "--prompts-per-step must be positive");
        ensure!(self.tau > 0.0 && self.tau.is_finite(), "--tau must be positive");
        ensure!(
            (0.0..=1.0).contains(&self.alpha_min),
            "--alpha-min must be in [0, 1]"
        );
        ensure!(
            [self.lambda_p, self.lambda_w, self.lambda_pw, self.lambda_bce]
                .iter()
                .all(|l| l.is_finite() && *l >= 0.0),
            "--lambda-p/-w/-pw/-bce must be finite and non-negative"
        );
        ensure!(
            self.lr.is_some_and(|lr| lr.is_finite() && lr >= 0.0),
            "--lr must be finite and non-negative"
        );
        ensure!(self.eval_every >= 1, "--eval-every must be positive");
        ensure!(
            self.confidence_lr_scale.is_finite() && self.confidence_lr_scale >= 0.0,
            "--confidence-lr-scale must be finite and non-negative"
        );
        Ok(())
    }
}

fn default_confidence_lr_scale() -> f64 {
    100.0
}

/// One point of the training curves (`curves.json`, `log.jsonl`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimiser steps so far.
    pub step: usize,
    /// Prompts rolled out so far.
    pub prompts: usize,
    /// Mean reward per rollout over the steps since the last point.
    pub reward: f64,
    /// Fraction of groups containing the target.
    pub group_hit_rate: f64,
    /// Fraction of groups whose top beam is the target.
    pub top1_hit_rate: f64,
    /// Mean policy loss (alpha-weighted) per step.
    pub policy_loss: f64,
    /// Mean confidence loss per step.
    pub confidence_loss: f64,
    /// Mean alpha of the groups containing the target (none: no such group).
    pub alpha: Option<f64>,
    /// Mean learned confidence of the correct beams in the rollouts (none: confidence off or no hit).
    pub confidence_correct: Option<f64>,
    /// Mean learned confidence of the wrong beams of groups containing the target.
    pub confidence_wrong: Option<f64>,
    /// Validation HR@10.
    pub valid_hr10: f64,
    /// Validation NDCG@10.
    pub valid_ndcg10: f64,
    /// Seconds since the start.
    pub elapsed_s: f64,
}

/// `curves.json`: the run's configuration and its points.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Curves {
    /// A short label (reward and switches).
    pub label: String,
    /// The arguments.
    pub rl: RlArgs,
    /// Points, by step.
    pub points: Vec<CurvePoint>,
}

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

/// A short label of a configuration, e.g. `uncertainty+difficulty+confidence`.
pub fn label(a: &RlArgs) -> String {
    let mut s = format!("{:?}", a.reward).to_lowercase();
    if a.difficulty {
        s.push_str("+difficulty");
    }
    if a.confidence {
        s.push_str("+confidence");
        if a.lambda_bce > 0.0 {
            s.push_str("+bce");
        }
    }
    if a.policy == PolicyKind::Served {
        s.push_str("+served");
    }
    s
}

/// The training prompts: every next-item target of the training sequences.
pub fn prompts(ds: &Dataset, max_history: usize) -> Vec<Example> {
    let mut out = Vec::new();
    for s in &ds.train {
        for t in s.first_target.max(1)..s.items.len() {
            out.push(Example {
                user: s.user,
                history: s.items[t.saturating_sub(max_history)..t].to_vec(),
                target: s.items[t],
            });
        }
    }
    out
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
    let cfg = ModelConfig {
        confidence: args.confidence,
        ..sft.model.clone()
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = SidTransformer::new(&cfg, &vb)?;
    let mut varmap = varmap;
    let weights = args.from.join(&args.from_weights);
    varmap
        .load(&weights)
        .with_context(|| format!("loading {}", weights.display()))?;
    if args.confidence {
        init_confidence_tokens(&varmap)?;
    }
    // The served policy fuses the item head at the SFT run's fitted weight (checked before
    // anything is written to `out`).
    let served = match args.policy {
        PolicyKind::Generative => None,
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
            Some(fit.weight)
        }
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let info = RunInfo {
        format: super::RUN_FORMAT,
        sft: sft.sft.clone(),
        model: cfg.clone(),
        rl: Some(args.clone()),
    };
    write_json(&out.join("run.json"), &info)?;
    write_json(&out.join("config.json"), &cfg)?;
    let _ = std::fs::remove_file(out.join(eval::calibrate::MAP_FILE));
    let _ = std::fs::remove_file(out.join(eval::calibrate::FILE));
    // Serving keeps fusing the item head at the SFT run's fitted weight.
    let fusion = args.from.join(crate::eval::fusion::FILE);
    if fusion.exists() {
        std::fs::copy(&fusion, out.join(crate::eval::fusion::FILE))
            .with_context(|| format!("copying {}", fusion.display()))?;
    }
    let mut log = std::fs::File::create(out.join("log.jsonl"))?;

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
    let all_prompts = prompts(&ds, cfg.max_history);
    let valid_rows = sample_rows(&ds.valid, args.eval_rows, args.seed);
    let search_opts = SearchOptions {
        beam: args.group,
        top_k: args.group,
        learned_confidence: false,
        normalization: cfg.normalization(),
        item_fusion: served.map_or(ItemFusion::Off, ItemFusion::Weight),
        ..SearchOptions::default()
    };
    search_opts.validate()?;
    let conf_weights = ConfidenceWeights {
        partial: args.lambda_p,
        wrong: args.lambda_w,
        wrong_below_partial: args.lambda_pw,
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
        "RL ({}): {} prompts/epoch of {}, {} steps of {} prompts x G {}, lr {:.1e}, from {}",
        label(&args),
        per_epoch,
        all_prompts.len(),
        total_steps,
        args.prompts_per_step,
        args.group,
        lr,
        args.from.display()
    );

    let start = Instant::now();
    let mut curves = Curves {
        label: label(&args),
        rl: args.clone(),
        points: Vec::new(),
    };
    let validate = |model: &SidTransformer| -> Result<(f64, f64)> {
        let r = eval::evaluate_with(
            model,
            &ds.catalog,
            &valid_rows,
            args.eval_beam,
            256,
            served,
            |_| {},
        )?;
        Ok((r.item.hr_at(10), r.item.ndcg_at(10)))
    };
    let (hr0, ndcg0) = validate(&model)?;
    let mut point = CurvePoint {
        valid_hr10: hr0,
        valid_ndcg10: ndcg0,
        ..CurvePoint::default()
    };
    curves.points.push(point.clone());
    writeln!(log, "{}", serde_json::to_string(&point)?)?;
    eprintln!("step     0  valid HR@10 {hr0:.4} NDCG@10 {ndcg0:.4} (SFT start)");
    let (mut best, mut best_step) = (ndcg0, 0);
    varmap.save(out.join("best.safetensors"))?;

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
            let (policy, conf) = rl_step(
                &model,
                &ds.catalog,
                &mut search,
                &search_opts,
                &args,
                served,
                &conf_weights,
                &batch,
                &mut opt,
                &mut acc,
            )?;
            if !(policy.is_finite() && conf.is_finite()) {
                bail!("RL diverged at step {step}: policy loss {policy}, confidence loss {conf}");
            }
            step += 1;
            prompts_done += batch.len();
            pb.inc(1);
            if step % args.eval_every == 0 || step == total_steps {
                let (hr, ndcg) = validate(&model)?;
                point = acc.point(step, prompts_done, hr, ndcg, start.elapsed().as_secs_f64());
                acc = Accum::default();
                curves.points.push(point.clone());
                writeln!(log, "{}", serde_json::to_string(&point)?)?;
                write_json(&out.join("curves.json"), &curves)?;
                pb.suspend(|| eprintln!(
                    "step {step:>5}  valid HR@10 {hr:.4} NDCG@10 {ndcg:.4}{}  group hit {:.3} top-1 {:.3} reward {:+.4} pg {:+.4} conf {:.4} c(gt) {:.3} c(wrong) {:.3}",
                    if ndcg > best { " *" } else { "" },
                    point.group_hit_rate,
                    point.top1_hit_rate,
                    point.reward,
                    point.policy_loss,
                    point.confidence_loss,
                    point.confidence_correct.unwrap_or(f64::NAN),
                    point.confidence_wrong.unwrap_or(f64::NAN),
                ));
                if ndcg > best {
                    best = ndcg;
                    best_step = step;
                    varmap.save(out.join("best.safetensors"))?;
                }
            }
        }
        if step == steps_per_epoch * (epoch + 1) && epoch + 1 < args.epochs {
            varmap.save(out.join(format!("epoch-{}.safetensors", epoch + 1)))?;
        }
    }
    pb.finish_and_clear();
    varmap.save(out.join("model.safetensors"))?;
    write_json(&out.join("curves.json"), &curves)?;
    crate::plot::curves_svg(&out.join("curves.svg"), std::slice::from_ref(&curves))?;
    let wall_s = start.elapsed().as_secs_f64();

    // The reported confidence and its calibration map, chosen and fitted on the validation
    // split with the final model through the serving (fused) search.
    let calib_rows = sample_rows(&ds.valid, args.calibration_rows, args.seed ^ 0xca1);
    let item_weight = eval::fusion::read(out)?.map(|f| f.weight);
    let choice = eval::calibrate::fit(&model, &ds.catalog, &calib_rows, args.eval_beam, 256, item_weight)?;
    eval::calibrate::write(out, &choice)?;
    for line in choice.lines() {
        eprintln!("{line}");
    }
    let summary = RlSummary {
        steps: step,
        start_ndcg10: ndcg0,
        best_ndcg10: best,
        best_step,
        final_ndcg10: point.valid_ndcg10,
        wall_s,
        prompts_per_s: prompts_done as f64 / wall_s.max(1e-9),
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
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
    fn point(&self, step: usize, prompts: usize, hr: f64, ndcg: f64, elapsed_s: f64) -> CurvePoint {
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
            confidence_correct: some(self.c_correct.0, self.c_correct.1),
            confidence_wrong: some(self.c_wrong.0, self.c_wrong.1),
            valid_hr10: hr,
            valid_ndcg10: ndcg,
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

/// One rollout + update. Returns the step's policy and confidence losses.
#[allow(clippy::too_many_arguments)]
fn rl_step(
    model: &SidTransformer,
    catalog: &Catalog,
    search: &mut BeamSearch<'_>,
    opts: &SearchOptions,
    args: &RlArgs,
    served: Option<f32>,
    conf_weights: &ConfidenceWeights,
    batch: &[&Example],
    opt: &mut AdamW,
    acc: &mut Accum,
) -> Result<(f64, f64)> {
    let histories: Vec<&[ugr_core::ItemId]> = batch.iter().map(|e| e.history.as_slice()).collect();
    let results = rollouts(
        &CandleModel::new(model, catalog),
        catalog,
        search,
        &histories,
        opts,
    )?;
    let reward = args.reward_fn();
    let bce = args.confidence && args.lambda_bce > 0.0;
    let mut groups = Vec::new();
    for (p, (e, r)) in batch.iter().zip(&results).enumerate() {
        let target = catalog.sid_index_of(e.target)?;
        let mut seen = Vec::new();
        let mut scores = Vec::new();
        for item in &r.items {
            if !seen.contains(&item.sid_index) {
                seen.push(item.sid_index);
                scores.push(item.score);
            }
        }
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
    acc.steps += 1;
    if groups.is_empty() {
        return Ok((0.0, 0.0));
    }
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
            coef.push((-f64::from(g.alpha) * f64::from(g.advantages[k]) / (n * levels * n_prompts)) as f32);
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
        for g in &groups {
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
    let grads = loss.backward()?;
    let norm = opt.grad_norm(&grads)?;
    let scale = if args.clip > 0.0 && norm > args.clip {
        args.clip / norm
    } else {
        1.0
    };
    opt.step(&grads, scale)?;
    acc.policy += policy_value;
    acc.conf += conf_value;
    Ok((policy_value, conf_value))
}
