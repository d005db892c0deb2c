//! Exact trie-constrained beam search with difficulty-aware pruning and confidence.
//!
//! The one beam search of the project: the engine, the trainer's evaluation and the
//! RL rollouts all call [`BeamSearch`].
//!
//! # Algorithm
//! For each level `l` (one batched model call per level, all requests together):
//! every live beam's logits row is normalised by a log-softmax (see
//! [`Normalization`]); each child of the beam's trie node becomes a candidate with
//! cumulative log-prob `cum + (logit - lse)`; per request the `max(B, K)` best
//! candidates are kept (ties broken by the prefix's lexicographic order, which is the
//! trie node id order), then [`Pruning`] may drop the weak tail. The constraint is exact:
//! a beam is always a trie node, and every trie node has a continuation, so every final
//! beam is a catalog SID. A final beam expands to its items (see
//! [`Catalog`]) until K distinct items are collected.
//!
//! A beam's `score` is its mean token log-prob over the L levels (`log_prob` is the sum;
//! all SIDs have L tokens, so both rank alike). Optional confidence: see
//! [`confidence`](crate::confidence).
//!
//! **Item fusion** (when the model has an item head, [`ItemFusion`]): after the prefill the
//! item head's K best SIDs are selected per request, and their prefixes are kept at
//! every level in addition to the generative beams (the pruning never drops them), so they
//! reach the last level with exact generative log-probs. The final beams are then ordered
//! by `mean log-prob + w * log p_item`, and that fused value is the returned `score`.
//!
//! ```
//! use ugr_core::model::testing::HashModel;
//! use ugr_core::{BeamSearch, CatalogBuilder, ItemId, Pruning, SearchOptions, Sid, SidVocab};
//! let vocab = SidVocab::new(&[8, 8, 8])?;
//! let mut b = CatalogBuilder::new(vocab);
//! for i in 0..200u32 {
//!     let c = |k: u32| (i.wrapping_mul(2654435761) >> (8 * k)) as u16 % 8;
//!     b.push(ItemId::new(i), Sid::new(&[c(0), c(1), c(2)])?)?;
//! }
//! let catalog = b.build()?;
//! let model = HashModel::new(vocab, 1);
//! let history = [ItemId::new(3), ItemId::new(17)];
//! let opts = SearchOptions { beam: 20, top_k: 10, exclude_history: true, ..Default::default() };
//! let plain = BeamSearch::new(&catalog).run(&model, &[&history], &opts)?;
//! let items = &plain[0].items;
//! assert_eq!(items.len(), 10);
//! assert!(items.windows(2).all(|w| w[0].score >= w[1].score));
//! assert!(items.iter().all(|r| !history.contains(&r.item)));
//! let pruned_opts = SearchOptions { pruning: Pruning::Fixed { margin: 2.0 }, ..opts };
//! let pruned = BeamSearch::new(&catalog).run(&model, &[&history], &pruned_opts)?;
//! assert_eq!(pruned[0].items.len(), 10); // pruning never returns fewer than K
//! assert!(pruned[0].stats.model_rows <= plain[0].stats.model_rows);
//! # Ok::<(), ugr_core::Error>(())
//! ```

mod constraints;
mod options;
pub mod sample;

pub use constraints::{Constraints, Request};
pub use options::{ItemFusion, MAX_WIDTH, Normalization, Pruning, RankBy, SearchOptions};

use alloc::vec::Vec;
use core::cmp::Ordering;
use core::ops::Range;

use crate::availability::Availability;
use crate::catalog::Catalog;
use crate::confidence::Calibration;
use crate::error::{Error, Result};
use crate::ids::{ItemId, NodeId, TokenId};
use crate::math::{self, log_sum_exp};
use crate::model::{SidModel, Step};
use crate::sid::Sid;
use crate::vocab::{MAX_LEVELS, Special};
use constraints::sort_dedup_tail;

/// One recommended item with its scores and confidences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recommendation {
    /// The item.
    pub item: ItemId,
    /// Index of its SID among the catalog's SIDs (items sharing a SID share every score).
    pub sid_index: u32,
    /// The ranking score: the mean token log-prob of the SID (the beam score), plus
    /// `w * item_log_prob` when the search fuses the model's item head ([`ItemFusion`]).
    pub score: f32,
    /// The item head's log-probability of the SID (log-softmax over every catalog SID), when
    /// the search fused it.
    pub item_log_prob: Option<f32>,
    /// Sum of the token log-probs.
    pub log_prob: f32,
    /// `exp(log_prob)`.
    pub sequence_prob: f32,
    /// Softmax of the scores of the (up to) `top_k` items the search ranked for this history,
    /// taken before [`SearchOptions::min_confidence`] removes any: the returned posteriors sum
    /// to 1 when no item was dropped, and to less when abstention dropped some (each item
    /// keeps the value it had; the calibrated `confidence` is derived from it, so it is not
    /// renormalised over what is left).
    pub posterior: f32,
    /// `sigmoid(z[C_HIGH] - z[C_LOW])` after `CONF_Q`, when the model has confidence tokens.
    pub learned_confidence: Option<f32>,
    /// The calibrated confidence: the calibration map applied to `learned_confidence`
    /// (or, without it, to `posterior`); the raw value when no map is set.
    pub confidence: f32,
    /// `exp(score) + beta * raw confidence`.
    pub hybrid: f32,
}

