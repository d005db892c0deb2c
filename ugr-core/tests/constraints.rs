//! Request rules inside the search (allowlist, denylist, SID prefixes, excluded history, live
//! availability): the constrained search equals the search on a catalog holding only the
//! allowed items (any beam), equals the exhaustive oracle over the allowed items (exhaustive
//! beam), and returns K allowed items whenever the catalog has them.

mod common;

use std::ops::Range;

use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use ugr_core::model::testing::HashModel;
use ugr_core::{
    Availability, BeamSearch, Catalog, CatalogBuilder, Constraints, Error, ItemFusion, ItemId, Normalization,
    Pruning, Request, SearchOptions, Sid, SidModel, Step,
};

/// One request's rules as owned data.
#[derive(Clone, Debug)]
struct Rules {
    allow: Option<Vec<ItemId>>,
    deny: Vec<ItemId>,
    prefixes: Vec<Sid>,
    unavailable: Vec<ItemId>,
    exclude: bool,
}

impl Rules {
    fn constraints(&self) -> Constraints<'_> {
        Constraints {
            allow: self.allow.as_deref(),
            deny: &self.deny,
            prefixes: &self.prefixes,
        }
    }

    /// The items a request with `history` may receive, by the definition.
    fn allowed(&self, catalog: &Catalog, history: &[ItemId]) -> Vec<ItemId> {
        catalog
            .item_ids()
            .iter()
            .copied()
            .filter(|i| self.allow.as_ref().is_none_or(|a| a.contains(i)))
            .filter(|i| {
                let sid = catalog.sid_of(*i).unwrap();
                self.prefixes.is_empty() || self.prefixes.iter().any(|p| sid.codes().starts_with(p.codes()))
            })
            .filter(|i| !self.deny.contains(i) && !self.unavailable.contains(i))
            .filter(|i| !(self.exclude && history.contains(i)))
            .collect()
    }
}

fn subset(ids: &[ItemId], size: Range<usize>) -> impl Strategy<Value = Vec<ItemId>> + use<> {
    let n = ids.len();
    proptest::sample::subsequence(ids.to_vec(), size.start.min(n)..=size.end.min(n))
}

/// Rules over `catalog`: often none of a kind, sometimes most of the catalog; prefixes cut
/// from catalog SIDs (so they mostly exist) and sometimes random codes.
fn rules_strategy(catalog: &Catalog) -> impl Strategy<Value = Rules> + use<> {
    let ids = catalog.item_ids().to_vec();
    let n = ids.len();
    let levels = catalog.vocab().levels();
    let sizes = catalog.vocab().codebook_sizes().to_vec();
    let sids: Vec<Sid> = (0..catalog.sid_count() as u32).map(|s| catalog.sid(s)).collect();
    let cut = (proptest::sample::select(sids), 1..=levels)
        .prop_map(|(sid, len)| Sid::new(&sid.codes()[..len]).unwrap());
    let random =
        (1..=levels).prop_flat_map(move |len| sizes[..len].iter().map(|&s| 0..s as u16).collect::<Vec<_>>());
    let prefix = prop_oneof![4 => cut, 1 => random.prop_map(|c| Sid::new(&c).unwrap())];
    (
        proptest::option::weighted(0.35, subset(&ids, 1..n + 1)),
        prop_oneof![subset(&ids, 0..3), subset(&ids, 0..n + 1)],
        prop_oneof![2 => Just(Vec::new()), 1 => proptest::collection::vec(prefix, 1..4)],
        prop_oneof![subset(&ids, 0..2), subset(&ids, 0..n / 2 + 1)],
        any::<bool>(),
    )
        .prop_map(|(allow, deny, prefixes, unavailable, exclude)| Rules {
            allow,
            deny,
            prefixes,
            unavailable,
            exclude,
        })
}

fn case() -> impl Strategy<Value = (Catalog, Vec<ItemId>, Rules, u64, usize)> {
    catalog_strategy().prop_flat_map(|c| {
        let ids = c.item_ids().to_vec();
        let history = proptest::collection::vec(proptest::sample::select(ids), 0..6);
        let rules = rules_strategy(&c);
        let n = c.len();
        (Just(c), history, rules, any::<u64>(), 1..=n + 3)
    })
}

fn availability(catalog: &Catalog, rules: &Rules) -> Availability {
    let mut live = Availability::new(catalog);
    let changes: Vec<(ItemId, bool)> = rules.unavailable.iter().map(|&i| (i, false)).collect();
    live.apply(catalog, &changes).unwrap();
    live
}

