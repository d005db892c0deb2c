//! The RL stage's curve records (`curves.json`): what `ugr train rl` writes and `ugr plot
//! curves` draws.

use serde::{Deserialize, Serialize};

use crate::args::RlArgs;

/// One point of the training curves (`curves.json`, `log.jsonl`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimiser steps so far.
    pub step: usize,
    /// Prompts rolled out so far.
    pub prompts: usize,
    /// Mean reward per rollout over the steps since the last point. Beam rollouts hold each
    /// SID once, so under the rank and UGR rewards a group with the target sums to 0 (the
    /// target's +1 against -1 spread over the wrong beams) and this stays 0; sampled
    /// rollouts, which can repeat the target, and the binary reward move it.
    pub reward: f64,
    /// Fraction of groups containing the target.
    pub group_hit_rate: f64,
    /// Fraction of groups whose top beam is the target.
    pub top1_hit_rate: f64,
    /// Mean policy loss (alpha-weighted) per step.
    pub policy_loss: f64,
    /// Mean confidence loss per step.
    pub confidence_loss: f64,
    /// Mean distinct SIDs per rolled-out group: at most G; beam rollouts hold G distinct
    /// items (fewer SIDs only where items share one), sampled draws may repeat a SID.
    #[serde(default)]
    pub unique_per_group: f64,
    /// Catalog coverage of the validation rows' top-10 lists.
    #[serde(default)]
    pub valid_coverage10: f64,
    /// Gini of the validation rows' top-10 exposure.
    #[serde(default)]
    pub valid_gini10: f64,
    /// Mean alpha of the groups containing the target (none: no such group).
    pub alpha: Option<f64>,
    /// Mean learned confidence of the correct beams in the rollouts (none: confidence off or no hit).
    pub confidence_correct: Option<f64>,
    /// Mean learned confidence of the wrong beams of groups containing the target.
    pub confidence_wrong: Option<f64>,
    /// Validation HR@1 (what the UGR paper reports).
    #[serde(default)]
    pub valid_hr1: f64,
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
