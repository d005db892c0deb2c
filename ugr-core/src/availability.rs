//! Live availability: items marked unavailable (out of stock, withdrawn) and available again
//! while the model and catalog stay as they are.
//!
//! An [`Availability`] belongs to one [`Catalog`]. It keeps, for every trie node, how many
//! unavailable items lie below it, and one bit per item: a change walks the item's SID path
//! once (O(levels)), and the search reads a node's live count as `item_count - unavailable`
//! in O(1). The search never expands a prefix whose items are all unavailable and never
//! returns an unavailable item, exactly as if the catalog did not hold them
//! ([`BeamSearch::with_availability`](crate::BeamSearch::with_availability)).
//!
//! A batch of changes ([`Availability::apply`]) is checked whole before any of it is applied:
//! an unknown item leaves the state untouched. The [`Engine`](crate::Engine) holds one behind
//! a lock so that a request sees every change of a batch or none.
//!
//! ```
//! use ugr_core::{Availability, CatalogBuilder, ItemId, Sid, SidVocab};
//! let mut b = CatalogBuilder::new(SidVocab::new(&[4, 4])?);
//! b.push(ItemId::new(0), Sid::new(&[1, 2])?)?;
//! b.push(ItemId::new(1), Sid::new(&[1, 3])?)?;
//! let catalog = b.build()?;
//! let mut live = Availability::new(&catalog);
//! assert_eq!(live.apply(&catalog, &[(ItemId::new(1), false)])?, 1);
//! assert!(!live.is_available(&catalog, ItemId::new(1))?);
//! assert!(live.apply(&catalog, &[(ItemId::new(0), false), (ItemId::new(9), false)]).is_err());
//! assert!(live.is_available(&catalog, ItemId::new(0))?); // the bad batch changed nothing
//! # Ok::<(), ugr_core::Error>(())
//! ```

use alloc::vec;
use alloc::vec::Vec;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::ids::{ItemId, NodeId};

/// Which items of a catalog are available now (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    /// Unavailable items below each trie node (the catalog's node ids).
    node_unavailable: Vec<u32>,
    /// One bit per item slot ([`Catalog::slot`]), set when the item is unavailable.
    slot_unavailable: Vec<u64>,
    /// Items unavailable now.
    unavailable: usize,
}

impl Availability {
    /// Every item of `catalog` available.
    pub fn new(catalog: &Catalog) -> Availability {
        Availability {
            node_unavailable: vec![0; catalog.trie().node_count()],
            slot_unavailable: vec![0; catalog.len().div_ceil(64)],
            unavailable: 0,
        }
    }

    /// Whether this state was made for `catalog` (same node and item counts).
    pub fn fits(&self, catalog: &Catalog) -> bool {
        self.node_unavailable.len() == catalog.trie().node_count()
            && self.slot_unavailable.len() == catalog.len().div_ceil(64)
    }

    /// Applies a batch of `(item, available)` changes in order and returns how many changed an
    /// item's state. Every item is checked first: an item outside the catalog is
    /// [`Error::UnknownItem`] and nothing is applied.
    pub fn apply(&mut self, catalog: &Catalog, changes: &[(ItemId, bool)]) -> Result<usize> {
        self.check_fits(catalog)?;
        if let Some(&(item, _)) = changes.iter().find(|(item, _)| catalog.position(*item).is_none()) {
            return Err(Error::UnknownItem(item));
        }
        let mut changed = 0;
        for &(item, available) in changes {
            changed += usize::from(self.set(catalog, item, available)?);
        }
        Ok(changed)
    }

    /// Marks one item available or not; `Ok(true)` when its state changed.
    pub fn set(&mut self, catalog: &Catalog, item: ItemId, available: bool) -> Result<bool> {
        self.check_fits(catalog)?;
        let (sid, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if (self.slot_unavailable[word] & bit == 0) == available {
            return Ok(false);
        }
        self.slot_unavailable[word] ^= bit;
        let trie = catalog.trie();
        let mut node = trie.root();
        let mut update = |n: NodeId| {
            let c = &mut self.node_unavailable[n.as_usize()];
            *c = if available { *c - 1 } else { *c + 1 };
        };
        update(node);
        for &code in catalog.sid(sid).codes() {
            node = trie
                .child(node, code)
                .ok_or(Error::Corrupt("catalog SID not in its trie"))?;
            update(node);
        }
        if available {
            self.unavailable -= 1;
        } else {
            self.unavailable += 1;
        }
        Ok(true)
    }

    /// Whether `item` is available now.
    pub fn is_available(&self, catalog: &Catalog, item: ItemId) -> Result<bool> {
        self.check_fits(catalog)?;
        let (_, slot) = catalog.slot(item).ok_or(Error::UnknownItem(item))?;
        Ok(self.slot_available(slot))
    }

    /// Items unavailable now.
    pub fn unavailable_count(&self) -> usize {
        self.unavailable
    }

    /// Marks every item available again.
    pub fn reset(&mut self) {
        self.node_unavailable.fill(0);
        self.slot_unavailable.fill(0);
        self.unavailable = 0;
    }

    /// Available items below `node` of `catalog`'s trie.
    #[inline]
    pub(crate) fn live(&self, catalog: &Catalog, node: u32) -> u32 {
        catalog.trie().item_count(NodeId::new(node)) - self.node_unavailable[node as usize]
    }

    /// Whether the item in `slot` is available.
    #[inline]
    pub(crate) fn slot_available(&self, slot: usize) -> bool {
        self.slot_unavailable[slot / 64] & (1u64 << (slot % 64)) == 0
    }

    fn check_fits(&self, catalog: &Catalog) -> Result<()> {
        if self.fits(catalog) {
            Ok(())
        } else {
            Err(Error::InvalidOption {
                name: "availability",
                reason: "made for another catalog",
            })
        }
    }
}
