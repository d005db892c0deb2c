//! `ugr compare`: runs against a base run on the same rows, with paired bootstrap intervals.

use std::path::Path;

use anyhow::{Result, ensure};
use clap::Args;
use ugr_train::eval::compare::{self, RowRanks};

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// The run the others are compared with (e.g. the SFT run). Runs joined by commas form
    /// a group (e.g. the seeds of one configuration): each row scores the group's mean.
    #[arg(long)]
    pub(crate) base: String,
    /// The runs (or comma-joined groups of runs) to compare with it.
    #[arg(required = true)]
    pub(crate) runs: Vec<String>,
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
    let base = read_group(&a.base, &a.split)?;
    println!(
        "{} {} split, {} rows; paired bootstrap 95% intervals ({} resamples, seed {})",
        base[0].dataset,
        base[0].split,
        base[0].served.len(),
        a.resamples,
        a.seed
    );
    for group in &a.runs {
        let other = read_group(group, &a.split)?;
        ensure!(
            other[0].dataset == base[0].dataset,
            "{group} was evaluated on {}, the base on {}",
            other[0].dataset,
            base[0].dataset
        );
        for (name, generative) in [("served", false), ("generative only", true)] {
            let has = |g: &[RowRanks]| g.iter().all(|r| r.generative.is_some());
            if generative && !(has(&base) && has(&other)) {
                continue;
            }
            println!("\n{group} against {} ({name})", a.base);
            println!(
                "{:<9} {:>8} {:>8} {:>9}  95% interval",
                "metric", "base", "run", "diff"
            );
            for d in compare::paired_groups(
                &rankings(&base, generative),
                &rankings(&other, generative),
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

/// The ranks of a run, or of each run of a comma-joined group (all on one dataset).
fn read_group(runs: &str, split: &str) -> Result<Vec<RowRanks>> {
    let group = runs
        .split(',')
        .map(|run| RowRanks::read(Path::new(run), split))
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        group.iter().all(|r| r.dataset == group[0].dataset),
        "the runs of {runs} were evaluated on different datasets"
    );
    Ok(group)
}

/// Each run's ranks of the group: served, or generative-only.
fn rankings(group: &[RowRanks], generative: bool) -> Vec<&[Option<u32>]> {
    group.iter().map(|r| r.ranking(generative)).collect()
}