/// The catalog holding only `items` (same SIDs, same popularity, so the same expansion order).
fn sub_catalog(catalog: &Catalog, items: &[ItemId]) -> Option<Catalog> {
    let mut b = CatalogBuilder::new(*catalog.vocab());
    for &i in items {
        b.push_with_popularity(i, catalog.sid_of(i).unwrap(), catalog.popularity(i).unwrap())
            .unwrap();
    }
    (!items.is_empty()).then(|| b.build().unwrap())
}

/// A model that reads a fixed SID history whatever the search feeds it, so that a search on
/// a sub-catalog (which may not hold the history's items) sees the same logits.
struct FixedHistory {
    inner: HashModel,
    history: Vec<Sid>,
}

impl SidModel for FixedHistory {
    type Cache = <HashModel as SidModel>::Cache;
    type Error = <HashModel as SidModel>::Error;
    fn has_confidence(&self) -> bool {
        false
    }
    fn new_cache(&self) -> Self::Cache {
        self.inner.new_cache()
    }
    fn prefill(
        &self,
        cache: &mut Self::Cache,
        histories: &[&[Sid]],
        r: Range<u32>,
    ) -> Result<(), Self::Error> {
        let fixed = vec![self.history.as_slice(); histories.len()];
        self.inner.prefill(cache, &fixed, r)
    }
    fn step(&self, cache: &mut Self::Cache, step: &Step<'_>) -> Result<(), Self::Error> {
        self.inner.step(cache, step)
    }
    fn logits<'a>(&'a self, cache: &'a Self::Cache) -> &'a [f32] {
        self.inner.logits(cache)
    }
}

fn pruning_strategy() -> impl Strategy<Value = Pruning> {
    prop_oneof![
        Just(Pruning::Off),
        (0.0f32..3.0).prop_map(|margin| Pruning::Fixed { margin }),
        (0.0f32..2.0, 0.0f32..3.0).prop_map(|(a, b)| Pruning::Adaptive {
            min_margin: a,
            max_margin: a + b,
            levels: 2
        }),
    ]
}

