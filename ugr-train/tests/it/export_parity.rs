//! The backend suite, instantiated for every engine backend (`backend_suite!` below: tract and
//! native; onnxruntime is compared in `ugr bench engine --ort-dylib`, where it is installed):
//! on small models, each reproduces the candle model's logits (max abs difference <= 1e-4) at
//! every step, the engine returns the same top-10 items in the same order as the candle-backed
//! beam search for every model variant, a batch equals single calls, f16-stored weights stay
//! close, and corrupt graphs or weights are typed errors.

use candle_core::Device;
use ugr_core::native::{WEIGHTS_BLOB, WeightFile};
use ugr_core::{
    Backend, BackendChoice, BeamSearch, Engine, ItemId, SearchOptions, Sid, SidModel, Special, Step, TokenId,
};
use ugr_train::export::{ExportOptions, bundle};
use ugr_train::model::new_model;
use ugr_train::model::{CandleModel, HistoryEncoding, ItemOutput, ModelConfig};
use ugr_train::run::{LoadedRun, RunInfo};
use ugr_train::train::SftArgs;

use crate::common::{synthetic, two_layer};

fn data() -> ugr_train::data::Dataset {
    synthetic(150, 80, 8)
}

fn run(
    ds: &ugr_train::data::Dataset,
    history: HistoryEncoding,
    trie_loss: bool,
    sid: bool,
    confidence: bool,
    item_head: Option<ItemOutput>,
) -> LoadedRun {
    let cfg = ModelConfig {
        trie_loss,
        confidence,
        sid_embeddings: if sid { ds.catalog.sid_count() + 1 } else { 0 },
        item_loss: if item_head.is_some() { 1.0 } else { 0.0 },
        item_output: item_head.unwrap_or_default(),
        ..two_layer(&ds.catalog, history, 0.0)
    };
    let (model, varmap) = new_model(&cfg, 11, &Device::Cpu).unwrap();
    if let Some(bias) = varmap.data().lock().unwrap().get("item_out.bias") {
        // Initialised to zeros: give it values so that parity sees whether export carries it.
        let n = bias.elem_count();
        let values: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6).collect();
        bias.set(&candle_core::Tensor::from_vec(values, n, &Device::Cpu).unwrap())
            .unwrap();
    }
    LoadedRun {
        info: RunInfo {
            format: ugr_train::run::RUN_FORMAT,
            sft: SftArgs::default(),
            model: cfg,
            rl: None,
        },
        model,
        varmap,
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Opens `bytes` on `choice` and checks that this backend runs it.
fn open(bytes: &[u8], choice: BackendChoice) -> Engine {
    let engine = Engine::from_bytes_with(bytes, choice).unwrap();
    let want = match choice {
        BackendChoice::Native => Backend::Native,
        _ => Backend::Tract,
    };
    assert_eq!(engine.backend(), want);
    engine
}

/// Drives candle and a backend through prefill, every level and the confidence step with the
/// same rows and parents; returns the largest logit difference.
fn logit_parity<M: SidModel>(ds: &ugr_train::data::Dataset, run: &LoadedRun, tract: &M) -> f32 {
    let candle = CandleModel::new(&run.model, &ds.catalog);
    let vocab = ds.catalog.vocab();
    let hists: Vec<Vec<Sid>> = ds
        .test
        .iter()
        .take(5)
        .map(|e| e.history.iter().map(|&i| ds.catalog.sid_of(i).unwrap()).collect())
        .chain([vec![]])
        .collect();
    let refs: Vec<&[Sid]> = hists.iter().map(Vec::as_slice).collect();
    let (mut cc, mut tc) = (candle.new_cache(), tract.new_cache());
    candle.prefill(&mut cc, &refs, vocab.level_tokens(0)).unwrap();
    tract.prefill(&mut tc, &refs, vocab.level_tokens(0)).unwrap();
    let mut worst = max_diff(candle.logits(&cc), tract.logits(&tc));
    assert_eq!(
        candle.item_logits(&cc).is_some(),
        run.model.has_item_head(),
        "candle's item head"
    );
    assert_eq!(
        candle.item_logits(&cc).is_some(),
        tract.item_logits(&tc).is_some(),
        "the exported prefill's item_logits"
    );
    if let (Some(a), Some(b)) = (candle.item_logits(&cc), tract.item_logits(&tc)) {
        assert_eq!(a.len(), refs.len() * ds.catalog.sid_count());
        worst = worst.max(max_diff(a, b));
    }
    let mut rows = refs.len();
    for level in 1..vocab.levels() {
        // Every row spawns two children (a re-ordering with duplicates).
        let parents: Vec<u32> = (0..rows as u32).rev().flat_map(|p| [p, p]).collect();
        let tokens: Vec<TokenId> = parents
            .iter()
            .enumerate()
            .map(|(i, _)| vocab.code_token(level - 1, (i % 3) as u16))
            .collect();
        let step = Step {
            parents: &parents,
            tokens: &tokens,
            tokens_per_row: 1,
            logits_for: vocab.level_tokens(level),
        };
        candle.step(&mut cc, &step).unwrap();
        tract.step(&mut tc, &step).unwrap();
        worst = worst.max(max_diff(candle.logits(&cc), tract.logits(&tc)));
        rows = parents.len();
    }
    if run.info.model.confidence {
        let parents: Vec<u32> = (0..rows as u32).collect();
        let tokens: Vec<TokenId> = parents
            .iter()
            .flat_map(|_| [vocab.code_token(vocab.levels() - 1, 1), Special::ConfQ.token()])
            .collect();
        let lo = Special::CLow.token().as_u32();
        let step = Step {
            parents: &parents,
            tokens: &tokens,
            tokens_per_row: 2,
            logits_for: lo..lo + 2,
        };
        candle.step(&mut cc, &step).unwrap();
        tract.step(&mut tc, &step).unwrap();
        worst = worst.max(max_diff(candle.logits(&cc), tract.logits(&tc)));
    }
    worst
}

fn matches_candle_for_every_variant(choice: BackendChoice) {
    let ds = data();
    for (history, trie_loss, sid, confidence, item_head) in [
        (HistoryEncoding::Item, false, false, false, None),
        (HistoryEncoding::Item, true, true, true, None),
        (HistoryEncoding::Token, false, true, false, None),
        (HistoryEncoding::Token, true, false, true, None),
        // the item head, fused at a fitted weight, with and without confidence
        (HistoryEncoding::Item, true, true, false, Some(ItemOutput::Untied)),
        (HistoryEncoding::Token, false, true, true, Some(ItemOutput::Tied)),
    ] {
        let run = run(&ds, history, trie_loss, sid, confidence, item_head);
        let item_weight = item_head.map(|_| 0.7);
        let export = ExportOptions {
            item_weight,
            ..ExportOptions::default()
        };
        let b = bundle(&run, &ds, None, export).unwrap();
        let bytes = b.to_bytes().unwrap();
        let engine = open(&bytes, choice);
        let diff = logit_parity(&ds, &run, engine.model());
        assert!(
            diff <= 1e-4,
            "{choice:?} {history:?} trie {trie_loss} sid {sid} conf {confidence}: max |candle - engine| = {diff}"
        );

        // Same top-10 through the engine: the same order wherever the two backends' scores are
        // farther apart than float noise (an untrained model has many near-ties, which may swap).
        engine.warm(20).unwrap();
        let opts = SearchOptions {
            beam: 20,
            top_k: 10,
            normalization: run.info.model.normalization(),
            ..SearchOptions::default()
        };
        let candle = CandleModel::new(&run.model, &ds.catalog).with_item_weight(item_weight);
        assert_eq!(engine.model().item_weight(), item_weight);
        let histories: Vec<&[ItemId]> = ds.test.iter().map(|e| e.history.as_slice()).collect();
        let want = BeamSearch::new(&ds.catalog)
            .run(&candle, &histories, &opts)
            .unwrap();
        let got = engine.recommend_batch(&histories, &opts).unwrap();
        let mut identical = 0;
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.items.len(), g.items.len());
            identical += usize::from(w.items.iter().map(|r| r.item).eq(g.items.iter().map(|r| r.item)));
            for (i, (a, b)) in w.items.iter().zip(&g.items).enumerate() {
                assert!(
                    (a.score - b.score).abs() < 1e-4,
                    "rank {i}: scores {} vs {}",
                    a.score,
                    b.score
                );
                assert_eq!(a.learned_confidence.is_some(), b.learned_confidence.is_some());
                assert_eq!(a.item_log_prob.is_some(), item_head.is_some());
                assert_eq!(a.item_log_prob.is_some(), b.item_log_prob.is_some());
                if a.item != b.item {
                    // Only a near-tie may swap: tract's item must sit within noise of candle's
                    // score at this rank (or just past candle's cut-off).
                    let theirs = w
                        .items
                        .iter()
                        .find(|r| r.item == b.item)
                        .map_or(w.items.last().unwrap().score, |r| r.score);
                    assert!(
                        (theirs - a.score).abs() < 1e-4,
                        "rank {i}: {:?} vs {:?} is not a tie",
                        a.item,
                        b.item
                    );
                }
            }
        }
        assert!(
            identical * 10 >= want.len() * 9,
            "only {identical}/{} rows in identical order",
            want.len()
        );
        // One history at a time gives the batch's answer (the warmed plan serves R = 20).
        let single = engine.recommend(histories[0], &opts).unwrap();
        assert_eq!(single.items, got[0].items);
    }
}

