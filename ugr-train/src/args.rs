//! The training stages' arguments: what `run.json` records and what `ugr train sft` /
//! `ugr train rl` parse. Each default is written once, here.

use std::path::PathBuf;

use anyhow::{Result, bail, ensure};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use ugr_core::Catalog;

use crate::data::{self, LoadOptions};
use crate::model::{HistoryEncoding, ItemOutput, ModelConfig};

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

/// Requests per search call of the trainer's validation, calibration and RL checks (the
/// default of `ugr eval --batch`).
pub const SEARCH_BATCH: usize = 256;

/// `on`/`off` (or `true`/`false`) for the switches of the command line.
pub fn on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

/// The values of a command-line struct when no flag is given: its defaults, as written in
/// its `#[arg(default_value...)]` attributes (the one place each default lives).
/// `required` lists flags without a default, with the values to use.
pub fn defaults<T: clap::Args + clap::FromArgMatches>(required: &[&str]) -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = cmd
        .try_get_matches_from(required)
        .unwrap_or_else(|e| panic!("the defaults of a command-line struct do not parse: {e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("the defaults do not parse: {e}"))
}

/// Training arguments of `ugr train sft` (saved in `run.json`).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct SftArgs {
    /// Dataset directory (LETTER, Amazon-2023, MiniOneRec formats), an interactions CSV, or `builtin:synthetic`.
    #[arg(long, default_value = data::synthetic::BUILTIN)]
    pub data: PathBuf,
    /// Reader options.
    #[command(flatten)]
    pub load: LoadOptions,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Maximum epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Training windows (user sequences) per batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear warm-up steps (at most a tenth of the run's steps).
    #[arg(long, default_value_t = 200)]
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of the peak (cosine decay).
    #[arg(skip = 0.05)]
    pub min_lr_ratio: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Gradient clipping (global L2 norm).
    #[arg(skip = 1.0)]
    pub clip: f64,
    /// Seed of everything (initialisation, batch order, dropout).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Early stopping: epochs without a better validation NDCG@10.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Beam of the validation search.
    #[arg(long, default_value_t = 20)]
    pub eval_beam: usize,
    /// Validation rows for early stopping, the fusion fit and the calibration (0 = all; a
    /// fixed seeded sample otherwise).
    #[arg(long, default_value_t = 0)]
    pub eval_rows: usize,
    /// Requests per search call.
    #[arg(skip = SEARCH_BATCH)]
    pub eval_batch: usize,
    /// Stop after this many optimiser steps in total (smoke tests, benchmarks).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Validate, keep and export an exponential moving average of the weights with this
    /// decay (e.g. 0.999) instead of the live weights.
    #[arg(long)]
    #[serde(default)]
    pub ema: Option<f64>,
    /// Fit the confidence calibration (an isotonic map of the beam posterior) on the
    /// validation rows after training: on or off. `ugr export` puts it into the artifact.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    #[serde(default = "yes")]
    pub calibrate: bool,
    /// Keep each user's last N training targets out of SFT (users with more than N
    /// targets), so that `ugr train rl` from this run rolls out on prompts the model has not
    /// memorised (0 = none: RL uses the SFT targets).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub rl_holdout: usize,
}

fn yes() -> bool {
    true
}

fn one() -> f32 {
    1.0
}

impl Default for SftArgs {
    fn default() -> Self {
        defaults(&[])
    }
}

/// The model of `ugr train sft`: the default recipe, chosen by measurement
/// (docs/results/sft.md): the default size, SID identity embeddings with the untied item
/// head (item-level loss weight 1, fused at serving), the trie-restricted level softmax,
/// dropout 0.2.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelArgs {
    /// Model width.
    #[arg(long, default_value_t = ModelConfig::D_MODEL)]
    pub d_model: usize,
    /// User-encoder layers.
    #[arg(long, default_value_t = ModelConfig::LAYERS)]
    pub layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = ModelConfig::HEADS)]
    pub heads: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = ModelConfig::D_FF)]
    pub d_ff: usize,
    /// SID-head layers.
    #[arg(long, default_value_t = ModelConfig::HEAD_LAYERS)]
    pub head_layers: usize,
    /// Dropout on embeddings and residual branches (training only).
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f32,
    /// One encoder position per history item, or one per SID token.
    #[arg(long, value_enum, default_value_t = HistoryEncoding::Item)]
    pub history: HistoryEncoding,
    /// Normalise each level's training softmax over the codes the catalog allows after the
    /// prefix (`--trie-loss` alone means on).
    #[arg(long, default_value = "on", value_parser = on_off, num_args = 0..=1, default_missing_value = "on")]
    pub trie_loss: bool,
    /// Add a learned identity vector per catalog SID to each history item.
    #[arg(long, default_value = "on", value_parser = on_off, num_args = 0..=1, default_missing_value = "on")]
    pub sid_embeddings: bool,
    /// Weight of the item-level loss, which trains the item head that serving fuses with the
    /// generative score (needs SID embeddings; 0 = off: a generative-only model): a softmax
    /// over every catalog SID from the user state.
    #[arg(long, default_value_t = 1.0)]
    pub item_loss: f32,
    /// The item head's output table: its own table and per-SID bias (untied), or the SID
    /// identity table (tied, as SASRec).
    #[arg(long, value_enum, default_value_t = ItemOutput::Untied)]
    pub item_output: ItemOutput,
}

