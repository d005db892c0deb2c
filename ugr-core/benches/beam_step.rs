//! Trie and beam bookkeeping per decoding step, with a zero-cost model.
//!
//! B = 20 beams, top-10, L = 4 levels, C = 256 codes, on the Beauty catalog from
//! `../shared/data/Beauty` (12,101 items) or, when absent, a generated catalog of the
//! same shape. The model hands out precomputed logits, so the time measured is the
//! search's own work: log-softmax over each beam's codebook row, the trie walk,
//! candidate selection, pruning and result expansion. Target: < 10 us per step per
//! request. Run: `cargo bench -p ugr-core --bench beam_step`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use ugr_core::model::testing::FixedLogitsModel;
use ugr_core::{
    BeamSearch, Catalog, CatalogBuilder, ItemId, Normalization, Pruning, Recommendations, SearchOptions, Sid,
    SidModel, SidVocab,
};

const LEVELS: usize = 4;

fn beauty_index() -> Option<PathBuf> {
    let dir = std::env::var_os("UGR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let p = dir.join("Beauty/Beauty.index.json");
    p.is_file().then_some(p)
}

/// The Beauty catalog, or a generated one of its shape (12,101 items, 197 level-1 codes,
/// about 40 level-2 codes per level-1 prefix, uniform levels 3 and 4).
fn catalog() -> (Catalog, &'static str) {
    let vocab = SidVocab::new(&[256; LEVELS]).unwrap();
    let mut b = CatalogBuilder::new(vocab);
    if let Some(path) = beauty_index() {
        let text = std::fs::read_to_string(&path).unwrap();
        let index: std::collections::BTreeMap<String, Vec<String>> = serde_json::from_str(&text).unwrap();
        for (id, tokens) in &index {
            let sid = Sid::parse_tokens(tokens.iter().map(String::as_str)).unwrap();
            b.push(ItemId::new(id.parse().unwrap()), sid).unwrap();
        }
        return (b.build().unwrap(), "Beauty (../shared/data)");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..12_101u32 {
        let a = (next() % 197) as u16;
        let b1 = ((u64::from(a) * 37 + next() % 40) % 256) as u16;
        let codes = [a, b1, (next() % 256) as u16, (next() % 256) as u16];
        b.push(ItemId::new(i), Sid::new(&codes).unwrap()).unwrap();
    }
    (b.build().unwrap(), "generated, Beauty-shaped")
}

struct Setup {
    catalog: Catalog,
    model: FixedLogitsModel,
    histories: Vec<Vec<ItemId>>,
}

fn setup() -> (Setup, &'static str) {
    let (catalog, source) = catalog();
    let model = FixedLogitsModel::new(catalog.vocab(), 64 * 20, 7);
    let ids = catalog.item_ids();
    let histories = (0..64)
        .map(|u| (0..8).map(|j| ids[(u * 131 + j * 977) % ids.len()]).collect())
        .collect();
    (
        Setup {
            catalog,
            model,
            histories,
        },
        source,
    )
}

fn options(pruning: Pruning, normalization: Normalization) -> SearchOptions {
    SearchOptions {
        beam: 20,
        top_k: 10,
        pruning,
        normalization,
        ..SearchOptions::default()
    }
}

fn cases() -> Vec<(&'static str, SearchOptions, usize)> {
    let adaptive = Pruning::Adaptive {
        min_margin: 1.0,
        max_margin: 4.0,
        levels: 1,
    };
    vec![
        ("1 request", options(Pruning::Off, Normalization::Level), 1),
        (
            "1 request, adaptive pruning",
            options(adaptive, Normalization::Level),
            1,
        ),
        (
            "1 request, full-vocab softmax",
            options(Pruning::Off, Normalization::FullVocab),
            1,
        ),
        (
            "32 requests per call",
            options(Pruning::Off, Normalization::Level),
            32,
        ),
    ]
}

fn run_once(
    s: &Setup,
    search: &mut BeamSearch<'_>,
    cache: &mut <FixedLogitsModel as SidModel>::Cache,
    out: &mut Vec<Recommendations>,
    opts: &SearchOptions,
    batch: usize,
    offset: usize,
) {
    let hs: Vec<&[ItemId]> = (0..batch)
        .map(|i| s.histories[(offset + i) % s.histories.len()].as_slice())
        .collect();
    search.run_with_cache(&s.model, cache, &hs, opts, out).unwrap();
    black_box(&out);
}

fn bench(c: &mut Criterion) {
    let (s, source) = setup();
    let mut group = c.benchmark_group("beam_step");
    for (name, opts, batch) in cases() {
        group.throughput(Throughput::Elements((LEVELS * batch) as u64));
        let mut search = BeamSearch::new(&s.catalog);
        let mut cache = s.model.new_cache();
        let mut out = Vec::new();
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                run_once(&s, &mut search, &mut cache, &mut out, &opts, batch, i);
            })
        });
    }
    group.finish();
    summary(&s, source);
}

/// A plain table of the per-step figure (median of 15 runs of 400 searches).
fn summary(s: &Setup, source: &str) {
    println!(
        "\nbeam_step summary: catalog {source}, {} items, B = 20, top-10, L = 4, C = 256",
        s.catalog.len()
    );
    println!("{:<34} {:>14} {:>16}", "case", "us / request", "us / step / req");
    for (name, opts, batch) in cases() {
        let mut search = BeamSearch::new(&s.catalog);
        let mut cache = s.model.new_cache();
        let mut out = Vec::new();
        let mut samples: Vec<f64> = (0..15)
            .map(|r| {
                let t = Instant::now();
                for i in 0..400 {
                    run_once(s, &mut search, &mut cache, &mut out, &opts, batch, r * 400 + i);
                }
                t.elapsed().as_secs_f64() * 1e6 / (400 * batch) as f64
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let per_request = samples[samples.len() / 2];
        println!(
            "{name:<34} {per_request:>14.2} {:>16.2}",
            per_request / LEVELS as f64
        );
    }
    println!("target: < 10 us per step per request");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
