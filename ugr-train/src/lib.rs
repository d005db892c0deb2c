//! ugr-train: the trainer and the `ugr` command line.
//!
//! | module | what |
//! |---|---|
//! | [`data`] | the `ugr-data` crate re-exported: readers of the public formats and of users' logs; the synthetic dataset |
//! | [`model`] | the SID transformer in candle; its [`ugr_core::SidModel`] implementation |
//! | [`args`] | the training stages' arguments and their defaults (what `run.json` records, what `ugr train` parses) |
//! | [`files`] | the run directory's file names |
//! | [`run`] | the run directory: `run.json`, loading a run, JSON I/O |
//! | [`eval`] | evaluation with ugr-core's beam search and metrics; confidence quality (ECE, AUROC, risk-coverage), the fusion fit, the confidence choice |
//! | [`curves`] | the RL stage's curve records |
//! | [`plot`] | SVG charts: RL curves, reliability diagrams |
//! | [`train`] | SFT (batches, AdamW, schedule, early stopping, checkpoints) and the UGR RL stage |
//! | [`baselines`] | popularity and last-item-transition baselines |
//! | [`bench`](mod@bench) | `ugr bench train`: throughput tables |
//! | [`bench_engine`] | `ugr bench engine`: latency, FLOPs and the pruning curve of an exported model |
//! | [`cold`] | `ugr bench cold`: a model trained without some items, served with them added |
//! | [`rules`] | `ugr bench rules`: business rules inside the search against post-filtering, the oracle and the floor; availability changes per second |
//! | `ort_backend` | feature `ort`: onnxruntime behind `SidModel`, for the benchmark |
//! | [`export`] | ONNX graphs, the model contract and the artifact (`ugr export`) |
//!
//! The modules form a layered graph without cycles: `data` < `files` < `model` < `args` <
//! `run` < `eval` < `curves` < `plot` < `train` < `export`, `bench*`; a module imports only
//! modules to its left (`sid`, `baselines` and `ort_backend` only `data` or nothing; `rules`
//! only `data` and `baselines`; `cold` only `data` and `rules`).

pub mod args;
pub mod baselines;
pub mod bench;
pub mod bench_engine;
pub mod bench_scale;
pub mod bench_soak;
pub mod cold;
pub mod curves;
pub mod eval;
pub mod export;
pub mod files;
pub mod histories;
pub mod model;
#[cfg(feature = "ort")]
pub mod ort_backend;
pub mod plot;
pub mod rules;
pub mod run;
pub mod sid;
pub mod train;

pub use ugr_data as data;

static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Overrides [`threads`] for this process (0 restores the default); benchmarks use it to
/// compare thread counts in one run.
pub fn set_threads(n: usize) {
    THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Worker threads for training shards, evaluation and rollouts: [`set_threads`] when set,
/// `UGR_THREADS` when set (at least 1), otherwise the machine's available parallelism.
pub fn threads() -> usize {
    let set = THREADS.load(std::sync::atomic::Ordering::Relaxed);
    if set > 0 {
        return set;
    }
    std::env::var("UGR_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1)
}

/// Process settings for training speed on the CPU; call first thing in `main`.
///
/// - candle's CPU thread pool gets one thread unless `CANDLE_NUM_THREADS` is set. candle
///   0.11 runs element-wise ops on a spin-then-park barrier pool; for this model's many small
///   ops the waits cost more than the parallelism gains (2 cores: 598 targets/s with the
///   pool, 1,186 without). Matrix products still use `RAYON_NUM_THREADS` threads.
/// - glibc keeps large freed blocks instead of unmapping them (`mallopt`): a training step
///   allocates and frees many large tensors, and the default mmap/munmap churn turned into
///   page faults on every reuse (+24% throughput with it off).
pub fn configure_runtime() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called at start-up, before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