fn f16_weights_stay_close(choice: BackendChoice) {
    let ds = data();
    let run = run(
        &ds,
        HistoryEncoding::Item,
        false,
        true,
        false,
        Some(ItemOutput::Untied),
    );
    let f32b = bundle(&run, &ds, None, ExportOptions::default())
        .unwrap()
        .to_bytes()
        .unwrap();
    let f16b = bundle(
        &run,
        &ds,
        None,
        ExportOptions {
            f16: true,
            ..ExportOptions::default()
        },
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    assert!(
        f16b.len() < f32b.len() * 7 / 10,
        "f16 {} vs f32 {}",
        f16b.len(),
        f32b.len()
    );
    let engine = open(&f16b, choice);
    let diff = logit_parity(&ds, &run, engine.model());
    assert!(
        diff > 0.0 && diff < 1e-2,
        "{choice:?}: f16 max logit difference {diff}"
    );
}

/// Broken ONNX graphs are typed errors on tract (the native backend does not read them).
fn corrupt_graphs_are_typed_errors() {
    let ds = data();
    let run = run(&ds, HistoryEncoding::Item, false, false, false, None);
    let tract = |b: &ugr_core::Bundle| Engine::from_bytes_with(&b.to_bytes().unwrap(), BackendChoice::Tract);
    let mut b = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    let m = b.model.as_mut().unwrap();
    m.graphs[0].bytes.truncate(100);
    assert!(tract(&b).is_err());
    let mut b = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    b.model.as_mut().unwrap().config_json = "{}".into();
    assert!(tract(&b).is_err());
    assert!(Engine::from_bytes(&b.to_bytes().unwrap()).is_err());
    let mut b = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    b.model.as_mut().unwrap().graphs.retain(|g| g.name != "step_1");
    assert!(tract(&b).is_err());
}

/// A weight section that is present but broken is a typed error naming what differs, on the
/// native backend and on the automatic choice (no silent fallback to tract); a model without
/// one, or of another architecture, falls back to tract.
fn corrupt_weights_are_typed_errors() {
    let ds = data();
    let run = run(
        &ds,
        HistoryEncoding::Item,
        true,
        true,
        false,
        Some(ItemOutput::Untied),
    );
    let good = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    let with_weights = |edit: &dyn Fn(&mut WeightFile)| -> Vec<u8> {
        let mut b = good.clone();
        let blob = b
            .model
            .as_mut()
            .unwrap()
            .graphs
            .iter_mut()
            .find(|g| g.name == WEIGHTS_BLOB)
            .unwrap();
        let mut file = WeightFile::from_bytes(&blob.bytes).unwrap();
        edit(&mut file);
        blob.bytes = file.to_bytes().unwrap();
        b.to_bytes().unwrap()
    };
    let error = |bytes: &[u8], choice| {
        Engine::from_bytes_with(bytes, choice)
            .err()
            .unwrap_or_else(|| panic!("{choice:?} opened a broken weight section"))
            .to_string()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with_weights(&|f| f.tensors.retain(|t| t.name != "head.layers.1.ff.up.weight")),
            "head.layers.1.ff.up.weight",
        ),
        (
            with_weights(&|f| {
                let t = f.tensors.iter_mut().find(|t| t.name == "enc.pos").unwrap();
                t.dims[0] -= 1;
            }),
            "enc.pos",
        ),
        (
            with_weights(&|f| {
                let t = f.tensors.iter_mut().find(|t| t.name == "item_out.bias").unwrap();
                t.data[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
            }),
            "item_out.bias",
        ),
        (
            with_weights(&|f| {
                let t = f.tensors.iter_mut().find(|t| t.name == "out_bias").unwrap();
                t.data.pop();
            }),
            "does not match its shape",
        ),
    ];
    for (bytes, names) in &cases {
        for choice in [BackendChoice::Native, BackendChoice::Auto] {
            let e = error(bytes, choice);
            assert!(e.contains(names), "{choice:?}: {e} should name {names}");
        }
    }
    let mut b = good.clone();
    let blob = b
        .model
        .as_mut()
        .unwrap()
        .graphs
        .iter_mut()
        .find(|g| g.name == WEIGHTS_BLOB)
        .unwrap();
    blob.bytes.truncate(blob.bytes.len() / 2);
    let bytes = b.to_bytes().unwrap();
    assert!(error(&bytes, BackendChoice::Native).contains("weight section"));
    assert!(error(&bytes, BackendChoice::Auto).contains("weight section"));

    // Another kind of model: no weight section, or another architecture -> tract on Auto.
    let mut old = good.clone();
    old.model
        .as_mut()
        .unwrap()
        .graphs
        .retain(|g| g.name != WEIGHTS_BLOB);
    let old = old.to_bytes().unwrap();
    assert!(error(&old, BackendChoice::Native).contains("no weight section"));
    assert_eq!(Engine::from_bytes(&old).unwrap().backend(), Backend::Tract);
    let newer = with_weights(&|f| f.format = "ugr-native-99".into());
    assert!(error(&newer, BackendChoice::Native).contains("ugr-native-99"));
    assert_eq!(Engine::from_bytes(&newer).unwrap().backend(), Backend::Tract);
    assert_eq!(
        Engine::from_bytes(&good.to_bytes().unwrap()).unwrap().backend(),
        Backend::Native
    );
}

/// The suite above, once per backend (as candle's `test_device!` does per device).
macro_rules! backend_suite {
    ($($name:ident => $choice:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[test]
            fn matches_candle_for_every_variant() {
                super::matches_candle_for_every_variant($choice);
            }

            #[test]
            fn f16_weights_stay_close() {
                super::f16_weights_stay_close($choice);
            }
        }
    )*};
}

