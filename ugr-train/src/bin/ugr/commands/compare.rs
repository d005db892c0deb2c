//! `ugr compare`: runs against a base run on the same rows, with paired bootstrap intervals.

use std::path::PathBuf;

use anyhow::{Result, ensure};
use clap::Args;
use ugr_train::eval::compare::{self, RowRanks};

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// The run the others are compared with (e.g. the SFT run).
    #[arg(long)]
    pub(crate) base: PathBuf,
    /// The runs to compare with it.
    #[arg(required = true)]
    pub(crate) runs: Vec<PathBuf>,
    /// The split `ugr eval` was run on, for every run.
    #[arg(long, default_value = "test")]
    pub(crate) split: String,
    /// Bootstrap resamples of the rows.
    #[arg(long, default_value_t = 2000)]
    pub(crate) resamples: usize,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// Prints, for each run and for the served and the generative-only ranking, HR and NDCG at
/// 1, 5 and 10 of the base and of the run, and their difference with its 95% interval.
pub(crate) fn run(a: &CompareArgs) -> Result<()> {
    let base = RowRanks::read(&a.base, &a.split)?;
    println!(
        "{} {} split, {} rows; paired bootstrap 95% intervals ({} resamples, seed {})",
        base.dataset,
        base.split,
        base.served.len(),
        a.resamples,
        a.seed
    );
    for path in &a.runs {
        let other = RowRanks::read(path, &a.split)?;
        ensure!(
            other.dataset == base.dataset,
            "{} was evaluated on {}, the base on {}",
            path.display(),
            other.dataset,
            base.dataset
        );
        for (name, generative) in [("served", false), ("generative only", true)] {
            if generative && (base.generative.is_none() || other.generative.is_none()) {
                continue;
            }
            println!("\n{} against {} ({name})", path.display(), a.base.display());
            println!(
                "{:<9} {:>8} {:>8} {:>9}  95% interval",
                "metric", "base", "run", "diff"
            );
            for d in compare::paired(
                base.ranking(generative),
                other.ranking(generative),
                a.resamples,
                a.seed,
            )? {
                println!(
                    "{:<9} {:>8.4} {:>8.4} {:>+9.4}  [{:+.4}, {:+.4}]{}",
                    format!("{}@{}", d.metric, d.k),
                    d.base,
                    d.other,
                    d.diff,
                    d.low,
                    d.high,
                    if d.low > 0.0 || d.high < 0.0 { " *" } else { "" }
                );
            }
        }
    }
    println!("\n* the interval excludes 0");
    Ok(())
}
