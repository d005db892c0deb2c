//! The file names of a run directory, one place for each (what each holds: [`crate::run`]).
//! The run's fitted item-fusion weight and confidence choice keep their names next to their
//! formats: [`crate::eval::fusion::FILE`], [`crate::eval::calibrate::FILE`] and
//! [`crate::eval::calibrate::MAP_FILE`].

/// `run.json`.
pub const RUN_JSON: &str = "run.json";
/// `config.json`.
pub const CONFIG_JSON: &str = "config.json";
/// The weights `ugr eval` and `ugr export` use.
pub const MODEL: &str = "model.safetensors";
/// SFT's last epoch (for `--resume`).
pub const LAST: &str = "last.safetensors";
/// SFT's optimiser state (for `--resume`).
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// SFT's `state.json`.
pub const STATE_JSON: &str = "state.json";
/// One JSON line per epoch (SFT) or check (RL).
pub const LOG_JSONL: &str = "log.jsonl";
/// RL: the best weights by validation NDCG@10.
pub const BEST: &str = "best.safetensors";
/// RL: the curves.
pub const CURVES_JSON: &str = "curves.json";
/// RL: the curves as a chart.
pub const CURVES_SVG: &str = "curves.svg";
/// RL: what the run ended with.
pub const SUMMARY_JSON: &str = "summary.json";
/// `ugr eval`'s metrics.
pub const METRICS_JSON: &str = "metrics.json";
/// `ugr eval --prompts`'s metrics (the run's RL prompts).
pub const METRICS_PROMPTS_JSON: &str = "metrics-prompts.json";