impl Default for ModelArgs {
    fn default() -> Self {
        defaults(&[])
    }
}

impl ModelArgs {
    /// The model configuration for `catalog` (its codebooks and SID count), reading
    /// `max_history` items.
    pub fn config(&self, catalog: &Catalog, max_history: usize) -> ModelConfig {
        ModelConfig {
            d_model: self.d_model,
            layers: self.layers,
            heads: self.heads,
            d_ff: self.d_ff,
            head_layers: self.head_layers,
            dropout: self.dropout,
            max_history,
            history: self.history,
            trie_loss: self.trie_loss,
            sid_embeddings: if self.sid_embeddings {
                catalog.sid_count() + 1
            } else {
                0
            },
            item_loss: self.item_loss,
            item_output: self.item_output,
            ..ModelConfig::default_for(catalog.vocab())
        }
    }
}

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

/// How the RL stage rolls out a group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RolloutKind {
    /// The beam search: G distinct SIDs per prompt, best first (the default).
    #[default]
    Beam,
    /// G independent draws through the trie at `--temperature`: a group may repeat a SID,
    /// so the diversity of what the policy generates can be measured.
    Sample,
}

/// Arguments of `ugr train rl`, the RL stage (saved in `run.json` under `rl`). Their
/// defaults are the reference settings of the method (UGR-METHOD section 2).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct RlArgs {
    /// The SFT run to start from.
    #[arg(long)]
    pub from: PathBuf,
    /// Weights file of the SFT run.
    #[arg(long, default_value = crate::files::MODEL)]
    pub from_weights: String,
    /// The reward of a rollout group.
    #[arg(long, value_enum, default_value_t = RewardKind::Uncertainty)]
    pub reward: RewardKind,
    /// Temperature of the uncertainty reward.
    #[arg(long, default_value_t = 1.0)]
    pub tau: f32,
    /// Difficulty-aware weighting of the policy loss: on or off.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub difficulty: bool,
    /// alpha of a group whose target is the top beam (0: solved prompts get no policy gradient).
    #[arg(long, default_value_t = 0.0)]
    pub alpha_min: f32,
    /// Confidence alignment (trains CONF_Q, C_LOW, C_HIGH): on or off.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub confidence: bool,
    /// Weight of softplus(c_partial - c_gt).
    #[arg(long, default_value_t = 0.0)]
    pub lambda_p: f32,
    /// Weight of softplus(c_wrong - c_gt).
    #[arg(long, default_value_t = 0.5)]
    pub lambda_w: f32,
    /// Weight of softplus(c_wrong - c_partial) (the hierarchical ordering).
    #[arg(long, default_value_t = 0.0)]
    pub lambda_pw: f32,
    /// Weight of a proper-scoring term (ours, not the paper's): binary cross-entropy of every
    /// beam's confidence against "is the target", over every group (0 = pairwise alone).
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub lambda_bce: f32,
    /// What GRPO trains: the generative head (the method's reference), or the served ranking
    /// (rollouts through the fused search, both heads trained; needs the SFT run's item head
    /// and fusion.json).
    #[arg(long, value_enum, default_value_t = PolicyKind::Generative)]
    #[serde(default)]
    pub policy: PolicyKind,
    /// Group size G: beams (distinct items) or draws per prompt.
    #[arg(long, default_value_t = 16)]
    pub group: usize,
    /// How a group is rolled out: the beam search, or G sampled draws.
    #[arg(long, value_enum, default_value_t = RolloutKind::Beam)]
    #[serde(default)]
    pub rollouts: RolloutKind,
    /// Temperature of sampled rollouts (`--rollouts sample`).
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "one")]
    pub temperature: f32,
    /// Prompts per optimiser step.
    #[arg(long, default_value_t = 16)]
    pub prompts_per_step: usize,
    /// Learning rate (constant); default: the SFT run's peak / 100 (resolved and saved in
    /// `run.json`).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear learning-rate warm-up steps (then constant).
    #[arg(long, default_value_t = 10)]
    #[serde(default)]
    pub warmup_steps: usize,
    /// Learning-rate multiplier of the new confidence parameters (the CONF_Q, C_LOW, C_HIGH
    /// rows and the CONF_Q position), which SFT never trained.
    #[arg(long, default_value_t = CONFIDENCE_LR_SCALE)]
    #[serde(default = "confidence_lr_scale")]
    pub confidence_lr_scale: f64,
    /// Epochs over the prompts.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Prompts per epoch (0 = every training target), a seeded sample.
    #[arg(long, default_value_t = 0)]
    pub max_prompts: usize,
    /// Stop after this many steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Seed (prompt order, rollouts).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Validate (HR@10, NDCG@10) every this many steps (and at the start and the end).
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Validation rows per check (0 = all), a fixed seeded sample.
    #[arg(long, default_value_t = 2000)]
    pub eval_rows: usize,
    /// Validation rows the calibration map is fitted on (0 = all).
    #[arg(long, default_value_t = 0)]
    pub calibration_rows: usize,
    /// Beam of validation.
    #[arg(skip = 20usize)]
    pub eval_beam: usize,
    /// Gradient-norm clipping.
    #[arg(skip = 1.0)]
    pub clip: f64,
}

