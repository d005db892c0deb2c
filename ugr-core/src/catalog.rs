//! The catalog: item id <-> SID, with SIDs shared by several items, and its trie.
//!
//! A generated SID expands to all of its items in a fixed order: popularity (as
//! recorded at build time, typically training interactions) descending, then item id
//! ascending. The beam search walks that list, so results never repeat an item and
//! ties between colliding items are deterministic.
//!
//! ```
//! use ugr_core::{CatalogBuilder, ItemId, Sid, SidVocab};
//! let mut b = CatalogBuilder::new(SidVocab::new(&[8, 8])?);
//! let shared = Sid::new(&[1, 1])?;
//! b.push_with_popularity(ItemId::new(10), shared, 3)?;
//! b.push_with_popularity(ItemId::new(11), shared, 9)?; // more popular: expands first
//! b.push(ItemId::new(12), Sid::new(&[2, 5])?)?;
//! let catalog = b.build()?;
//! assert_eq!(catalog.len(), 3);
//! assert_eq!(catalog.sid_count(), 2);
//! let s = catalog.lookup(&shared).unwrap();
//! assert_eq!(catalog.items_of(s), &[ItemId::new(11), ItemId::new(10)]);
//! assert_eq!(catalog.sid_of(ItemId::new(12))?, Sid::new(&[2, 5])?);
//! assert!(catalog.sid_of(ItemId::new(99)).is_err());
//! # Ok::<(), ugr_core::Error>(())
//! ```

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{ItemId, NodeId};
use crate::sid::Sid;
use crate::trie::Trie;
use crate::vocab::SidVocab;

/// Collects items and their SIDs, then builds a [`Catalog`].
#[derive(Clone, Debug)]
pub struct CatalogBuilder {
    vocab: SidVocab,
    entries: Vec<(ItemId, Sid, u32)>,
}

impl CatalogBuilder {
    /// An empty builder for SIDs of `vocab`.
    pub fn new(vocab: SidVocab) -> Self {
        CatalogBuilder {
            vocab,
            entries: Vec::new(),
        }
    }

    /// Adds an item with popularity 0.
    pub fn push(&mut self, item: ItemId, sid: Sid) -> Result<()> {
        self.push_with_popularity(item, sid, 0)
    }

    /// Adds an item with a popularity count (higher expands first among items sharing a SID).
    pub fn push_with_popularity(&mut self, item: ItemId, sid: Sid, popularity: u32) -> Result<()> {
        self.vocab.check(&sid)?;
        self.entries.push((item, sid, popularity));
        Ok(())
    }

    /// Number of items added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no item was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds the catalog; fails on an empty catalog or a duplicate item id.
    pub fn build(mut self) -> Result<Catalog> {
        if self.entries.is_empty() {
            return Err(Error::EmptyCatalog);
        }
        if self.entries.len() > u32::MAX as usize / 2 {
            return Err(Error::InvalidOption {
                name: "catalog",
                reason: "more than 2^31 items",
            });
        }
        let levels = self.vocab.levels();
        // Expansion order: SID, then popularity descending, then item id.
        self.entries
            .sort_unstable_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        let mut sid_codes = Vec::new();
        let mut sid_item_start = Vec::new();
        let mut sid_items = Vec::with_capacity(self.entries.len());
        let mut per_item: Vec<(ItemId, u32, u32)> = Vec::with_capacity(self.entries.len());
        for (i, &(item, sid, pop)) in self.entries.iter().enumerate() {
            if i == 0 || self.entries[i - 1].1 != sid {
                sid_item_start.push(sid_items.len() as u32);
                sid_codes.extend_from_slice(sid.codes());
            }
            per_item.push((item, (sid_item_start.len() - 1) as u32, pop));
            sid_items.push(item);
        }
        sid_item_start.push(sid_items.len() as u32);
        per_item.sort_unstable_by_key(|e| e.0);
        if let Some(w) = per_item.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateItem(w[0].0));
        }
        let items_per_sid: Vec<u32> = sid_item_start.windows(2).map(|w| w[1] - w[0]).collect();
        debug_assert_eq!(sid_codes.len(), items_per_sid.len() * levels);
        let trie = Trie::build(&self.vocab, &sid_codes, &items_per_sid);
        Ok(Catalog {
            vocab: self.vocab,
            trie,
            sid_codes,
            sid_item_start,
            sid_items,
            item_ids: per_item.iter().map(|e| e.0).collect(),
            item_sid: per_item.iter().map(|e| e.1).collect(),
            item_popularity: per_item.iter().map(|e| e.2).collect(),
        })
    }
}