proptest! {
    #![proptest_config(common::proptest_config(384))]

    /// At any beam width (pruning included) the constrained search returns what the plain
    /// search returns on the catalog of the allowed items: same items, order and log-probs.
    #[test]
    fn constrained_search_equals_the_search_on_the_allowed_sub_catalog(
        (catalog, history, rules, seed, k) in case(),
        beam in 1usize..8,
        pruning in pruning_strategy(),
        full_vocab: bool,
    ) {
        let hist: Vec<Sid> = history.iter().map(|&i| catalog.sid_of(i).unwrap()).collect();
        let model = FixedHistory { inner: HashModel::new(*catalog.vocab(), seed), history: hist };
        let norm = if full_vocab { Normalization::FullVocab } else { Normalization::Level };
        let opts = SearchOptions { beam, top_k: k, exclude_history: rules.exclude, pruning, normalization: norm, ..SearchOptions::default() };
        let live = availability(&catalog, &rules);
        let request = Request { history: &history, constraints: rules.constraints() };
        let got = &BeamSearch::new(&catalog).with_availability(Some(&live)).run_requests(&model, &[request], &opts).unwrap()[0];
        let allowed = rules.allowed(&catalog, &history);
        let Some(sub) = sub_catalog(&catalog, &allowed) else {
            prop_assert!(got.items.is_empty());
            return Ok(());
        };
        let plain = SearchOptions { exclude_history: false, ..opts };
        let want = &BeamSearch::new(&sub).run(&model, &[&[]], &plain).unwrap()[0];
        let g: Vec<(ItemId, f32, f32)> = got.items.iter().map(|r| (r.item, r.log_prob, r.score)).collect();
        let w: Vec<(ItemId, f32, f32)> = want.items.iter().map(|r| (r.item, r.log_prob, r.score)).collect();
        prop_assert_eq!(g, w);
        prop_assert_eq!(got.stats.beams, want.stats.beams);
    }

    /// With a beam as wide as the catalog, the constrained search is the exhaustive ranking
    /// (generative or fused, every normalisation) restricted to the allowed items, bit for bit.
    #[test]
    fn wide_constrained_search_equals_the_exhaustive_oracle(
        (catalog, history, rules, seed, k) in case(),
        norm in prop_oneof![Just(Normalization::Level), Just(Normalization::FullVocab), Just(Normalization::Trie)],
        fusion in proptest::option::of(0.0f32..3.0),
    ) {
        let mut model = HashModel::new(*catalog.vocab(), seed);
        if let Some(w) = fusion {
            model = model.with_item_head(catalog.sid_count(), Some(w));
        }
        let opts = SearchOptions { beam: catalog.sid_count(), top_k: k, exclude_history: rules.exclude, normalization: norm, ..SearchOptions::default() };
        let live = availability(&catalog, &rules);
        let request = Request { history: &history, constraints: rules.constraints() };
        let got = &BeamSearch::new(&catalog).with_availability(Some(&live)).run_requests(&model, &[request], &opts).unwrap()[0];
        let allowed = rules.allowed(&catalog, &history);
        let removed: Vec<ItemId> = catalog.item_ids().iter().copied().filter(|i| !allowed.contains(i)).collect();
        let want = match fusion {
            None => exhaustive(&catalog, &model, &history, &removed, norm),
            Some(w) => exhaustive_fused(&catalog, &model, &history, &removed, norm, w),
        };
        let want = &want[..want.len().min(k)];
        let got: Vec<(ItemId, f32)> = got.items.iter().map(|r| (r.item, if fusion.is_some() { r.score } else { r.log_prob })).collect();
        prop_assert_eq!(got, want.to_vec());
    }

    /// Whatever the beam, pruning and fusion: K distinct allowed items come back whenever
    /// the catalog has K allowed items (all of them otherwise), and never another item.
    #[test]
    fn k_allowed_items_come_back(
        (catalog, history, rules, seed, k) in case(),
        beam in 1usize..4,
        pruning in pruning_strategy(),
        fusion: bool,
    ) {
        let model = HashModel::new(*catalog.vocab(), seed)
            .with_item_head(catalog.sid_count(), fusion.then_some(1.0));
        let opts = SearchOptions { beam, top_k: k, exclude_history: rules.exclude, pruning, ..SearchOptions::default() };
        let live = availability(&catalog, &rules);
        let request = Request { history: &history, constraints: rules.constraints() };
        let got = &BeamSearch::new(&catalog).with_availability(Some(&live)).run_requests(&model, &[request], &opts).unwrap()[0];
        let allowed = rules.allowed(&catalog, &history);
        prop_assert_eq!(got.items.len(), k.min(allowed.len()));
        let mut seen: Vec<ItemId> = got.items.iter().map(|r| r.item).collect();
        prop_assert!(seen.iter().all(|i| allowed.contains(i)));
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), got.items.len());
    }

    /// Requests with different rules batched together answer as they do alone.
    #[test]
    fn batched_requests_keep_their_own_rules(
        (catalog, history, rules, seed, k) in case(),
        other in any::<u64>(),
    ) {
        let model = HashModel::new(*catalog.vocab(), seed).with_item_head(catalog.sid_count(), Some(0.5));
        let opts = SearchOptions { beam: 3, top_k: k, exclude_history: rules.exclude, ..SearchOptions::default() };
        let second = rules_strategy(&catalog)
            .new_tree(&mut proptest::test_runner::TestRunner::new_with_rng(
                Default::default(),
                proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::XorShift, &other.to_le_bytes().repeat(2)),
            ))
            .unwrap()
            .current();
        let a = Request { history: &history, constraints: rules.constraints() };
        let b = Request { history: &history, constraints: second.constraints() };
        let mut search = BeamSearch::new(&catalog);
        let both = search.run_requests(&model, &[a, b, a], &opts).unwrap();
        prop_assert_eq!(&both[0], &search.run_requests(&model, &[a], &opts).unwrap()[0]);
        prop_assert_eq!(&both[1], &search.run_requests(&model, &[b], &opts).unwrap()[0]);
        prop_assert_eq!(&both[2], &both[0]);
    }
}

fn small_catalog() -> Catalog {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    loop {
        let c = catalog_strategy().new_tree(&mut runner).unwrap().current();
        if c.len() >= 5 && c.vocab().levels() >= 2 {
            return c;
        }
    }
}

