//! Shared helpers: random catalogs and the exhaustive ranking oracle.

#![allow(dead_code, unreachable_pub)]

use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;
use ugr_core::math::log_sum_exp;
use ugr_core::model::testing::HashModel;
use ugr_core::{Catalog, CatalogBuilder, ItemId, Normalization, Sid, SidVocab, Special, TokenId};

/// The property tests' configuration: `cases` natively. Under Miri (CI) two cases with
/// proptest's cheap XorShift generator and no regression files (Miri isolates the file
/// system): the point there is undefined behaviour, not coverage, and ChaCha-generated
/// values cost seconds each when interpreted.
pub fn proptest_config(cases: u32) -> ProptestConfig {
    if cfg!(miri) {
        ProptestConfig {
            cases: 2,
            rng_algorithm: RngAlgorithm::XorShift,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    } else {
        ProptestConfig::with_cases(cases)
    }
}

/// A random catalog: 1-4 levels, codebooks of 2-6 codes, 1-40 items with random
/// (often colliding) SIDs, random sparse item ids and popularity.
pub fn catalog_strategy() -> impl Strategy<Value = Catalog> {
    (1usize..=4)
        .prop_flat_map(|levels| (proptest::collection::vec(2u32..=6, levels), 1usize..=40))
        .prop_flat_map(|(sizes, n)| {
            let sid = sizes.iter().map(|&s| 0..s as u16).collect::<Vec<_>>();
            (
                Just(sizes),
                proptest::collection::vec((sid, 0u32..4), n),
                // Under Miri a smaller id space: sampling from it is interpreted.
                proptest::sample::subsequence(
                    (0..if cfg!(miri) { 64 } else { 1000u32 }).collect::<Vec<_>>(),
                    n,
                ),
            )
        })
        .prop_map(|(sizes, entries, ids)| {
            let vocab = SidVocab::new(&sizes).unwrap();
            let mut b = CatalogBuilder::new(vocab);
            for ((codes, pop), id) in entries.into_iter().zip(ids) {
                b.push_with_popularity(ItemId::new(id), Sid::new(&codes).unwrap(), pop)
                    .unwrap();
            }
            b.build().unwrap()
        })
}

/// The logits range the search asks for at `level`.
pub fn range(catalog: &Catalog, level: usize, norm: Normalization) -> std::ops::Range<u32> {
    match norm {
        Normalization::Level | Normalization::Trie => catalog.vocab().level_tokens(level),
        Normalization::FullVocab => 0..catalog.vocab().size(),
    }
}

/// Sum of token log-probs of SID `s` under `model`, computed exactly as the search does.
pub fn sid_log_prob(
    catalog: &Catalog,
    model: &HashModel,
    history: &[Sid],
    s: u32,
    norm: Normalization,
) -> f32 {
    let vocab = catalog.vocab();
    let sid = catalog.sid(s);
    let mut prefix: Vec<TokenId> = Vec::new();
    let mut cum = 0.0f32;
    for (level, &code) in sid.codes().iter().enumerate() {
        let r = range(catalog, level, norm);
        let logits = model.logits_of(history, &prefix, r.clone());
        let off = (vocab.level_tokens(level).start - r.start) as usize;
        let lse = match norm {
            Normalization::Trie => {
                // over the codes the catalog allows after this prefix
                let node = catalog.trie().walk(&sid.codes()[..level]).unwrap();
                let allowed: Vec<f32> = catalog
                    .trie()
                    .children(node)
                    .1
                    .iter()
                    .map(|&c| logits[off + usize::from(c)])
                    .collect();
                log_sum_exp(&allowed).unwrap()
            }
            _ => log_sum_exp(&logits).unwrap(),
        };
        let at = off + usize::from(code);
        let lp = logits[at] - lse;
        cum += lp;
        prefix.push(vocab.token(level, code).unwrap());
    }
    cum
}

/// The learned confidence of SID `s`: sigmoid(z_high - z_low) after the SID and CONF_Q.
pub fn sid_confidence(catalog: &Catalog, model: &HashModel, history: &[Sid], s: u32) -> f32 {
    let mut prefix: Vec<TokenId> = catalog.vocab().encode(&catalog.sid(s)).unwrap().collect();
    prefix.push(Special::ConfQ.token());
    let lo = Special::CLow.token().as_u32();
    let z = model.logits_of(history, &prefix, lo..lo + 2);
    1.0 / (1.0 + (-(z[1] - z[0])).exp())
}

/// Every item ranked by (log-prob desc, SID asc, expansion order), minus `excluded`.
pub fn exhaustive(
    catalog: &Catalog,
    model: &HashModel,
    history: &[ItemId],
    excluded: &[ItemId],
    norm: Normalization,
) -> Vec<(ItemId, f32)> {
    let hist: Vec<Sid> = history.iter().map(|&i| catalog.sid_of(i).unwrap()).collect();
    let mut sids: Vec<(f32, u32)> = (0..catalog.sid_count() as u32)
        .map(|s| (sid_log_prob(catalog, model, &hist, s, norm), s))
        .collect();
    sids.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    sids.iter()
        .flat_map(|&(lp, s)| catalog.items_of(s).iter().map(move |&i| (i, lp)))
        .filter(|(i, _)| !excluded.contains(i))
        .collect()
}

/// The exhaustive fused ranking: every SID by `mean log-prob + w * item log-prob` (the item
/// head's log-softmax over every catalog SID), ties by SID order; items expanded as the search does.
pub fn exhaustive_fused(
    catalog: &Catalog,
    model: &HashModel,
    history: &[ItemId],
    excluded: &[ItemId],
    norm: Normalization,
    w: f32,
) -> Vec<(ItemId, f32)> {
    let hist: Vec<Sid> = history.iter().map(|&i| catalog.sid_of(i).unwrap()).collect();
    let n = catalog.sid_count() as u32;
    let z: Vec<f32> = (0..n).map(|s| model.item_logit_of(&hist, s)).collect();
    let lse = ugr_core::math::log_sum_exp(&z).unwrap();
    let levels = catalog.vocab().levels() as f32;
    let mut sids: Vec<(f32, u32)> = (0..n)
        .map(|s| {
            let generative = sid_log_prob(catalog, model, &hist, s, norm) / levels;
            (generative + w * (z[s as usize] - lse), s)
        })
        .collect();
    sids.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    sids.iter()
        .flat_map(|&(f, s)| catalog.items_of(s).iter().map(move |&i| (i, f)))
        .filter(|(i, _)| !excluded.contains(i))
        .collect()
}
