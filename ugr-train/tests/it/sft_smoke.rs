//! CI smoke test of the whole SFT path: a tiny model trains for a few epochs on the small
//! Amazon-2023 set (or, without ../shared/data, on the built-in synthetic data); the loss
//! must fall, evaluation through ugr-core's beam search must beat popularity on the
//! training distribution, and a resumed run must continue where it stopped.

use std::path::PathBuf;

use candle_core::Device;
use ugr_train::baselines::Baselines;
use ugr_train::data::{self, LoadOptions, Split, shared_data_dir, synthetic};
use ugr_train::eval;
use ugr_train::run;
use ugr_train::train::{self, EpochLog, SftArgs};

use crate::common::one_layer;

fn dataset() -> PathBuf {
    match shared_data_dir() {
        Some(d) => d.join("Industrial_and_Scientific_amazon23"),
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "sft_smoke: ../shared/data absent, using builtin:synthetic"
            );
            PathBuf::from(synthetic::BUILTIN)
        }
    }
}

fn logs(dir: &std::path::Path) -> Vec<EpochLog> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sft_learns_and_resumes() {
    ugr_train::configure_runtime();
    let data_path = dataset();
    let ds = data::load(&data_path, &LoadOptions::default()).unwrap();
    let cfg = one_layer(&ds.catalog);
    let args = SftArgs {
        data: data_path,
        epochs: 3,
        batch_size: 64,
        lr: 5e-3,
        warmup_steps: 10,
        eval_rows: 200,
        patience: 10,
        ..SftArgs::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let state = train::train_sft(&args, &cfg, dir.path(), false).unwrap();
    assert_eq!(state.epochs_done, 3);
    let log = logs(dir.path());
    assert_eq!(log.len(), 3);
    assert!(
        log[2].train_loss < log[0].train_loss * 0.9,
        "loss did not fall: {log:?}"
    );

    let run = run::load_run(dir.path(), "model.safetensors", &Device::Cpu).unwrap();
    let rows = train::sample_rows(&ds.examples(Split::Train, cfg.max_history), 400, 1);
    let model = eval::evaluate(&run.model, &ds.catalog, &rows, 20, 128, |_| {}).unwrap();
    let (pop, _) = Baselines::fit(&ds.catalog, &ds.train).evaluate(&rows, false);
    assert!(
        model.item.hr_at(10) > pop.hr(10),
        "model HR@10 {:.4} does not beat popularity {:.4}",
        model.item.hr_at(10),
        pop.hr(10)
    );

    // Resume for one more epoch: it continues from epoch 3 with the saved optimiser state.
    let more = SftArgs { epochs: 4, ..args };
    run::write_json(
        &dir.path().join("run.json"),
        &run::RunInfo {
            format: run::RUN_FORMAT,
            sft: more,
            model: cfg,
            rl: None,
        },
    )
    .unwrap();
    let info: run::RunInfo = run::read_json(&dir.path().join("run.json")).unwrap();
    let state = train::train_sft(&info.sft, &info.model, dir.path(), true).unwrap();
    assert_eq!(state.epochs_done, 4);
    let log = logs(dir.path());
    assert_eq!(log.len(), 4);
    assert!(log[3].steps > log[2].steps);
}

#[test]
fn with_ema_the_saved_model_is_the_validated_average() {
    ugr_train::configure_runtime();
    let data_path = PathBuf::from(synthetic::BUILTIN);
    let ds = data::load(&data_path, &LoadOptions::default()).unwrap();
    let cfg = one_layer(&ds.catalog);
    let args = SftArgs {
        data: data_path,
        epochs: 2,
        batch_size: 64,
        lr: 5e-3,
        warmup_steps: 5,
        eval_rows: 100,
        patience: 10,
        ema: Some(0.9),
        ..SftArgs::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let state = train::train_sft(&args, &cfg, dir.path(), false).unwrap();
    assert!(dir.path().join(train::ema::FILE).exists());

    // model.safetensors holds an average, not live weights...
    let best = run::load_run(dir.path(), "model.safetensors", &Device::Cpu).unwrap();
    let last = run::load_run(dir.path(), "last.safetensors", &Device::Cpu).unwrap();
    let sorted = |v: &candle_nn::VarMap| {
        let mut vars = train::named_vars(v).unwrap();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    };
    let differ = sorted(&best.varmap)
        .iter()
        .zip(sorted(&last.varmap))
        .any(|((_, a), (_, b))| {
            let d = (a.as_tensor() - b.as_tensor()).unwrap().abs().unwrap();
            d.max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0
        });
    assert!(differ, "the saved model equals the live weights");
    // ...and it is exactly the model that was validated.
    let rows = train::sample_rows(&ds.valid, args.eval_rows, args.seed);
    let v = train::validate(&best.model, &ds, &rows, &args).unwrap();
    assert_eq!(v.item.ndcg_at(10), state.best_ndcg10);

    // A resumed run reads the average back and continues it.
    let more = SftArgs { epochs: 3, ..args };
    let state = train::train_sft(&more, &cfg, dir.path(), true).unwrap();
    assert_eq!(state.epochs_done, 3);
}
