//! Catalog changes without retraining, through the `Engine` and the committed model
//! `tests/data/tiny-model.ugr`: items removed are never served, items added (with a model
//! SID or a new one) are, an artifact written with the model's SID table answers as the
//! engine whose catalog was replaced, and requests during a replacement see one catalog whole.
#![cfg(all(feature = "native", feature = "std"))]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ugr_core::served::write_model_sids;
use ugr_core::{
    Bundle, Catalog, CatalogBuilder, Constraints, Engine, Error, ItemId, Recommendations, SearchOptions, Sid,
};

fn bytes() -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr")).unwrap()
}

/// The tiny catalog less its items `0..removed`, plus `added` items (ids from 100000): the
/// first half share SIDs of kept items, the others get SIDs the model does not have.
fn changed(catalog: &Catalog, removed: u32, added: u32) -> (Catalog, Vec<ItemId>) {
    let mut b = CatalogBuilder::new(*catalog.vocab());
    for &i in catalog.item_ids().iter().filter(|i| i.as_u32() >= removed) {
        b.push_with_popularity(i, catalog.sid_of(i).unwrap(), catalog.popularity(i).unwrap())
            .unwrap();
    }
    let levels = catalog.vocab().levels();
    let last = catalog.vocab().codebook_size(levels - 1) as u16;
    let mut new = Vec::new();
    let mut fresh = (0..catalog.sid_count() as u32).flat_map(|s| {
        let sid = catalog.sid(s);
        (0..last).filter_map(move |c| {
            let mut codes = sid.codes().to_vec();
            codes[levels - 1] = c;
            Sid::new(&codes).ok()
        })
    });
    for k in 0..added {
        let item = ItemId::new(100_000 + k);
        let sid = if k < added / 2 {
            catalog.sid_of(ItemId::new(removed + 1 + k)).unwrap()
        } else {
            fresh.find(|s| catalog.lookup(s).is_none()).unwrap()
        };
        b.push(item, sid).unwrap();
        new.push(item);
    }
    (b.build().unwrap(), new)
}

fn histories(catalog: &Catalog) -> Vec<Vec<ItemId>> {
    let ids = catalog.item_ids();
    (0..20)
        .map(|u| (0..u % 6).map(|j| ids[(u * 37 + j * 11) % ids.len()]).collect())
        .collect()
}

fn answers(engine: &Engine, hs: &[Vec<ItemId>]) -> Vec<Recommendations> {
    hs.iter()
        .map(|h| engine.recommend(h, &SearchOptions::default()).unwrap())
        .collect()
}

#[test]
fn the_same_catalog_changes_nothing() {
    let engine = Engine::from_bytes(&bytes()).unwrap();
    let hs = histories(&engine.catalog());
    let before = answers(&engine, &hs);
    engine.replace_catalog((*engine.catalog()).clone(), None).unwrap();
    assert_eq!(answers(&engine, &hs), before);
    assert_eq!(engine.served().new_sids(), 0);
}

#[test]
fn removed_items_are_gone_and_added_items_are_served() {
    let engine = Engine::from_bytes(&bytes()).unwrap();
    let old = engine.catalog();
    let (next, added) = changed(&old, 40, 6);
    engine.replace_catalog(next.clone(), None).unwrap();
    assert_eq!(engine.served().new_sids(), 3);
    let keep: Vec<ItemId> = next.item_ids().to_vec();
    for h in histories(&next) {
        let r = engine.recommend(&h, &SearchOptions::default()).unwrap();
        assert_eq!(r.items.len(), 10);
        assert!(
            r.items
                .iter()
                .all(|x| keep.contains(&x.item) && x.item.as_u32() >= 40)
        );
        // Only the added items allowed: all six come back, and an added item that shares a
        // model SID scores exactly as the kept item with that SID.
        let only_new = Constraints {
            allow: Some(&added),
            ..Constraints::NONE
        };
        let r = engine
            .recommend_with(&h, &only_new, &SearchOptions::default())
            .unwrap();
        assert_eq!(r.items.len(), added.len());
        assert!(
            r.items
                .iter()
                .all(|x| x.score.is_finite() && x.item_log_prob.is_some())
        );
        let twin = ItemId::new(41);
        let twin_rec = engine
            .recommend_with(
                &h,
                &Constraints {
                    allow: Some(&[twin]),
                    ..Constraints::NONE
                },
                &SearchOptions::default(),
            )
            .unwrap();
        let new_rec = r.items.iter().find(|x| x.item == added[0]).unwrap();
        assert!((new_rec.score - twin_rec.items[0].score).abs() < 1e-6);
        // Histories may hold added items (unknown to the model: their SID tokens only).
        let with_new = [added[3], added[0]];
        assert_eq!(
            engine
                .recommend(&with_new, &SearchOptions::default())
                .unwrap()
                .items
                .len(),
            10
        );
    }
    // The removed items are unknown now.
    assert!(matches!(
        engine.recommend(&[ItemId::new(3)], &SearchOptions::default()),
        Err(Error::UnknownItem(_))
    ));
}

