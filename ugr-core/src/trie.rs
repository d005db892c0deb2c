//! The catalog trie in flat arrays.
//!
//! Nodes are numbered level by level (root = 0, then every depth-1 node, ...) and,
//! within a depth, in lexicographic order of their prefixes. So the children of a
//! node are one contiguous id range (CSR: `child_start[n]..child_start[n + 1]`), the
//! leaves (depth L) are the catalog's distinct SIDs in sorted order, and comparing
//! two node ids of one depth compares their prefixes: the beam search uses this for
//! its deterministic tie-break.
//!
//! A child is found by binary search in the sorted edge codes, or, where a level is
//! dense (its bitmaps with rank words take at most 4x the bytes of its code lists;
//! typically the first two levels of a 4x256 index), by one bitmap test and a popcount.
//! Every node also records how many catalog items lie below it, which lets pruning
//! guarantee K items.
//!
//! ```
//! use ugr_core::{CatalogBuilder, ItemId, Sid, SidVocab};
//! let mut b = CatalogBuilder::new(SidVocab::new(&[4, 4])?);
//! b.push(ItemId::new(0), Sid::new(&[1, 2])?)?;
//! b.push(ItemId::new(1), Sid::new(&[1, 3])?)?;
//! b.push(ItemId::new(2), Sid::new(&[3, 0])?)?;
//! let catalog = b.build()?;
//! let trie = catalog.trie();
//! let a = trie.child(trie.root(), 1).unwrap();
//! assert_eq!(trie.children(a).1, &[2, 3]); // codes under prefix <a_1>
//! assert_eq!(trie.item_count(a), 2);
//! assert!(trie.child(trie.root(), 2).is_none()); // no item starts with <a_2>
//! # Ok::<(), ugr_core::Error>(())
//! ```

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::NodeId;
use crate::vocab::SidVocab;

/// Bitmap index of the child codes of every node at one depth.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DenseLevel {
    /// 64-bit words per node (`ceil(codebook / 64)`); 0 when the level is stored sparse.
    words_per_node: u32,
    /// Bit `c` of node `n`'s words is set iff `n` has a child with code `c`.
    bits: Vec<u64>,
    /// Children of the node with a code below the word's first code.
    rank: Vec<u32>,
}

/// The prefix trie of a catalog's SIDs (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trie {
    levels: u8,
    /// First node of each depth `0..=L`, then the node count (`L + 2` entries).
    level_start: Vec<u32>,
    /// Children of internal node `n`: `child_start[n]..child_start[n + 1]`.
    child_start: Vec<u32>,
    /// Code on the edge into each node (0 for the root).
    node_code: Vec<u16>,
    /// Catalog items under each node.
    item_count: Vec<u32>,
    /// One entry per internal depth `0..L`.
    dense: Vec<DenseLevel>,
}

impl Trie {
    /// Builds the trie of `n` distinct SIDs given flat (`n * L` codes, sorted, strictly increasing),
    /// with the number of items of each SID.
    pub(crate) fn build(vocab: &SidVocab, sid_codes: &[u16], items_per_sid: &[u32]) -> Trie {
        let levels = vocab.levels();
        let n = items_per_sid.len();
        debug_assert_eq!(sid_codes.len(), n * levels);
        let code = |i: usize, d: usize| sid_codes[i * levels + d];

        let mut level_start = vec![0u32, 1];
        let mut node_code = vec![0u16];
        let mut item_count = vec![0u32];
        let mut parent_of_node = vec![0u32];
        // Node of each SID's prefix at the current depth.
        let mut cur = vec![0u32; n];
        for d in 0..levels {
            // SIDs are sorted, so equal (parent, code) pairs are adjacent.
            let mut prev = None;
            for i in 0..n {
                let edge = (cur[i], code(i, d));
                if prev != Some(edge) {
                    node_code.push(edge.1);
                    item_count.push(0);
                    parent_of_node.push(edge.0);
                }
                prev = Some(edge);
                let node = (node_code.len() - 1) as u32;
                item_count[node as usize] += items_per_sid[i];
                cur[i] = node;
            }
            level_start.push(node_code.len() as u32);
        }
        item_count[0] = items_per_sid.iter().sum();

        let internal = level_start[levels] as usize;
        let mut child_start = vec![0u32; internal + 1];
        for &p in &parent_of_node[1..] {
            child_start[p as usize + 1] += 1;
        }
        child_start[0] = 1;
        for n in 1..=internal {
            child_start[n] += child_start[n - 1];
        }

        let mut trie = Trie {
            levels: levels as u8,
            level_start,
            child_start,
            node_code,
            item_count,
            dense: Vec::new(),
        };
        trie.dense = (0..levels).map(|d| trie.dense_level(vocab, d)).collect();
        trie
    }

