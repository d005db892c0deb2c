//! The engine on mutated models: the tiny model of `tests/data/` with its graphs, weight
//! section or config mutated (the bundle is re-framed, so checksums are valid), opened
//! with the native backend (and tract with `--features tract`), then asked for
//! recommendations for a fuzzed history and fuzzed options, then under fuzzed business
//! rules (allow/deny lists with unknown ids, SID prefixes from fuzzed text) after a fuzzed
//! availability batch. Opening may fail and a request may fail, with a typed error; nothing
//! may panic, hang, return an item outside the catalog or an item a rule forbids.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ugr_core::{
    BackendChoice, Bundle, Constraints, Engine, ItemFusion, ItemId, Normalization, Pruning, RankBy,
    SearchOptions, Sid,
};
use ugr_fuzz::Input;

static BASE: LazyLock<Bundle> = LazyLock::new(|| {
    Bundle::from_bytes(include_bytes!("../../tests/data/tiny-model.ugr")).expect("tiny-model.ugr decodes")
});

/// Applies up to 7 mutations to the model section: byte flips, truncations, insertions or
/// 4-byte overwrites, in the first KiB of a blob (headers, shapes, graph structure) or
/// anywhere (weights).
fn mutate(bundle: &mut Bundle, inp: &mut Input<'_>) {
    let Some(model) = bundle.model.as_mut() else {
        return;
    };
    let mut config = std::mem::take(&mut model.config_json).into_bytes();
    for _ in 0..inp.u8() % 8 {
        let which = usize::from(inp.u8()) % (model.graphs.len() + 1);
        let bytes = match model.graphs.get_mut(which) {
            Some(blob) => &mut blob.bytes,
            None => &mut config,
        };
        let how = inp.u8();
        let off = inp.u32() as usize;
        let len = bytes.len();
        if len == 0 {
            continue;
        }
        let pos = if how & 1 == 0 {
            off % len.min(1024)
        } else {
            off % len
        };
        match (how >> 1) % 4 {
            0 => bytes[pos] ^= inp.u8().max(1),
            1 => bytes.truncate(pos),
            2 => bytes.insert(pos, inp.u8()),
            _ => {
                let v = inp.u32().to_le_bytes();
                let end = (pos + 4).min(len);
                bytes[pos..end].copy_from_slice(&v[..end - pos]);
            }
        }
    }
    model.config_json = String::from_utf8_lossy(&config).into_owned();
}

fn options(inp: &mut Input<'_>) -> SearchOptions {
    let flags = inp.u8();
    SearchOptions {
        beam: usize::from(inp.u8() % 48),
        top_k: usize::from(inp.u8() % 40),
        exclude_history: flags & 1 != 0,
        pruning: match inp.u8() % 3 {
            0 => Pruning::Off,
            1 => Pruning::Fixed { margin: inp.f32() },
            _ => Pruning::Adaptive {
                min_margin: inp.f32(),
                max_margin: inp.f32(),
                levels: inp.u8(),
            },
        },
        normalization: match (flags >> 1) % 3 {
            0 => Normalization::Level,
            1 => Normalization::FullVocab,
            _ => Normalization::Trie,
        },
        learned_confidence: flags & 8 != 0,
        beta: if flags & 16 != 0 { inp.f32() } else { 0.5 },
        min_confidence: (flags & 32 != 0).then(|| inp.f32()),
        rank_by: if flags & 64 != 0 {
            RankBy::Hybrid
        } else {
            RankBy::Score
        },
        item_fusion: match inp.u8() % 3 {
            0 => ItemFusion::Model,
            1 => ItemFusion::Off,
            _ => ItemFusion::Weight(inp.f32()),
        },
    }
}

