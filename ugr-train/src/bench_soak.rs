//! `ugr bench soak`: one engine, N threads, many requests; memory sampled along the way and
//! every answer compared with a single-thread reference.
//!
//! A service keeps one engine for days: what must hold is that memory stops growing after
//! warm-up and that threads sharing the engine answer exactly what one thread answers. The
//! reference is computed first, one request at a time on the calling thread, for every
//! distinct history; then `threads` workers serve `requests` requests (history `i mod n`) and
//! compare items and scores bit for bit, while a sampler reads the resident set size from
//! `/proc/self/statm` every 50 ms. Figures are measured; nothing here is asserted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use ugr_core::{Engine, ItemId, Recommendations, SearchOptions};

/// What a soak run measured.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// Backend that served.
    pub backend: String,
    /// Worker threads sharing the engine.
    pub threads: usize,
    /// Requests served by the workers.
    pub requests: usize,
    /// Wall time of the workers, seconds.
    pub seconds: f64,
    /// Requests per second over all workers.
    pub requests_per_s: f64,
    /// Resident set size before the workers start, MB (engine open, reference computed).
    pub rss_start_mb: f64,
    /// Resident set size once 5% of the requests are served (warm-up over), MB.
    pub rss_warm_mb: f64,
    /// Largest sample, MB.
    pub rss_peak_mb: f64,
    /// After the last request, MB.
    pub rss_end_mb: f64,
    /// Requests whose items or scores differ from the single-thread reference.
    pub mismatches: usize,
    /// `(requests served, RSS MB)` samples.
    pub samples: Vec<(usize, f64)>,
}

/// Resident set size of this process in MB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn same(a: &Recommendations, b: &Recommendations) -> bool {
    a.items.len() == b.items.len()
        && a.items
            .iter()
            .zip(&b.items)
            .all(|(x, y)| x.item == y.item && x.score.to_bits() == y.score.to_bits())
}

/// Serves `requests` requests over `threads` threads (see the module docs).
pub fn soak(
    engine: &Engine,
    histories: &[&[ItemId]],
    opts: &SearchOptions,
    threads: usize,
    requests: usize,
) -> Result<SoakReport> {
    anyhow::ensure!(!histories.is_empty(), "no histories to serve");
    let threads = threads.max(1);
    let reference = histories
        .iter()
        .map(|h| engine.recommend(h, opts))
        .collect::<ugr_core::Result<Vec<_>>>()?;
    let rss_start_mb = rss_mb();
    let served = AtomicUsize::new(0);
    let mismatches = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let warm_at = requests / 20;
    let start = Instant::now();
    let (samples, worker_results) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut samples = vec![(0usize, rss_start_mb)];
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                samples.push((served.load(Ordering::Relaxed), rss_mb()));
            }
            samples
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (served, mismatches, reference) = (&served, &mismatches, &reference);
                s.spawn(move || -> Result<()> {
                    let mut i = t;
                    while i < requests {
                        let h = i % histories.len();
                        let got = engine.recommend(histories[h], opts)?;
                        if !same(&got, &reference[h]) {
                            mismatches.fetch_add(1, Ordering::Relaxed);
                        }
                        served.fetch_add(1, Ordering::Relaxed);
                        i += threads;
                    }
                    Ok(())
                })
            })
            .collect();
        let results: Vec<Result<()>> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a soak worker panicked")))
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        (samples, results)
    });
    let seconds = start.elapsed().as_secs_f64();
    for r in worker_results {
        r?;
    }
    let rss_end_mb = rss_mb();
    let rss_warm_mb = samples
        .iter()
        .find(|(n, _)| *n >= warm_at)
        .map_or(rss_start_mb, |s| s.1);
    let rss_peak_mb = samples.iter().map(|s| s.1).fold(rss_end_mb, f64::max);
    Ok(SoakReport {
        backend: engine.backend().name().into(),
        threads,
        requests,
        seconds,
        requests_per_s: requests as f64 / seconds,
        rss_start_mb,
        rss_warm_mb,
        rss_peak_mb,
        rss_end_mb,
        mismatches: mismatches.into_inner(),
        samples,
    })
}
