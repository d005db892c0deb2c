//! `ugr export`: a run to one artifact.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ugr_train::data;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["run", "model"]))]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true).args(["out", "onnx"]))]
pub(crate) struct ExportArgs {
    /// Run directory to export.
    #[arg(long)]
    pub(crate) run: Option<PathBuf>,
    /// An artifact already exported (with --onnx: write its model as plain files).
    #[arg(long, conflicts_with = "out")]
    pub(crate) model: Option<PathBuf>,
    /// Artifact to write.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Also (or, with --model, only) write the model as plain files into DIR: the ONNX
    /// graphs, the model contract as JSON, the SID table, the catalog (item, SID, title) and
    /// reference inputs and outputs for checking another runtime.
    #[arg(long, value_name = "DIR")]
    pub(crate) onnx: Option<PathBuf>,
    /// Store weights as f16 (half the size; compute stays f32).
    #[arg(long)]
    f16: bool,
    /// Weights file inside the run.
    #[arg(long, default_value = "model.safetensors")]
    pub(crate) weights: String,
}

pub(crate) fn run(a: &ExportArgs) -> Result<()> {
    let bytes = match (&a.run, &a.model) {
        (Some(run), _) => export_run(a, run)?,
        (None, Some(model)) => {
            std::fs::read(model).with_context(|| format!("reading {}", model.display()))?
        }
        (None, None) => anyhow::bail!("--run or --model is required"),
    };
    if let Some(dir) = &a.onnx {
        let engine = ugr_core::Engine::from_bytes(&bytes).context("opening the artifact")?;
        let bundle = ugr_core::Bundle::from_bytes(&bytes)?;
        let written = ugr_train::export::onnx_dir::write(&engine, &bundle, dir)?;
        eprintln!(
            "wrote {}: {} ({} reference histories)",
            dir.display(),
            written.graphs.join(", "),
            written.reference_rows
        );
    }
    Ok(())
}

/// Exports a run; writes the artifact when --out is given and returns its bytes.
fn export_run(a: &ExportArgs, run_dir: &std::path::Path) -> Result<Vec<u8>> {
    let run = ugr_train::run::load_run(run_dir, &a.weights, &candle_core::Device::Cpu)?;
    let ds = data::load(&run.info.sft.data, &run.info.sft.load)?;
    let calibration = ugr_train::export::run_calibration(run_dir)?;
    let bundle = ugr_train::export::bundle(
        &run,
        &ds,
        calibration,
        ugr_train::export::ExportOptions {
            f16: a.f16,
            item_weight: ugr_train::eval::fusion::read(run_dir)?.map(|f| f.weight),
            posterior_confidence: ugr_train::eval::calibrate::source(run_dir, run.info.model.confidence)?
                == ugr_train::eval::confidence::Signal::Posterior,
        },
    )?;
    let bytes = bundle.to_bytes()?;
    let Some(out) = &a.out else { return Ok(bytes) };
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
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
        out.display(),
        bytes.len(),
        size(false),
        size(true),
        if a.f16 { "f16" } else { "f32" },
        bundle.catalog.len()
    );
    Ok(bytes)
}
