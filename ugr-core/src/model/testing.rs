//! Deterministic models for tests and benchmarks.
//!
//! - [`HashModel`]: logits are a hash of (history, prefix, token), so every request
//!   has a different, fixed distribution, some peaked and some flat; a row's logits
//!   never depend on the other rows of the batch. With B >= catalog size the beam
//!   search must return exactly the exhaustive ranking under this model.
//! - [`FixedLogitsModel`]: a zero-cost model that hands out precomputed logits, to
//!   time the search's own bookkeeping (trie walk, softmax, selection).
//!
//! ```
//! use ugr_core::model::testing::HashModel;
//! use ugr_core::{BeamSearch, CatalogBuilder, ItemId, SearchOptions, Sid, SidVocab};
//! let vocab = SidVocab::new(&[4, 4])?;
//! let mut b = CatalogBuilder::new(vocab);
//! for i in 0..16u16 {
//!     b.push(ItemId::new(u32::from(i)), Sid::new(&[i / 4, i % 4])?)?;
//! }
//! let catalog = b.build()?;
//! let model = HashModel::new(vocab, 7);
//! let opts = SearchOptions { beam: 4, top_k: 3, ..SearchOptions::default() };
//! let out = BeamSearch::new(&catalog).run(&model, &[&[ItemId::new(1)]], &opts)?;
//! assert_eq!(out[0].items.len(), 3);
//! assert!(out[0].items[0].score >= out[0].items[1].score);
//! # Ok::<(), ugr_core::Error>(())
//! ```

use alloc::vec::Vec;
use core::ops::Range;

use crate::ids::TokenId;
use crate::model::{SidModel, Step};
use crate::sid::Sid;
use crate::vocab::{MAX_LEVELS, SidVocab};

/// Errors of the test models (bad batches from a caller).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestModelError {
    /// A parent row that the previous batch did not have.
    #[error("parent row {parent} out of range ({rows} rows)")]
    ParentOutOfRange {
        /// Requested parent.
        parent: u32,
        /// Rows of the previous batch.
        rows: usize,
    },
    /// `tokens.len() != rows * tokens_per_row`, or a prefix longer than the model supports.
    #[error("bad step shape")]
    BadStep,
    /// A logits range outside the vocabulary, or one this model has no table for.
    #[error("logits range {start}..{end} not supported")]
    BadRange {
        /// Range start.
        start: u32,
        /// Range end.
        end: u32,
    },
}

