//! `ugr plot`: charts (SVG).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

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
                .map(|r| ugr_train::run::read_json(&r.join(ugr_train::files::CURVES_JSON)))
                .collect::<Result<Vec<ugr_train::curves::Curves>>>()?;
            ugr_train::plot::curves_svg(&out, &curves)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
    }
}
