//! Business rules and live availability through the `Engine`, on every backend this build
//! has, with the committed model `tests/data/tiny-model.ugr`: with an exhaustive beam the
//! constrained answer is the unconstrained exhaustive ranking restricted to the allowed items;
//! availability changes made while other threads serve are seen whole or not at all.
#![cfg(all(feature = "native", feature = "std"))]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ugr_core::{BackendChoice, Constraints, Engine, Error, ItemId, Recommendations, SearchOptions, Sid};

fn engine(backend: BackendChoice) -> Engine {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    Engine::from_bytes_with(&std::fs::read(path).unwrap(), backend).unwrap()
}

fn backends() -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Native];
    if cfg!(feature = "onnx") {
        b.push(BackendChoice::Tract);
    }
    b
}

/// A deterministic LCG (no RNG crate needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize % n
    }
}

/// `got` equals `want` up to float rounding: scores within 1e-4, items equal except where
/// two scores are that close (the model runs at another row count).
fn assert_near(got: &Recommendations, want: &[(ItemId, f32)], what: &str) {
    assert_eq!(got.items.len(), want.len(), "{what}");
    for (i, (g, w)) in got.items.iter().zip(want).enumerate() {
        assert!(
            (g.score - w.1).abs() < 1e-4,
            "{what} rank {i}: {} vs {}",
            g.score,
            w.1
        );
        if g.item != w.0 {
            let theirs = want.iter().find(|x| x.0 == g.item).map(|x| x.1);
            assert!(
                theirs.is_some_and(|s| (s - w.1).abs() < 1e-4),
                "{what} rank {i}: not a near-tie"
            );
        }
    }
}

#[test]
fn constrained_answers_are_the_exhaustive_ranking_over_allowed_items_on_every_backend() {
    for backend in backends() {
        let engine = engine(backend);
        let catalog = &*engine.catalog();
        let ids = catalog.item_ids().to_vec();
        let wide = SearchOptions {
            beam: catalog.sid_count(),
            top_k: catalog.len(),
            ..SearchOptions::default()
        };
        let mut rng = Lcg(7);
        for case in 0..12 {
            let history: Vec<ItemId> = (0..1 + case % 5).map(|_| ids[rng.next(ids.len())]).collect();
            let deny: Vec<ItemId> = (0..rng.next(ids.len() * 9 / 10))
                .map(|_| ids[rng.next(ids.len())])
                .collect();
            let allow: Vec<ItemId> = (0..1 + rng.next(ids.len()))
                .map(|_| ids[rng.next(ids.len())])
                .collect();
            let sid = catalog.sid_of(ids[rng.next(ids.len())]).unwrap();
            let prefix = Sid::new(&sid.codes()[..1 + case % 2]).unwrap();
            let prefixes = [prefix];
            let constraints = Constraints {
                allow: (case % 3 == 0).then_some(allow.as_slice()),
                deny: &deny,
                prefixes: if case % 2 == 0 { &prefixes } else { &[] },
            };
            let allowed = |i: &ItemId| {
                constraints.allow.is_none_or(|a| a.contains(i))
                    && !deny.contains(i)
                    && (constraints.prefixes.is_empty()
                        || catalog.sid_of(*i).unwrap().codes().starts_with(prefix.codes()))
            };
            let all = engine.recommend(&history, &wide).unwrap();
            for k in [1, 10] {
                let opts = SearchOptions { top_k: k, ..wide };
                let got = engine.recommend_with(&history, &constraints, &opts).unwrap();
                let want: Vec<(ItemId, f32)> = all
                    .items
                    .iter()
                    .filter(|r| allowed(&r.item))
                    .take(k)
                    .map(|r| (r.item, r.score))
                    .collect();
                assert_near(&got, &want, &format!("{backend:?} case {case} k {k}"));
                // At the default beam: K allowed items whenever the catalog has them.
                let narrow = engine
                    .recommend_with(
                        &history,
                        &constraints,
                        &SearchOptions {
                            top_k: k,
                            ..SearchOptions::default()
                        },
                    )
                    .unwrap();
                assert_eq!(narrow.items.len(), want.len(), "{backend:?} case {case}");
                assert!(narrow.items.iter().all(|r| allowed(&r.item)));
            }
        }
    }
}

#[test]
fn unavailable_items_are_never_served_and_come_back() {
    let engine = engine(BackendChoice::Native);
    let opts = SearchOptions::default();
    let history = [engine.catalog().item_ids()[3]];
    let before = engine.recommend(&history, &opts).unwrap();
    let top: Vec<(ItemId, bool)> = before.items.iter().take(5).map(|r| (r.item, false)).collect();
    assert_eq!(engine.update_availability(&top).unwrap(), 5);
    assert_eq!(engine.unavailable_count(), 5);
    let during = engine.recommend(&history, &opts).unwrap();
    assert_eq!(during.items.len(), 10);
    assert!(during.items.iter().all(|r| !top.iter().any(|t| t.0 == r.item)));
    // The same answer as a denylist of those items.
    let deny: Vec<ItemId> = top.iter().map(|t| t.0).collect();
    let denied = engine
        .recommend_with(
            &history,
            &Constraints {
                deny: &deny,
                ..Constraints::NONE
            },
            &opts,
        )
        .unwrap();
    assert_eq!(during, denied);
    assert!(matches!(
        engine.update_availability(&[(ItemId::new(u32::MAX), true), (deny[0], true)]),
        Err(Error::UnknownItem(_))
    ));
    assert_eq!(engine.unavailable_count(), 5, "a rejected batch changes nothing");
    let back: Vec<(ItemId, bool)> = deny.iter().map(|&i| (i, true)).collect();
    engine.update_availability(&back).unwrap();
    assert_eq!(engine.recommend(&history, &opts).unwrap(), before);
}

/// Writers cycle the availability through a few states, one batch per step; readers serving
/// meanwhile must always get the answer of one whole state (computed serially beforehand).
#[test]
fn concurrent_serving_sees_whole_batches() {
    let engine = Arc::new(engine(BackendChoice::Native));
    let ids = engine.catalog().item_ids().to_vec();
    let history = [ids[1], ids[8]];
    let opts = SearchOptions::default();
    let top: Vec<ItemId> = engine
        .recommend(&history, &opts)
        .unwrap()
        .items
        .iter()
        .map(|r| r.item)
        .collect();
    // State s: items top[0..2s] unavailable. Batch s -> s+1 removes two more (or restores all).
    let states = 5;
    let batch = |s: usize| -> Vec<(ItemId, bool)> {
        if s + 1 == states {
            top[..2 * s].iter().map(|&i| (i, true)).collect()
        } else {
            top[2 * s..2 * s + 2].iter().map(|&i| (i, false)).collect()
        }
    };
    let mut serial = Vec::new();
    for s in 0..states {
        serial.push(engine.recommend(&history, &opts).unwrap());
        engine.update_availability(&batch(s)).unwrap();
    }
    assert_eq!(engine.unavailable_count(), 0);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, stop, serial) = (Arc::clone(&engine), Arc::clone(&stop), serial.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 50 {
                    let got = engine.recommend(&history, &opts).unwrap();
                    assert!(serial.contains(&got), "an answer of no whole state: {got:?}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 0..400 {
        engine.update_availability(&batch(round % states)).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 50);
    }
}