/// What one request cost and how pruning behaved.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SearchStats {
    /// Model rows evaluated while decoding: 1 for the prefill, plus one per beam fed at each later level.
    pub model_rows: u32,
    /// Rows of the confidence step (one per distinct SID returned).
    pub confidence_rows: u32,
    /// Beams kept after each level (index = level).
    pub beams: [u32; MAX_LEVELS],
    /// Normalised entropy in `[0, 1]` that set the adaptive margin.
    pub difficulty: Option<f32>,
    /// The pruning margin used (nats), if pruning was on.
    pub margin: Option<f32>,
}

/// The result for one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recommendations {
    /// Up to K distinct items, best first.
    pub items: Vec<Recommendation>,
    /// Cost and pruning figures.
    pub stats: SearchStats,
}

#[derive(Clone, Copy, Debug)]
struct Beam {
    node: u32,
    cum: f32,
    /// Row of this beam in the model's cache once it has been fed.
    row: u32,
    /// Row (of the previous model call) whose logits produced this beam.
    parent: u32,
    /// The item head's log-prob of the final SID (set at the last level when fusing).
    item_lp: f32,
    /// Inside the request's allowed prefixes (always, without a prefix rule).
    inside: bool,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    cum: f32,
    node: u32,
    parent: u32,
    /// Items below `node` the request may receive.
    live: u32,
    inside: bool,
}

/// Which logits a level asks the model for, and where the level's codebook sits in a row.
struct LevelColumns {
    /// The token range of each row (the level's codebook, or the whole vocabulary).
    range: Range<u32>,
    /// Logits per row.
    width: usize,
    /// Where the level's codebook starts within a row.
    offset: usize,
    /// The level's codebook size.
    codebook: usize,
}

impl LevelColumns {
    fn new(vocab: &crate::SidVocab, level: usize, normalization: Normalization) -> LevelColumns {
        let level_tokens = vocab.level_tokens(level);
        let range: Range<u32> = match normalization {
            Normalization::Level | Normalization::Trie => level_tokens.clone(),
            Normalization::FullVocab => 0..vocab.size(),
        };
        LevelColumns {
            width: (range.end - range.start) as usize,
            offset: (level_tokens.start - range.start) as usize,
            codebook: (level_tokens.end - level_tokens.start) as usize,
            range,
        }
    }
}

/// The log-normaliser of one row's level distribution: over the trie's allowed `codes`
/// (their logits gathered into `scratch`) under [`Normalization::Trie`], else over the whole
/// `row` (the level's codebook, or the vocabulary). `None` for non-finite logits.
#[inline]
fn level_normalizer(
    normalization: Normalization,
    row: &[f32],
    codes_row: &[f32],
    codes: &[u16],
    scratch: &mut Vec<f32>,
) -> Option<f32> {
    match normalization {
        Normalization::Trie => {
            scratch.clear();
            scratch.extend(codes.iter().map(|&c| codes_row[usize::from(c)]));
            log_sum_exp(scratch)
        }
        _ => log_sum_exp(row),
    }
}

#[inline]
fn better(a: &Cand, b: &Cand) -> Ordering {
    b.cum.total_cmp(&a.cum).then(a.node.cmp(&b.node))
}

/// Per-request state that lives for one call.
#[derive(Clone, Copy, Debug, Default)]
struct RequestState {
    entropy_sum: f32,
    entropy_levels: u32,
    margin: Option<f32>,
}

