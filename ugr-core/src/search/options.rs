//! What a search is asked to do: beam width, K, exclusion, pruning, normalisation, confidence.

use crate::error::{Error, Result};

/// Most beams or items one request may ask for (bounds the scratch memory).
pub const MAX_WIDTH: usize = 1 << 16;

/// How each level's log-probabilities are normalised.
///
/// With [`Level`](Normalization::Level) and [`FullVocab`](Normalization::FullVocab) the
/// search takes a log-softmax over the model's distribution and *then* keeps only the codes
/// the trie allows (it does not renormalise over the allowed codes, so a model that puts
/// mass on impossible codes is charged for it). [`Trie`](Normalization::Trie) takes the
/// log-softmax over the codes the trie allows after the beam's prefix (it renormalises over
/// them); it is for models trained that way. An engine decodes with the normalisation its
/// model's contract records ([`crate::contract::TrainedNormalization`]).
///
/// The default, [`Level`](Normalization::Level), normalises over the current level's
/// codebook: tokens of other levels and special tokens can never be emitted at that
/// position, so including them would only add the mass a model leaks to them to every
/// beam's score. Effect on scores: `log p_level(code) = log p_vocab(code) - log P(level
/// tokens)`, so scores are higher (less negative) than under full-vocabulary
/// normalisation by the leaked mass, and the ranking differs only where prefixes leak
/// different amounts. A trained model leaks almost nothing; the benefit is that the model
/// needs to compute only `C` logits per row instead of the whole vocabulary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalization {
    /// Log-softmax over the current level's codebook (default).
    #[default]
    Level,
    /// Log-softmax over the whole vocabulary (special tokens and every level).
    FullVocab,
    /// Log-softmax over the codes the trie allows after the beam's prefix: the model's
    /// distribution over catalog continuations. For models trained with the same restricted
    /// softmax (`ugr train sft --trie-loss`), whose logits for impossible codes mean nothing.
    /// Excluded history items do not change the normaliser.
    Trie,
}

/// Difficulty-aware pruning of beams (ours; UGR-METHOD section 4).
///
/// After each level, beams whose cumulative log-prob is more than `margin` nats below
/// the best beam of the request are dropped, but never so many that the kept beams hold
/// fewer than K (not excluded) catalog items: the search still returns K distinct items
/// whenever the catalog has them.
///
/// With [`Adaptive`](Pruning::Adaptive) the margin follows the request's difficulty: the
/// normalised entropy `H / ln(n)` (in `[0, 1]`) of the best beam's next-token distribution
/// over its `n` allowed (not excluded) children, averaged over the first `levels` levels. A peaked
/// distribution (an easy request) gets `min_margin`, a flat one `max_margin`, linearly
/// between. Beams that pruning drops are model rows saved; [`SearchStats::model_rows`]
/// counts the rows evaluated.
///
/// [`SearchStats::model_rows`]: crate::SearchStats::model_rows
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Pruning {
    /// Plain beam search.
    #[default]
    Off,
    /// Drop beams more than `margin` nats below the best.
    Fixed {
        /// Margin in nats on the cumulative log-prob.
        margin: f32,
    },
    /// A margin between `min_margin` and `max_margin` by the request's difficulty.
    Adaptive {
        /// Margin for the easiest (most peaked) requests.
        min_margin: f32,
        /// Margin for the hardest (flat) requests.
        max_margin: f32,
        /// Levels whose entropy is averaged into the difficulty (at least 1).
        levels: u8,
    },
}

/// Order of the returned items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RankBy {
    /// The ranking score ([`Recommendation::score`](crate::Recommendation::score): the mean
    /// token log-prob, plus the item head's share when fused), best first (default).
    #[default]
    Score,
    /// Hybrid score `exp(score) + beta * raw confidence` (the learned confidence, else the
    /// posterior, before calibration), best first (ties keep score order).
    Hybrid,
}

