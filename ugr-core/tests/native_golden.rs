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

/// The tiny model with every weight rounded to f16, stored as `dtype`.
fn rounded_to_f16(dtype: ugr_core::native::WeightType) -> Vec<u8> {
    use ugr_core::native::{WEIGHTS_BLOB, WeightFile, WeightTensor};
    let mut bundle = ugr_core::Bundle::from_bytes(&std::fs::read(data("tiny-model.ugr")).unwrap()).unwrap();
    let section = bundle.model.as_mut().unwrap();
    let blob = section
        .graphs
        .iter_mut()
        .find(|b| b.name == WEIGHTS_BLOB)
        .unwrap();
    let mut file = WeightFile::from_bytes(&blob.bytes).unwrap();
    for t in &mut file.tensors {
        let rounded: Vec<f32> = t
            .to_f32()
            .unwrap()
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        *t = WeightTensor::from_f32(&t.name, &t.dims, &rounded, dtype);
    }
    blob.bytes = file.to_bytes().unwrap();
    bundle.to_bytes().unwrap()
}

/// f16 weights stay f16 in memory and are widened in the kernel: the engine answers exactly
/// what the same values stored as f32 give (same sums, same order).
#[test]
fn f16_weights_answer_what_their_f32_values_answer() {
    use ugr_core::native::WeightType;
    let f16 = Engine::from_bytes_with(&rounded_to_f16(WeightType::F16), BackendChoice::Native).unwrap();
    let f32 = Engine::from_bytes_with(&rounded_to_f16(WeightType::F32), BackendChoice::Native).unwrap();
    let (a, b) = (answers(&f16), answers(&f32));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.items, y.items, "history {:?}", x.history);
        assert_eq!(x.scores, y.scores, "history {:?}", x.history);
    }
}

/// Opening a file (memory-mapped on Unix) and opening its bytes give one engine.
#[test]
fn a_file_opened_and_its_bytes_answer_alike() {
    let path = data("tiny-model.ugr");
    let mapped = Engine::open_with(&path, BackendChoice::Native).unwrap();
    let read = Engine::from_bytes_with(&std::fs::read(&path).unwrap(), BackendChoice::Native).unwrap();
    let (a, b) = (answers(&mapped), answers(&read));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.items, &x.scores), (&y.items, &y.scores));
    }
}
