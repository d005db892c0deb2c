//! `ugr quickstart`: the whole job on a built-in default.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use ugr_train::data;

#[derive(Args)]
pub(crate) struct QuickstartArgs {
    /// Dataset: `builtin:synthetic` (generated here) or any `--data` that `ugr train sft` reads.
    #[arg(long, default_value = data::synthetic::BUILTIN)]
    pub(crate) data: String,
    /// Run directory (replaced if it holds an earlier quickstart run).
    #[arg(long, default_value = "runs/quickstart")]
    pub(crate) out: String,
    #[arg(long, default_value_t = 12)]
    pub(crate) epochs: usize,
    /// Training sequences per batch: the built-in data has 2,000 users, so a small batch gives
    /// the model enough optimiser steps (125 per epoch) in a few minutes.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub(crate) lr: f64,
    /// Validation rows for early stopping, the fusion fit and the calibration (0 = all).
    #[arg(long, default_value_t = 0)]
    pub(crate) eval_rows: usize,
    /// Users shown with their recommendations.
    #[arg(long, default_value_t = 3)]
    pub(crate) users: usize,
}

/// Runs each step as the command line a user would type (printed first); `ugr` parses and
/// runs one command line (the dispatcher passes itself, so this module needs no import of it).
pub(crate) fn run(a: &QuickstartArgs, ugr: &dyn Fn(Vec<String>) -> Result<()>) -> Result<()> {
    let run = |line: Vec<String>| -> Result<()> {
        eprintln!("\n$ ugr {}", line.join(" "));
        ugr(line)
    };
    let s = |x: &str| x.to_owned();
    let model = format!("{}/model.ugr", a.out);
    run(vec![
        s("train"),
        s("sft"),
        s("--data"),
        a.data.clone(),
        s("--out"),
        a.out.clone(),
        s("--epochs"),
        a.epochs.to_string(),
        s("--batch-size"),
        a.batch_size.to_string(),
        s("--lr"),
        a.lr.to_string(),
        s("--eval-rows"),
        a.eval_rows.to_string(),
        s("--overwrite"),
    ])?;
    run(vec![
        s("export"),
        s("--run"),
        a.out.clone(),
        s("--out"),
        model.clone(),
    ])?;
    let info = ugr_train::run::read_run_info(Path::new(&a.out))?;
    let ds = data::load(&info.sft.data, &info.sft.load)?;
    for e in ds.test.iter().filter(|e| !e.history.is_empty()).take(a.users) {
        let history: Vec<String> = e
            .history
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|i| i.to_string())
            .collect();
        run(vec![
            s("recommend"),
            s("--model"),
            model.clone(),
            s("--history"),
            history.join(" "),
            s("--k"),
            s("5"),
        ])?;
        eprintln!("(held-out next item: {})", e.target);
    }
    run(vec![
        s("eval"),
        s("--run"),
        a.out.clone(),
        s("--split"),
        s("test"),
        s("--engine"),
        model,
    ])
}