    /// The bitmap index of depth `d`, or an empty one when sparse storage is smaller.
    fn dense_level(&self, vocab: &SidVocab, d: usize) -> DenseLevel {
        let words_per_node = vocab.codebook_size(d).div_ceil(64);
        let nodes = self.nodes_at_depth(d);
        let node_count = (nodes.end - nodes.start) as usize;
        let edges = (self.level_start[d + 2] - self.level_start[d + 1]) as usize;
        let bitmap_bytes = node_count * words_per_node as usize * 12;
        if bitmap_bytes > 4 * 2 * edges {
            return DenseLevel::default();
        }
        let mut level = DenseLevel {
            words_per_node,
            bits: vec![0; node_count * words_per_node as usize],
            rank: vec![0; node_count * words_per_node as usize],
        };
        for (local, n) in nodes.enumerate() {
            let words = &mut level.bits[local * words_per_node as usize..][..words_per_node as usize];
            for &c in self.children(NodeId::new(n)).1 {
                words[usize::from(c) / 64] |= 1u64 << (c % 64);
            }
            let mut acc = 0;
            let ranks = &mut level.rank[local * words_per_node as usize..][..words_per_node as usize];
            for (rank, word) in ranks.iter_mut().zip(words.iter()) {
                *rank = acc;
                acc += word.count_ones();
            }
        }
        level
    }

    /// Checks every invariant of a deserialized trie against `vocab`.
    pub(crate) fn validate(&self, vocab: &SidVocab) -> Result<()> {
        let corrupt = |what| Err(Error::Corrupt(what));
        let levels = usize::from(self.levels);
        if levels != vocab.levels() || self.level_start.len() != levels + 2 || self.dense.len() != levels {
            return corrupt("trie level count");
        }
        if self.level_start[0] != 0 || self.level_start[1] != 1 {
            return corrupt("trie root");
        }
        if self.level_start.windows(2).any(|w| w[0] >= w[1]) {
            return corrupt("trie level boundaries");
        }
        let nodes = self.level_start[levels + 1] as usize;
        let internal = self.level_start[levels] as usize;
        if self.node_code.len() != nodes
            || self.item_count.len() != nodes
            || self.child_start.len() != internal + 1
        {
            return corrupt("trie array lengths");
        }
        if self.child_start[0] != 1 || self.child_start[internal] as usize != nodes {
            return corrupt("trie child ranges");
        }
        // Every internal node has at least one child (no dead-end prefix).
        if self.child_start.windows(2).any(|w| w[0] >= w[1]) {
            return corrupt("trie node without children");
        }
        for d in 0..levels {
            let range = self.nodes_at_depth(d);
            if self.child_start[range.start as usize] != self.level_start[d + 1] {
                return corrupt("trie children cross a level");
            }
            let size = vocab.codebook_size(d);
            for n in range {
                let (_, codes) = self.children(NodeId::new(n));
                if codes.windows(2).any(|w| w[0] >= w[1]) || codes.iter().any(|&c| u32::from(c) >= size) {
                    return corrupt("trie edge codes unsorted or outside the codebook");
                }
                let below: u64 = self
                    .child_range(n)
                    .map(|c| u64::from(self.item_count[c as usize]))
                    .sum();
                if below != u64::from(self.item_count[n as usize]) {
                    return corrupt("trie item counts");
                }
            }
            if self.dense[d] != DenseLevel::default() && self.dense[d] != self.dense_level(vocab, d) {
                return corrupt("trie dense bitmaps");
            }
        }
        if self.item_count[internal..].contains(&0) {
            return corrupt("trie leaf without items");
        }
        Ok(())
    }

    /// The root node (the empty prefix).
    #[inline]
    pub fn root(&self) -> NodeId {
        NodeId::new(0)
    }

    /// Number of SID levels (the depth of the leaves).
    #[inline]
    pub fn levels(&self) -> usize {
        usize::from(self.levels)
    }

    /// Number of nodes, root and leaves included.
    #[inline]
    pub fn node_count(&self) -> usize {
        self.node_code.len()
    }

    /// Number of leaves (distinct SIDs).
    #[inline]
    pub fn leaf_count(&self) -> usize {
        let r = self.nodes_at_depth(self.levels());
        (r.end - r.start) as usize
    }

