//! `ugr train`: SFT, the UGR reinforcement stage, the item-fusion fit and the confidence choice.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use ugr_train::args::{ModelArgs, RlArgs, SftArgs};
use ugr_train::{data, files, run, train};

#[derive(Subcommand)]
pub(crate) enum TrainCommand {
    /// Supervised training: next-item SID prediction with teacher forcing.
    Sft(Box<SftCli>),
    /// The UGR reinforcement stage from an SFT run: GRPO with the uncertainty-weighted
    /// reward, difficulty-aware weighting and confidence alignment.
    Rl(Box<RlCli>),
    /// (Re)fit the item-fusion weight of an SFT run on its validation split (`fusion.json`);
    /// `ugr train sft` does it after training when the model has an item head.
    Fuse {
        /// Run directory.
        #[arg(long)]
        run: PathBuf,
        /// Validation rows (0 = all; a fixed seeded sample otherwise; default: the run's --eval-rows).
        #[arg(long)]
        eval_rows: Option<usize>,
    },
    /// (Re)choose and calibrate the confidence a run reports on its validation split: the
    /// learned confidence (RL runs) or the beam posterior, whichever ranks users better by
    /// AUROC(hit@1), with its isotonic map (`confidence.json`, `calibration.json`); the RL
    /// stage does it at its end.
    Calibrate {
        /// Run directory.
        #[arg(long)]
        run: PathBuf,
        /// Weights file inside the run.
        #[arg(long, default_value = files::MODEL)]
        weights: String,
        /// Validation rows (0 = all, a fixed seeded sample otherwise).
        #[arg(long, default_value_t = 0)]
        rows: usize,
        /// Beam width of the search.
        #[arg(long, default_value_t = 20)]
        beam: usize,
    },
}

#[derive(Args)]
pub(crate) struct RlCli {
    /// Run directory (created).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Replace a run already in --out.
    #[arg(long)]
    pub(crate) overwrite: bool,
    #[command(flatten)]
    pub(crate) args: RlArgs,
}

#[derive(Args)]
pub(crate) struct SftCli {
    /// Run directory (created).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Continue the run in --out from its last epoch.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Replace a run already in --out (without it, an existing run is never overwritten).
    #[arg(long, conflicts_with = "resume")]
    pub(crate) overwrite: bool,
    #[command(flatten)]
    pub(crate) args: SftArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// Runs `ugr train ...`.
pub(crate) fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Sft(a) => train_sft(&a),
        TrainCommand::Rl(a) => train_rl(&a),
        TrainCommand::Fuse { run, eval_rows } => {
            let loaded = run::load_run(&run, files::MODEL, &candle_core::Device::Cpu)?;
            let mut args = loaded.info.sft.clone();
            if let Some(n) = eval_rows {
                args.eval_rows = n;
            }
            let ds = data::load(&args.data, &args.load)?;
            let rows = train::sample_rows(&ds.valid, args.eval_rows, args.seed);
            anyhow::ensure!(
                train::fit_fusion(&loaded.model, &ds, &rows, &args, &run)?.is_some(),
                "{} has no item head (train with --sid-embeddings --item-loss W)",
                run.display()
            );
            Ok(())
        }
        TrainCommand::Calibrate {
            run,
            weights,
            rows,
            beam,
        } => calibrate(&run, &weights, rows, beam),
    }
}

fn calibrate(run_dir: &std::path::Path, weights: &str, rows: usize, beam: usize) -> Result<()> {
    let loaded = run::load_run(run_dir, weights, &candle_core::Device::Cpu)?;
    let ds = data::load(&loaded.info.sft.data, &loaded.info.sft.load)?;
    let seed = loaded.info.rl.as_ref().map_or(loaded.info.sft.seed, |r| r.seed);
    let rows = train::sample_rows(&ds.valid, rows, seed ^ 0xca1);
    let item_weight = ugr_train::eval::fusion::read(run_dir)?.map(|f| f.weight);
    train::calibrate(&loaded.model, &ds.catalog, &rows, beam, item_weight, run_dir)?;
    eprintln!(
        "wrote {} and {}",
        run_dir.join(ugr_train::eval::calibrate::FILE).display(),
        run_dir.join(ugr_train::eval::calibrate::MAP_FILE).display(),
    );
    Ok(())
}

pub(crate) fn train_sft(a: &SftCli) -> Result<()> {
    anyhow::ensure!(
        a.resume || a.overwrite || !a.out.join(files::RUN_JSON).exists(),
        "{} already holds a run: pass --resume to continue it, --overwrite to replace it, or another --out",
        a.out.display()
    );
    let (args, cfg) = if a.resume {
        let info = run::read_run_info(&a.out)?;
        (info.sft, info.model)
    } else {
        // The vocabulary and the SID count come from the data's SID index.
        let ds = data::load(&a.args.data, &a.args.load)?;
        let cfg = a.model.config(&ds.catalog, a.args.load.max_history);
        (a.args.clone(), cfg)
    };
    let state = train::train_sft(&args, &cfg, &a.out, a.resume)?;
    eprintln!(
        "done: best validation NDCG@10 {:.4} at epoch {}; weights in {}",
        state.best_ndcg10,
        state.best_epoch,
        a.out.join(files::MODEL).display()
    );
    Ok(())
}

pub(crate) fn train_rl(a: &RlCli) -> Result<()> {
    anyhow::ensure!(
        a.overwrite || !a.out.join(files::RUN_JSON).exists(),
        "{} already holds a run: pass --overwrite to replace it, or another --out",
        a.out.display()
    );
    let s = train::rl::train_rl(&a.args, &a.out)?;
    eprintln!(
        "done: {} steps in {:.0}s ({:.1} prompts/s); validation NDCG@10 {:.4} -> {:.4} (best {:.4} at step {}); \
         final weights in {}, calibration map in {}",
        s.steps,
        s.wall_s,
        s.prompts_per_s,
        s.start_ndcg10,
        s.final_ndcg10,
        s.best_ndcg10,
        s.best_step,
        a.out.join(files::MODEL).display(),
        a.out.join(ugr_train::eval::calibrate::MAP_FILE).display()
    );
    Ok(())
}