#[test]
fn bad_rules_give_typed_errors() {
    let catalog = small_catalog();
    let model = HashModel::new(*catalog.vocab(), 1);
    let mut search = BeamSearch::new(&catalog);
    let opts = SearchOptions::default();
    let unknown = ItemId::new(5000);
    let known = catalog.item_ids()[0];
    let run = |search: &mut BeamSearch<'_>, c: Constraints<'_>| {
        search.run_requests(
            &model,
            &[Request {
                history: &[known],
                constraints: c,
            }],
            &opts,
        )
    };
    for c in [
        Constraints {
            deny: &[unknown],
            ..Constraints::NONE
        },
        Constraints {
            allow: Some(&[known, unknown]),
            ..Constraints::NONE
        },
    ] {
        assert!(
            matches!(run(&mut search, c), Err(Error::UnknownItem(i)) if i == unknown),
            "{c:?}"
        );
    }
    // A long list of unknown items takes the bitset path: the same error.
    let many: Vec<ItemId> = (5000..5000 + 4 * catalog.trie().node_count() as u32)
        .map(ItemId::new)
        .collect();
    assert!(matches!(
        run(
            &mut search,
            Constraints {
                deny: &many,
                ..Constraints::NONE
            }
        ),
        Err(Error::UnknownItem(_))
    ));
    assert!(matches!(
        run(
            &mut search,
            Constraints {
                allow: Some(&[]),
                ..Constraints::NONE
            }
        ),
        Err(Error::InvalidOption { name: "allow", .. })
    ));
    let levels = catalog.vocab().levels();
    let too_long = Sid::new(&vec![0u16; levels + 1]).unwrap();
    assert!(matches!(
        run(
            &mut search,
            Constraints {
                prefixes: &[too_long],
                ..Constraints::NONE
            }
        ),
        Err(Error::SidLength { .. })
    ));
    let out_of_range = Sid::new(&[catalog.vocab().codebook_size(0) as u16]).unwrap();
    assert!(matches!(
        run(
            &mut search,
            Constraints {
                prefixes: &[out_of_range],
                ..Constraints::NONE
            }
        ),
        Err(Error::CodeOutOfRange { level: 0, .. })
    ));
    // Availability made for another catalog.
    let other = small_catalog_with(catalog.len() + 3);
    let live = Availability::new(&other);
    let r = BeamSearch::new(&catalog)
        .with_availability(Some(&live))
        .run(&model, &[&[]], &opts);
    assert!(matches!(
        r,
        Err(Error::InvalidOption {
            name: "availability",
            ..
        })
    ));
    // The search still works after every error.
    assert!(!run(&mut search, Constraints::NONE).unwrap()[0].items.is_empty());
}

fn small_catalog_with(items: usize) -> Catalog {
    let vocab = ugr_core::SidVocab::new(&[4, 4]).unwrap();
    let mut b = CatalogBuilder::new(vocab);
    for i in 0..items as u32 {
        b.push(
            ItemId::new(i),
            Sid::new(&[(i % 4) as u16, (i / 4 % 4) as u16]).unwrap(),
        )
        .unwrap();
    }
    b.build().unwrap()
}

#[test]
fn availability_batches_are_checked_whole_and_counted() {
    let catalog = small_catalog_with(40);
    let mut live = Availability::new(&catalog);
    let ids = catalog.item_ids();
    assert_eq!(
        live.apply(&catalog, &[(ids[1], false), (ids[2], false), (ids[1], false)])
            .unwrap(),
        2
    );
    assert_eq!(live.unavailable_count(), 2);
    let before = live.clone();
    assert!(matches!(
        live.apply(&catalog, &[(ids[3], false), (ItemId::new(999), true)]),
        Err(Error::UnknownItem(_))
    ));
    assert_eq!(live, before, "a rejected batch changes nothing");
    assert_eq!(
        live.apply(&catalog, &[(ids[1], true), (ids[1], true)]).unwrap(),
        1
    );
    assert!(live.is_available(&catalog, ids[1]).unwrap());
    assert!(!live.is_available(&catalog, ids[2]).unwrap());
    live.reset();
    assert_eq!(live, Availability::new(&catalog));
    // Everything unavailable: nothing is served, without error.
    let all: Vec<(ItemId, bool)> = ids.iter().map(|&i| (i, false)).collect();
    live.apply(&catalog, &all).unwrap();
    let model = HashModel::new(*catalog.vocab(), 3).with_item_head(catalog.sid_count(), Some(1.0));
    let out = BeamSearch::new(&catalog)
        .with_availability(Some(&live))
        .run(
            &model,
            &[&[ids[0]]],
            &SearchOptions {
                item_fusion: ItemFusion::Model,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert!(out[0].items.is_empty());
}