/// Items, their SIDs and the SID trie. Build with [`CatalogBuilder`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    vocab: SidVocab,
    trie: Trie,
    /// Distinct SIDs in sorted order, `levels` codes each; index = trie leaf index.
    sid_codes: Vec<u16>,
    /// Items of SID `s`: `sid_items[sid_item_start[s]..sid_item_start[s + 1]]`.
    sid_item_start: Vec<u32>,
    /// Items grouped by SID, each group in expansion order.
    sid_items: Vec<ItemId>,
    /// Every item id, ascending; the three `item_*` arrays are parallel.
    item_ids: Vec<ItemId>,
    item_sid: Vec<u32>,
    item_popularity: Vec<u32>,
}

impl Catalog {
    /// Checks every invariant of a deserialized catalog (and its trie and vocabulary).
    pub fn validate(&self) -> Result<()> {
        let corrupt = |what| Err(Error::Corrupt(what));
        self.vocab.validate()?;
        self.trie.validate(&self.vocab)?;
        let levels = self.vocab.levels();
        let sids = self.trie.leaf_count();
        let items = self.item_ids.len();
        if items == 0 {
            return corrupt("empty catalog");
        }
        if self.sid_codes.len() != sids * levels
            || self.sid_item_start.len() != sids + 1
            || self.sid_items.len() != items
            || self.item_sid.len() != items
            || self.item_popularity.len() != items
        {
            return corrupt("catalog array lengths");
        }
        if self.sid_item_start[0] != 0
            || self.sid_item_start[sids] as usize != items
            || self.sid_item_start.windows(2).any(|w| w[0] >= w[1])
        {
            return corrupt("catalog SID item ranges");
        }
        if self.item_ids.windows(2).any(|w| w[0] >= w[1]) {
            return corrupt("catalog item ids not strictly increasing");
        }
        for s in 0..sids {
            let codes = &self.sid_codes[s * levels..][..levels];
            if s > 0 && self.sid_codes[(s - 1) * levels..][..levels] >= *codes {
                return corrupt("catalog SIDs not strictly increasing");
            }
            let leaf = self.trie.leaf(s as u32);
            if self.trie.walk(codes) != Some(leaf) {
                return corrupt("catalog SID does not match its trie leaf");
            }
            if self.trie.item_count(leaf) as usize != self.items_of(s as u32).len() {
                return corrupt("trie leaf item count");
            }
        }
        // Items per SID in O(items), without a search per item (a binary search over the
        // item ids made loading a 1M-item catalog take seconds): bucket the item positions
        // by their SID, order each bucket in expansion order (popularity descending, then
        // item id), and compare it with the SID's stored items.
        let mut next: Vec<u32> = self.sid_item_start[..sids].to_vec();
        let mut by_sid = alloc::vec![0u32; items];
        for (pos, &s) in self.item_sid.iter().enumerate() {
            let s = s as usize;
            if s >= sids || next[s] >= self.sid_item_start[s + 1] {
                return corrupt("catalog item SID mismatch");
            }
            by_sid[next[s] as usize] = pos as u32;
            next[s] += 1;
        }
        for s in 0..sids {
            let range = self.sid_item_start[s] as usize..self.sid_item_start[s + 1] as usize;
            let bucket = &mut by_sid[range.clone()];
            bucket.sort_unstable_by(|&a, &b| {
                let (a, b) = (a as usize, b as usize);
                self.item_popularity[b]
                    .cmp(&self.item_popularity[a])
                    .then(self.item_ids[a].cmp(&self.item_ids[b]))
            });
            if bucket
                .iter()
                .zip(&self.sid_items[range])
                .any(|(&pos, &item)| self.item_ids[pos as usize] != item)
            {
                return corrupt("catalog SID items out of expansion order");
            }
        }
        Ok(())
    }

    /// The SID vocabulary.
    #[inline]
    pub fn vocab(&self) -> &SidVocab {
        &self.vocab
    }

    /// The SID trie.
    #[inline]
    pub fn trie(&self) -> &Trie {
        &self.trie
    }

    /// Number of items.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a catalog is never empty
    pub fn len(&self) -> usize {
        self.item_ids.len()
    }

    /// Number of distinct SIDs (trie leaves).
    #[inline]
    pub fn sid_count(&self) -> usize {
        self.sid_item_start.len() - 1
    }

    /// Every item id, ascending.
    #[inline]
    pub fn item_ids(&self) -> &[ItemId] {
        &self.item_ids
    }

    /// Position of an item in [`item_ids`](Self::item_ids) (for arrays parallel to it, such as titles).
    #[inline]
    pub fn position(&self, item: ItemId) -> Option<usize> {
        // Ids are strictly increasing: where the catalog's ids are (locally) dense, id `i` sits
        // at position `i`, and one comparison finds it.
        if self.item_ids.get(item.as_usize()) == Some(&item) {
            return Some(item.as_usize());
        }
        self.item_ids.binary_search(&item).ok()
    }

