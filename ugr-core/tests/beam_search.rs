//! Properties of the beam search on random catalogs and random deterministic models.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use ugr_core::model::testing::HashModel;
use ugr_core::{
    BeamSearch, Calibration, Catalog, Error, ItemFusion, ItemId, Normalization, Pruning, RankBy,
    Recommendations, SearchOptions, Sid,
};

fn history_strategy(catalog: &Catalog) -> impl Strategy<Value = Vec<ItemId>> + use<> {
    let ids = catalog.item_ids().to_vec();
    proptest::collection::vec(proptest::sample::select(ids), 0..6)
}

fn case() -> impl Strategy<Value = (Catalog, Vec<ItemId>, u64, usize, bool, Normalization)> {
    catalog_strategy().prop_flat_map(|c| {
        let n = c.len();
        let h = history_strategy(&c);
        let norm = prop_oneof![
            Just(Normalization::Level),
            Just(Normalization::FullVocab),
            Just(Normalization::Trie)
        ];
        (Just(c), h, any::<u64>(), 1..=n + 3, any::<bool>(), norm)
    })
}

fn run(
    catalog: &Catalog,
    model: &HashModel,
    histories: &[&[ItemId]],
    opts: &SearchOptions,
) -> Vec<Recommendations> {
    BeamSearch::new(catalog).run(model, histories, opts).unwrap()
}