fn exercise(engine: &Engine, history: &[ItemId], opts: &SearchOptions) {
    let catalog = engine.catalog();
    if let Ok(recs) = engine.recommend(history, opts) {
        assert!(recs.items.len() <= opts.top_k);
        let mut seen = std::collections::HashSet::new();
        for r in &recs.items {
            assert!(
                catalog.sid_of(r.item).is_ok(),
                "item {} is not in the catalog",
                r.item
            );
            assert!(seen.insert(r.item), "item {} returned twice", r.item);
            assert!(!(opts.exclude_history && history.contains(&r.item)));
            assert!((0.0..=1.0).contains(&r.confidence), "confidence {}", r.confidence);
        }
    }
    let half = &history[..history.len() / 2];
    let _ = engine.recommend_batch(&[history, half, &[]], opts);
}

/// Fuzzed rules and availability: whatever comes back obeys them.
fn exercise_rules(engine: &Engine, history: &[ItemId], opts: &SearchOptions, rules: &Rules) {
    let catalog = engine.catalog();
    let _ = engine.update_availability(&rules.availability);
    let constraints = Constraints {
        allow: rules.allow.as_deref(),
        deny: &rules.deny,
        prefixes: &rules.prefixes,
    };
    if let Ok(recs) = engine.recommend_with(history, &constraints, opts) {
        for r in &recs.items {
            assert!(!rules.deny.contains(&r.item), "denied item {} returned", r.item);
            assert!(rules.allow.as_ref().is_none_or(|a| a.contains(&r.item)));
            assert!(
                engine.is_available(r.item).unwrap_or(false),
                "unavailable item {} returned",
                r.item
            );
            let sid = catalog.sid_of(r.item).expect("a catalog item");
            assert!(
                rules.prefixes.is_empty()
                    || rules.prefixes.iter().any(|p| sid.codes().starts_with(p.codes()))
            );
        }
    }
}

/// One request's fuzzed rules.
struct Rules {
    allow: Option<Vec<ItemId>>,
    deny: Vec<ItemId>,
    prefixes: Vec<Sid>,
    availability: Vec<(ItemId, bool)>,
}

fn ids(inp: &mut Input<'_>, items: &[ItemId], n: u8) -> Vec<ItemId> {
    (0..n)
        .map(|_| {
            let v = inp.u16();
            if v & 0x8000 != 0 {
                ItemId::new(u32::from(v & 0x7fff))
            } else {
                items[usize::from(v) % items.len()]
            }
        })
        .collect()
}

fn rules(inp: &mut Input<'_>, items: &[ItemId]) -> Rules {
    let flags = inp.u8();
    let allow = (flags & 1 != 0).then(|| {
        let n = inp.u8() % 64;
        ids(inp, items, n)
    });
    let n = inp.u8();
    let deny = ids(inp, items, n);
    let prefixes = String::from_utf8_lossy(inp.chunk())
        .split(' ')
        .filter_map(|t| Sid::parse(t).ok())
        .collect();
    let n = inp.u8() % 32;
    let availability = ids(inp, items, n)
        .into_iter()
        .map(|i| (i, flags & 2 != 0))
        .collect();
    Rules {
        allow,
        deny,
        prefixes,
        availability,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mut bundle = BASE.clone();
    mutate(&mut bundle, &mut inp);
    let items = BASE.catalog.item_ids();
    let history: Vec<ItemId> = (0..inp.u8() % 24)
        .map(|_| {
            let v = inp.u16();
            if v & 0x8000 != 0 {
                ItemId::new(u32::from(v & 0x7fff))
            } else {
                items[usize::from(v) % items.len()]
            }
        })
        .collect();
    let opts = options(&mut inp);
    let rules = rules(&mut inp, items);
    #[cfg(feature = "tract")]
    if let Ok(engine) = Engine::from_bundle_with(bundle.clone(), BackendChoice::Tract) {
        exercise(&engine, &history, &opts);
        exercise_rules(&engine, &history, &opts, &rules);
    }
    if let Ok(engine) = Engine::from_bundle_with(bundle, BackendChoice::Native) {
        exercise(&engine, &history, &opts);
        exercise_rules(&engine, &history, &opts, &rules);
    }
});
