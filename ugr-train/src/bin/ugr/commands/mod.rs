//! One module per `ugr` command (`ugr <command> ...` is `<command>.rs`), and what several
//! commands share: the dataset arguments, pruning specs and the backend choice.

pub(crate) mod bench;
pub(crate) mod bench_batch;
pub(crate) mod bench_cold;
pub(crate) mod bench_rules;
pub(crate) mod bench_scale;
pub(crate) mod catalog;
pub(crate) mod compare;
pub(crate) mod data;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod plot;
pub(crate) mod quickstart;
pub(crate) mod recommend;
pub(crate) mod sid;
pub(crate) mod train;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ugr_train::data::LoadOptions;

#[derive(Args)]
pub(crate) struct DataArgs {
    /// Dataset directory (LETTER, Amazon-2023, MiniOneRec formats), an interactions CSV, or `builtin:synthetic`.
    #[arg(long, default_value = ugr_train::data::synthetic::BUILTIN)]
    pub(crate) data: PathBuf,
    #[command(flatten)]
    pub(crate) load: LoadOptions,
}

impl DataArgs {
    pub(crate) fn load_options(&self) -> LoadOptions {
        self.load.clone()
    }
}

/// Parses `off`, `fixed:<m>` or `adaptive:<min>:<max>`.
pub(crate) fn parse_pruning(s: &str) -> Result<ugr_core::Pruning> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<f32> {
        parts
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("--prune {s}: missing number"))?
            .parse()
            .with_context(|| format!("--prune {s}"))
    };
    Ok(match parts[0] {
        "off" => ugr_core::Pruning::Off,
        "fixed" => ugr_core::Pruning::Fixed { margin: num(1)? },
        "adaptive" => ugr_core::Pruning::Adaptive {
            min_margin: num(1)?,
            max_margin: num(2)?,
            levels: 1,
        },
        _ => anyhow::bail!("--prune must be off, fixed:<nats> or adaptive:<min>:<max>"),
    })
}

/// `--backend` of the engine commands.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum BackendArg {
    Auto,
    Native,
    Tract,
}

impl From<BackendArg> for ugr_core::BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => ugr_core::BackendChoice::Auto,
            BackendArg::Native => ugr_core::BackendChoice::Native,
            BackendArg::Tract => ugr_core::BackendChoice::Tract,
        }
    }
}