#[test]
fn an_artifact_with_the_model_sid_table_answers_as_the_replaced_engine() {
    let original = Bundle::from_bytes(&bytes()).unwrap();
    let engine = Engine::from_bundle(original.clone()).unwrap();
    let (next, _) = changed(&engine.catalog(), 10, 4);
    engine.replace_catalog(next.clone(), None).unwrap();
    let mut written = original.clone();
    write_model_sids(written.model.as_mut().unwrap(), &original.catalog);
    written.catalog = next.clone();
    written.titles = None;
    let reopened = Engine::from_bytes(&written.to_bytes().unwrap()).unwrap();
    let hs = histories(&next);
    assert_eq!(answers(&reopened, &hs), answers(&engine, &hs));
    // The written artifact replaces the original engine's catalog too; another model is refused.
    let fresh = Engine::from_bundle(original.clone()).unwrap();
    fresh.replace_catalog_from(written.clone()).unwrap();
    assert_eq!(answers(&fresh, &hs), answers(&engine, &hs));
    let mut other = written;
    other.model.as_mut().unwrap().config_json.push(' ');
    assert!(matches!(
        fresh.replace_catalog_from(other),
        Err(Error::InvalidOption { name: "catalog", .. })
    ));
    assert_eq!(
        answers(&fresh, &hs),
        answers(&engine, &hs),
        "a refused replacement changes nothing"
    );
}

#[test]
fn availability_survives_a_replacement_for_items_still_served() {
    let engine = Engine::from_bytes(&bytes()).unwrap();
    engine
        .update_availability(&[(ItemId::new(5), false), (ItemId::new(50), false)])
        .unwrap();
    let (next, _) = changed(&engine.catalog(), 10, 2);
    engine.replace_catalog(next, None).unwrap();
    assert_eq!(engine.unavailable_count(), 1);
    assert!(!engine.is_available(ItemId::new(50)).unwrap());
}

/// Two threads serve while the catalog flips between two versions: every answer is one of
/// the two serial answers, whole.
#[test]
fn requests_during_replacements_see_one_catalog() {
    let engine = Arc::new(Engine::from_bytes(&bytes()).unwrap());
    let a = (*engine.catalog()).clone();
    let (b, _) = changed(&a, 30, 6);
    let history = vec![ItemId::new(33), ItemId::new(60)];
    let opts = SearchOptions::default();
    let serial_a = engine.recommend(&history, &opts).unwrap();
    engine.replace_catalog(b.clone(), None).unwrap();
    let serial_b = engine.recommend(&history, &opts).unwrap();
    assert_ne!(serial_a, serial_b);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, stop, history) = (Arc::clone(&engine), Arc::clone(&stop), history.clone());
            let (sa, sb) = (serial_a.clone(), serial_b.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 30 {
                    let got = engine.recommend(&history, &opts).unwrap();
                    assert!(got == sa || got == sb, "a mixed answer");
                    n += 1;
                }
            })
        })
        .collect();
    for round in 0..60 {
        let next = if round % 2 == 0 { a.clone() } else { b.clone() };
        engine.replace_catalog(next, None).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}

/// `recommend_parallel` (chunks of `PARALLEL_CHUNK` over threads, each reusing its buffers)
/// answers as one search per request, on the artifact's catalog and on a changed one (the
/// served-model path), under a rule; an unknown item anywhere fails the call.
#[test]
fn parallel_batches_answer_as_single_requests() {
    let engine = Engine::from_bytes(&bytes()).unwrap();
    let (other, _) = changed(&engine.catalog(), 30, 40);
    for round in 0..2 {
        if round == 1 {
            engine.replace_catalog(other.clone(), None).unwrap();
        }
        let ids = engine.catalog().item_ids().to_vec();
        let hs: Vec<Vec<ItemId>> = (0..3 * Engine::PARALLEL_CHUNK + 5)
            .map(|u| (0..u % 7).map(|j| ids[(u * 53 + j * 17) % ids.len()]).collect())
            .collect();
        let deny = [ids[3], ids[9]];
        let rule = ugr_core::Constraints {
            deny: &deny,
            ..ugr_core::Constraints::NONE
        };
        let opts = SearchOptions::default();
        let want: Vec<Recommendations> = hs
            .iter()
            .map(|h| engine.recommend_with(h, &rule, &opts).unwrap())
            .collect();
        let requests: Vec<ugr_core::Request<'_>> = hs
            .iter()
            .map(|h| ugr_core::Request {
                history: h,
                constraints: rule,
            })
            .collect();
        for threads in [1, 2, 3] {
            let got = engine.recommend_parallel(&requests, &opts, threads).unwrap();
            assert_eq!(got.len(), want.len());
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                let items = |x: &Recommendations| x.items.iter().map(|i| i.item).collect::<Vec<_>>();
                assert_eq!(items(g), items(w), "round {round}, {threads} threads, row {r}");
                for (a, b) in g.items.iter().zip(&w.items) {
                    assert!(
                        (a.score - b.score).abs() < 1e-4,
                        "row {r}: {} vs {}",
                        a.score,
                        b.score
                    );
                }
            }
        }
        let mut bad = requests.clone();
        let unknown = [ItemId::new(9_999_999)];
        bad[2 * Engine::PARALLEL_CHUNK + 1].history = &unknown;
        for threads in [1, 2] {
            assert!(matches!(
                engine.recommend_parallel(&bad, &opts, threads),
                Err(ugr_core::Error::UnknownItem(_))
            ));
        }
    }
}