/// The beam search over one catalog, with reusable scratch buffers.
///
/// Create one per thread (it is cheap) or keep one per worker: repeated calls reuse
/// its buffers, so memory does not grow across calls.
#[derive(Clone, Debug)]
pub struct BeamSearch<'c> {
    catalog: &'c Catalog,
    calibration: Option<&'c Calibration>,
    live: Option<&'c Availability>,
    hist_sids: Vec<Sid>,
    hist_bounds: Vec<usize>,
    /// Every request's rules (constraints, excluded history, availability).
    rules: constraints::Rules,
    beams: Vec<Beam>,
    bounds: Vec<usize>,
    next: Vec<Beam>,
    next_bounds: Vec<usize>,
    cands: Vec<Cand>,
    parents: Vec<u32>,
    tokens: Vec<TokenId>,
    state: Vec<RequestState>,
    item_beam: Vec<u32>,
    item_conf_row: Vec<u32>,
    gathered: Vec<f32>,
    conf: Vec<f32>,
    /// The fusion weight of the current call (None: generative only).
    fusion: Option<f32>,
    /// Per request, the sorted trie nodes on the paths of the item head's best SIDs.
    forced: Vec<u32>,
    forced_bounds: Vec<usize>,
    /// Per request, the log-sum-exp of the item head's logits.
    item_lse: Vec<f32>,
    top_tmp: Vec<(f32, u32)>,
}

impl<'c> BeamSearch<'c> {
    /// A search over `catalog`, without calibration map.
    pub fn new(catalog: &'c Catalog) -> Self {
        BeamSearch {
            catalog,
            calibration: None,
            live: None,
            hist_sids: Vec::new(),
            hist_bounds: Vec::new(),
            rules: constraints::Rules::default(),
            beams: Vec::new(),
            bounds: Vec::new(),
            next: Vec::new(),
            next_bounds: Vec::new(),
            cands: Vec::new(),
            parents: Vec::new(),
            tokens: Vec::new(),
            state: Vec::new(),
            item_beam: Vec::new(),
            item_conf_row: Vec::new(),
            gathered: Vec::new(),
            conf: Vec::new(),
            fusion: None,
            forced: Vec::new(),
            forced_bounds: Vec::new(),
            item_lse: Vec::new(),
            top_tmp: Vec::new(),
        }
    }

    /// Applies `calibration` to the confidence of every returned item.
    pub fn with_calibration(mut self, calibration: Option<&'c Calibration>) -> Self {
        self.calibration = calibration;
        self
    }

    /// Serves only the items `live` marks available (an error at run time when it was made
    /// for another catalog).
    pub fn with_availability(mut self, live: Option<&'c Availability>) -> Self {
        self.live = live;
        self
    }

