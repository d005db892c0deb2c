//! ugr-train's integration tests, linked into one binary: every file here links candle,
//! tract and the trainer, and one binary per file multiplied link time and disk use
//! (CI once ran out of disk linking eight of them). Each module is one former test file.

mod baselines;
mod bench_scale;
mod cli;
mod common;
mod export_parity;
mod model;
mod rl;
mod sft_smoke;
mod shards;
mod shared_indexes;
mod sid_build;
