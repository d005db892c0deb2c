//! Request-time rules inside the search: an allowlist, a denylist, SID-prefix restrictions,
//! the request's own history ([`SearchOptions::exclude_history`](super::SearchOptions)) and
//! the catalog's live [`Availability`].
//!
//! # What a rule means
//! The items a request may receive are: the allowlist (every catalog item when there is none),
//! restricted to items whose SID starts with one of the prefixes (when any are given), minus
//! the denylist, minus the history when it is excluded, minus unavailable items. The search
//! then runs exactly as it would on a catalog holding only those items: a prefix with no such
//! item below it is never expanded, pruning counts only those items, the item head's forced
//! SIDs are chosen among them, and K of them come back whenever that many exist.
//!
//! Scores are not renormalised over what a rule leaves: every log-softmax (per level, the
//! trie-restricted one of [`Normalization::Trie`](super::Normalization::Trie) and the item
//! head's over every SID) is the full catalog's. A rule therefore ranks items by the model's
//! own probabilities conditioned on the rule, never inflates a score or a confidence, and
//! the same item scores the same under any rule. For [`Normalization::Level`] and
//! [`Normalization::FullVocab`] this is identical to searching the sub-catalog; under
//! `Trie` the sub-catalog's own trie would renormalise over fewer codes.
//!
//! # Cost
//! Small lists cost what they hold: each listed item's SID path is walked once and the
//! per-node counts kept as sorted pairs (so a denylist of a few items costs what history
//! exclusion costs). Lists long enough that one pass over the trie is cheaper than sorting
//! their paths become a bitset over item slots and one count per trie node.
//!
//! [`Normalization::Level`]: super::Normalization::Level
//! [`Normalization::FullVocab`]: super::Normalization::FullVocab

use alloc::vec::Vec;
use core::ops::Range;

use crate::availability::Availability;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::{ItemId, NodeId};
use crate::sid::Sid;
use crate::vocab::MAX_LEVELS;

/// The business rules of one request (see the module docs). The default allows everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Constraints<'a> {
    /// Only these items may be returned (`None`: every item). Every id must be a catalog
    /// item ([`Error::UnknownItem`]); an empty list is an error, not "allow nothing".
    pub allow: Option<&'a [ItemId]>,
    /// Never return these items (catalog items, [`Error::UnknownItem`] otherwise).
    pub deny: &'a [ItemId],
    /// Only items whose SID starts with one of these prefixes (1 to L codes each, a whole SID
    /// included): a category in SID space. Empty: no restriction. A prefix that no catalog
    /// SID has allows nothing; a malformed one is an error.
    pub prefixes: &'a [Sid],
}

impl Constraints<'_> {
    /// No rule.
    pub const NONE: Constraints<'static> = Constraints {
        allow: None,
        deny: &[],
        prefixes: &[],
    };

    /// Whether the constraints allow every item.
    pub fn is_none(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty() && self.prefixes.is_empty()
    }
}

/// One request: a history (most recent item last) and its rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// The user's history.
    pub history: &'a [ItemId],
    /// The request's rules.
    pub constraints: Constraints<'a>,
}

impl<'a> Request<'a> {
    /// A request without rules.
    pub fn new(history: &'a [ItemId]) -> Self {
        Request {
            history,
            constraints: Constraints::NONE,
        }
    }
}

/// A set of items: sorted ids (short lists) or one bit per catalog slot.
#[derive(Clone, Debug)]
enum ItemSet {
    Sorted(Range<usize>),
    Bits(Range<usize>),
}

/// Items per trie node: sorted `(node, count)` pairs, or one count per node.
#[derive(Clone, Debug)]
enum NodeCounts {
    Sparse(Range<usize>),
    Dense(Range<usize>),
}

/// One request's tables.
#[derive(Clone, Debug)]
struct Tables {
    /// An allowlist is given: `set` holds the allowed live items, `counts` them per node.
    /// Otherwise `set` holds the removed items (denied, excluded history), `counts` those of
    /// them that would otherwise be served.
    allow: bool,
    set: ItemSet,
    counts: NodeCounts,
    /// Prefix restriction given (in open mode): `region` holds the prefix nodes and their
    /// ancestors with their live items; nodes outside it are out unless below a prefix node.
    restricted: bool,
    region: Range<usize>,
    /// The prefix nodes kept (none nested in another), sorted.
    prefixes: Range<usize>,
    /// Items in `set` (open mode: an upper bound on the SIDs the rules remove).
    set_len: usize,
}