proptest! {
    #![proptest_config(common::proptest_config(256))]

    /// With B >= number of SIDs the search is exhaustive: it returns exactly the top K of
    /// the full ranking, same items, same order, same log-probs (bit for bit).
    #[test]
    fn wide_beam_equals_exhaustive_ranking((catalog, history, seed, k, exclude, norm) in case(), coarse: bool) {
        // Coarse logits make exact score ties frequent: they must break by SID order.
        let model = HashModel::new(*catalog.vocab(), seed).with_coarse_logits(coarse);
        let opts = SearchOptions {
            beam: catalog.sid_count(),
            top_k: k,
            exclude_history: exclude,
            normalization: norm,
            ..SearchOptions::default()
        };
        let got = &run(&catalog, &model, &[&history], &opts)[0];
        let excluded: &[ItemId] = if exclude { &history } else { &[] };
        let want = exhaustive(&catalog, &model, &history, excluded, norm);
        let want = &want[..want.len().min(k)];
        let got_items: Vec<(ItemId, f32)> = got.items.iter().map(|r| (r.item, r.log_prob)).collect();
        prop_assert_eq!(got_items, want.to_vec());
        for r in &got.items {
            prop_assert_eq!(r.score, r.log_prob / catalog.vocab().levels() as f32);
        }
    }

    /// Item fusion with B >= number of SIDs is the exhaustive fused ranking, bit for bit.
    #[test]
    fn wide_beam_fusion_equals_exhaustive_fused_ranking(
        (catalog, history, seed, k, exclude, norm) in case(),
        coarse: bool,
        w in prop_oneof![Just(0.0f32), 0.0f32..3.0],
    ) {
        let model = HashModel::new(*catalog.vocab(), seed)
            .with_coarse_logits(coarse)
            .with_item_head(catalog.sid_count(), Some(w));
        let opts = SearchOptions {
            beam: catalog.sid_count(),
            top_k: k,
            exclude_history: exclude,
            normalization: norm,
            ..SearchOptions::default()
        };
        let got = &run(&catalog, &model, &[&history], &opts)[0];
        let excluded: &[ItemId] = if exclude { &history } else { &[] };
        let want = exhaustive_fused(&catalog, &model, &history, excluded, norm, w);
        let want = &want[..want.len().min(k)];
        let got_items: Vec<(ItemId, f32)> = got.items.iter().map(|r| (r.item, r.score)).collect();
        prop_assert_eq!(got_items, want.to_vec());
        prop_assert!(got.items.iter().all(|r| r.item_log_prob.is_some()));
    }

    /// Whatever B: the item head's best SID is decoded (a huge weight puts it first), the
    /// generative log-prob stays exact, and `ItemFusion::Off` is the plain generative search.
    #[test]
    fn fusion_follows_the_item_heads_best_sids(
        (catalog, history, seed, k, exclude, norm) in case(),
        beam in 1usize..4,
    ) {
        let plain = HashModel::new(*catalog.vocab(), seed);
        let model = plain.clone().with_item_head(catalog.sid_count(), Some(1e4));
        let opts = SearchOptions {
            beam,
            top_k: k,
            exclude_history: exclude,
            normalization: norm,
            ..SearchOptions::default()
        };
        let off = SearchOptions { item_fusion: ItemFusion::Off, ..opts };
        prop_assert_eq!(run(&catalog, &model, &[&history], &off), run(&catalog, &plain, &[&history], &opts));
        let got = &run(&catalog, &model, &[&history], &opts)[0];
        let excluded: &[ItemId] = if exclude { &history } else { &[] };
        // The best SID of the item head that still has a non-excluded item.
        let hist: Vec<Sid> = history.iter().map(|&i| catalog.sid_of(i).unwrap()).collect();
        let best = (0..catalog.sid_count() as u32)
            .filter(|&s| catalog.items_of(s).iter().any(|i| !excluded.contains(i)))
            .map(|s| (model.item_logit_of(&hist, s), s))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let levels = catalog.vocab().levels() as f32;
        // The item head's best SID always reaches the last level, so nothing it beats by the
        // fused score can come first. (Comparing SIDs alone would fail on near-ties of the item
        // head, where a gap of 1e-4 times the weight is smaller than the generative gap.)
        if let (Some((best_logit, best)), Some(first)) = (best, got.items.first()) {
            let lse = model.item_logit_of(&hist, first.sid_index) - first.item_log_prob.unwrap();
            let best_lp = common::sid_log_prob(&catalog, &model, &hist, best, norm);
            let best_fused = best_lp / levels + 1e4 * (best_logit - lse);
            // f32 rounding of `w * (z - lse)`: a few ulps of the logits, times w.
            let tol = 1e4 * 8.0 * f32::EPSILON * best_logit.abs().max(lse.abs()).max(1.0) + 1e-3;
            prop_assert!(
                first.score >= best_fused - tol,
                "first {} fused {} < the item head's best {} fused {}", first.sid_index, first.score, best, best_fused
            );
        }
        for r in &got.items {
            let lp = common::sid_log_prob(&catalog, &model, &hist, r.sid_index, norm);
            prop_assert_eq!(r.log_prob, lp);
            prop_assert_eq!(r.score, lp / levels + 1e4 * r.item_log_prob.unwrap());
        }
    }

    /// Whatever B, K, pruning and exclusion: results are catalog items, distinct, sorted,
    /// never from the history when excluded, and K of them whenever the catalog has K.
    #[test]
    fn results_are_valid_distinct_sorted_and_complete(
        (catalog, history, seed, k, exclude, _norm) in case(),
        beam in 1usize..12,
        prune in 0u8..3,
        margin in 0.0f32..3.0,
    ) {
        let model = HashModel::new(*catalog.vocab(), seed);
        let pruning = match prune {
            0 => Pruning::Off,
            1 => Pruning::Fixed { margin },
            _ => Pruning::Adaptive { min_margin: margin / 4.0, max_margin: margin, levels: 2 },
        };
        let opts = SearchOptions { beam, top_k: k, exclude_history: exclude, pruning, ..SearchOptions::default() };
        let got = &run(&catalog, &model, &[&history], &opts)[0];
        let mut seen = std::collections::HashSet::new();
        for r in &got.items {
            prop_assert!(catalog.sid_of(r.item).is_ok());
            prop_assert!(seen.insert(r.item), "item {} repeated", r.item);
            prop_assert_eq!(catalog.sid_index_of(r.item).unwrap(), r.sid_index);
            prop_assert!(!(exclude && history.contains(&r.item)));
        }
        prop_assert!(got.items.windows(2).all(|w| w[0].score >= w[1].score));
        let mut distinct_history = history.clone();
        distinct_history.sort();
        distinct_history.dedup();
        let live = catalog.len() - if exclude { distinct_history.len() } else { 0 };
        prop_assert_eq!(got.items.len(), k.min(live));
        let rows: u32 = 1 + got.stats.beams[..catalog.vocab().levels() - 1].iter().sum::<u32>();
        prop_assert_eq!(got.stats.model_rows, rows);
    }

    /// A margin too large to drop anything gives exactly plain beam search.
    #[test]
    fn pruning_that_cannot_fire_equals_plain_search(
        (catalog, history, seed, k, exclude, _norm) in case(),
        beam in 1usize..12,
    ) {
        let model = HashModel::new(*catalog.vocab(), seed);
        let plain = SearchOptions { beam, top_k: k, exclude_history: exclude, ..SearchOptions::default() };
        let a = &run(&catalog, &model, &[&history], &plain)[0];
        for pruning in [
            Pruning::Fixed { margin: f32::MAX },
            Pruning::Adaptive { min_margin: 1e30, max_margin: f32::MAX, levels: 3 },
        ] {
            let b = &run(&catalog, &model, &[&history], &SearchOptions { pruning, ..plain })[0];
            prop_assert_eq!(&a.items, &b.items);
            prop_assert_eq!(a.stats.model_rows, b.stats.model_rows);
            prop_assert_eq!(a.stats.beams, b.stats.beams);
        }
    }

    /// Pruning never costs more rows than plain search, and still returns as many items.
    #[test]
    fn pruning_saves_rows((catalog, history, seed, k, _exclude, _norm) in case(), beam in 1usize..12) {
        let model = HashModel::new(*catalog.vocab(), seed);
        let plain = SearchOptions { beam, top_k: k, ..SearchOptions::default() };
        let a = &run(&catalog, &model, &[&history], &plain)[0];
        let b = &run(&catalog, &model, &[&history], &SearchOptions { pruning: Pruning::Fixed { margin: 0.0 }, ..plain })[0];
        prop_assert!(b.stats.model_rows <= a.stats.model_rows);
        prop_assert_eq!(b.items.len(), a.items.len());
    }

    /// Several users in one call give exactly what they give one by one.
    #[test]
    fn batching_is_invisible(
        (catalog, history, seed, k, exclude, _norm) in case(),
        other in proptest::collection::vec(0usize..1000, 0..4),
        beam in 1usize..8,
    ) {
        let mut model = HashModel::new(*catalog.vocab(), seed).with_confidence(seed % 2 == 0);
        if seed % 3 == 0 {
            model = model.with_item_head(catalog.sid_count(), Some(0.5));
        }
        let ids = catalog.item_ids();
        let second: Vec<ItemId> = other.iter().map(|&i| ids[i % ids.len()]).collect();
        let opts = SearchOptions {
            beam,
            top_k: k,
            exclude_history: exclude,
            pruning: Pruning::Adaptive { min_margin: 0.5, max_margin: 3.0, levels: 1 },
            ..SearchOptions::default()
        };
        let histories: [&[ItemId]; 3] = [&history, &second, &[]];
        let batched = run(&catalog, &model, &histories, &opts);
        let mut search = BeamSearch::new(&catalog);
        for (h, b) in histories.iter().zip(&batched) {
            let single = search.run(&model, &[h], &opts).unwrap();
            prop_assert_eq!(&single[0], b);
        }
    }

    /// The learned confidence is sigmoid(z_high - z_low) after SID + CONF_Q; the posterior
    /// is the softmax of the returned scores; calibration and abstention apply to it.
    #[test]
    fn confidence_fields((catalog, history, seed, k, _exclude, _norm) in case(), threshold in 0.0f32..1.0) {
        let model = HashModel::new(*catalog.vocab(), seed).with_confidence(true);
        let opts = SearchOptions { beam: 8, top_k: k, ..SearchOptions::default() };
        let got = &run(&catalog, &model, &[&history], &opts)[0];
        let hist: Vec<Sid> = history.iter().map(|&i| catalog.sid_of(i).unwrap()).collect();
        let total: f32 = got.items.iter().map(|r| r.score.exp()).sum();
        let mut distinct = std::collections::HashSet::new();
        for r in &got.items {
            distinct.insert(r.sid_index);
            let want = sid_confidence(&catalog, &model, &hist, r.sid_index);
            let c = r.learned_confidence.unwrap();
            prop_assert!((c - want).abs() < 1e-5, "{} vs {}", c, want);
            prop_assert_eq!(r.confidence, c); // no calibration map: raw
            prop_assert!((r.posterior - r.score.exp() / total).abs() < 1e-4);
            prop_assert!((r.hybrid - (r.score.exp() + 0.5 * c)).abs() < 1e-5);
            prop_assert!((r.sequence_prob - r.log_prob.exp()).abs() < 1e-6);
        }
        prop_assert_eq!(got.stats.confidence_rows as usize, distinct.len());

        // Calibration map + abstention + hybrid ranking.
        let cal = Calibration::isotonic(vec![0.0, 1.0], vec![0.0, 1.0]).unwrap();
        let opts2 = SearchOptions { min_confidence: Some(threshold), rank_by: RankBy::Hybrid, ..opts };
        let kept = &BeamSearch::new(&catalog).with_calibration(Some(&cal)).run(&model, &[&history], &opts2).unwrap()[0];
        prop_assert!(kept.items.iter().all(|r| r.confidence >= threshold));
        prop_assert_eq!(kept.items.len(), got.items.iter().filter(|r| r.confidence >= threshold).count());
        prop_assert!(kept.items.windows(2).all(|w| w[0].hybrid >= w[1].hybrid));
    }

    /// `posterior` is the softmax of the scores of the (up to) K items the search ranked,
    /// taken before `min_confidence` drops any: without abstention the returned posteriors
    /// sum to 1; with it, each returned item keeps the posterior it has without abstention
    /// (so they sum to at most 1), whatever the ranking key, fusion, calibration or pruning.
    #[test]
    fn posterior_sums_over_the_ranked_items_before_abstention(
        (catalog, history, seed, k, exclude, norm) in case(),
        threshold in prop_oneof![Just(None), (0.0f32..1.0).prop_map(Some)],
        hybrid: bool,
        learned: bool,
        fused: bool,
        calibrated: bool,
        beam in 1usize..10,
    ) {
        let mut model = HashModel::new(*catalog.vocab(), seed).with_confidence(learned);
        if fused {
            model = model.with_item_head(catalog.sid_count(), Some(1.0));
        }
        let cal = Calibration::isotonic(vec![0.0, 0.3, 1.0], vec![0.0, 0.5, 1.0]).unwrap();
        let mut search = BeamSearch::new(&catalog).with_calibration(calibrated.then_some(&cal));
        let base = SearchOptions {
            beam,
            top_k: k,
            exclude_history: exclude,
            normalization: norm,
            rank_by: if hybrid { RankBy::Hybrid } else { RankBy::Score },
            ..SearchOptions::default()
        };
        let all = &search.run(&model, &[&history], &base).unwrap()[0];
        if !all.items.is_empty() {
            let total: f32 = all.items.iter().map(|r| r.posterior).sum();
            prop_assert!((total - 1.0).abs() < 1e-4, "posteriors sum to {}", total);
        }
        let opts = SearchOptions { min_confidence: threshold, ..base };
        let kept = &search.run(&model, &[&history], &opts).unwrap()[0];
        for r in &kept.items {
            let same = all.items.iter().find(|a| a.item == r.item);
            prop_assert_eq!(same.map(|a| a.posterior), Some(r.posterior));
        }
        let total: f32 = kept.items.iter().map(|r| r.posterior).sum();
        prop_assert!(total <= 1.0 + 1e-4);
    }
}

