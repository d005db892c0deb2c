//! The interface between the beam search and a model.
//!
//! A model turns a user's history (a list of item SIDs) and a partial SID into
//! next-token logits. The search drives it in three kinds of calls, all batched over
//! *rows*:
//!
//! 1. [`prefill`](SidModel::prefill): one row per request; the model builds its
//!    cache (KV cache, or encoder memory) from each history once and returns the
//!    logits of the first SID level.
//! 2. [`step`](SidModel::step), once per further level: the search has chosen new
//!    beams; row `i` of the new batch continues row `parents[i]` of the previous
//!    batch with `tokens[i]`. The model re-orders its cache by `parents` (a gather;
//!    rows of different requests never mix) and returns logits for every new row.
//! 3. An optional last `step` with two tokens per row (the last SID code, then
//!    `CONF_Q`) whose logits of `C_LOW` and `C_HIGH` give the learned confidence.
//!
//! Every call names the contiguous token range whose logits it wants
//! (`logits_for`): by default the current level's codebook, so a model may compute
//! only those columns (see [`Normalization`](crate::Normalization)). Logits are
//! read back with [`logits`](SidModel::logits): `rows * logits_for.len()` floats,
//! row-major, owned by the cache, so a backend can hand out its output buffer
//! without a copy. Rows must not influence each other: the search relies on a row's
//! logits depending only on its own history and prefix.
//!
//! **Item head** (optional): a model may also score every catalog SID as a whole from the
//! user state (an item-level softmax, as ID-based recommenders do). After a
//! [`prefill`](SidModel::prefill), [`item_logits`](SidModel::item_logits) hands out
//! `requests * catalog.sid_count()` logits, one row per request, columns in catalog SID
//! index order, valid until the next `prefill` (steps do not touch them). The search fuses
//! them with the generative score (see [`ItemFusion`](crate::ItemFusion)).
//!
//! Implementations: the test models in [`testing`], the native backend (feature
//! `native`), the tract backend (feature `onnx`), the candle model of `ugr-train`
//! (evaluation and RL rollouts) and its onnxruntime model (the `ort` benchmark).

pub mod testing;

use core::ops::Range;

use crate::ids::TokenId;
use crate::sid::Sid;

/// One decoding step over a batch of rows.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// For each new row, the row of the previous batch it continues.
    pub parents: &'a [u32],
    /// `parents.len() * tokens_per_row` tokens, row-major, appended to each row.
    pub tokens: &'a [TokenId],
    /// Tokens appended per row: 1 while decoding, 2 for the confidence query.
    pub tokens_per_row: usize,
    /// Token ids whose logits are wanted for the last position of each row.
    pub logits_for: Range<u32>,
}

impl Step<'_> {
    /// Number of rows in the new batch.
    #[inline]
    pub fn rows(&self) -> usize {
        self.parents.len()
    }

    /// The tokens appended to row `i`.
    #[inline]
    pub fn row_tokens(&self, i: usize) -> &[TokenId] {
        &self.tokens[i * self.tokens_per_row..][..self.tokens_per_row]
    }
}

/// The item head on part of the catalog ([`SidModel::item_shortlist`]).
#[derive(Clone, Copy, Debug)]
pub struct ItemShortlist<'a> {
    /// Request `r`'s candidates are `sids[bounds[r]..bounds[r + 1]]` (catalog SID indices).
    pub sids: &'a [u32],
    /// Their exact logits, parallel to `sids`.
    pub logits: &'a [f32],
    /// `requests + 1` offsets into `sids`.
    pub bounds: &'a [usize],
    /// Per request, the estimate of `log sum_s exp(logit_s)` over every SID that stands in
    /// for the exact one (a constant per request: it moves scores, not rankings).
    pub log_norm: &'a [f32],
}

/// A generative model over SID tokens, driven by the beam search (see the module docs).
pub trait SidModel {
    /// Per-batch state: the KV cache or encoder memory, scratch buffers and the last logits.
    type Cache;
    /// The backend's error; the search wraps it in [`Error::Model`](crate::Error::Model).
    type Error: core::error::Error + Send + Sync + 'static;

    /// Whether the model has learned the confidence tokens (`CONF_Q`, `C_LOW`, `C_HIGH`).
    fn has_confidence(&self) -> bool {
        false
    }

    /// An empty cache; one cache can serve many searches in turn (buffers are reused).
    fn new_cache(&self) -> Self::Cache;

    /// Encodes `histories` (one row each, most recent item last; possibly empty, possibly
    /// longer than the model reads: the model keeps the most recent items it supports) and
    /// computes the first level's logits.
    fn prefill(
        &self,
        cache: &mut Self::Cache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), Self::Error>;

    /// Re-orders the cache by `step.parents`, appends `step.tokens` and computes the logits.
    fn step(&self, cache: &mut Self::Cache, step: &Step<'_>) -> Result<(), Self::Error>;

    /// The logits of the last call: `rows * logits_for.len()` floats, row-major.
    fn logits<'a>(&'a self, cache: &'a Self::Cache) -> &'a [f32];

    /// The item head's logits of the last `prefill`: `requests * sid_count` floats, one row
    /// per request, columns in catalog SID index order; `None` when the model has no item head.
    fn item_logits<'a>(&'a self, _cache: &'a Self::Cache) -> Option<&'a [f32]> {
        None
    }

    /// The item head scored on part of the catalog: for a model whose catalog is too large
    /// for a full row per request (the native backend's item index, above
    /// [`ITEM_INDEX_MIN_SIDS`](crate::native::ITEM_INDEX_MIN_SIDS)), the candidates of the
    /// last `prefill` with their exact logits, and an estimate of each request's
    /// log-normaliser. `None` when [`item_logits`](Self::item_logits) has the full row.
    fn item_shortlist<'a>(&'a self, _cache: &'a Self::Cache) -> Option<ItemShortlist<'a>> {
        None
    }

    /// The item head's exact logit of SID `sid` (catalog SID index) for request `r` of the
    /// last `prefill`: what a model with a shortlist answers for SIDs outside it.
    fn item_logit(&self, _cache: &Self::Cache, _r: usize, _sid: u32) -> Option<f32> {
        None
    }

    /// The weight of the item head's log-probability in the fused score that the model was
    /// fitted with (on a validation split); `None` when the model has no item head or no
    /// fitted weight. [`ItemFusion::Model`](crate::ItemFusion::Model) uses it.
    fn item_weight(&self) -> Option<f32> {
        None
    }
}