/// Where the item head's candidate SIDs of one request come from.
pub(super) enum Scope<'a> {
    /// Every SID; at most `blocked` of them have no allowed item.
    All { blocked: usize },
    /// The SIDs below these prefix nodes.
    Prefixes(&'a [u32]),
    /// The SIDs of these items.
    Items(&'a [ItemId]),
}

/// The tables of every request of one search call (reused across calls).
#[derive(Clone, Debug, Default)]
pub(super) struct Rules {
    tables: Vec<Tables>,
    ids: Vec<ItemId>,
    words: Vec<u64>,
    pairs: Vec<(u32, u32)>,
    dense: Vec<u32>,
    region: Vec<(u32, u32, bool)>,
    prefix_nodes: Vec<u32>,
    scratch_sids: Vec<Sid>,
    scratch_ids: Vec<ItemId>,
    scratch_words: Vec<u64>,
}

/// Whether a list this long is cheaper as a bitset and one pass over the trie.
fn dense_for(list: usize, levels: usize, nodes: usize) -> bool {
    list * levels * 16 >= nodes
}

impl Rules {
    /// Forgets the previous call's requests.
    pub(super) fn clear(&mut self) {
        self.tables.clear();
        self.ids.clear();
        self.words.clear();
        self.pairs.clear();
        self.dense.clear();
        self.region.clear();
        self.prefix_nodes.clear();
    }

    /// Builds the next request's tables.
    pub(super) fn push(
        &mut self,
        catalog: &Catalog,
        live: Option<&Availability>,
        constraints: &Constraints<'_>,
        excluded_history: &[ItemId],
    ) -> Result<()> {
        if constraints.allow.is_some_and(<[ItemId]>::is_empty) {
            return Err(Error::InvalidOption {
                name: "allow",
                reason: "an empty allowlist allows nothing (give no allowlist to allow every item)",
            });
        }
        let prefixes = self.push_prefixes(catalog, constraints.prefixes)?;
        let restricted = !constraints.prefixes.is_empty();
        let region = self.push_region(catalog, live, prefixes.clone());
        let removed = constraints.deny.len() + excluded_history.len();
        let (set, counts, set_len) = match constraints.allow {
            None => self.push_removed(
                catalog,
                live,
                constraints.deny,
                excluded_history,
                restricted,
                &prefixes,
            )?,
            Some(allow) => self.push_allowed(
                catalog,
                live,
                allow,
                constraints.deny,
                excluded_history,
                restricted,
                &prefixes,
            )?,
        };
        debug_assert!(constraints.allow.is_some() || set_len <= removed);
        self.tables.push(Tables {
            allow: constraints.allow.is_some(),
            set,
            counts,
            restricted: restricted && constraints.allow.is_none(),
            region,
            prefixes,
            set_len,
        });
        Ok(())
    }

    /// Checks the prefixes, keeps those not nested in another, and records the trie nodes of
    /// those the catalog has (sorted).
    fn push_prefixes(&mut self, catalog: &Catalog, prefixes: &[Sid]) -> Result<Range<usize>> {
        let start = self.prefix_nodes.len();
        for p in prefixes {
            catalog.vocab().check_prefix(p)?;
        }
        self.scratch_sids.clear();
        self.scratch_sids.extend_from_slice(prefixes);
        self.scratch_sids
            .sort_unstable_by(|a, b| a.codes().cmp(b.codes()));
        let mut last: Option<Sid> = None;
        for p in &self.scratch_sids {
            // Sorted: a prefix nested in a kept one comes right after it (or after others nested in it).
            if last.is_some_and(|k| p.codes().starts_with(k.codes())) {
                continue;
            }
            last = Some(*p);
            if let Some(node) = catalog.trie().walk(p.codes()) {
                self.prefix_nodes.push(node.as_u32());
            }
        }
        self.prefix_nodes[start..].sort_unstable();
        Ok(start..self.prefix_nodes.len())
    }

    /// The prefix nodes and their ancestors (root excluded) with their live items.
    fn push_region(
        &mut self,
        catalog: &Catalog,
        live: Option<&Availability>,
        prefixes: Range<usize>,
    ) -> Range<usize> {
        let start = self.region.len();
        let trie = catalog.trie();
        for &p in &self.prefix_nodes[prefixes] {
            let count = live_count(catalog, live, p);
            let mut path = [0u32; MAX_LEVELS];
            // The prefix node's path: its first leaf's SID, cut at the node's depth.
            let depth = trie.depth(NodeId::new(p)).unwrap_or(0);
            let sid = catalog.sid(trie.leaf_range(NodeId::new(p)).start);
            let n = sid_path(catalog, &sid.codes()[..depth], &mut path);
            for (i, &node) in path[..n].iter().enumerate() {
                self.region.push((node, count, i + 1 == n));
            }
        }
        let region = &mut self.region[start..];
        region.sort_unstable_by_key(|e| e.0);
        let mut w = start;
        for i in start..self.region.len() {
            let e = self.region[i];
            if w > start && self.region[w - 1].0 == e.0 {
                self.region[w - 1].1 += e.1;
                self.region[w - 1].2 |= e.2;
            } else {
                self.region[w] = e;
                w += 1;
            }
        }
        self.region.truncate(w);
        start..w
    }

    /// Open mode: the removed items and, per node, those of them that would otherwise be served.
    fn push_removed(
        &mut self,
        catalog: &Catalog,
        live: Option<&Availability>,
        deny: &[ItemId],
        history: &[ItemId],
        restricted: bool,
        prefixes: &Range<usize>,
    ) -> Result<(ItemSet, NodeCounts, usize)> {
        let listed = deny.len() + history.len();
        let trie = catalog.trie();
        if dense_for(listed, trie.levels(), trie.node_count()) {
            let words = self.words.len();
            self.words.resize(words + catalog.len().div_ceil(64), 0);
            let counts = self.dense.len();
            self.dense.resize(counts + trie.node_count(), 0);
            let mut set_len = 0;
            for &item in deny.iter().chain(history) {
                let (sid, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
                let word = &mut self.words[words + slot / 64];
                if *word & (1u64 << (slot % 64)) != 0 {
                    continue;
                }
                *word |= 1u64 << (slot % 64);
                set_len += 1;
                if live.is_none_or(|a| a.slot_available(slot))
                    && (!restricted || self.in_region(catalog, sid, prefixes))
                {
                    self.dense[counts + trie.leaf(sid).as_usize()] += 1;
                }
            }
            sum_up(catalog, &mut self.dense[counts..]);
            let end_counts = self.dense.len();
            return Ok((
                ItemSet::Bits(words..self.words.len()),
                NodeCounts::Dense(counts..end_counts),
                set_len,
            ));
        }
        let ids = self.ids.len();
        self.ids.extend_from_slice(deny);
        self.ids.extend_from_slice(history);
        sort_dedup_tail(&mut self.ids, ids);
        let pairs = self.pairs.len();
        for i in ids..self.ids.len() {
            let item = self.ids[i];
            let (sid, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
            if live.is_none_or(|a| a.slot_available(slot))
                && (!restricted || self.in_region(catalog, sid, prefixes))
            {
                push_path(catalog, sid, &mut self.pairs);
            }
        }
        merge_pairs(&mut self.pairs, pairs);
        Ok((
            ItemSet::Sorted(ids..self.ids.len()),
            NodeCounts::Sparse(pairs..self.pairs.len()),
            self.ids.len() - ids,
        ))
    }

    /// Allow mode: the allowed items that are served (in the prefixes, not removed, available),
    /// and their counts per node.
    #[allow(clippy::too_many_arguments)]
    fn push_allowed(
        &mut self,
        catalog: &Catalog,
        live: Option<&Availability>,
        allow: &[ItemId],
        deny: &[ItemId],
        history: &[ItemId],
        restricted: bool,
        prefixes: &Range<usize>,
    ) -> Result<(ItemSet, NodeCounts, usize)> {
        let trie = catalog.trie();
        // The removed items, to filter the allowlist with.
        let removed_dense = dense_for(deny.len() + history.len(), trie.levels(), trie.node_count());
        let mut scratch_ids = core::mem::take(&mut self.scratch_ids);
        let mut scratch_words = core::mem::take(&mut self.scratch_words);
        scratch_ids.clear();
        scratch_words.clear();
        if removed_dense {
            scratch_words.resize(catalog.len().div_ceil(64), 0);
            for &item in deny.iter().chain(history) {
                let (_, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
                scratch_words[slot / 64] |= 1u64 << (slot % 64);
            }
        } else {
            for &item in deny.iter().chain(history) {
                catalog.position(item).ok_or(Error::UnknownItem(item))?;
                scratch_ids.push(item);
            }
            sort_dedup_tail(&mut scratch_ids, 0);
        }
        let removed = |item: ItemId, slot: usize| {
            if removed_dense {
                scratch_words[slot / 64] & (1u64 << (slot % 64)) != 0
            } else {
                scratch_ids.binary_search(&item).is_ok()
            }
        };
        let result = if dense_for(allow.len(), trie.levels(), trie.node_count()) {
            let words = self.words.len();
            self.words.resize(words + catalog.len().div_ceil(64), 0);
            let counts = self.dense.len();
            self.dense.resize(counts + trie.node_count(), 0);
            let mut set_len = 0;
            for &item in allow {
                let (sid, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
                let seen = self.words[words + slot / 64] & (1u64 << (slot % 64)) != 0;
                if seen
                    || removed(item, slot)
                    || !live.is_none_or(|a| a.slot_available(slot))
                    || (restricted && !self.in_region(catalog, sid, prefixes))
                {
                    continue;
                }
                self.words[words + slot / 64] |= 1u64 << (slot % 64);
                set_len += 1;
                self.dense[counts + trie.leaf(sid).as_usize()] += 1;
            }
            sum_up(catalog, &mut self.dense[counts..]);
            let end_counts = self.dense.len();
            (
                ItemSet::Bits(words..self.words.len()),
                NodeCounts::Dense(counts..end_counts),
                set_len,
            )
        } else {
            let ids = self.ids.len();
            self.ids.extend_from_slice(allow);
            sort_dedup_tail(&mut self.ids, ids);
            let pairs = self.pairs.len();
            let mut w = ids;
            for i in ids..self.ids.len() {
                let item = self.ids[i];
                let (sid, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
                if removed(item, slot)
                    || !live.is_none_or(|a| a.slot_available(slot))
                    || (restricted && !self.in_region(catalog, sid, prefixes))
                {
                    continue;
                }
                self.ids[w] = item;
                w += 1;
                push_path(catalog, sid, &mut self.pairs);
            }
            self.ids.truncate(w);
            merge_pairs(&mut self.pairs, pairs);
            (
                ItemSet::Sorted(ids..w),
                NodeCounts::Sparse(pairs..self.pairs.len()),
                w - ids,
            )
        };
        self.scratch_ids = scratch_ids;
        self.scratch_words = scratch_words;
        Ok(result)
    }

    /// Whether SID `sid` lies below one of the request's prefix nodes.
    fn in_region(&self, catalog: &Catalog, sid: u32, prefixes: &Range<usize>) -> bool {
        let nodes = &self.prefix_nodes[prefixes.clone()];
        let mut path = [0u32; MAX_LEVELS];
        let n = sid_path(catalog, catalog.sid(sid).codes(), &mut path);
        path[..n].iter().any(|p| nodes.binary_search(p).is_ok())
    }

    /// Whether request `r`'s search starts inside its allowed region (no prefix restriction).
    #[inline]
    pub(super) fn root_inside(&self, r: usize) -> bool {
        !self.tables[r].restricted
    }

    /// Whether request `r` has any rule (the availability aside).
    #[inline]
    pub(super) fn has_rules(&self, r: usize) -> bool {
        let t = &self.tables[r];
        t.allow || t.restricted || t.set_len > 0
    }

    /// The items request `r` may receive below `node` (a child of a beam that is
    /// `parent_inside` the allowed region), and whether `node` is inside it.
    #[inline]
    pub(super) fn count(
        &self,
        catalog: &Catalog,
        live: Option<&Availability>,
        r: usize,
        node: u32,
        parent_inside: bool,
    ) -> (u32, bool) {
        let t = &self.tables[r];
        if t.allow {
            return (self.lookup(&t.counts, node), true);
        }
        let (base, inside) = if parent_inside {
            (live_count(catalog, live, node), true)
        } else {
            let region = &self.region[t.region.clone()];
            match region.binary_search_by_key(&node, |e| e.0) {
                Ok(i) => (region[i].1, region[i].2),
                Err(_) => return (0, false),
            }
        };
        (base - self.lookup(&t.counts, node), inside)
    }

    /// The items request `r` may receive with SID `sid`.
    pub(super) fn sid_count(
        &self,
        catalog: &Catalog,
        live: Option<&Availability>,
        r: usize,
        sid: u32,
    ) -> u32 {
        let t = &self.tables[r];
        let leaf = catalog.trie().leaf(sid).as_u32();
        if t.allow {
            return self.lookup(&t.counts, leaf);
        }
        if t.restricted && !self.in_region(catalog, sid, &t.prefixes) {
            return 0;
        }
        live_count(catalog, live, leaf) - self.lookup(&t.counts, leaf)
    }

    /// Whether request `r` may receive `item` (in `slot`) of a SID the search reached.
    #[inline]
    pub(super) fn item_ok(&self, live: Option<&Availability>, r: usize, item: ItemId, slot: usize) -> bool {
        let t = &self.tables[r];
        let listed = match &t.set {
            ItemSet::Sorted(range) => self.ids[range.clone()].binary_search(&item).is_ok(),
            ItemSet::Bits(range) => self.words[range.start + slot / 64] & (1u64 << (slot % 64)) != 0,
        };
        if t.allow {
            listed
        } else {
            !listed && live.is_none_or(|a| a.slot_available(slot))
        }
    }

    /// Where request `r`'s item-head candidates come from.
    pub(super) fn scope(&self, live: Option<&Availability>, r: usize) -> Scope<'_> {
        let t = &self.tables[r];
        let unavailable = live.map_or(0, Availability::unavailable_count);
        match (&t.set, t.allow, t.restricted) {
            (ItemSet::Sorted(range), true, _) => Scope::Items(&self.ids[range.clone()]),
            (_, true, _) => Scope::All { blocked: usize::MAX },
            (_, false, true) => Scope::Prefixes(&self.prefix_nodes[t.prefixes.clone()]),
            (_, false, false) => Scope::All {
                blocked: t.set_len + unavailable,
            },
        }
    }

    #[inline]
    fn lookup(&self, counts: &NodeCounts, node: u32) -> u32 {
        match counts {
            NodeCounts::Sparse(range) => {
                let pairs = &self.pairs[range.clone()];
                match pairs.binary_search_by_key(&node, |e| e.0) {
                    Ok(i) => pairs[i].1,
                    Err(_) => 0,
                }
            }
            NodeCounts::Dense(range) => self.dense[range.start + node as usize],
        }
    }
}

/// Live items below `node` (every item when no availability is given).
#[inline]
fn live_count(catalog: &Catalog, live: Option<&Availability>, node: u32) -> u32 {
    live.map_or_else(
        || catalog.trie().item_count(NodeId::new(node)),
        |a| a.live(catalog, node),
    )
}

/// The trie nodes (root excluded) along `codes`; returns how many.
fn sid_path(catalog: &Catalog, codes: &[u16], path: &mut [u32; MAX_LEVELS]) -> usize {
    let trie = catalog.trie();
    let mut node = trie.root();
    for (i, &code) in codes.iter().enumerate() {
        match trie.child(node, code) {
            Some(c) => node = c,
            None => return i,
        }
        path[i] = node.as_u32();
    }
    codes.len()
}

/// Adds one item below each node of SID `sid`'s path.
fn push_path(catalog: &Catalog, sid: u32, pairs: &mut Vec<(u32, u32)>) {
    let mut path = [0u32; MAX_LEVELS];
    let n = sid_path(catalog, catalog.sid(sid).codes(), &mut path);
    pairs.extend(path[..n].iter().map(|&node| (node, 1)));
}

/// Sorts `pairs[start..]` by node and sums the counts of equal nodes.
fn merge_pairs(pairs: &mut Vec<(u32, u32)>, start: usize) {
    pairs[start..].sort_unstable_by_key(|e| e.0);
    let mut w = start;
    for i in start..pairs.len() {
        let e = pairs[i];
        if w > start && pairs[w - 1].0 == e.0 {
            pairs[w - 1].1 += e.1;
        } else {
            pairs[w] = e;
            w += 1;
        }
    }
    pairs.truncate(w);
}

/// Fills every internal node's count with the sum of its children's (leaves are set).
fn sum_up(catalog: &Catalog, counts: &mut [u32]) {
    let trie = catalog.trie();
    for d in (0..trie.levels()).rev() {
        for n in trie.nodes_at_depth(d) {
            counts[n as usize] = trie.child_range(n).map(|c| counts[c as usize]).sum();
        }
    }
}

/// Sorts `v[start..]` and removes its duplicates in place (the prefix is untouched).
pub(super) fn sort_dedup_tail<T: Ord + Copy>(v: &mut Vec<T>, start: usize) {
    v[start..].sort_unstable();
    let mut w = start;
    for i in start..v.len() {
        if w == start || v[i] != v[w - 1] {
            v[w] = v[i];
            w += 1;
        }
    }
    v.truncate(w);
}
