//! The run directory: its file names, `run.json`, loading a run's model, and JSON I/O.
//!
//! A run directory holds everything needed to evaluate, resume or export a model:
//!
//! | file | written by | content |
//! |---|---|---|
//! | `run.json` | SFT, RL | data path and load options, training arguments, model configuration ([`RunInfo`]) |
//! | `config.json` | SFT, RL | the model configuration alone |
//! | `model.safetensors` | SFT, RL | SFT: best weights by validation NDCG@10; RL: the final weights (what `ugr eval` and `ugr export` use) |
//! | `last.safetensors`, `optimizer.safetensors`, `state.json` | SFT | the last epoch, for `--resume` |
//! | `ema.safetensors` | SFT with `--ema` | the weight average |
//! | `log.jsonl` | SFT, RL | one JSON line per epoch (SFT) or check (RL) |
//! | `fusion.json` | SFT, `ugr train fuse` | the fitted item-fusion weight |
//! | `confidence.json`, `calibration.json` | SFT, RL, `ugr train calibrate` | the chosen confidence signal and its isotonic map |
//! | `best.safetensors`, `epoch-N.safetensors`, `curves.json`, `curves.svg`, `summary.json` | RL | best and per-epoch weights, curves, summary |
//! | `metrics.json`, `reliability-*.svg` | `ugr eval` | the evaluation |

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::args::{RlArgs, SftArgs};
use crate::files::{CONFIG_JSON, RUN_JSON};
use crate::model::{ModelConfig, SidTransformer};

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
    pub rl: Option<RlArgs>,
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

/// Loads `run.json` and the weights `file` (e.g. `model.safetensors`) of a run directory.
pub fn load_run(dir: &Path, file: &str, device: &Device) -> Result<LoadedRun> {
    let info = read_run_info(dir)?;
    let (model, mut varmap) = crate::model::with_fresh_vars(&info.model, device)?;
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
    let path = dir.join(RUN_JSON);
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

/// Writes `run.json` and `config.json` of a new run.
pub fn write_run_info(dir: &Path, info: &RunInfo) -> Result<()> {
    write_json(&dir.join(RUN_JSON), info)?;
    write_json(&dir.join(CONFIG_JSON), &info.model)
}
