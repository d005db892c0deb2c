//! The committed model `tests/data/tiny-model.ugr` answers the committed golden lists
//! (`tests/data/tiny-model.golden.json`) on every backend and every architecture: the same
//! top-10 items in the same order (a swap is allowed only between scores closer than 1e-4)
//! and scores within 1e-4. CI runs it on x86_64 and, under qemu, on aarch64, so the
//! native kernels' two paths (AVX2/FMA, portable) are held to one answer.
//! `UGR_BLESS=1` rewrites the golden file from the native backend on this machine.
#![cfg(all(feature = "native", feature = "std"))]

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ugr_core::{BackendChoice, Engine, ItemId, SearchOptions};

#[derive(Debug, Serialize, Deserialize)]
struct Golden {
    history: Vec<u32>,
    items: Vec<u32>,
    scores: Vec<f32>,
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

/// 40 histories of 0..12 catalog items drawn by a fixed LCG (no RNG crate needed).
fn histories(engine: &Engine) -> Vec<Vec<ItemId>> {
    let catalog = engine.catalog();
    let ids = catalog.item_ids();
    let mut x = 0x2545_f491_u64;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize
    };
    (0..40)
        .map(|i| (0..i % 13).map(|_| ids[next() % ids.len()]).collect())
        .collect()
}

fn answers(engine: &Engine) -> Vec<Golden> {
    let opts = SearchOptions::default();
    histories(engine)
        .iter()
        .map(|h| {
            let r = engine.recommend(h, &opts).unwrap();
            Golden {
                history: h.iter().map(|i| i.as_u32()).collect(),
                items: r.items.iter().map(|x| x.item.as_u32()).collect(),
                scores: r.items.iter().map(|x| x.score).collect(),
            }
        })
        .collect()
}

fn check(backend: BackendChoice) {
    let bytes = std::fs::read(data("tiny-model.ugr")).unwrap();
    let engine = Engine::from_bytes_with(&bytes, backend).unwrap();
    let got = answers(&engine);
    let path = data("tiny-model.golden.json");
    if std::env::var_os("UGR_BLESS").is_some() && backend == BackendChoice::Native {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap()).unwrap();
    }
    let want: Vec<Golden> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.history, w.history, "the histories are generated the same way");
        assert_eq!(g.items.len(), w.items.len(), "{:?}", g.history);
        for (i, (a, b)) in g.scores.iter().zip(&w.scores).enumerate() {
            assert!(
                (a - b).abs() < 1e-4,
                "{backend:?} {:?} rank {i}: score {a} vs {b}",
                g.history
            );
            if g.items[i] != w.items[i] {
                let theirs = w
                    .items
                    .iter()
                    .position(|&x| x == g.items[i])
                    .map_or(*w.scores.last().unwrap(), |j| w.scores[j]);
                assert!(
                    (theirs - b).abs() < 1e-4,
                    "{backend:?} {:?} rank {i}: item {} vs {} is not a near-tie",
                    g.history,
                    g.items[i],
                    w.items[i]
                );
            }
        }
    }
}

#[test]
fn native_answers_the_golden_lists() {
    check(BackendChoice::Native);
}

#[cfg(feature = "onnx")]
#[test]
fn tract_answers_the_golden_lists() {
    check(BackendChoice::Tract);
}
