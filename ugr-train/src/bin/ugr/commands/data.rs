//! `ugr data`: dataset tools.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use ugr_train::data::{self, Split};

use super::DataArgs;

#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// Read a dataset and print its summary.
    Summary(DataArgs),
    /// Write the SIDs of the items `--cold-items FRACTION` leaves out (the new items of a
    /// cold-start study) as an index, for `ugr catalog --add`.
    ColdItems {
        #[command(flatten)]
        data: DataArgs,
        /// The index to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one split's histories (one row per user) as users.npy, values.npy and
    /// offsets.npy (an Arrow list layout) into a directory: the input of batch scoring in
    /// Python, Ray or Spark and of `ugr bench batch`.
    Histories {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_enum, default_value_t = Split::Test)]
        split: Split,
        /// Directory to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `ugr data ...`.
pub(crate) fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Summary(a) => {
            let ds = data::load(&a.data, &a.load_options())?;
            print!("{}", ds.summary());
            Ok(())
        }
        DataCommand::Histories { data: a, split, out } => {
            let ds = data::load(&a.data, &a.load_options())?;
            let h = ugr_train::histories::Histories::from_examples(&ds.examples(split, usize::MAX));
            h.write(&out)?;
            println!(
                "wrote {}: {} {split:?} histories of {} ({} items in all)",
                out.display(),
                h.len(),
                ds.name,
                h.values.len()
            );
            Ok(())
        }
        DataCommand::ColdItems { data: a, out } => {
            let fraction = a.load.cold_items;
            anyhow::ensure!(
                fraction > 0.0,
                "give --cold-items FRACTION (the fraction the model was trained without)"
            );
            let ds = data::load(
                &a.data,
                &data::LoadOptions {
                    cold_items: 0.0,
                    ..a.load_options()
                },
            )?;
            let cold = data::cold_items(&ds.catalog, fraction);
            let mut index = std::collections::BTreeMap::new();
            for &item in &cold {
                let sid = ds.catalog.sid_of(item)?.to_string();
                let tokens: Vec<String> = sid.split_inclusive('>').map(str::to_owned).collect();
                index.insert(item.as_u32().to_string(), tokens);
            }
            std::fs::write(&out, serde_json::to_string(&index)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {}: {} cold items of {}",
                out.display(),
                cold.len(),
                ds.catalog.len()
            );
            Ok(())
        }
    }
}
