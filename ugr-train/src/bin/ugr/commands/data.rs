//! `ugr data`: dataset tools.

use anyhow::Result;
use clap::Subcommand;
use ugr_train::data;

use super::DataArgs;

#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// Read a dataset and print its summary.
    Summary(DataArgs),
}

/// Runs `ugr data ...`.
pub(crate) fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Summary(a) => {
            let ds = data::load(&a.data, &a.load_options())?;
            print!("{}", ds.summary());
            Ok(())
        }
    }
}
