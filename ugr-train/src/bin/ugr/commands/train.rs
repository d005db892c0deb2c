//! `ugr train`: SFT, the UGR reinforcement stage, the item-fusion fit and the confidence choice.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use ugr_train::data;
use ugr_train::model::{HistoryEncoding, ItemOutput, ModelConfig};
use ugr_train::train::rl::{PolicyKind, RewardKind, RlArgs};
use ugr_train::train::{self, DeviceKind, SftArgs};

use super::{DataArgs, on_off};

#[derive(Subcommand)]
pub(crate) enum TrainCommand {
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
    /// (Re)choose and calibrate the confidence a run reports on its validation split: the
    /// learned confidence (RL runs) or the beam posterior, whichever ranks users better by
    /// AUROC(hit@1), with its isotonic map (`confidence.json`, `calibration.json`); the RL
    /// stage does it at its end.
    Calibrate {
        /// Run directory.
        #[arg(long)]
        run: PathBuf,
        /// Weights file inside the run.
        #[arg(long, default_value = "model.safetensors")]
        weights: String,
        /// Validation rows (0 = all, a fixed seeded sample otherwise).
        #[arg(long, default_value_t = 0)]
        rows: usize,
        /// Beam width of the search.
        #[arg(long, default_value_t = 20)]
        beam: usize,
    },
}

#[derive(Args)]
pub(crate) struct RlCli {
    /// The SFT run to start from.
    #[arg(long)]
    pub(crate) from: PathBuf,
    /// Run directory (created).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Weights file of the SFT run.
    #[arg(long, default_value = "model.safetensors")]
    pub(crate) from_weights: String,
    #[arg(long, value_enum, default_value_t = RewardKind::Uncertainty)]
    pub(crate) reward: RewardKind,
    /// Temperature of the uncertainty reward.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) tau: f32,
    /// Difficulty-aware weighting of the policy loss: on or off.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub(crate) difficulty: bool,
    /// alpha of a group whose target is the top beam (0: solved prompts get no policy gradient).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) alpha_min: f32,
    /// Confidence alignment (trains CONF_Q, C_LOW, C_HIGH): on or off.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub(crate) confidence: bool,
    /// Weight of softplus(c_partial - c_gt).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) lambda_p: f32,
    /// Weight of softplus(c_wrong - c_gt).
    #[arg(long, default_value_t = 0.5)]
    pub(crate) lambda_w: f32,
    /// Weight of softplus(c_wrong - c_partial) (the hierarchical ordering).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) lambda_pw: f32,
    /// Weight of a proper-scoring term (ours, not the paper's): binary cross-entropy of every
    /// beam's confidence against "is the target", over every group (0 = pairwise alone).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) lambda_bce: f32,
    /// What GRPO trains: the generative head (the method's reference), or the served ranking
    /// (rollouts through the fused search, both heads trained; needs the SFT run's item head
    /// and fusion.json).
    #[arg(long, value_enum, default_value_t = PolicyKind::Generative)]
    pub(crate) policy: PolicyKind,
    /// Group size G: beams (distinct items) per prompt.
    #[arg(long, default_value_t = 16)]
    pub(crate) group: usize,
    /// Prompts per optimiser step.
    #[arg(long, default_value_t = 16)]
    pub(crate) prompts_per_step: usize,
    /// Learning rate (constant); default: the SFT run's peak / 100.
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Linear learning-rate warm-up steps.
    #[arg(long, default_value_t = 10)]
    pub(crate) warmup_steps: usize,
    /// Learning-rate multiplier of the new confidence parameters (CONF_Q, C_LOW, C_HIGH rows).
    #[arg(long, default_value_t = 100.0)]
    pub(crate) confidence_lr_scale: f64,
    #[arg(long, default_value_t = 2)]
    pub(crate) epochs: usize,
    /// Prompts per epoch (0 = every training target), a seeded sample.
    #[arg(long, default_value_t = 0)]
    pub(crate) max_prompts: usize,
    /// Stop after this many steps.
    #[arg(long)]
    pub(crate) max_steps: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub(crate) device: DeviceKind,
    /// Validate (HR@10, NDCG@10) every this many steps.
    #[arg(long, default_value_t = 50)]
    pub(crate) eval_every: usize,
    /// Validation rows per check (0 = all), a fixed seeded sample.
    #[arg(long, default_value_t = 2000)]
    pub(crate) eval_rows: usize,
    /// Validation rows the calibration map is fitted on (0 = all).
    #[arg(long, default_value_t = 0)]
    pub(crate) calibration_rows: usize,
}

