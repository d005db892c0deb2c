//! How the catalog's costs grow with its size: synthetic catalogs of 100k, 1M and 10M items
//! (4 levels x 256 codes, and 3 levels x 1024), each timed for build, artifact encoding,
//! loading (decode + full validation, what `Engine::from_bytes` does before the model),
//! with the artifact size, the resident memory of the loaded catalog, and the search's own
//! work per decoding step at beam 20 and 100 (a zero-cost model hands out fixed logits, so
//! the time is the trie walk, the softmax over each beam's codes, selection and expansion).
//!
//! Run: `cargo bench -p ugr-core --bench catalog_scale` (about 2 minutes and 2 GB at 10M
//! items); `UGR_SCALE_ITEMS=100000,1000000` picks the sizes.

use std::hint::black_box;
use std::time::Instant;

use ugr_core::model::testing::FixedLogitsModel;
use ugr_core::{
    BeamSearch, Bundle, Catalog, CatalogBuilder, ItemId, Recommendations, SearchOptions, Sid, SidModel,
    SidVocab,
};

/// Resident set size in MB (Linux `/proc/self/statm`; 0 elsewhere).
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

/// `n` items with uniformly drawn codes (SIDs may be shared, as with real collisions).
fn build(shape: &[u32], n: u32) -> Catalog {
    let vocab = SidVocab::new(shape).unwrap();
    let mut b = CatalogBuilder::new(vocab);
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(n);
    let mut codes = [0u16; 4];
    for i in 0..n {
        for (c, &size) in codes.iter_mut().zip(shape) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *c = (state % u64::from(size)) as u16;
        }
        b.push(ItemId::new(i), Sid::new(&codes[..shape.len()]).unwrap())
            .unwrap();
    }
    b.build().unwrap()
}

/// Median microseconds per decoding step of one request (15 rounds of `reps` searches).
fn step_us(catalog: &Catalog, beam: usize) -> f64 {
    let model = FixedLogitsModel::new(catalog.vocab(), 2 * beam + 8, 3);
    let ids = catalog.item_ids();
    let histories: Vec<Vec<ItemId>> = (0..64)
        .map(|u| {
            (0..8)
                .map(|j| ids[(u * 7919 + j * 104_729) % ids.len()])
                .collect()
        })
        .collect();
    let opts = SearchOptions {
        beam,
        top_k: 10,
        exclude_history: true,
        ..SearchOptions::default()
    };
    let mut search = BeamSearch::new(catalog);
    let mut cache = model.new_cache();
    let mut out: Vec<Recommendations> = Vec::new();
    let reps = 4000 / beam;
    let mut samples: Vec<f64> = (0..15)
        .map(|r| {
            let t = Instant::now();
            for i in 0..reps {
                let h = histories[(r * reps + i) % histories.len()].as_slice();
                search
                    .run_with_cache(&model, &mut cache, &[h], &opts, &mut out)
                    .unwrap();
                black_box(&out);
            }
            t.elapsed().as_secs_f64() * 1e6 / reps as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2] / catalog.vocab().levels() as f64
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let sizes: Vec<u32> = std::env::var("UGR_SCALE_ITEMS")
        .unwrap_or_else(|_| "100000,1000000,10000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("UGR_SCALE_ITEMS: comma-separated item counts")
        })
        .collect();
    println!(
        "catalog scale: synthetic catalogs, uniform codes; heap = the loaded catalog's arrays, RSS = resident memory it added (approximate)"
    );
    println!(
        "{:<10} {:>10} {:>9} {:>10} {:>9} {:>10} {:>10} {:>9} {:>13} {:>14}",
        "shape",
        "items",
        "SIDs",
        "build ms",
        "encode",
        "artifact MB",
        "load ms",
        "RSS MB",
        "us/step B=20",
        "us/step B=100"
    );
    for shape in [&[256u32, 256, 256, 256][..], &[1024, 1024, 1024][..]] {
        for &n in &sizes {
            let t = Instant::now();
            let catalog = build(shape, n);
            let build_ms = t.elapsed().as_secs_f64() * 1e3;
            let sids = catalog.sid_count();
            let t = Instant::now();
            let bytes = Bundle::new(catalog).to_bytes().unwrap();
            let encode_ms = t.elapsed().as_secs_f64() * 1e3;
            let before = rss_mb();
            let t = Instant::now();
            let bundle = Bundle::from_bytes(&bytes).unwrap();
            let load_ms = t.elapsed().as_secs_f64() * 1e3;
            let artifact_mb = bytes.len() as f64 / 1e6;
            drop(bytes);
            let rss = rss_mb() - before + artifact_mb; // the bytes were resident before and freed after
            let heap = bundle.catalog.heap_bytes() as f64 / 1e6;
            let (s20, s100) = (step_us(&bundle.catalog, 20), step_us(&bundle.catalog, 100));
            let name = shape.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("x");
            println!(
                "{name:<16} {n:>9} {sids:>9} {build_ms:>9.0} {encode_ms:>9.0} {artifact_mb:>11.1} {load_ms:>8.0} {heap:>8.1} {rss:>7.0} {s20:>13.2} {s100:>14.2}"
            );
        }
    }
}
