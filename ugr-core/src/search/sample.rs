//! Sampled decoding: `draws` SIDs per request drawn level by level from the model's
//! distribution over the codes the catalog's trie allows, at a temperature. The RL stage's
//! sampled rollouts (`ugr train rl --rollouts sample`), where a group may repeat an item, so
//! its diversity can be measured; serving and evaluation use the beam search.
//!
//! At each level, a draw's next code is sampled from `softmax(z / T)` over its node's
//! children (the logits `z` of the level's codebook, or of the whole vocabulary under
//! [`Normalization::FullVocab`]); its log-probability is that of the untempered model, under
//! the search's normalisation ([`Normalization`]), so a draw's score is comparable with a
//! beam's. Draws are independent: the same SID can come back several times.

use alloc::vec;
use alloc::vec::Vec;

use super::{LevelColumns, Normalization, level_normalizer};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::{ItemId, NodeId, TokenId};
use crate::model::{SidModel, Step};
use crate::sid::Sid;

/// One sampled SID.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// Index of the SID among the catalog's SIDs.
    pub sid_index: u32,
    /// Sum of the untempered token log-probs.
    pub log_prob: f32,
    /// Mean token log-prob over the levels (the beam search's `score` without fusion).
    pub score: f32,
}

/// A small deterministic generator (SplitMix64): the same seed gives the same draws on
/// every platform, without a dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `draws` sampled SIDs for each history (most recent item last), at `temperature` (> 0;
/// small values approach greedy decoding). Fails on a history item outside the catalog, a
/// model error or non-finite logits.
pub fn sample<M: SidModel>(
    model: &M,
    catalog: &Catalog,
    histories: &[&[ItemId]],
    draws: usize,
    temperature: f32,
    normalization: Normalization,
    rng: &mut SplitMix64,
) -> Result<Vec<Vec<Draw>>> {
    if !(temperature > 0.0 && temperature.is_finite()) || draws == 0 {
        return Err(Error::InvalidOption {
            name: "temperature",
            reason: "sampling needs a finite temperature > 0 and at least one draw",
        });
    }
    let vocab = catalog.vocab();
    let trie = catalog.trie();
    let sids: Vec<Vec<Sid>> = histories
        .iter()
        .map(|h| h.iter().map(|&i| catalog.sid_of(i)).collect::<Result<Vec<_>>>())
        .collect::<Result<_>>()?;
    let slices: Vec<&[Sid]> = sids.iter().map(Vec::as_slice).collect();
    let n = histories.len();
    let mut cache = model.new_cache();
    // Every draw's node, summed log-prob, and the model row it reads its logits from.
    let mut nodes = vec![trie.root().as_u32(); n * draws];
    let mut log_probs = vec![0f32; n * draws];
    let mut rows: Vec<u32> = (0..n * draws).map(|d| (d / draws) as u32).collect();
    let mut weights: Vec<f32> = Vec::new();
    let mut tokens: Vec<TokenId> = Vec::with_capacity(n * draws);
    for level in 0..vocab.levels() {
        let columns = LevelColumns::new(vocab, level, normalization);
        if level == 0 {
            model
                .prefill(&mut cache, &slices, columns.range.clone())
                .map_err(|e| Error::Model(e.into()))?;
        } else {
            let step = Step {
                parents: &rows,
                tokens: &tokens,
                tokens_per_row: 1,
                logits_for: columns.range.clone(),
            };
            model
                .step(&mut cache, &step)
                .map_err(|e| Error::Model(e.into()))?;
            // After the step, draw d reads row d.
            for (d, r) in rows.iter_mut().enumerate() {
                *r = d as u32;
            }
        }
        let logits = model.logits(&cache);
        let expected = if level == 0 { n } else { n * draws } * columns.width;
        if logits.len() != expected {
            return Err(Error::ModelOutput {
                expected,
                got: logits.len(),
            });
        }
        tokens.clear();
        for d in 0..n * draws {
            let row = &logits[rows[d] as usize * columns.width..][..columns.width];
            let codes_row = &row[columns.offset..columns.offset + columns.codebook];
            let (first, codes) = trie.children(NodeId::new(nodes[d]));
            if codes.is_empty() {
                return Err(Error::Corrupt("a trie node above the last level has no child"));
            }
            let allowed = |c: &u16| codes_row[usize::from(*c)];
            let lse = level_normalizer(normalization, row, codes_row, codes, &mut weights).ok_or(
                Error::NonFiniteLogits {
                    row: rows[d] as usize,
                },
            )?;
            // softmax(z / T) over the children, by inverse transform.
            weights.clear();
            weights.extend(codes.iter().map(|c| allowed(c) / temperature));
            let top = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0f64;
            for w in weights.iter_mut() {
                *w = libm::expf(*w - top);
                total += f64::from(*w);
            }
            let mut u = rng.next_f64() * total;
            let mut pick = codes.len() - 1;
            for (i, &w) in weights.iter().enumerate() {
                if u < f64::from(w) {
                    pick = i;
                    break;
                }
                u -= f64::from(w);
            }
            let code = codes[pick];
            log_probs[d] += codes_row[usize::from(code)] - lse;
            nodes[d] = first.as_u32() + pick as u32;
            tokens.push(vocab.code_token(level, code));
        }
    }
    let levels = vocab.levels() as f32;
    let mut out = Vec::with_capacity(n);
    for r in 0..n {
        let mut group = Vec::with_capacity(draws);
        for d in r * draws..(r + 1) * draws {
            let sid_index = trie
                .leaf_index(NodeId::new(nodes[d]))
                .ok_or(Error::Corrupt("a sampled path does not end at a leaf"))?;
            group.push(Draw {
                sid_index,
                log_prob: log_probs[d],
                score: log_probs[d] / levels,
            });
        }
        out.push(group);
    }
    Ok(out)
}