#[inline]
fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform float in `[0, 1)` from a hash.
#[inline]
fn unit(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

const MAX_PREFIX: usize = MAX_LEVELS + 2;

#[derive(Clone, Copy, Debug)]
struct HashRow {
    history: u64,
    sharpness: f32,
    len: u8,
    prefix: [u32; MAX_PREFIX],
}

impl HashRow {
    fn key(&self) -> u64 {
        self.prefix[..usize::from(self.len)]
            .iter()
            .fold(self.history, |h, &t| {
                mix(h ^ u64::from(t).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            })
    }
}

/// A model whose logits hash (history, prefix, token); see the module docs.
#[derive(Clone, Debug)]
pub struct HashModel {
    vocab: SidVocab,
    seed: u64,
    confidence: bool,
    coarse: bool,
    max_history: usize,
    /// Item head: the catalog's SID count and the fitted fusion weight.
    items: Option<(usize, Option<f32>)>,
}

impl HashModel {
    /// A model over `vocab` whose logits are fixed by `seed`; it reads the last 20 history items.
    pub fn new(vocab: SidVocab, seed: u64) -> Self {
        HashModel {
            vocab,
            seed,
            confidence: false,
            coarse: false,
            max_history: 20,
            items: None,
        }
    }

    /// Adds an item head over `sid_count` catalog SIDs (its logits hash (history, SID)),
    /// declaring `weight` as the model's fitted fusion weight.
    pub fn with_item_head(mut self, sid_count: usize, weight: Option<f32>) -> Self {
        self.items = Some((sid_count, weight));
        self
    }

    /// The item head's logit of catalog SID `sid` after `history` (when the model has one).
    pub fn item_logit_of(&self, history: &[Sid], sid: u32) -> f32 {
        let row = self.start_row(history);
        let u = unit(mix(row.history
            ^ 0x17e3
            ^ u64::from(sid).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        if self.coarse {
            (u * 3.0) as i32 as f32 - 1.0
        } else {
            row.sharpness * (u * 8.0 - 4.0)
        }
    }

    /// Declares learned confidence tokens (their logits are hashed like all others).
    pub fn with_confidence(mut self, yes: bool) -> Self {
        self.confidence = yes;
        self
    }

    /// Logits take only the values -1, 0 and 1, so scores tie often (tests the tie-break).
    pub fn with_coarse_logits(mut self, yes: bool) -> Self {
        self.coarse = yes;
        self
    }

    /// The logits this model gives after `history` and `prefix`, for the tokens of `range`.
    /// The search must see exactly these values, whatever the batch.
    pub fn logits_of(&self, history: &[Sid], prefix: &[TokenId], range: Range<u32>) -> Vec<f32> {
        let mut row = self.start_row(history);
        for &t in prefix {
            row.prefix[usize::from(row.len)] = t.as_u32();
            row.len += 1;
        }
        let mut out = Vec::new();
        self.fill(&row, range, &mut out);
        out
    }

    fn start_row(&self, history: &[Sid]) -> HashRow {
        let recent = &history[history.len().saturating_sub(self.max_history)..];
        let mut h = mix(self.seed ^ 0x5151);
        for sid in recent {
            for &c in sid.codes() {
                h = mix(h ^ u64::from(c));
            }
            h = mix(h ^ 0xabcd);
        }
        // Per-request sharpness from 0.25 (flat, hard) to 6 (peaked, easy).
        let sharpness = 0.25 + 5.75 * unit(mix(h ^ 0x77));
        HashRow {
            history: h,
            sharpness,
            len: 0,
            prefix: [0; MAX_PREFIX],
        }
    }

    fn fill(&self, row: &HashRow, range: Range<u32>, out: &mut Vec<f32>) {
        let key = row.key();
        out.extend(range.map(|t| {
            let u = unit(mix(key ^ u64::from(t).wrapping_mul(0xd6e8_feb8_6659_fd93)));
            if self.coarse {
                (u * 3.0) as i32 as f32 - 1.0
            } else {
                row.sharpness * (u * 6.0 - 3.0)
            }
        }));
    }

    fn check_range(&self, r: &Range<u32>) -> Result<(), TestModelError> {
        if r.start > r.end || r.end > self.vocab.size() {
            return Err(TestModelError::BadRange {
                start: r.start,
                end: r.end,
            });
        }
        Ok(())
    }
}

/// Cache of [`HashModel`]: each row's history hash and prefix.
#[derive(Clone, Debug, Default)]
pub struct HashCache {
    rows: Vec<HashRow>,
    next: Vec<HashRow>,
    logits: Vec<f32>,
    items: Vec<f32>,
}

impl SidModel for HashModel {
    type Cache = HashCache;
    type Error = TestModelError;

    fn has_confidence(&self) -> bool {
        self.confidence
    }

    fn new_cache(&self) -> HashCache {
        HashCache::default()
    }

    fn prefill(
        &self,
        cache: &mut HashCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), TestModelError> {
        self.check_range(&logits_for)?;
        cache.rows.clear();
        cache.logits.clear();
        cache.items.clear();
        for h in histories {
            let row = self.start_row(h);
            self.fill(&row, logits_for.clone(), &mut cache.logits);
            cache.rows.push(row);
            if let Some((sids, _)) = self.items {
                cache
                    .items
                    .extend((0..sids as u32).map(|s| self.item_logit_of(h, s)));
            }
        }
        Ok(())
    }

    fn step(&self, cache: &mut HashCache, step: &Step<'_>) -> Result<(), TestModelError> {
        self.check_range(&step.logits_for)?;
        if step.tokens.len() != step.rows() * step.tokens_per_row {
            return Err(TestModelError::BadStep);
        }
        cache.next.clear();
        cache.logits.clear();
        for (i, &p) in step.parents.iter().enumerate() {
            let mut row = *cache
                .rows
                .get(p as usize)
                .ok_or(TestModelError::ParentOutOfRange {
                    parent: p,
                    rows: cache.rows.len(),
                })?;
            for &t in step.row_tokens(i) {
                let slot = row
                    .prefix
                    .get_mut(usize::from(row.len))
                    .ok_or(TestModelError::BadStep)?;
                *slot = t.as_u32();
                row.len += 1;
            }
            self.fill(&row, step.logits_for.clone(), &mut cache.logits);
            cache.next.push(row);
        }
        core::mem::swap(&mut cache.rows, &mut cache.next);
        Ok(())
    }

    fn logits<'a>(&'a self, cache: &'a HashCache) -> &'a [f32] {
        &cache.logits
    }

    fn item_logits<'a>(&'a self, cache: &'a HashCache) -> Option<&'a [f32]> {
        self.items.map(|_| cache.items.as_slice())
    }

    fn item_weight(&self) -> Option<f32> {
        self.items.and_then(|(_, w)| w)
    }
}

/// A zero-cost model: precomputed logits tables, handed out without any work.
///
/// Rows get table row `i` whatever their prefix, so it is only meant for timing.
#[derive(Clone, Debug)]
pub struct FixedLogitsModel {
    tables: Vec<(Range<u32>, Vec<f32>)>,
    max_rows: usize,
}

impl FixedLogitsModel {
    /// Tables for every level's codebook, the whole vocabulary and the confidence tokens,
    /// `max_rows` rows each, with values drawn from `seed`.
    pub fn new(vocab: &SidVocab, max_rows: usize, seed: u64) -> Self {
        let conf =
            crate::vocab::Special::CLow.token().as_u32()..crate::vocab::Special::CHigh.token().as_u32() + 1;
        let mut ranges: Vec<Range<u32>> = (0..vocab.levels()).map(|l| vocab.level_tokens(l)).collect();
        ranges.push(0..vocab.size());
        ranges.push(conf);
        let tables = ranges
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let width = (r.end - r.start) as usize;
                let values = (0..max_rows * width)
                    .map(|i| {
                        let row_scale = 0.5 + 4.0 * unit(mix(seed ^ ((i / width) as u64) << 20));
                        row_scale * (unit(mix(seed ^ (k as u64) << 40 ^ i as u64)) * 6.0 - 3.0)
                    })
                    .collect();
                (r, values)
            })
            .collect();
        FixedLogitsModel { tables, max_rows }
    }

    fn select(&self, cache: &mut FixedCache, rows: usize, range: &Range<u32>) -> Result<(), TestModelError> {
        let bad = TestModelError::BadRange {
            start: range.start,
            end: range.end,
        };
        if rows > self.max_rows {
            return Err(bad);
        }
        cache.table = self.tables.iter().position(|(r, _)| r == range).ok_or(bad)?;
        cache.rows = rows;
        Ok(())
    }
}

/// Cache of [`FixedLogitsModel`]: which table, how many rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedCache {
    table: usize,
    rows: usize,
}

impl SidModel for FixedLogitsModel {
    type Cache = FixedCache;
    type Error = TestModelError;

    fn new_cache(&self) -> FixedCache {
        FixedCache::default()
    }

    fn prefill(
        &self,
        cache: &mut FixedCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), TestModelError> {
        self.select(cache, histories.len(), &logits_for)
    }

    fn step(&self, cache: &mut FixedCache, step: &Step<'_>) -> Result<(), TestModelError> {
        self.select(cache, step.rows(), &step.logits_for)
    }

    fn logits<'a>(&'a self, cache: &'a FixedCache) -> &'a [f32] {
        let (r, values) = &self.tables[cache.table];
        &values[..cache.rows * (r.end - r.start) as usize]
    }
}
