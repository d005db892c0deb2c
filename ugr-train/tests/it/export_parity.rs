//! Export parity on small models: the tract backend reproduces the candle model's logits
//! (max abs difference <= 1e-4) at every step, and the engine returns the same top-10 items in
//! the same order as the candle-backed beam search, for every model variant.

use candle_core::Device;
use ugr_core::onnx::{Engine, TractModel};
use ugr_core::{BeamSearch, Bundle, ItemId, SearchOptions, Sid, SidModel, Special, Step, TokenId};
use ugr_train::export::{ExportOptions, bundle};
use ugr_train::model::{CandleModel, HistoryEncoding, ModelConfig};
use ugr_train::train::{LoadedRun, RunInfo, SftArgs, new_model};

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
    item_head: bool,
) -> LoadedRun {
    let cfg = ModelConfig {
        trie_loss,
        confidence,
        sid_embeddings: if sid { ds.catalog.sid_count() + 1 } else { 0 },
        item_loss: if item_head { 1.0 } else { 0.0 },
        ..two_layer(&ds.catalog, history, 0.0)
    };
    let (model, varmap) = new_model(&cfg, 11, &Device::Cpu).unwrap();
    LoadedRun {
        info: RunInfo {
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

/// Drives both backends through prefill, every level and the confidence step with the same
/// rows and parents; returns the largest logit difference.
fn logit_parity(ds: &ugr_train::data::Dataset, run: &LoadedRun, tract: &TractModel) -> f32 {
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

#[test]
fn tract_matches_candle_for_every_variant() {
    let ds = data();
    for (history, trie_loss, sid, confidence, item_head) in [
        (HistoryEncoding::Item, false, false, false, false),
        (HistoryEncoding::Item, true, true, true, false),
        (HistoryEncoding::Token, false, true, false, false),
        (HistoryEncoding::Token, true, false, true, false),
        // the item head, fused at a fitted weight, with and without confidence
        (HistoryEncoding::Item, true, true, false, true),
        (HistoryEncoding::Token, false, true, true, true),
    ] {
        let run = run(&ds, history, trie_loss, sid, confidence, item_head);
        let item_weight = item_head.then_some(0.7);
        let export = ExportOptions {
            item_weight,
            ..ExportOptions::default()
        };
        let b = bundle(&run, &ds, None, export).unwrap();
        let bytes = b.to_bytes().unwrap();
        let b = Bundle::from_bytes(&bytes).unwrap();
        let catalog = std::sync::Arc::new(b.catalog.clone());
        let tract = TractModel::new(b.model.as_ref().unwrap(), catalog).unwrap();
        let diff = logit_parity(&ds, &run, &tract);
        assert!(
            diff <= 1e-4,
            "{history:?} trie {trie_loss} sid {sid} conf {confidence}: max |candle - tract| = {diff}"
        );

        // Same top-10 through the engine: the same order wherever the two backends' scores are
        // farther apart than float noise (an untrained model has many near-ties, which may swap).
        let engine = Engine::from_bytes(&bytes).unwrap();
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
                assert_eq!(a.item_log_prob.is_some(), item_head);
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

#[test]
fn f16_weights_stay_close() {
    let ds = data();
    let run = run(&ds, HistoryEncoding::Item, false, true, false, true);
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
    let b = Bundle::from_bytes(&f16b).unwrap();
    let tract = TractModel::new(b.model.as_ref().unwrap(), std::sync::Arc::new(b.catalog.clone())).unwrap();
    let diff = logit_parity(&ds, &run, &tract);
    assert!(diff > 0.0 && diff < 1e-2, "f16 max logit difference {diff}");
}

#[test]
fn corrupt_graphs_are_typed_errors() {
    let ds = data();
    let run = run(&ds, HistoryEncoding::Item, false, false, false, false);
    let mut b = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    let m = b.model.as_mut().unwrap();
    m.graphs[0].bytes.truncate(100);
    assert!(Engine::from_bytes(&b.to_bytes().unwrap()).is_err());
    let mut b = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    b.model.as_mut().unwrap().config_json = "{}".into();
    assert!(Engine::from_bytes(&b.to_bytes().unwrap()).is_err());
    let mut b = bundle(&run, &ds, None, ExportOptions::default()).unwrap();
    b.model.as_mut().unwrap().graphs.pop();
    assert!(Engine::from_bytes(&b.to_bytes().unwrap()).is_err());
}