/// How the final candidates are scored when the model has an item head
/// ([`SidModel::item_logits`](crate::SidModel::item_logits)).
///
/// With a weight `w`, the search decodes the union of the generative beam and the item
/// head's `max(beam, top_k)` best SIDs (SIDs whose items are all excluded are skipped, and
/// the next best taken): the item head's SIDs are followed level by level like beams (their
/// prefixes are kept whatever their generative rank, and cost model rows; a forced prefix is
/// a full beam, so its other children compete at the next level too),
/// so every final candidate has an exact generative log-prob. Each candidate is then ranked
/// by `score = mean token log-prob + w * log p_item(SID)`, where `p_item` is the item head's
/// softmax over every catalog SID. Generated SIDs that the item head never saw in training and
/// transitions that the generative head does not memorise both count.
/// Without an item head, with [`ItemFusion::Off`], or with [`ItemFusion::Model`] on a model
/// without a fitted weight, the search is the pure generative one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ItemFusion {
    /// The weight the model was fitted with ([`SidModel::item_weight`](crate::SidModel::item_weight));
    /// pure generative search when it has none (default).
    #[default]
    Model,
    /// Pure generative search: the item head is ignored.
    Off,
    /// This weight (finite, `>= 0`); an error when the model has no item head.
    Weight(f32),
}

/// Options of one search (all requests of a call share them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchOptions {
    /// Beams kept per level (B). The search keeps `max(beam, top_k)` so that K items can be found.
    pub beam: usize,
    /// Distinct items returned per request (K).
    pub top_k: usize,
    /// Never return an item of the request's history; prefixes whose items are all in
    /// the history are not followed.
    pub exclude_history: bool,
    /// Beam pruning.
    pub pruning: Pruning,
    /// Log-softmax normalisation.
    pub normalization: Normalization,
    /// Query the learned confidence when the model has confidence tokens (one extra batched step).
    pub learned_confidence: bool,
    /// Weight of the confidence in the hybrid score (UGR reference: 0.5).
    pub beta: f32,
    /// Abstention: drop items whose (calibrated) confidence is below this.
    pub min_confidence: Option<f32>,
    /// Order of the returned items.
    pub rank_by: RankBy,
    /// Fusion of the generative score with the model's item head.
    pub item_fusion: ItemFusion,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            beam: 20,
            top_k: 10,
            exclude_history: false,
            pruning: Pruning::Off,
            normalization: Normalization::Level,
            learned_confidence: true,
            beta: 0.5,
            min_confidence: None,
            rank_by: RankBy::Score,
            item_fusion: ItemFusion::Model,
        }
    }
}

impl SearchOptions {
    /// Checks ranges: `1 <= beam, top_k <= MAX_WIDTH`, finite non-negative margins with
    /// `min <= max`, finite `beta`, `min_confidence` in `[0, 1]`, a finite non-negative fusion weight.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason| Err(Error::InvalidOption { name, reason });
        if self.beam == 0 || self.beam > MAX_WIDTH {
            return bad("beam", "must be in 1..=65536");
        }
        if self.top_k == 0 || self.top_k > MAX_WIDTH {
            return bad("top_k", "must be in 1..=65536");
        }
        let ok = |m: f32| m.is_finite() && m >= 0.0;
        match self.pruning {
            Pruning::Off => {}
            Pruning::Fixed { margin } if !ok(margin) => {
                return bad("pruning.margin", "must be finite and >= 0");
            }
            Pruning::Adaptive {
                min_margin,
                max_margin,
                levels,
            } if !ok(min_margin) || !ok(max_margin) || min_margin > max_margin || levels == 0 => {
                return bad(
                    "pruning",
                    "needs 0 <= min_margin <= max_margin (finite) and levels >= 1",
                );
            }
            _ => {}
        }
        if !self.beta.is_finite() {
            return bad("beta", "must be finite");
        }
        if self.min_confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            return bad("min_confidence", "must be in [0, 1]");
        }
        if let ItemFusion::Weight(w) = self.item_fusion
            && !(w.is_finite() && w >= 0.0)
        {
            return bad("item_fusion", "the weight must be finite and >= 0");
        }
        Ok(())
    }

    /// Beams actually kept per level: `max(beam, top_k)`.
    #[inline]
    pub fn width(&self) -> usize {
        self.beam.max(self.top_k)
    }
}
