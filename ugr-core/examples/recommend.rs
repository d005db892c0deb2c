//! Engine demo: a synthetic 4-level catalog, a deterministic test model with confidence
//! tokens, and the constrained beam search with and without difficulty-aware pruning.
//!
//! Run: `cargo run --release -p ugr-core --example recommend`
//!
//! The model here is a hash of (history, prefix), not a trained network: the demo shows the
//! engine's outputs (items, scores, confidences, model rows), not recommendation quality.

use ugr_core::model::testing::HashModel;
use ugr_core::prelude::*;

fn main() -> Result<(), Error> {
    let vocab = SidVocab::new(&[32, 32, 32, 32])?;
    let mut builder = CatalogBuilder::new(vocab);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for item in 0..5_000u32 {
        let mut code = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 32) as u16
        };
        let sid = Sid::new(&[code() % 12, code(), code(), code() % 4])?;
        builder.push_with_popularity(ItemId::new(item), sid, item % 7)?;
    }
    let catalog = builder.build()?;
    let s = catalog.stats();
    println!(
        "catalog: {} items, {} SIDs ({} shared by {} items), prefixes per level {:?}",
        s.items,
        s.sids,
        s.colliding_sids,
        s.colliding_items,
        &s.prefixes[..s.levels]
    );

    let model = HashModel::new(vocab, 2026).with_confidence(true);
    let calibration = Calibration::isotonic(vec![0.0, 0.5, 1.0], vec![0.02, 0.10, 0.35])?;
    let mut search = BeamSearch::new(&catalog).with_calibration(Some(&calibration));
    let histories: Vec<Vec<ItemId>> = vec![
        vec![ItemId::new(12), ItemId::new(873), ItemId::new(44)],
        vec![ItemId::new(4_000)],
        vec![],
    ];
    let batch: Vec<&[ItemId]> = histories.iter().map(Vec::as_slice).collect();
    for (name, pruning) in [
        ("plain beam search", Pruning::Off),
        (
            "adaptive pruning",
            Pruning::Adaptive {
                min_margin: 1.0,
                max_margin: 4.0,
                levels: 1,
            },
        ),
    ] {
        let opts = SearchOptions {
            beam: 20,
            top_k: 5,
            exclude_history: true,
            pruning,
            ..SearchOptions::default()
        };
        println!("\n== {name} (B = 20, top-5, history excluded)");
        for (h, result) in histories.iter().zip(search.run(&model, &batch, &opts)?) {
            println!(
                "history {:?}: {} model rows, difficulty {:?}",
                h.iter().map(|i| i.as_u32()).collect::<Vec<_>>(),
                result.stats.model_rows,
                result.stats.difficulty.map(|d| (d * 100.0).round() / 100.0)
            );
            println!(
                "  {:>6}  {:<24} {:>8} {:>9} {:>8} {:>10}",
                "item", "SID", "score", "posterior", "c", "calibrated"
            );
            for r in &result.items {
                println!(
                    "  {:>6}  {:<24} {:>8.3} {:>9.3} {:>8.3} {:>10.3}",
                    r.item.as_u32(),
                    catalog.sid(r.sid_index).to_string(),
                    r.score,
                    r.posterior,
                    r.learned_confidence.unwrap_or(f32::NAN),
                    r.confidence
                );
            }
        }
    }
    Ok(())
}