/// The default learning-rate multiplier of the confidence parameters.
const CONFIDENCE_LR_SCALE: f64 = 100.0;

fn confidence_lr_scale() -> f64 {
    CONFIDENCE_LR_SCALE
}

impl RlArgs {
    /// A short label of a configuration, e.g. `uncertainty+difficulty+confidence`.
    pub fn label(&self) -> String {
        let mut s = format!("{:?}", self.reward).to_lowercase();
        if self.difficulty {
            s.push_str("+difficulty");
        }
        if self.confidence {
            s.push_str("+confidence");
            if self.lambda_bce > 0.0 {
                s.push_str("+bce");
            }
        }
        if self.policy == PolicyKind::Served {
            s.push_str("+served");
        }
        if self.rollouts == RolloutKind::Sample {
            s.push_str(&format!("+sample(T={})", self.temperature));
        }
        s
    }

    /// The reference settings of UGR-METHOD section 2 for a run at `from` (every flag at
    /// its default).
    pub fn reference(from: PathBuf) -> Self {
        let mut args: RlArgs = defaults(&["--from", "."]);
        args.from = from;
        args
    }

    /// Checks the values a command line may get wrong.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.group >= 2,
            "--group must be at least 2 (advantages need a group)"
        );
        ensure!(self.prompts_per_step >= 1, "--prompts-per-step must be positive");
        ensure!(self.tau > 0.0 && self.tau.is_finite(), "--tau must be positive");
        ensure!(
            self.temperature > 0.0 && self.temperature.is_finite(),
            "--temperature must be positive"
        );
        ensure!(
            self.rollouts == RolloutKind::Beam || self.policy == PolicyKind::Generative,
            "--rollouts sample draws from the generative head: use it with --policy generative"
        );
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
