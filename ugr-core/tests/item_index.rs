//! The native item head's index (large catalogs, `ugr_core::native::item_index` docs),
//! forced on the tiny model: with every coarse node probed it is the exact search (same
//! items, same order, scores equal up to the normaliser's rounding); with few probes every
//! answer is still a valid, rule-abiding, fully scored list.
#![cfg(all(feature = "native", feature = "std"))]

use std::sync::Arc;

use ugr_core::native::NativeModel;
use ugr_core::{BeamSearch, Bundle, Catalog, Constraints, ItemId, Request, SearchOptions, SidModel};

fn tiny() -> (Bundle, Arc<Catalog>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    let bundle = Bundle::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let catalog = Arc::new(bundle.catalog.clone());
    (bundle, catalog)
}

fn histories(catalog: &Catalog) -> Vec<Vec<ItemId>> {
    let ids = catalog.item_ids();
    (0..30)
        .map(|i| (0..i % 9).map(|j| ids[(i * 131 + j * 577) % ids.len()]).collect())
        .collect()
}

#[test]
fn probing_every_node_is_the_exact_search() {
    let (bundle, catalog) = tiny();
    let section = bundle.model.as_ref().unwrap().view();
    let dense = NativeModel::new(&section, Arc::clone(&catalog)).unwrap();
    let indexed = NativeModel::new(&section, Arc::clone(&catalog))
        .unwrap()
        .with_item_index(usize::MAX);
    assert!(indexed.item_index_nodes().unwrap() > 1);
    assert!(dense.item_weight().is_some());
    let opts = SearchOptions {
        normalization: dense.normalization(),
        ..SearchOptions::default()
    };
    for h in histories(&catalog) {
        let a = BeamSearch::new(&catalog).run(&dense, &[&h], &opts).unwrap();
        let b = BeamSearch::new(&catalog).run(&indexed, &[&h], &opts).unwrap();
        let items = |r: &ugr_core::Recommendations| r.items.iter().map(|x| x.item).collect::<Vec<_>>();
        assert_eq!(items(&a[0]), items(&b[0]), "history {h:?}");
        for (x, y) in a[0].items.iter().zip(&b[0].items) {
            assert!((x.score - y.score).abs() < 1e-3, "{} vs {}", x.score, y.score);
            assert!((x.posterior - y.posterior).abs() < 1e-4);
        }
    }
}

#[test]
fn few_probes_still_answer_full_rule_abiding_lists() {
    let (bundle, catalog) = tiny();
    let section = bundle.model.as_ref().unwrap().view();
    let indexed = NativeModel::new(&section, Arc::clone(&catalog))
        .unwrap()
        .with_item_index(2);
    let opts = SearchOptions {
        normalization: indexed.normalization(),
        ..SearchOptions::default()
    };
    let ids = catalog.item_ids();
    let allowed: Vec<ItemId> = ids.iter().copied().step_by(3).collect();
    let rules = Constraints {
        allow: Some(&allowed),
        ..Constraints::NONE
    };
    for h in histories(&catalog) {
        let r = &BeamSearch::new(&catalog).run(&indexed, &[&h], &opts).unwrap()[0];
        assert_eq!(r.items.len(), 10);
        assert!(r.items.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(r.items.iter().all(|x| x.score.is_finite()));
        let request = Request {
            history: &h,
            constraints: rules,
        };
        let ruled = &BeamSearch::new(&catalog)
            .run_requests(&indexed, &[request], &opts)
            .unwrap()[0];
        assert!(ruled.items.iter().all(|x| allowed.contains(&x.item)));
        assert_eq!(ruled.items.len(), 10);
    }
}
