//! `ugr bench batch`: the engine's batch scoring (`Engine::recommend_parallel`, what the
//! Python package's `recommend_batch` runs) on histories written by `ugr data histories`,
//! at several thread counts: the Rust side of the Python binding's overhead.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub(crate) struct BenchBatchArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Directory written by `ugr data histories`.
    #[arg(long)]
    pub(crate) histories: PathBuf,
    /// Thread counts to time, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub(crate) threads: Vec<usize>,
    /// Only the first N rows (0: all).
    #[arg(long, default_value_t = 0)]
    pub(crate) rows: usize,
    /// Timed passes per thread count (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,
    #[arg(long, default_value_t = 20)]
    pub(crate) beam: usize,
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// Write the rows as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

pub(crate) fn run(a: &BenchBatchArgs) -> Result<()> {
    let engine =
        ugr_core::Engine::open(&a.model).with_context(|| format!("opening {}", a.model.display()))?;
    let h = ugr_train::histories::Histories::read(&a.histories)?;
    let rows = if a.rows == 0 { h.len() } else { a.rows.min(h.len()) };
    let requests: Vec<ugr_core::Request<'_>> = (0..rows).map(|r| ugr_core::Request::new(h.row(r))).collect();
    let opts = ugr_core::SearchOptions {
        beam: a.beam,
        top_k: a.k,
        ..ugr_core::SearchOptions::default()
    };
    let mut out = Vec::new();
    println!(
        "ugr bench batch: {}, {rows} rows, beam {}, top-{}",
        a.model.display(),
        a.beam,
        a.k
    );
    println!("{:>7} {:>10} {:>12}", "threads", "seconds", "requests/s");
    for &threads in &a.threads {
        let mut times = Vec::with_capacity(a.repeat.max(1));
        for _ in 0..a.repeat.max(1) {
            let t = Instant::now();
            let answers = engine.recommend_parallel(&requests, &opts, threads)?;
            times.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(answers.len() == rows, "one answer per row");
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!("{threads:>7} {median:>10.3} {:>12.1}", rows as f64 / median);
        out.push(serde_json::json!({
            "threads": threads, "rows": rows, "seconds": median, "seconds_all": times,
            "requests_per_s": rows as f64 / median,
        }));
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