#[derive(Args)]
pub(crate) struct SftCli {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Run directory (created).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Continue the run in --out from its last epoch.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Replace a run already in --out (without it, an existing run is never overwritten).
    #[arg(long, conflicts_with = "resume")]
    pub(crate) overwrite: bool,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub(crate) device: DeviceKind,
    #[arg(long, default_value_t = 30)]
    pub(crate) epochs: usize,
    /// Training windows (user sequences) per batch.
    #[arg(long, default_value_t = 128)]
    pub(crate) batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f64,
    #[arg(long, default_value_t = 200)]
    pub(crate) warmup_steps: usize,
    #[arg(long, default_value_t = 0.01)]
    pub(crate) weight_decay: f64,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Early stopping: epochs without a better validation NDCG@10.
    #[arg(long, default_value_t = 5)]
    pub(crate) patience: usize,
    /// Validation rows for early stopping (0 = all; a fixed seeded sample otherwise).
    #[arg(long, default_value_t = 0)]
    pub(crate) eval_rows: usize,
    /// Beam of the validation search.
    #[arg(long, default_value_t = 20)]
    pub(crate) eval_beam: usize,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    pub(crate) max_steps: Option<usize>,
    /// Validate, keep and export an exponential moving average of the weights with this
    /// decay (e.g. 0.999) instead of the live weights.
    #[arg(long)]
    pub(crate) ema: Option<f64>,
    #[arg(long, default_value_t = 128)]
    pub(crate) d_model: usize,
    /// User-encoder layers.
    #[arg(long, default_value_t = 4)]
    pub(crate) layers: usize,
    #[arg(long, default_value_t = 4)]
    pub(crate) heads: usize,
    #[arg(long, default_value_t = 512)]
    pub(crate) d_ff: usize,
    /// SID-head layers.
    #[arg(long, default_value_t = 2)]
    pub(crate) head_layers: usize,
    #[arg(long, default_value_t = 0.2)]
    pub(crate) dropout: f32,
    /// One encoder position per history item, or one per SID token.
    #[arg(long, value_enum, default_value_t = HistoryEncoding::Item)]
    pub(crate) history: HistoryEncoding,
    /// Normalise each level's training softmax over the codes the catalog allows after the
    /// prefix (`--trie-loss` alone means on; default on).
    #[arg(long, default_value = "on", value_parser = on_off, num_args = 0..=1, default_missing_value = "on")]
    pub(crate) trie_loss: bool,
    /// Add a learned identity vector per catalog SID to each history item (default on).
    #[arg(long, default_value = "on", value_parser = on_off, num_args = 0..=1, default_missing_value = "on")]
    pub(crate) sid_embeddings: bool,
    /// Weight of the item-level loss, which trains the item head that serving fuses with the
    /// generative score (needs SID embeddings; 0 = off: a generative-only model): a softmax
    /// over every catalog SID from the user state.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) item_loss: f32,
    /// The item head's output table: its own table and per-SID bias (untied, default), or
    /// the SID identity table (tied, as SASRec).
    #[arg(long, value_enum, default_value_t = ItemOutput::Untied)]
    pub(crate) item_output: ItemOutput,
}

/// Runs `ugr train ...`.
pub(crate) fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Sft(a) => train_sft(&a),
        TrainCommand::Rl(a) => train_rl(&a),
        TrainCommand::Fuse { run, eval_rows } => {
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
        TrainCommand::Calibrate {
            run,
            weights,
            rows,
            beam,
        } => calibrate(&run, &weights, rows, beam),
    }
}

fn calibrate(run: &std::path::Path, weights: &str, rows: usize, beam: usize) -> Result<()> {
    let loaded = train::load_run(run, weights, &candle_core::Device::Cpu)?;
    let ds = data::load(&loaded.info.sft.data, &loaded.info.sft.load)?;
    let seed = loaded.info.rl.as_ref().map_or(loaded.info.sft.seed, |r| r.seed);
    let rows = train::sample_rows(&ds.valid, rows, seed ^ 0xca1);
    let item_weight = ugr_train::eval::fusion::read(run)?.map(|f| f.weight);
    let choice = ugr_train::eval::calibrate::fit(&loaded.model, &ds.catalog, &rows, beam, 256, item_weight)?;
    ugr_train::eval::calibrate::write(run, &choice)?;
    for line in choice.lines() {
        eprintln!("{line}");
    }
    eprintln!(
        "wrote {} and {} ({} validation rows, beam {beam})",
        run.join(ugr_train::eval::calibrate::FILE).display(),
        run.join(ugr_train::eval::calibrate::MAP_FILE).display(),
        rows.len()
    );
    Ok(())
}

pub(crate) fn train_sft(a: &SftCli) -> Result<()> {
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
        ema: a.ema,
        ..SftArgs::default()
    };
    let (args, cfg) = if a.resume {
        let info = train::read_run_info(&a.out)?;
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

pub(crate) fn train_rl(a: &RlCli) -> Result<()> {
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
        lambda_bce: a.lambda_bce,
        policy: a.policy,
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