    /// Node ids at depth `d` (0 = root, `levels()` = leaves).
    ///
    /// # Panics
    /// If `d > levels()`.
    #[inline]
    pub fn nodes_at_depth(&self, d: usize) -> Range<u32> {
        self.level_start[d]..self.level_start[d + 1]
    }

    /// Depth of a node, or `None` if the id is not in the trie.
    pub fn depth(&self, node: NodeId) -> Option<usize> {
        let n = node.as_u32();
        if n as usize >= self.node_count() {
            return None;
        }
        Some(self.level_start.partition_point(|&s| s <= n) - 1)
    }

    /// Whether the child lookup of depth `d` uses a bitmap.
    pub fn is_dense(&self, d: usize) -> bool {
        self.dense.get(d).is_some_and(|l| l.words_per_node > 0)
    }

    /// The child ids of internal node `n` (one contiguous range).
    #[inline]
    pub(crate) fn child_range(&self, n: u32) -> Range<u32> {
        self.child_start[n as usize]..self.child_start[n as usize + 1]
    }

    /// The leaf indices (SID indices) below `node`: one contiguous range, since nodes are
    /// numbered in prefix order within each depth.
    pub fn leaf_range(&self, node: NodeId) -> Range<u32> {
        let (mut first, mut last) = (node.as_u32(), node.as_u32());
        let internal = self.level_start[self.levels()];
        while first < internal {
            first = self.child_start[first as usize];
            last = self.child_start[last as usize + 1] - 1;
        }
        first - internal..last + 1 - internal
    }

    /// The first child's id and the sorted codes of all children (empty for a leaf or an unknown id).
    /// Child `i` has id `first + i`.
    #[inline]
    pub fn children(&self, node: NodeId) -> (NodeId, &[u16]) {
        let n = node.as_usize();
        if n + 1 >= self.child_start.len() {
            return (NodeId::new(0), &[]);
        }
        let r = self.child_range(node.as_u32());
        (
            NodeId::new(r.start),
            &self.node_code[r.start as usize..r.end as usize],
        )
    }

    /// The child of `node` along `code`, if some catalog SID continues that way.
    pub fn child(&self, node: NodeId, code: u16) -> Option<NodeId> {
        let d = self.depth(node)?;
        if d >= self.levels() {
            return None;
        }
        let range = self.child_range(node.as_u32());
        let dense = &self.dense[d];
        if dense.words_per_node > 0 {
            let word = usize::from(code) / 64;
            if word >= dense.words_per_node as usize {
                return None;
            }
            let at = (node.as_u32() - self.level_start[d]) as usize * dense.words_per_node as usize + word;
            let bits = dense.bits[at];
            let bit = 1u64 << (code % 64);
            if bits & bit == 0 {
                return None;
            }
            return Some(NodeId::new(
                range.start + dense.rank[at] + (bits & (bit - 1)).count_ones(),
            ));
        }
        let codes = &self.node_code[range.start as usize..range.end as usize];
        codes
            .binary_search(&code)
            .ok()
            .map(|i| NodeId::new(range.start + i as u32))
    }

    /// The node reached by following `codes` from the root.
    pub fn walk(&self, codes: &[u16]) -> Option<NodeId> {
        codes.iter().try_fold(self.root(), |node, &c| self.child(node, c))
    }

    /// Code on the edge into `node` (0 for the root).
    #[inline]
    pub fn code(&self, node: NodeId) -> u16 {
        self.node_code[node]
    }

    /// Catalog items below `node`.
    #[inline]
    pub fn item_count(&self, node: NodeId) -> u32 {
        self.item_count[node]
    }

    /// The leaf index (position of the SID among the catalog's sorted SIDs), if `node` is a leaf.
    #[inline]
    pub fn leaf_index(&self, node: NodeId) -> Option<u32> {
        let first = self.level_start[self.levels()];
        let n = node.as_u32();
        (n >= first && (n as usize) < self.node_count()).then(|| n - first)
    }

    /// The leaf of the SID at `index` among the catalog's sorted SIDs.
    #[inline]
    pub fn leaf(&self, index: u32) -> NodeId {
        NodeId::new(self.level_start[self.levels()] + index)
    }

    /// Bytes held by the trie's arrays.
    pub fn heap_bytes(&self) -> usize {
        self.level_start.len() * 4
            + self.child_start.len() * 4
            + self.node_code.len() * 2
            + self.item_count.len() * 4
            + self
                .dense
                .iter()
                .map(|l| l.bits.len() * 8 + l.rank.len() * 4)
                .sum::<usize>()
    }
}
