//! CI test of the RL stage (`ugr train rl`): a few steps on small data through the `ugr`
//! command line with every option, what the run directory holds, the export of the
//! confidence graph and calibration map into the engine; and the confidence tokens'
//! start at exactly 0.5, read the same by the teacher-forced pass and the beam search.
//! The per-group formulas are tested by hand in `ugr_train::train::grpo`.

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use ugr_core::vocab::Special;
use ugr_core::{BeamSearch, Calibration, ItemId, SearchOptions, Sid};
use ugr_train::curves::Curves;
use ugr_train::eval::calibrate;
use ugr_train::eval::confidence::Signal;
use ugr_train::model::new_model;
use ugr_train::model::{CandleModel, ModelConfig};
use ugr_train::run::{RunInfo, read_json};
use ugr_train::train::rl::{RlSummary, init_confidence_tokens};
use ugr_train::train::{self, SftArgs};

use crate::common::{one_layer, synthetic};

fn ugr(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ugr"))
        .args(args)
        .output()
        .expect("running ugr");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ugr {args:?} failed:\n{text}");
    text
}

fn tiny(catalog: &ugr_core::Catalog) -> ModelConfig {
    ModelConfig {
        trie_loss: true,
        ..one_layer(catalog)
    }
}

/// A short SFT run on the built-in synthetic data.
fn sft_run(dir: &Path) {
    sft_run_with(dir, tiny);
}

/// [`sft_run`] with the model configuration `cfg` gives for the catalog.
fn sft_run_with(dir: &Path, cfg: impl FnOnce(&ugr_core::Catalog) -> ModelConfig) {
    let args = SftArgs {
        epochs: 1,
        max_steps: Some(40),
        batch_size: 64,
        lr: 5e-3,
        warmup_steps: 5,
        eval_rows: 100,
        ..SftArgs::default()
    };
    let ds = ugr_train::data::load(&args.data, &args.load).unwrap();
    train::train_sft(&args, &cfg(&ds.catalog), dir, false).unwrap();
}