    /// The catalog searched.
    pub fn catalog(&self) -> &'c Catalog {
        self.catalog
    }

    /// Searches for every history in `histories` (one request each, no rules) with a fresh
    /// model cache.
    pub fn run<M: SidModel>(
        &mut self,
        model: &M,
        histories: &[&[ItemId]],
        opts: &SearchOptions,
    ) -> Result<Vec<Recommendations>> {
        let mut cache = model.new_cache();
        let mut out = Vec::new();
        self.run_with_cache(model, &mut cache, histories, opts, &mut out)?;
        Ok(out)
    }

    /// Like [`run`](Self::run), reusing `cache` and the vectors of `out` (resized to one entry
    /// per history).
    pub fn run_with_cache<M: SidModel>(
        &mut self,
        model: &M,
        cache: &mut M::Cache,
        histories: &[&[ItemId]],
        opts: &SearchOptions,
        out: &mut Vec<Recommendations>,
    ) -> Result<()> {
        self.run_inner(
            model,
            cache,
            histories.len(),
            |r| Request::new(histories[r]),
            opts,
            out,
        )
    }

    /// Searches for every request (a history and its [`Constraints`]) with a fresh model cache.
    pub fn run_requests<M: SidModel>(
        &mut self,
        model: &M,
        requests: &[Request<'_>],
        opts: &SearchOptions,
    ) -> Result<Vec<Recommendations>> {
        let mut cache = model.new_cache();
        let mut out = Vec::new();
        self.run_requests_with_cache(model, &mut cache, requests, opts, &mut out)?;
        Ok(out)
    }

    /// Like [`run_requests`](Self::run_requests), reusing `cache` and the vectors of `out`.
    pub fn run_requests_with_cache<M: SidModel>(
        &mut self,
        model: &M,
        cache: &mut M::Cache,
        requests: &[Request<'_>],
        opts: &SearchOptions,
        out: &mut Vec<Recommendations>,
    ) -> Result<()> {
        self.run_inner(model, cache, requests.len(), |r| requests[r], opts, out)
    }

    fn run_inner<'r, M: SidModel>(
        &mut self,
        model: &M,
        cache: &mut M::Cache,
        n: usize,
        request: impl Fn(usize) -> Request<'r>,
        opts: &SearchOptions,
        out: &mut Vec<Recommendations>,
    ) -> Result<()> {
        opts.validate()?;
        if self.live.is_some_and(|a| !a.fits(self.catalog)) {
            return Err(Error::InvalidOption {
                name: "availability",
                reason: "made for another catalog",
            });
        }
        out.truncate(n);
        out.resize_with(n, Recommendations::default);
        for r in out.iter_mut() {
            r.items.clear();
            r.stats = SearchStats::default();
        }
        if n == 0 {
            return Ok(());
        }
        self.prepare(n, request, opts)?;
        self.fusion = match opts.item_fusion {
            ItemFusion::Off => None,
            ItemFusion::Model => model.item_weight(),
            ItemFusion::Weight(w) => Some(w),
        };
        let levels = self.catalog.vocab().levels();
        for level in 0..levels {
            self.decode_level(model, cache, level, opts, out)?;
        }
        self.expand(opts, out);
        if opts.learned_confidence && model.has_confidence() {
            self.learned_confidence(model, cache, out)?;
        }
        self.finish(opts, out);
        Ok(())
    }

    /// Maps histories to SIDs, builds every request's rule tables and the root beams.
    fn prepare<'r>(
        &mut self,
        n: usize,
        request: impl Fn(usize) -> Request<'r>,
        opts: &SearchOptions,
    ) -> Result<()> {
        let catalog = self.catalog;
        let trie = catalog.trie();
        self.hist_sids.clear();
        self.hist_bounds.clear();
        self.hist_bounds.push(0);
        self.rules.clear();
        self.beams.clear();
        self.bounds.clear();
        self.bounds.push(0);
        self.state.clear();
        for r in 0..n {
            let req = request(r);
            for &item in req.history {
                self.hist_sids.push(catalog.sid_of(item)?);
            }
            self.hist_bounds.push(self.hist_sids.len());
            let excluded: &[ItemId] = if opts.exclude_history { req.history } else { &[] };
            self.rules.push(catalog, self.live, &req.constraints, excluded)?;
            self.beams.push(Beam {
                node: trie.root().as_u32(),
                cum: 0.0,
                row: r as u32,
                parent: r as u32,
                item_lp: 0.0,
                inside: self.rules.root_inside(r),
            });
            self.bounds.push(self.beams.len());
            self.state.push(RequestState {
                margin: match opts.pruning {
                    Pruning::Off => None,
                    Pruning::Fixed { margin } => Some(margin),
                    // Until the difficulty is measured, keep the widest margin.
                    Pruning::Adaptive { max_margin, .. } => Some(max_margin),
                },
                ..RequestState::default()
            });
        }
        Ok(())
    }

    /// One level: the model call, then per request the candidates, the adaptive margin, the
    /// selection with pruning and the item head's forced prefixes, and the next beams.
    fn decode_level<M: SidModel>(
        &mut self,
        model: &M,
        cache: &mut M::Cache,
        level: usize,
        opts: &SearchOptions,
        out: &mut [Recommendations],
    ) -> Result<()> {
        let vocab = self.catalog.vocab();
        let columns = LevelColumns::new(vocab, level, opts.normalization);
        let n = self.bounds.len() - 1;
        let rows = self.run_model(model, cache, level, &columns, opts, n)?;
        let logits = model.logits(cache);
        if logits.len() != rows * columns.width {
            return Err(Error::ModelOutput {
                expected: rows * columns.width,
                got: logits.len(),
            });
        }
        let last = level + 1 == vocab.levels();
        self.next.clear();
        self.next_bounds.clear();
        self.next_bounds.push(0);
        self.parents.clear();
        self.tokens.clear();
        for (r, result) in out.iter_mut().enumerate().take(n) {
            let first_beam = self.candidates(r, logits, &columns, opts.normalization)?;
            self.adapt_margin(r, level, opts, first_beam, result);
            let keep = self.select(r, opts, result);
            let first_next = self.next.len();
            self.emit(level, last, keep);
            if last && let Some(w) = self.fusion {
                let s = self.catalog.sid_count();
                let dense = model.item_logits(cache);
                let z = |sid: u32| match dense {
                    Some(items) => items.get(r * s + sid as usize).copied(),
                    None => model.item_logit(cache, r, sid),
                };
                self.fuse_finals(&z, r, first_next, w)?;
            }
            self.next_bounds.push(self.next.len());
            let stats = &mut result.stats;
            stats.beams[level] = keep as u32;
            if level == 0 {
                stats.model_rows += 1;
            }
            if !last {
                stats.model_rows += keep as u32;
            }
        }
        core::mem::swap(&mut self.beams, &mut self.next);
        core::mem::swap(&mut self.bounds, &mut self.next_bounds);
        Ok(())
    }

    /// The model call of a level: the prefill (and the item head's candidates) at level 0, a
    /// step over the beams' last tokens after it. Returns the rows of logits it produced.
    fn run_model<M: SidModel>(
        &mut self,
        model: &M,
        cache: &mut M::Cache,
        level: usize,
        columns: &LevelColumns,
        opts: &SearchOptions,
        requests: usize,
    ) -> Result<usize> {
        if level == 0 {
            let slices: Vec<&[Sid]> = self
                .hist_bounds
                .windows(2)
                .map(|w| &self.hist_sids[w[0]..w[1]])
                .collect();
            model
                .prefill(cache, &slices, columns.range.clone())
                .map_err(|e| Error::Model(e.into()))?;
            self.item_candidates(model, cache, opts, requests)?;
            Ok(requests)
        } else {
            let step = Step {
                parents: &self.parents,
                tokens: &self.tokens,
                tokens_per_row: 1,
                logits_for: columns.range.clone(),
            };
            model.step(cache, &step).map_err(|e| Error::Model(e.into()))?;
            Ok(self.parents.len())
        }
    }

    /// Request `r`'s candidates: every child of each of its beams with at least one item the
    /// request may receive (see [`Constraints`]), with its cumulative log-prob, into `self.cands`. Returns the range of the best
    /// beam's candidates (the difficulty is measured on them).
    fn candidates(
        &mut self,
        r: usize,
        logits: &[f32],
        columns: &LevelColumns,
        normalization: Normalization,
    ) -> Result<Range<usize>> {
        let catalog = self.catalog;
        let trie = catalog.trie();
        let ruled = self.live.is_some() || self.rules.has_rules(r);
        self.cands.clear();
        let mut first_beam_cands = 0..0;
        for bi in self.bounds[r]..self.bounds[r + 1] {
            let b = self.beams[bi];
            let row = &logits[b.row as usize * columns.width..][..columns.width];
            let codes_row = &row[columns.offset..columns.offset + columns.codebook];
            let (first, codes) = trie.children(NodeId::new(b.node));
            let lse = level_normalizer(normalization, row, codes_row, codes, &mut self.gathered)
                .ok_or(Error::NonFiniteLogits { row: b.row as usize })?;
            let start = self.cands.len();
            for (i, &code) in codes.iter().enumerate() {
                let node = first.as_u32() + i as u32;
                let (live, inside) = if ruled {
                    self.rules.count(catalog, self.live, r, node, b.inside)
                } else {
                    (trie.item_count(NodeId::new(node)), true)
                };
                if live == 0 {
                    continue;
                }
                let lp = codes_row[usize::from(code)] - lse;
                self.cands.push(Cand {
                    cum: b.cum + lp,
                    node,
                    parent: b.row,
                    live,
                    inside,
                });
            }
            if bi == self.bounds[r] {
                first_beam_cands = start..self.cands.len();
            }
        }
        Ok(first_beam_cands)
    }

    /// Adaptive pruning: the request's difficulty from the best beam's distribution over its
    /// allowed children, averaged over the first `levels` levels, sets its margin.
    fn adapt_margin(
        &mut self,
        r: usize,
        level: usize,
        opts: &SearchOptions,
        first_beam_cands: Range<usize>,
        result: &mut Recommendations,
    ) {
        if let Pruning::Adaptive {
            min_margin,
            max_margin,
            levels,
        } = opts.pruning
            && level < usize::from(levels)
            && !first_beam_cands.is_empty()
        {
            let d = normalized_entropy(&self.cands[first_beam_cands]);
            let st = &mut self.state[r];
            st.entropy_sum += d;
            st.entropy_levels += 1;
            let difficulty = st.entropy_sum / st.entropy_levels as f32;
            st.margin = Some(min_margin + (max_margin - min_margin) * difficulty);
            result.stats.difficulty = Some(difficulty);
        }
    }

    /// Orders request `r`'s candidates and returns how many become beams: the top
    /// `opts.width()` by (cum desc, prefix asc), less the tail pruning drops once K items are
    /// covered, plus the item head's forced prefixes (moved right after them).
    fn select(&mut self, r: usize, opts: &SearchOptions, result: &mut Recommendations) -> usize {
        let keep_max = opts.width();
        let top = self.cands.len().min(keep_max);
        if self.cands.len() > keep_max {
            self.cands.select_nth_unstable_by(keep_max - 1, better);
        }
        self.cands[..top].sort_unstable_by(better);
        // Pruning: drop the tail below best - margin once K items are covered.
        let mut keep = top;
        if let (Some(margin), Some(best)) = (self.state[r].margin, self.cands.first()) {
            let floor = best.cum - margin;
            let mut covered = 0u64;
            for (i, c) in self.cands[..top].iter().enumerate() {
                if c.cum < floor && covered >= opts.top_k as u64 {
                    keep = i;
                    break;
                }
                covered += u64::from(c.live);
            }
            result.stats.margin = Some(margin);
        }
        // The item head's prefixes ride along, after the generative beams (best first stays first).
        if self.fusion.is_some() {
            let forced = &self.forced[self.forced_bounds[r]..self.forced_bounds[r + 1]];
            let tail = keep;
            for i in tail..self.cands.len() {
                if forced.binary_search(&self.cands[i].node).is_ok() {
                    self.cands.swap(keep, i);
                    keep += 1;
                }
            }
        }
        keep
    }

    /// The first `keep` candidates become the next beams; below the last level, each also
    /// feeds its code's token to the next step.
    fn emit(&mut self, level: usize, last: bool, keep: usize) {
        let vocab = self.catalog.vocab();
        let trie = self.catalog.trie();
        for c in &self.cands[..keep] {
            let row = self.next.len() as u32;
            self.next.push(Beam {
                node: c.node,
                cum: c.cum,
                row,
                parent: c.parent,
                item_lp: 0.0,
                inside: c.inside,
            });
            if !last {
                self.parents.push(c.parent);
                self.tokens
                    .push(vocab.code_token(level, trie.code(NodeId::new(c.node))));
            }
        }
    }

    /// Request `r`'s final beams (`self.next[first..]`) get the item head's log-probability
    /// of their SID and are ordered by the fused score (ties by SID order).
    /// `z(sid)` is the item head's logit of a SID for this request.
    fn fuse_finals(&mut self, z: &dyn Fn(u32) -> Option<f32>, r: usize, first: usize, w: f32) -> Result<()> {
        let trie = self.catalog.trie();
        let lse = self.item_lse[r];
        let finals = &mut self.next[first..];
        for b in finals.iter_mut() {
            let sid = trie
                .leaf_index(NodeId::new(b.node))
                .ok_or(Error::Corrupt("a final beam is not a leaf"))?;
            b.item_lp = z(sid).map_or(f32::NEG_INFINITY, |z| z - lse);
        }
        let levels = self.catalog.vocab().levels() as f32;
        let fused = |b: &Beam| b.cum / levels + fuse(w, b.item_lp);
        finals.sort_unstable_by(|a, b| fused(b).total_cmp(&fused(a)).then(a.node.cmp(&b.node)));
        Ok(())
    }

    /// After the prefill: the item head's log-sum-exp and the trie nodes on the paths of its
    /// K best SIDs (SIDs whose items are all excluded are skipped), per request. K, not
    /// `max(B, K)`: on Beauty (test, 22,363 rows) forcing the best 10 instead of 20 left HR@10
    /// and NDCG@10 at .0819/.0482 against .0820/.0482 with 15% fewer model rows, while
    /// forcing none lost a tenth of HR@10 (.0714); see docs/results/item-head.md.
    fn item_candidates<M: SidModel>(
        &mut self,
        model: &M,
        cache: &M::Cache,
        opts: &SearchOptions,
        n: usize,
    ) -> Result<()> {
        self.forced.clear();
        self.forced_bounds.clear();
        self.forced_bounds.push(0);
        self.item_lse.clear();
        if self.fusion.is_none() {
            return Ok(());
        }
        if model.item_logits(cache).is_none()
            && let Some(list) = model.item_shortlist(cache)
        {
            return self.shortlist_candidates(&list, opts, n);
        }
        let Some(logits) = model.item_logits(cache) else {
            if let ItemFusion::Weight(_) = opts.item_fusion {
                return Err(Error::InvalidOption {
                    name: "item_fusion",
                    reason: "the model has no item head",
                });
            }
            self.fusion = None;
            return Ok(());
        };
        let s = self.catalog.sid_count();
        if logits.len() != n * s {
            return Err(Error::ModelOutput {
                expected: n * s,
                got: logits.len(),
            });
        }
        for r in 0..n {
            let row = &logits[r * s..][..s];
            let lse = log_sum_exp(row).ok_or(Error::NonFiniteLogits { row: r })?;
            self.item_lse.push(lse);
            self.item_scope(row, r, opts.top_k.min(s));
            self.force_top()?;
        }
        Ok(())
    }

    /// Request-by-request forced paths from a model's shortlist (the item head scored on
    /// part of the catalog): its K best candidates a request may receive, and its
    /// log-normaliser estimate in place of the log-sum-exp.
    fn shortlist_candidates(
        &mut self,
        list: &crate::ItemShortlist<'_>,
        opts: &SearchOptions,
        n: usize,
    ) -> Result<()> {
        if list.bounds.len() != n + 1 || list.log_norm.len() != n || list.sids.len() != list.logits.len() {
            return Err(Error::ModelOutput {
                expected: n + 1,
                got: list.bounds.len(),
            });
        }
        let catalog = self.catalog;
        let s = catalog.sid_count() as u32;
        let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        for r in 0..n {
            let range = list.bounds[r]..list.bounds[r + 1];
            let (Some(sids), Some(logits)) = (list.sids.get(range.clone()), list.logits.get(range)) else {
                return Err(Error::Corrupt("item shortlist bounds"));
            };
            if sids.iter().any(|&sid| sid >= s) || !list.log_norm[r].is_finite() {
                return Err(Error::NonFiniteLogits { row: r });
            }
            self.item_lse.push(list.log_norm[r]);
            let ruled = self.live.is_some() || self.rules.has_rules(r);
            self.top_tmp.clear();
            for (&sid, &z) in sids.iter().zip(logits) {
                if !ruled || self.rules.sid_count(catalog, self.live, r, sid) > 0 {
                    self.top_tmp.push((z, sid));
                }
            }
            let want = opts.top_k;
            if self.top_tmp.len() > want {
                self.top_tmp.select_nth_unstable_by(want - 1, by_score);
                self.top_tmp.truncate(want);
            }
            self.top_tmp.sort_unstable_by(by_score);
            self.force_top()?;
        }
        Ok(())
    }

    /// Appends the trie paths of `self.top_tmp`'s SIDs as the next request's forced nodes.
    fn force_top(&mut self) -> Result<()> {
        let catalog = self.catalog;
        let trie = catalog.trie();
        let start = self.forced.len();
        for &(_, sid) in &self.top_tmp {
            let mut node = trie.root();
            for &code in catalog.sid(sid).codes() {
                node = trie
                    .child(node, code)
                    .ok_or(Error::Corrupt("catalog SID not in its trie"))?;
                self.forced.push(node.as_u32());
            }
        }
        sort_dedup_tail(&mut self.forced, start);
        self.forced_bounds.push(self.forced.len());
        Ok(())
    }

    /// Request `r`'s `want` best SIDs by the item head's logits `row` among those with an item
    /// the request may receive, best first, into `self.top_tmp`.
    fn item_scope(&mut self, row: &[f32], r: usize, want: usize) {
        let catalog = self.catalog;
        let trie = catalog.trie();
        let s = row.len();
        self.top_tmp.clear();
        let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let ruled = self.live.is_some() || self.rules.has_rules(r);
        let live =
            |rules: &constraints::Rules, sid: u32| !ruled || rules.sid_count(catalog, self.live, r, sid) > 0;
        match self.rules.scope(self.live, r) {
            constraints::Scope::All { blocked } => {
                // The best `want + blocked` SIDs hold `want` allowed ones (or every allowed one).
                let pick = want.saturating_add(blocked).min(s);
                self.top_tmp
                    .extend(row.iter().enumerate().map(|(i, &z)| (z, i as u32)));
                if pick < s {
                    self.top_tmp.select_nth_unstable_by(pick - 1, by_score);
                    self.top_tmp.truncate(pick);
                }
                if ruled {
                    let rules = &self.rules;
                    self.top_tmp.retain(|&(_, sid)| live(rules, sid));
                }
            }
            constraints::Scope::Prefixes(nodes) => {
                for &p in nodes {
                    for sid in trie.leaf_range(NodeId::new(p)) {
                        if live(&self.rules, sid) {
                            self.top_tmp.push((row[sid as usize], sid));
                        }
                    }
                }
            }
            constraints::Scope::Items(items) => {
                for &item in items {
                    // Allowed items are catalog items (checked when the rules were built).
                    if let Ok(sid) = catalog.sid_index_of(item) {
                        self.top_tmp.push((row[sid as usize], sid));
                    }
                }
                self.top_tmp.sort_unstable_by_key(|e| e.1);
                self.top_tmp.dedup_by_key(|e| e.1);
            }
        }
        if self.top_tmp.len() > want {
            self.top_tmp.select_nth_unstable_by(want - 1, by_score);
            self.top_tmp.truncate(want);
        }
        self.top_tmp.sort_unstable_by(by_score);
    }

    /// Expands final beams into up to K distinct items the request may receive.
    fn expand(&mut self, opts: &SearchOptions, out: &mut [Recommendations]) {
        let catalog = self.catalog;
        let levels = catalog.vocab().levels() as f32;
        let fusion = self.fusion;
        self.item_beam.clear();
        for (r, result) in out.iter_mut().enumerate() {
            let ruled = self.live.is_some() || self.rules.has_rules(r);
            'beams: for (bi, b) in self.beams[self.bounds[r]..self.bounds[r + 1]].iter().enumerate() {
                let Some(sid_index) = catalog.trie().leaf_index(NodeId::new(b.node)) else {
                    continue;
                };
                let slots = catalog.slots_of(sid_index);
                for (slot, &item) in slots.zip(catalog.items_of(sid_index)) {
                    if result.items.len() == opts.top_k {
                        break 'beams;
                    }
                    if ruled && !self.rules.item_ok(self.live, r, item, slot) {
                        continue;
                    }
                    result.items.push(Recommendation {
                        item,
                        sid_index,
                        score: b.cum / levels + fusion.map_or(0.0, |w| fuse(w, b.item_lp)),
                        item_log_prob: fusion.map(|_| b.item_lp),
                        log_prob: b.cum,
                        sequence_prob: libm::expf(b.cum),
                        posterior: 0.0,
                        learned_confidence: None,
                        confidence: 0.0,
                        hybrid: 0.0,
                    });
                    self.item_beam.push((self.bounds[r] + bi) as u32);
                }
            }
        }
    }

    /// One batched step feeding (last code, CONF_Q) for every distinct returned SID.
    fn learned_confidence<M: SidModel>(
        &mut self,
        model: &M,
        cache: &mut M::Cache,
        out: &mut [Recommendations],
    ) -> Result<()> {
        let catalog = self.catalog;
        let vocab = catalog.vocab();
        let trie = catalog.trie();
        let last_level = vocab.levels() - 1;
        self.parents.clear();
        self.tokens.clear();
        // One row per distinct beam; items of one beam are adjacent in `item_beam`.
        self.item_conf_row.clear();
        let mut k = 0;
        for result in out.iter_mut() {
            let mut prev = u32::MAX;
            for _ in 0..result.items.len() {
                let beam = self.item_beam[k];
                if beam != prev {
                    let b = self.beams[beam as usize];
                    self.parents.push(b.parent);
                    self.tokens
                        .push(vocab.code_token(last_level, trie.code(NodeId::new(b.node))));
                    self.tokens.push(Special::ConfQ.token());
                    result.stats.confidence_rows += 1;
                    prev = beam;
                }
                self.item_conf_row.push((self.parents.len() - 1) as u32);
                k += 1;
            }
        }
        if self.parents.is_empty() {
            return Ok(());
        }
        let lo = Special::CLow.token().as_u32();
        let step = Step {
            parents: &self.parents,
            tokens: &self.tokens,
            tokens_per_row: 2,
            logits_for: lo..lo + 2,
        };
        model.step(cache, &step).map_err(|e| Error::Model(e.into()))?;
        let logits = model.logits(cache);
        let rows = self.parents.len();
        if logits.len() != rows * 2 {
            return Err(Error::ModelOutput {
                expected: rows * 2,
                got: logits.len(),
            });
        }
        self.conf.clear();
        for (row, z) in logits.chunks_exact(2).enumerate() {
            let d = z[1] - z[0];
            if d.is_nan() {
                return Err(Error::NonFiniteLogits { row });
            }
            self.conf.push(math::sigmoid(d));
        }
        let mut k = 0;
        for result in out.iter_mut() {
            for item in result.items.iter_mut() {
                item.learned_confidence = Some(self.conf[self.item_conf_row[k] as usize]);
                k += 1;
            }
        }
        Ok(())
    }

    /// Posterior, calibrated confidence, hybrid score, abstention and final order.
    fn finish(&self, opts: &SearchOptions, out: &mut [Recommendations]) {
        for result in out.iter_mut() {
            let items = &mut result.items;
            let len = items.len() as f32;
            let max = items.iter().map(|i| i.score).fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = items.iter().map(|i| libm::expf(i.score - max)).sum();
            for item in items.iter_mut() {
                item.posterior = if total > 0.0 && max.is_finite() {
                    libm::expf(item.score - max) / total
                } else {
                    1.0 / len
                };
                let raw = item.learned_confidence.unwrap_or(item.posterior);
                item.confidence = self.calibration.map_or(raw, |c| c.apply(raw));
                item.hybrid = libm::expf(item.score) + opts.beta * raw;
            }
            if let Some(min) = opts.min_confidence {
                items.retain(|i| i.confidence >= min);
            }
            if opts.rank_by == RankBy::Hybrid {
                items.sort_by(|a, b| b.hybrid.total_cmp(&a.hybrid));
            }
        }
    }
}

/// The item head's share of a fused score (a zero weight ignores it, even at `-inf`).
#[inline]
fn fuse(w: f32, item_lp: f32) -> f32 {
    if w == 0.0 { 0.0 } else { w * item_lp }
}

/// `H / ln(n)` of the distribution proportional to `exp(cum)` over the candidates.
fn normalized_entropy(cands: &[Cand]) -> f32 {
    if cands.len() < 2 {
        return 0.0;
    }
    let max = cands.iter().map(|c| c.cum).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return 1.0;
    }
    let mut z = 0.0;
    let mut weighted = 0.0;
    for c in cands {
        let d = c.cum - max;
        let e = math::exp(d);
        z += e;
        weighted += e * d;
    }
    // H = ln Z - E[d]
    let h = math::ln(z) - weighted / z;
    (h / math::ln(cands.len() as f32)).clamp(0.0, 1.0)
}
