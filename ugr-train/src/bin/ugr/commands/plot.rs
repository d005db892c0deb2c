//! `ugr plot`: charts (SVG).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use ugr_train::train;

#[derive(Subcommand)]
pub(crate) enum PlotCommand {
    /// RL training curves of several runs on one chart (e.g. the three reward types).
    Curves {
        /// RL run directories (each has curves.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// SVG file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `ugr plot ...`.
pub(crate) fn run(cmd: PlotCommand) -> Result<()> {
    match cmd {
        PlotCommand::Curves { runs, out } => {
            let curves = runs
                .iter()
                .map(|r| train::read_json(&r.join("curves.json")))
                .collect::<Result<Vec<train::rl::Curves>>>()?;
            ugr_train::plot::curves_svg(&out, &curves)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
    }
}