fn weights(path: &Path) -> Vec<f32> {
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    t["head.layers.0.attn.qkv.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn rl_runs_with_every_option_and_exports_confidence() {
    ugr_train::configure_runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sft = tmp.path().join("sft");
    sft_run(&sft);
    let sft_s = sft.to_str().unwrap();
    let common = [
        "--max-steps",
        "4",
        "--prompts-per-step",
        "8",
        "--group",
        "6",
        "--max-prompts",
        "64",
        "--eval-every",
        "2",
        "--eval-rows",
        "100",
        "--calibration-rows",
        "200",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "2",
        "--epochs",
        "2",
        "--device",
        "cpu",
    ];
    let configs: [(&str, &[&str]); 3] = [
        (
            "ugr",
            &[
                "--reward",
                "uncertainty",
                "--tau",
                "0.5",
                "--difficulty",
                "on",
                "--alpha-min",
                "0.1",
                "--confidence",
                "on",
                "--lambda-p",
                "0.2",
                "--lambda-w",
                "0.5",
                "--lambda-pw",
                "0.1",
                "--confidence-lr-scale",
                "10",
                "--seed",
                "3",
            ],
        ),
        (
            "binary",
            &["--reward", "binary", "--difficulty", "off", "--confidence", "off"],
        ),
        ("rank", &["--reward", "rank", "--confidence", "off"]),
    ];
    let mut runs = Vec::new();
    for (name, flags) in configs {
        let out = tmp.path().join(name);
        let mut args = vec!["train", "rl", "--from", sft_s, "--out", out.to_str().unwrap()];
        args.extend(common);
        args.extend(flags);
        ugr(&args);
        let info: RunInfo = read_json(&out.join("run.json")).unwrap();
        let rl = info.rl.expect("an RL run records its arguments");
        assert_eq!(info.model.confidence, name == "ugr");
        assert_eq!(rl.lr, Some(1e-3));
        let summary: RlSummary = read_json(&out.join("summary.json")).unwrap();
        assert_eq!(summary.steps, 4);
        let curves: Curves = read_json(&out.join("curves.json")).unwrap();
        let steps: Vec<usize> = curves.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 2, 4]);
        assert!(
            curves.points[1..]
                .iter()
                .all(|p| (0.0..=1.0).contains(&p.group_hit_rate))
        );
        // the policy moved (the head's attention weights are not the SFT ones)
        assert_ne!(
            weights(&sft.join("model.safetensors")),
            weights(&out.join("model.safetensors"))
        );
        let map: Calibration = read_json(&out.join("calibration.json")).unwrap();
        map.validate().unwrap();
        assert!(
            std::fs::read_to_string(out.join("curves.svg"))
                .unwrap()
                .contains("<svg")
        );
        runs.push(out);
    }
    let ugr_run = runs[0].to_str().unwrap();
    let rl_curves = runs[0].join("curves.json");
    let curves: Curves = read_json(&rl_curves).unwrap();
    assert!(curves.points[1..].iter().any(|p| p.confidence_correct.is_some()));

    // an RL run cannot be the start of another
    let again = Command::new(env!("CARGO_BIN_EXE_ugr"))
        .args([
            "train",
            "rl",
            "--from",
            ugr_run,
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has confidence tokens"));

    // the three reward types on one chart
    let chart = tmp.path().join("curves.svg");
    let mut args = vec!["plot", "curves", "--out", chart.to_str().unwrap()];
    args.extend(runs.iter().map(|r| r.to_str().unwrap()));
    ugr(&args);
    let svg = std::fs::read_to_string(&chart).unwrap();
    for label in ["uncertainty+difficulty+confidence", "binary", "rank+difficulty"] {
        assert!(svg.contains(label), "{label} missing from the chart");
    }

    // The run chose its reported confidence on validation and calibrated it; whichever
    // signal is chosen, evaluation and the engine report it through its own map.
    let mut choice = calibrate::read(&runs[0])
        .unwrap()
        .expect("an RL run writes confidence.json");
    let signals: Vec<Signal> = choice.signals.iter().map(|s| s.signal).collect();
    assert_eq!(signals, [Signal::Posterior, Signal::Learned]);
    assert_eq!(
        ugr_train::export::run_calibration(&runs[0]).unwrap().as_ref(),
        choice.map(choice.source)
    );
    let ds = ugr_train::data::load(&SftArgs::default().data, &SftArgs::default().load).unwrap();
    for source in [Signal::Learned, Signal::Posterior] {
        choice.source = source;
        calibrate::write(&runs[0], &choice).unwrap();
        let map = choice.map(source).unwrap().clone();
        let text = ugr(&["eval", "--run", ugr_run, "--split", "valid", "--rows", "200"]);
        let (shown, compared) = match source {
            Signal::Learned => ("confidence: learned", "for comparison: beam posterior"),
            Signal::Posterior => ("confidence: beam posterior", "for comparison: learned"),
        };
        assert!(text.contains(shown) && text.contains(compared), "{text}");
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(runs[0].join("metrics.json")).unwrap()).unwrap();
        let conf = &metrics["confidence"];
        assert_eq!(conf["calibrated"], true);
        assert_eq!(conf["risk_coverage"].as_array().unwrap().len(), 6);
        assert!(conf["top1_vs_hit1"]["ece"].as_f64().unwrap() <= 1.0);
        assert_eq!(metrics["confidence_not_reported"]["calibrated"], true);
        assert!(runs[0].join("reliability-valid.svg").exists());

        // the artifact carries the map, and the confidence graph only when it is reported
        let artifact = tmp.path().join("ugr.ugr");
        ugr(&["export", "--run", ugr_run, "--out", artifact.to_str().unwrap()]);
        let engine = ugr_core::Engine::open(&artifact).unwrap();
        assert!(engine.has_calibration());
        let recs = engine
            .recommend(&ds.test[0].history, &SearchOptions::default())
            .unwrap();
        assert!(!recs.items.is_empty());
        for r in &recs.items {
            let raw = match source {
                Signal::Learned => r
                    .learned_confidence
                    .expect("the engine reads the learned confidence"),
                Signal::Posterior => {
                    assert_eq!(r.learned_confidence, None, "no confidence graph");
                    r.posterior
                }
            };
            assert!((r.confidence - map.apply(raw)).abs() < 1e-6);
        }
    }
    let text = ugr(&[
        "eval",
        "--run",
        runs[1].to_str().unwrap(),
        "--split",
        "valid",
        "--rows",
        "200",
    ]);
    assert!(text.contains("confidence: beam posterior"), "{text}");
    assert!(!text.contains("for comparison"), "{text}");
    // `ugr train calibrate` refits the choice of an SFT run too (the posterior, its only signal)
    ugr(&["train", "calibrate", "--run", sft_s, "--rows", "100"]);
    let sft_choice = calibrate::read(&sft).unwrap().unwrap();
    assert_eq!(sft_choice.source, Signal::Posterior);
    assert_eq!(sft_choice.rows, 100);
}

