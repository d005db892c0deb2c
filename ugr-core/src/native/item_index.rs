//! The item head on large catalogs: a coarse-to-fine index over the catalog's trie, so that
//! a request costs about the same at 10M items as at 100k.
//!
//! Below [`ITEM_INDEX_MIN_SIDS`] SIDs the item head computes every SID's logit (a
//! matrix-vector product over the whole table) and the search takes the exact K best.
//! From there on that product dominates a request and grows with the catalog (37 ms at 1M
//! items and 329 ms at 10M with f16 tables, against 4 ms at 100k:
//! docs/results/item-head.md), so the index replaces it:
//!
//! - **At load**, the trie depth whose nodes balance the two stages below is chosen (the
//!   depth minimising `nodes + probes * SIDs / nodes`), and each node at that depth gets the
//!   centroid of its SIDs' item-head rows and their mean bias: one coarse table
//!   (`nodes x d`, f32).
//! - **Per request**, the coarse table scores every node, the [`ITEM_INDEX_PROBES`] best
//!   nodes are expanded, and their SIDs (contiguous in the table) are scored exactly. Those
//!   are the search's candidates: its K forced SIDs are the best of them, and any final SID
//!   gets its exact logit on demand ([`SidModel::item_logit`](crate::SidModel::item_logit)).
//! - The log-normaliser over every SID is estimated: the exact sum over the expanded SIDs
//!   plus, for every other node, its SID count times `exp` of its centroid's logit. It is a
//!   constant per request: it shifts the fused scores, never their order, the posterior or
//!   the confidence.
//!
//! What it gives up: a SID whose node's centroid ranks below the probed ones cannot be
//! forced (it still ranks exactly when the generative beams reach it), and the returned
//! `score` carries the estimated normaliser. The quality cost is measured on Beauty with
//! the index forced on (docs/results/item-head.md).

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use super::kernels::PackedLinear;
use crate::Catalog;

/// Catalogs with at least this many SIDs get the index (see the module docs).
pub const ITEM_INDEX_MIN_SIDS: usize = 1 << 17;

/// Coarse nodes whose SIDs are scored exactly, per request.
pub const ITEM_INDEX_PROBES: usize = 32;

/// The coarse table and each coarse node's SID range.
pub(super) struct ItemIndex {
    coarse: PackedLinear,
    ranges: Vec<Range<u32>>,
    probes: usize,
}

/// Per-request candidates (what [`crate::ItemShortlist`] borrows).
#[derive(Default)]
pub(super) struct Shortlist {
    pub(super) sids: Vec<u32>,
    pub(super) logits: Vec<f32>,
    pub(super) bounds: Vec<usize>,
    pub(super) log_norm: Vec<f32>,
    coarse: Vec<f32>,
    order: Vec<(f32, u32)>,
    exact: Vec<f32>,
}

impl ItemIndex {
    /// Builds the index of `table` (one row per SID of `catalog`) with `probes` expansions.
    pub(super) fn build(table: &PackedLinear, catalog: &Catalog, probes: usize) -> ItemIndex {
        let trie = catalog.trie();
        let s = catalog.sid_count().max(1);
        let probes = probes.max(1);
        let cost = |depth: usize| {
            let nodes = trie.nodes_at_depth(depth).len().max(1);
            nodes.saturating_add(probes.saturating_mul(s) / nodes)
        };
        let depth = (1..trie.levels().max(2)).min_by_key(|&d| cost(d)).unwrap_or(1);
        let nodes = trie.nodes_at_depth(depth);
        let d = table.k();
        let mut centroids = vec![0f32; nodes.len() * d];
        let mut biases = vec![0f32; nodes.len()];
        let mut ranges = Vec::with_capacity(nodes.len());
        let mut row = vec![0f32; d];
        for (i, node) in nodes.enumerate() {
            let range = trie.leaf_range(crate::ids::NodeId::new(node));
            let c = &mut centroids[i * d..(i + 1) * d];
            for sid in range.clone() {
                biases[i] += table.row(sid as usize, &mut row);
                for (a, &v) in c.iter_mut().zip(&row) {
                    *a += v;
                }
            }
            let count = range.len().max(1) as f32;
            c.iter_mut().for_each(|a| *a /= count);
            biases[i] /= count;
            ranges.push(range);
        }
        ItemIndex {
            coarse: PackedLinear::new(&centroids, Some(&biases), ranges.len(), d),
            ranges,
            probes,
        }
    }

    /// Coarse nodes at the chosen depth.
    pub(super) fn nodes(&self) -> usize {
        self.ranges.len()
    }

    /// The candidates of every request (`users`: one `d`-wide row each) into `out`.
    pub(super) fn shortlist(&self, table: &PackedLinear, users: &[f32], out: &mut Shortlist) {
        let d = table.k();
        out.sids.clear();
        out.logits.clear();
        out.bounds.clear();
        out.log_norm.clear();
        out.bounds.push(0);
        for user in users.chunks_exact(d) {
            out.coarse.clear();
            out.coarse.resize(self.ranges.len(), 0.0);
            self.coarse.apply(user, &mut out.coarse);
            out.order.clear();
            out.order
                .extend(out.coarse.iter().enumerate().map(|(i, &z)| (z, i as u32)));
            let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            let probes = self.probes.min(out.order.len());
            if probes < out.order.len() {
                out.order.select_nth_unstable_by(probes - 1, by_score);
            }
            let start = out.sids.len();
            for &(_, node) in &out.order[..probes] {
                let range = self.ranges[node as usize].clone();
                table.apply_columns(user, range.start as usize..range.end as usize, &mut out.exact);
                out.sids.extend(range);
                out.logits.extend_from_slice(&out.exact);
            }
            // log(sum over the expanded SIDs + sum over the other nodes of count * exp(z_node)).
            let rest = &out.order[probes..];
            let max = out.logits[start..]
                .iter()
                .copied()
                .chain(rest.iter().map(|e| e.0))
                .fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0f64;
            for &z in &out.logits[start..] {
                total += libm::exp(f64::from(z - max));
            }
            for &(z, node) in rest {
                total += self.ranges[node as usize].len() as f64 * libm::exp(f64::from(z - max));
            }
            out.log_norm.push(max + libm::log(total) as f32);
            out.bounds.push(out.sids.len());
        }
    }
}
