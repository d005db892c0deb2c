//! `ugr export`: a run to one artifact.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ugr_train::data;

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// Run directory.
    #[arg(long)]
    pub(crate) run: PathBuf,
    /// Artifact to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Store weights as f16 (half the size; compute stays f32).
    #[arg(long)]
    f16: bool,
    /// Weights file inside the run.
    #[arg(long, default_value = "model.safetensors")]
    pub(crate) weights: String,
}

pub(crate) fn run(a: &ExportArgs) -> Result<()> {
    let run = ugr_train::run::load_run(&a.run, &a.weights, &candle_core::Device::Cpu)?;
    let ds = data::load(&run.info.sft.data, &run.info.sft.load)?;
    let calibration = ugr_train::export::run_calibration(&a.run)?;
    let bundle = ugr_train::export::bundle(
        &run,
        &ds,
        calibration,
        ugr_train::export::ExportOptions {
            f16: a.f16,
            item_weight: ugr_train::eval::fusion::read(&a.run)?.map(|f| f.weight),
            posterior_confidence: ugr_train::eval::calibrate::source(&a.run, run.info.model.confidence)?
                == ugr_train::eval::confidence::Signal::Posterior,
        },
    )?;
    let bytes = bundle.to_bytes()?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
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
        a.out.display(),
        bytes.len(),
        size(false),
        size(true),
        if a.f16 { "f16" } else { "f32" },
        bundle.catalog.len()
    );
    Ok(())
}
