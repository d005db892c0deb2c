//! `ugr bench scale`: synthetic catalogs of 100k to 10M items with a real model's
//! architecture ([`ugr_train::bench_scale`]): each artifact is written once, then opened and
//! timed in a fresh process (this binary with `--measure`), so that one size's memory does
//! not count in the next.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;
use ugr_core::native::WeightType;
use ugr_train::bench_scale::{Measured, measure, write_synthetic};

#[derive(Args)]
pub(crate) struct BenchScaleArgs {
    /// The donor artifact (architecture and weights), written by `ugr export`.
    #[arg(long, required_unless_present = "measure")]
    pub(crate) model: Option<PathBuf>,
    /// Catalog sizes, comma separated.
    #[arg(long, default_value = "100000,1000000,10000000", value_delimiter = ',')]
    pub(crate) items: Vec<usize>,
    /// Where the synthetic artifacts go (`scale-<items>.ugr`; kept, reused when present).
    #[arg(long, default_value = "runs/scale")]
    pub(crate) dir: PathBuf,
    /// Store the catalog-sized tables (SID embeddings, item head) as f16.
    #[arg(long)]
    pub(crate) f16: bool,
    /// Single requests timed per size.
    #[arg(long, default_value_t = 200)]
    pub(crate) requests: usize,
    /// Write the rows as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Measure this one artifact in this process and print one JSON line (what each child
    /// process runs).
    #[arg(long, hide = true)]
    pub(crate) measure: Option<PathBuf>,
}

pub(crate) fn run(a: &BenchScaleArgs) -> Result<()> {
    if let Some(path) = &a.measure {
        println!("{}", serde_json::to_string(&measure(path, a.requests, 7)?)?);
        return Ok(());
    }
    let donor = a.model.as_ref().context("--model is required")?;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dtype = if a.f16 { WeightType::F16 } else { WeightType::F32 };
    let tag = if a.f16 { "-f16" } else { "" };
    println!(
        "ugr bench scale: {} architecture, tables {}, {} requests per size",
        donor.display(),
        if a.f16 { "f16" } else { "f32" },
        a.requests
    );
    println!(
        "{:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "items", "MB", "open s", "RSS open", "RSS peak", "above 0", "p50 ms", "p99 ms"
    );
    let mut rows = Vec::new();
    for &n in &a.items {
        let path = a.dir.join(format!("scale-{n}{tag}.ugr"));
        if !path.exists() {
            let w = write_synthetic(donor, n, dtype, &path, n as u64)?;
            eprintln!(
                "wrote {} ({} items, {:.1} MB) in {:.1}s",
                path.display(),
                w.items,
                w.bytes as f64 / 1e6,
                w.seconds
            );
        }
        let out = std::process::Command::new(std::env::current_exe()?)
            .args([
                "bench",
                "scale",
                "--requests",
                &a.requests.to_string(),
                "--measure",
            ])
            .arg(&path)
            .output()
            .context("running the measuring process")?;
        ensure!(
            out.status.success(),
            "measuring {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let m: Measured = serde_json::from_slice(&out.stdout).context("the measuring process's answer")?;
        println!(
            "{:>10} {:>10.1} {:>8.2} {:>10.1} {:>10.1} {:>10.1} {:>9.3} {:>9.3}",
            m.items,
            m.artifact_bytes as f64 / 1e6,
            m.open_s,
            m.rss_open_mb,
            m.rss_peak_mb,
            m.rss_peak_mb - m.rss_before_mb,
            m.p50_ms,
            m.p99_ms
        );
        rows.push(m);
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