    /// The item's SID index and its slot: its index in the SID-major expansion order (the
    /// items of SID 0 in expansion order, then those of SID 1, ...), `0..len()`. Live
    /// availability and per-request item sets are bitsets over slots.
    pub(crate) fn slot(&self, item: ItemId) -> Option<(u32, usize)> {
        let sid = self.item_sid[self.position(item)?];
        let range = self.slots_of(sid);
        let at = self.sid_items[range.clone()].iter().position(|&i| i == item)?;
        Some((sid, range.start + at))
    }

    /// The slots of the SID at `index` (see [`slot`](Self::slot)).
    #[inline]
    pub(crate) fn slots_of(&self, index: u32) -> core::ops::Range<usize> {
        let s = index as usize;
        self.sid_item_start[s] as usize..self.sid_item_start[s + 1] as usize
    }

    /// Index of the item's SID among the sorted distinct SIDs.
    pub fn sid_index_of(&self, item: ItemId) -> Result<u32> {
        self.position(item)
            .map(|p| self.item_sid[p])
            .ok_or(Error::UnknownItem(item))
    }

    /// The item's SID.
    pub fn sid_of(&self, item: ItemId) -> Result<Sid> {
        Ok(self.sid(self.sid_index_of(item)?))
    }

    /// The item's popularity as recorded at build time.
    pub fn popularity(&self, item: ItemId) -> Result<u32> {
        self.position(item)
            .map(|p| self.item_popularity[p])
            .ok_or(Error::UnknownItem(item))
    }

    /// The SID at `index` among the sorted distinct SIDs.
    ///
    /// # Panics
    /// If `index >= sid_count()`.
    pub fn sid(&self, index: u32) -> Sid {
        let l = self.vocab.levels();
        let codes = &self.sid_codes[index as usize * l..][..l];
        // Catalog SIDs have 1..=8 levels by construction.
        Sid::new(codes).unwrap_or_else(|_| unreachable!())
    }

    /// The index of a SID among the catalog's SIDs, if some item has it.
    pub fn lookup(&self, sid: &Sid) -> Option<u32> {
        if sid.len() != self.vocab.levels() {
            return None;
        }
        self.trie
            .walk(sid.codes())
            .and_then(|leaf| self.trie.leaf_index(leaf))
    }

    /// Items sharing the SID at `index`, in expansion order (popularity descending, then item id).
    ///
    /// # Panics
    /// If `index >= sid_count()`.
    #[inline]
    pub fn items_of(&self, index: u32) -> &[ItemId] {
        let s = index as usize;
        &self.sid_items[self.sid_item_start[s] as usize..self.sid_item_start[s + 1] as usize]
    }

    /// Items below a trie leaf, in expansion order (empty for an internal node).
    #[inline]
    pub fn items_at(&self, leaf: NodeId) -> &[ItemId] {
        self.trie.leaf_index(leaf).map_or(&[], |s| self.items_of(s))
    }

    /// Summary statistics: prefixes per level, codes used, collisions.
    pub fn stats(&self) -> CatalogStats {
        let levels = self.vocab.levels();
        let mut s = CatalogStats {
            items: self.len(),
            sids: self.sid_count(),
            levels,
            ..CatalogStats::default()
        };
        for d in 1..=levels {
            let nodes = self.trie.nodes_at_depth(d);
            s.prefixes[d - 1] = (nodes.end - nodes.start) as usize;
            s.max_items_per_prefix[d - 1] = nodes
                .map(|n| self.trie.item_count(NodeId::new(n)))
                .max()
                .unwrap_or(0) as usize;
            let mut used = alloc::vec![false; self.vocab.codebook_size(d - 1) as usize];
            for n in self.trie.nodes_at_depth(d) {
                used[usize::from(self.trie.code(NodeId::new(n)))] = true;
            }
            s.codes_used[d - 1] = used.iter().filter(|&&u| u).count();
        }
        for sid in 0..self.sid_count() as u32 {
            let n = self.items_of(sid).len();
            if n > 1 {
                s.colliding_sids += 1;
                s.colliding_items += n;
            }
        }
        s
    }

    /// Bytes held by the catalog's arrays (trie included).
    pub fn heap_bytes(&self) -> usize {
        self.trie.heap_bytes()
            + self.sid_codes.len() * 2
            + (self.sid_item_start.len() + self.sid_items.len()) * 4
            + self.item_ids.len() * 12
    }
}

/// Shape of a catalog, as [`Catalog::stats`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogStats {
    /// Items.
    pub items: usize,
    /// Distinct SIDs.
    pub sids: usize,
    /// SID levels.
    pub levels: usize,
    /// Distinct prefixes of length 1..=levels (index 0 = length 1).
    pub prefixes: [usize; crate::vocab::MAX_LEVELS],
    /// Distinct codes used at each level.
    pub codes_used: [usize; crate::vocab::MAX_LEVELS],
    /// Most items below one prefix of each length.
    pub max_items_per_prefix: [usize; crate::vocab::MAX_LEVELS],
    /// SIDs shared by more than one item.
    pub colliding_sids: usize,
    /// Items whose SID is shared.
    pub colliding_items: usize,
}