#[test]
fn bad_requests_give_typed_errors() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let catalog = catalog_strategy().new_tree(&mut runner).unwrap().current();
    let model = HashModel::new(*catalog.vocab(), 1);
    let mut search = BeamSearch::new(&catalog);
    let unknown = ItemId::new(5000);
    assert!(matches!(
        search.run(&model, &[&[unknown]], &SearchOptions::default()),
        Err(Error::UnknownItem(i)) if i == unknown
    ));
    for opts in [
        SearchOptions {
            top_k: 0,
            ..SearchOptions::default()
        },
        SearchOptions {
            beam: 0,
            ..SearchOptions::default()
        },
        SearchOptions {
            beam: 1 << 20,
            ..SearchOptions::default()
        },
        SearchOptions {
            pruning: Pruning::Fixed { margin: f32::NAN },
            ..SearchOptions::default()
        },
        SearchOptions {
            min_confidence: Some(1.5),
            ..SearchOptions::default()
        },
        SearchOptions {
            item_fusion: ItemFusion::Weight(f32::NAN),
            ..SearchOptions::default()
        },
        SearchOptions {
            item_fusion: ItemFusion::Weight(-1.0),
            ..SearchOptions::default()
        },
        // a weight for a model without an item head
        SearchOptions {
            item_fusion: ItemFusion::Weight(1.0),
            ..SearchOptions::default()
        },
    ] {
        assert!(
            matches!(
                search.run(&model, &[&[]], &opts),
                Err(Error::InvalidOption { .. })
            ),
            "{opts:?}"
        );
    }
    // No request, no work; K above the catalog size returns the whole catalog.
    assert!(
        search
            .run(&model, &[], &SearchOptions::default())
            .unwrap()
            .is_empty()
    );
    let all = search
        .run(
            &model,
            &[&[]],
            &SearchOptions {
                top_k: catalog.len() + 10,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(all[0].items.len(), catalog.len());
}

/// A model that misbehaves: wrong logits length, NaN, or a backend error.
#[test]
fn misbehaving_models_give_typed_errors() {
    use std::ops::Range;
    use ugr_core::{SidModel, Step};

    #[derive(Debug, thiserror::Error)]
    #[error("backend down")]
    struct Down;

    struct Bad(u8);
    impl SidModel for Bad {
        type Cache = Vec<f32>;
        type Error = Down;
        fn new_cache(&self) -> Vec<f32> {
            Vec::new()
        }
        fn prefill(&self, c: &mut Vec<f32>, h: &[&[Sid]], r: Range<u32>) -> Result<(), Down> {
            let w = (r.end - r.start) as usize;
            *c = match self.0 {
                0 => vec![0.0; h.len() * w + 1],
                1 => vec![f32::NAN; h.len() * w],
                2 => vec![f32::NEG_INFINITY; h.len() * w],
                _ => return Err(Down),
            };
            Ok(())
        }
        fn step(&self, _: &mut Vec<f32>, _: &Step<'_>) -> Result<(), Down> {
            Err(Down)
        }
        fn logits<'a>(&'a self, c: &'a Vec<f32>) -> &'a [f32] {
            c
        }
    }
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let catalog = catalog_strategy().new_tree(&mut runner).unwrap().current();
    let mut search = BeamSearch::new(&catalog);
    let opts = SearchOptions::default();
    assert!(matches!(
        search.run(&Bad(0), &[&[]], &opts),
        Err(Error::ModelOutput { .. })
    ));
    assert!(matches!(
        search.run(&Bad(1), &[&[]], &opts),
        Err(Error::NonFiniteLogits { .. })
    ));
    assert!(matches!(
        search.run(&Bad(2), &[&[]], &opts),
        Err(Error::NonFiniteLogits { .. })
    ));
    let e = search.run(&Bad(3), &[&[]], &opts).unwrap_err();
    assert!(matches!(e, Error::Model(_)));
    assert_eq!(e.to_string(), "model backend failed: backend down");
}

proptest! {
    #![proptest_config(common::proptest_config(64))]

    /// Sampled decoding: every draw is a catalog SID whose log-prob is its exhaustive one
    /// (the untempered model, any temperature); the same seed gives the same draws; near
    /// zero temperature every draw is the greedy path (the beam search at width 1).
    #[test]
    fn sampled_draws_are_catalog_sids_with_exact_log_probs(
        (catalog, history, seed, _k, _exclude, norm) in case(),
        temperature in prop_oneof![Just(1.0f32), 0.3f32..3.0],
        draws in 1usize..6,
    ) {
        use ugr_core::search::sample::{SplitMix64, sample};
        let model = HashModel::new(*catalog.vocab(), seed);
        let exact = exhaustive(&catalog, &model, &history, &[], norm);
        let lp_of = |sid: u32| {
            exact
                .iter()
                .find(|(i, _)| catalog.sid_index_of(*i).unwrap() == sid)
                .map(|e| e.1)
        };
        let got = sample(&model, &catalog, &[&history], draws, temperature, norm, &mut SplitMix64::new(seed)).unwrap();
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].len(), draws);
        for d in &got[0] {
            let want = lp_of(d.sid_index);
            prop_assert!(want.is_some_and(|w| (w - d.log_prob).abs() < 1e-4), "{:?} vs {:?}", d, want);
            prop_assert!((d.score - d.log_prob / catalog.vocab().levels() as f32).abs() < 1e-6);
        }
        let again = sample(&model, &catalog, &[&history], draws, temperature, norm, &mut SplitMix64::new(seed)).unwrap();
        prop_assert_eq!(&got, &again);
        // Near zero temperature: the greedy path, as the beam search at width 1 finds it.
        let greedy = sample(&model, &catalog, &[&history], draws, 1e-6, norm, &mut SplitMix64::new(seed)).unwrap();
        let opts = SearchOptions { beam: 1, top_k: 1, normalization: norm, ..SearchOptions::default() };
        let beam = &run(&catalog, &model, &[&history], &opts)[0];
        for d in &greedy[0] {
            prop_assert_eq!(d.sid_index, beam.items[0].sid_index);
        }
    }
}

#[test]
fn sampling_refuses_a_bad_temperature() {
    use ugr_core::search::sample::{SplitMix64, sample};
    let catalog = catalog_strategy()
        .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
        .unwrap()
        .current();
    let model = HashModel::new(*catalog.vocab(), 1);
    for t in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let e = sample(
            &model,
            &catalog,
            &[&[]],
            4,
            t,
            Normalization::Level,
            &mut SplitMix64::new(1),
        );
        assert!(matches!(e, Err(Error::InvalidOption { .. })), "{t}: {e:?}");
    }
}