/// `--policy served`: the rollouts go through the fused search and GRPO trains the item
/// head with the generative one; without an item head it is refused with a clear error.
#[test]
fn the_served_policy_trains_the_item_head_and_needs_one() {
    ugr_train::configure_runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sft = tmp.path().join("sft-item");
    sft_run_with(&sft, |catalog| ModelConfig {
        sid_embeddings: catalog.sid_count() + 1,
        item_loss: 1.0,
        item_output: ugr_train::model::ItemOutput::Untied,
        ..tiny(catalog)
    });
    assert!(
        sft.join("fusion.json").exists(),
        "an SFT run with an item head fits its fusion weight"
    );
    let rl = |from: &Path, out: &Path, policy: &str| {
        Command::new(env!("CARGO_BIN_EXE_ugr"))
            .args(["train", "rl", "--policy", policy, "--confidence", "off"])
            .args(["--from", from.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(["--max-steps", "3", "--eval-every", "3", "--prompts-per-step", "8"])
            .args(["--group", "6", "--max-prompts", "64", "--eval-rows", "100"])
            .args(["--calibration-rows", "100", "--lr", "1e-3"])
            .output()
            .unwrap()
    };
    let item_out = |path: &Path| -> Vec<f32> {
        let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
        t["item_out.weight"].flatten_all().unwrap().to_vec1().unwrap()
    };
    let out = tmp.path().join("served");
    let done = rl(&sft, &out, "served");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let curves: Curves = read_json(&out.join("curves.json")).unwrap();
    assert!(curves.label.ends_with("+served"), "{}", curves.label);
    assert_ne!(
        item_out(&sft.join("model.safetensors")),
        item_out(&out.join("model.safetensors")),
        "the served policy moves the item head"
    );
    // the generative policy leaves the item head as SFT made it
    let generative = tmp.path().join("generative");
    let done = rl(&sft, &generative, "generative");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(
        item_out(&sft.join("model.safetensors")),
        item_out(&generative.join("model.safetensors"))
    );
    // a model without an item head is refused, not crashed on, and nothing is written
    let plain = tmp.path().join("sft");
    sft_run(&plain);
    let refused = rl(&plain, &tmp.path().join("refused"), "served");
    assert!(!refused.status.success());
    assert!(
        !tmp.path().join("refused").exists(),
        "a refused run writes nothing"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--policy served needs an item head"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn confidence_starts_at_one_half_and_the_search_reads_what_training_trains() {
    let ds = synthetic(120, 40, 5);
    let cfg = ModelConfig {
        confidence: true,
        ..tiny(&ds.catalog)
    };
    let (model, varmap) = new_model(&cfg, 9, &Device::Cpu).unwrap();
    let histories: Vec<Vec<ItemId>> = ds.test.iter().take(4).map(|e| e.history.clone()).collect();
    let refs: Vec<&[ItemId]> = histories.iter().map(Vec::as_slice).collect();
    let opts = SearchOptions {
        beam: 6,
        top_k: 6,
        normalization: cfg.normalization(),
        ..SearchOptions::default()
    };
    let search = |m| {
        BeamSearch::new(&ds.catalog)
            .run(&CandleModel::new(m, &ds.catalog), &refs, &opts)
            .unwrap()
    };
    // a random start is not 0.5; after the initialisation every confidence is exactly 0.5
    let before = search(&model);
    assert!(before[0].items.iter().any(|r| r.learned_confidence != Some(0.5)));
    init_confidence_tokens(&varmap).unwrap();
    for r in search(&model).iter().flat_map(|r| &r.items) {
        assert_eq!(r.learned_confidence, Some(0.5));
    }
    // move C_HIGH away, then the teacher-forced confidence equals the search's
    {
        let data = varmap.data().lock().unwrap();
        let emb = &data["tok_emb.weight"];
        let mut v: Vec<f32> = emb.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let d = cfg.d_model;
        let hi = Special::CHigh.token().as_u32() as usize;
        for (i, x) in v[hi * d..(hi + 1) * d].iter_mut().enumerate() {
            *x = ((i * 7919) % 13) as f32 / 13.0 - 0.5;
        }
        emb.set(
            &Tensor::from_vec(v, emb.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
    }
    let results = search(&model);
    let mut users = Vec::new();
    let mut sids = Vec::new();
    let mut want = Vec::new();
    for (h, r) in histories.iter().zip(&results) {
        for item in &r.items {
            users.push(
                h.iter()
                    .map(|&i| ds.catalog.sid_of(i).unwrap())
                    .collect::<Vec<Sid>>(),
            );
            sids.push(ds.catalog.sid(item.sid_index));
            want.push(item.learned_confidence.unwrap());
        }
    }
    assert!(want.iter().any(|&c| (c - 0.5).abs() > 1e-3));
    let user_refs: Vec<&[Sid]> = users.iter().map(Vec::as_slice).collect();
    let states = model.user_states(&ds.catalog, &user_refs).unwrap();
    let (log_probs, diff) = model.score_sids(&ds.catalog, &states, &sids, true).unwrap();
    let got: Vec<f32> = candle_nn::ops::sigmoid(&diff.unwrap())
        .unwrap()
        .to_vec1()
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "teacher-forced {g} vs search {w}");
    }
    // and the log-probs are the search's scores (mean over the L levels)
    let lp: Vec<f32> = log_probs.mean(1).unwrap().to_vec1().unwrap();
    let scores: Vec<f32> = results
        .iter()
        .flat_map(|r| r.items.iter().map(|i| i.score))
        .collect();
    for (g, w) in lp.iter().zip(&scores) {
        assert!((g - w).abs() < 1e-4, "teacher-forced {g} vs search {w}");
    }
}

/// The proper-scoring term (`--lambda-bce`, ours): without any confidence loss the learned
/// confidence stays exactly 0.5 (C_LOW and C_HIGH start equal and nothing separates them);
/// with the cross-entropy alone it falls for the wrong beams, which are most of every group,
/// and the all-miss groups reach it too.
#[test]
fn the_cross_entropy_term_moves_the_confidence_towards_the_hit_rate() {
    ugr_train::configure_runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sft = tmp.path().join("sft");
    sft_run(&sft);
    let run = |name: &str, bce: &str| -> Curves {
        let out = tmp.path().join(name);
        ugr(&[
            "train",
            "rl",
            "--from",
            sft.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-steps",
            "6",
            "--prompts-per-step",
            "8",
            "--group",
            "6",
            "--eval-every",
            "3",
            "--eval-rows",
            "50",
            "--calibration-rows",
            "50",
            "--lr",
            "1e-3",
            "--confidence-lr-scale",
            "10",
            "--lambda-w",
            "0",
            "--lambda-bce",
            bce,
        ]);
        read_json(&out.join("curves.json")).unwrap()
    };
    let without = run("none", "0");
    let with = run("bce", "1");
    assert_eq!(with.label, "uncertainty+difficulty+confidence+bce");
    let last = |c: &Curves| {
        let p = c.points.last().unwrap();
        (
            p.confidence_correct,
            p.confidence_wrong.expect("a group with the target"),
        )
    };
    let (_, wrong) = last(&without);
    assert!(
        (wrong - 0.5).abs() < 1e-6,
        "no confidence loss, yet c(wrong) = {wrong}"
    );
    let (_, wrong) = last(&with);
    assert!(wrong < 0.45, "the cross-entropy did not lower c(wrong): {wrong}");
    assert!(with.points[1..].iter().all(|p| p.confidence_loss > 0.0));
}

/// The rollouts are searched in fixed parts on up to `UGR_THREADS` threads, so a run is the
/// same on one thread and on three.
#[test]
fn rollouts_on_several_threads_give_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sft = tmp.path().join("sft");
    sft_run(&sft);
    let run = |threads: &str| -> Vec<u8> {
        let out = tmp.path().join(format!("t{threads}"));
        let status = Command::new(env!("CARGO_BIN_EXE_ugr"))
            .env("UGR_THREADS", threads)
            .args([
                "train",
                "rl",
                "--from",
                sft.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--max-steps",
                "3",
                "--prompts-per-step",
                "9",
                "--group",
                "6",
                "--eval-every",
                "3",
                "--eval-rows",
                "20",
                "--calibration-rows",
                "20",
                "--lr",
                "1e-3",
            ])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    assert!(
        run("1") == run("3"),
        "the weights differ between 1 and 3 rollout threads"
    );
}

/// `ugr train rl` from `sft` into `out` on a budget of a few steps (4 steps of 8 prompts,
/// G 8, checks every 2 steps on 20 validation rows), with `extra` flags; returns its output.
fn short_rl(sft: &Path, out: &Path, extra: &[&str]) -> String {
    let (sft, out) = (sft.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec![
        "train",
        "rl",
        "--from",
        sft,
        "--out",
        out,
        "--max-steps",
        "4",
        "--prompts-per-step",
        "8",
        "--group",
        "8",
        "--eval-every",
        "2",
        "--eval-rows",
        "20",
        "--calibration-rows",
        "50",
    ];
    args.extend_from_slice(extra);
    ugr(&args)
}

/// `--rl-holdout N` keeps each user's last N training targets out of SFT and the RL stage
/// uses exactly those as its prompts.
#[test]
fn rl_holdout_splits_the_targets_and_rl_rolls_out_on_the_held_out_ones() {
    let ds = ugr_train::data::load(std::path::Path::new("builtin:synthetic"), &Default::default()).unwrap();
    let (kept, held) = train::rl_holdout(&ds.train, 2, 20);
    assert_eq!(kept.len(), ds.train.len());
    let mut expected = 0;
    for (k, s) in kept.iter().zip(&ds.train) {
        if s.targets() > 2 {
            expected += 2;
            assert_eq!(k.items[..], s.items[..s.items.len() - 2]);
            assert_eq!(k.targets(), s.targets() - 2);
        } else {
            assert_eq!(k.items, s.items);
        }
    }
    assert_eq!(held.len(), expected);
    for e in &held {
        let s = ds.train.iter().find(|s| s.user == e.user).unwrap();
        let t = s.items.len() - 2
            + held
                .iter()
                .filter(|h| h.user == e.user)
                .position(|h| h.target == e.target && h.history.len() == e.history.len())
                .unwrap();
        assert_eq!(e.target, s.items[t]);
        assert_eq!(e.history[..], s.items[t.saturating_sub(20)..t]);
    }

    ugr_train::configure_runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sft = tmp.path().join("sft");
    let args = SftArgs {
        epochs: 1,
        max_steps: Some(10),
        batch_size: 64,
        eval_rows: 50,
        rl_holdout: 2,
        ..SftArgs::default()
    };
    train::train_sft(&args, &tiny(&ds.catalog), &sft, false).unwrap();
    let out = tmp.path().join("rl");
    let text = short_rl(&sft, &out, &[]);
    let line = format!("prompts/epoch of {} (targets SFT held out)", held.len());
    assert!(text.contains(&line), "expected {line:?} in:\n{text}");
    let curves: Curves = read_json(&out.join("curves.json")).unwrap();
    for p in &curves.points {
        assert!(
            (0.0..=p.valid_hr10).contains(&p.valid_hr1),
            "HR@1 {} HR@10 {}",
            p.valid_hr1,
            p.valid_hr10
        );
    }

    // `ugr eval --prompts` scores the run on exactly those prompts, beside its test figures.
    ugr(&["eval", "--run", out.to_str().unwrap(), "--split", "test"]);
    ugr(&["eval", "--run", out.to_str().unwrap(), "--prompts"]);
    let prompts: serde_json::Value = read_json(&out.join("metrics-prompts.json")).unwrap();
    assert_eq!(prompts["split"], "prompts");
    assert_eq!(prompts["rows"].as_u64(), Some(held.len() as u64));
    let test: serde_json::Value = read_json(&out.join("metrics.json")).unwrap();
    assert_eq!(test["split"], "test");
    assert_eq!(test["rows"].as_u64(), Some(ds.test.len() as u64));
    let ranks: serde_json::Value = read_json(&out.join("ranks-prompts.json")).unwrap();
    assert_eq!(ranks["served"].as_array().map(Vec::len), Some(held.len()));

    // `ugr compare`: a run, and a group of runs (here the same run twice: the same figures).
    ugr(&["eval", "--run", sft.to_str().unwrap(), "--split", "test"]);
    let (base, run) = (sft.to_str().unwrap(), out.to_str().unwrap());
    let figures = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("HR@") || l.starts_with("NDCG@"))
            .map(str::to_owned)
            .collect()
    };
    let one = ugr(&["compare", "--base", base, run]);
    let two = ugr(&["compare", "--base", base, &format!("{run},{run}")]);
    assert!(
        !figures(&one).is_empty() && figures(&one) == figures(&two),
        "{one}\n{two}"
    );
    let on_prompts = ugr(&["compare", "--split", "prompts", "--base", run, run]);
    assert!(
        on_prompts.contains(&format!("prompts split, {} rows", held.len())),
        "{on_prompts}"
    );
}

/// Sampled rollouts: G draws per prompt that may repeat a SID; the curves record the
/// distinct SIDs per group (about G for beam rollouts) and the
/// validation top-10 coverage; the served policy cannot sample.
#[test]
fn sampled_rollouts_log_their_diversity() {
    ugr_train::configure_runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sft = tmp.path().join("sft");
    sft_run(&sft);
    let run = |name: &str, extra: &[&str]| -> Curves {
        let out = tmp.path().join(name);
        short_rl(&sft, &out, &[&["--confidence", "off"], extra].concat());
        read_json(&out.join("curves.json")).unwrap()
    };
    let beam = run("beam", &[]);
    let hot = run("hot", &["--rollouts", "sample", "--temperature", "2"]);
    let cold = run("cold", &["--rollouts", "sample", "--temperature", "0.05"]);
    assert!(hot.label.contains("+sample(T=2)"), "{}", hot.label);
    let unique = |c: &Curves| c.points.last().unwrap().unique_per_group;
    // Beams are distinct items; items sharing a SID (19 SIDs of the built-in catalog) count once.
    assert!(unique(&beam) > 7.0 && unique(&beam) <= 8.0, "{}", unique(&beam));
    assert!(unique(&hot) > 1.0 && unique(&hot) <= 8.0, "{}", unique(&hot));
    // A cold policy draws its few best SIDs again and again.
    assert!(
        unique(&cold) < unique(&hot),
        "{} vs {}",
        unique(&cold),
        unique(&hot)
    );
    for c in [&beam, &hot, &cold] {
        let p = c.points.last().unwrap();
        assert!(p.valid_coverage10 > 0.0 && p.valid_coverage10 <= 1.0 && p.valid_gini10 > 0.0);
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_ugr"))
        .args([
            "train",
            "rl",
            "--from",
            sft.to_str().unwrap(),
            "--out",
            tmp.path().join("x").to_str().unwrap(),
            "--rollouts",
            "sample",
            "--policy",
            "served",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--rollouts sample"));
}