backend_suite!(tract => BackendChoice::Tract, native => BackendChoice::Native);

#[test]
fn corrupt_graphs_and_weights_are_typed_errors() {
    corrupt_graphs_are_typed_errors();
    corrupt_weights_are_typed_errors();
}

/// `ugr bench engine` times the model through `Timed`: the search it times must be the
/// served one (the item head's logits and fitted weight forwarded, so fusion runs).
#[test]
fn the_timed_model_runs_the_served_search() {
    use ugr_core::{BeamSearch, Engine, ItemId, SearchOptions, SidModel};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    let engine = Engine::open(&path).unwrap();
    assert!(
        engine.model().item_weight().is_some(),
        "the tiny model has a fitted item weight"
    );
    let timed = ugr_train::bench_engine::Timed::new(engine.model());
    assert_eq!(timed.item_weight(), engine.model().item_weight());
    let catalog = engine.catalog();
    let history: Vec<ItemId> = catalog.item_ids()[..5].to_vec();
    let opts = SearchOptions {
        normalization: engine.model().normalization(),
        ..SearchOptions::default()
    };
    let plain = BeamSearch::new(&catalog)
        .run(engine.model(), &[&history], &opts)
        .unwrap();
    let through = BeamSearch::new(&catalog).run(&timed, &[&history], &opts).unwrap();
    assert_eq!(plain[0].items, through[0].items);
    assert_eq!(plain[0].stats.model_rows, through[0].stats.model_rows);
    assert!(timed.seconds() > 0.0);
}
