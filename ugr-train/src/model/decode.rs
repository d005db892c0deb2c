//! The candle model behind ugr-core's [`SidModel`] trait: evaluation and RL rollouts run
//! ugr-core's beam search over it (the project's one beam search).
//!
//! Prefill runs the user encoder once per request and the SID head's first position; each
//! step gathers the head's KV cache by parent row (`index_select`) and appends the new
//! tokens. Logits are computed only for the requested token range.

use std::ops::Range;

use candle_core::{DType, IndexOp, Tensor};
use ugr_core::{Catalog, Sid, SidModel, Step};

use super::SidTransformer;
use super::layers::Kv;

/// A [`SidTransformer`] driven by the beam search.
pub struct CandleModel<'m> {
    model: &'m SidTransformer,
    catalog: &'m Catalog,
    item_weight: Option<f32>,
}

impl<'m> CandleModel<'m> {
    /// Wraps a model for decoding over `catalog` (the one it was trained on).
    pub fn new(model: &'m SidTransformer, catalog: &'m Catalog) -> Self {
        CandleModel {
            model,
            catalog,
            item_weight: None,
        }
    }

    /// Declares the fusion weight fitted for this model (`fusion.json` of its run), which
    /// [`ugr_core::ItemFusion::Model`] uses; the item head's logits are produced whenever the
    /// model has one.
    pub fn with_item_weight(mut self, weight: Option<f32>) -> Self {
        self.item_weight = weight;
        self
    }
}

/// Per-batch decoding state: the SID head's keys/values per layer and the last logits.
#[derive(Default)]
pub struct CandleCache {
    kv: Vec<Kv>,
    next_position: usize,
    logits: Vec<f32>,
    items: Option<Vec<f32>>,
}

impl CandleModel<'_> {
    fn finish(&self, cache: &mut CandleCache, h: &Tensor, range: Range<u32>) -> candle_core::Result<()> {
        let last = h.i((.., h.dim(1)? - 1, ..))?.contiguous()?;
        let logits = self.model.logits(&last, range)?;
        cache.logits = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(())
    }
}

impl SidModel for CandleModel<'_> {
    type Cache = CandleCache;
    type Error = candle_core::Error;

    fn has_confidence(&self) -> bool {
        self.model.config().confidence
    }

    fn new_cache(&self) -> CandleCache {
        CandleCache::default()
    }

    fn prefill(
        &self,
        cache: &mut CandleCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> candle_core::Result<()> {
        let m = self.model;
        let user = m.user_states(self.catalog, histories)?;
        cache.items = match m.item_scores(&user)? {
            Some(z) if z.dim(1)? == self.catalog.sid_count() => Some(z.flatten_all()?.to_vec1::<f32>()?),
            Some(z) => candle_core::bail!(
                "the item head scores {} SIDs, the catalog has {}",
                z.dim(1)?,
                self.catalog.sid_count()
            ),
            None => None,
        };
        let (h, kv) = m.head(&m.head_start(&user)?, None, &mut None)?;
        cache.kv = kv;
        cache.next_position = 1;
        self.finish(cache, &h, logits_for)
    }

    fn step(&self, cache: &mut CandleCache, step: &Step<'_>) -> candle_core::Result<()> {
        let m = self.model;
        let rows = step.rows();
        if step.tokens.len() != rows * step.tokens_per_row || rows == 0 {
            candle_core::bail!("bad step: {} tokens for {rows} rows", step.tokens.len())
        }
        let parents = Tensor::new(step.parents, m.device())?;
        let past: Vec<Kv> = cache
            .kv
            .iter()
            .map(|(k, v)| Ok((k.index_select(&parents, 0)?, v.index_select(&parents, 0)?)))
            .collect::<candle_core::Result<_>>()?;
        let tokens: Vec<u32> = step.tokens.iter().map(|t| t.as_u32()).collect();
        let tokens = Tensor::from_vec(tokens, (rows, step.tokens_per_row), m.device())?;
        let x = m.head_embed(&tokens, cache.next_position)?;
        let (h, kv) = m.head(&x, Some(&past), &mut None)?;
        cache.kv = kv;
        cache.next_position += step.tokens_per_row;
        self.finish(cache, &h, step.logits_for.clone())
    }

    fn logits<'a>(&'a self, cache: &'a CandleCache) -> &'a [f32] {
        &cache.logits
    }

    fn item_logits<'a>(&'a self, cache: &'a CandleCache) -> Option<&'a [f32]> {
        cache.items.as_deref()
    }

    fn item_weight(&self) -> Option<f32> {
        self.item_weight.filter(|_| self.model.has_item_head())
    }
}
