//! Serving a catalog other than the one the model was trained with: items removed, items
//! added with new SIDs, without retraining.
//!
//! A model's weights index its own SID table (the item head's rows and the SID identity
//! embedding hold one row per SID of the training catalog, in SID order). An artifact
//! written by `ugr catalog` keeps that table as the model section's `model_sids` blob
//! ([`write_model_sids`]) and serves another catalog; [`model_catalog`] rebuilds the table as a
//! catalog for the backends (one item per SID), and an [`ItemMap`] maps the served catalog's
//! SIDs to the item head's rows.
//!
//! # What a new SID scores
//! The generative score needs nothing: any SID the served trie holds is decoded exactly, and
//! a history item with a SID the model does not know enters the model through its SID tokens
//! (its identity row is the shared row 0). The item head has no row for a new SID: its logit
//! is taken as the log of the mean item-head probability of the model SIDs that share its
//! longest known prefix (its family; every model SID when not even its first code is known),
//! so a new item scores as a typical member of its family under the item head plus its own
//! exact generative score. The item head's softmax is then taken over the served catalog's
//! SIDs (SIDs removed from the catalog drop out of it).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use crate::artifact::{Blob, Bundle, ModelSection, ModelSectionRef};
use crate::catalog::{Catalog, CatalogBuilder};
use crate::error::{Error, Result};
use crate::ids::ItemId;
use crate::model::{SidModel, Step};
use crate::sid::Sid;

/// The model section blob that holds the model's SID table (flat little-endian `u16` codes,
/// L per SID, strictly increasing), present when the artifact serves another catalog.
pub const MODEL_SIDS_BLOB: &str = "model_sids";

/// The model's SID table as a catalog (item `i` = SID `i`), or `served` itself when the
/// section has no `model_sids` blob (the model serves its own catalog).
pub fn model_catalog(section: &ModelSectionRef<'_>, served: &Arc<Catalog>) -> Result<Arc<Catalog>> {
    let Some(bytes) = section.blob(MODEL_SIDS_BLOB) else {
        return Ok(Arc::clone(served));
    };
    let vocab = *served.vocab();
    let levels = vocab.levels();
    if bytes.is_empty() || bytes.len() % (2 * levels) != 0 {
        return Err(Error::Corrupt("model SID table length"));
    }
    let codes: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut b = CatalogBuilder::new(vocab);
    let mut prev: Option<&[u16]> = None;
    for (i, sid) in codes.chunks_exact(levels).enumerate() {
        if prev.is_some_and(|p| p >= sid) {
            return Err(Error::Corrupt("model SID table not strictly increasing"));
        }
        prev = Some(sid);
        let sid = Sid::new(sid).map_err(|_| Error::Corrupt("model SID table"))?;
        b.push(ItemId::new(i as u32), sid)
            .map_err(|_| Error::Corrupt("model SID table code outside its codebook"))?;
    }
    Ok(Arc::new(b.build()?))
}

/// Records `model`'s SIDs as the section's model SID table (replacing any earlier one).
pub fn write_model_sids(section: &mut ModelSection, model: &Catalog) {
    let mut bytes = Vec::with_capacity(model.sid_count() * model.vocab().levels() * 2);
    for s in 0..model.sid_count() as u32 {
        for &c in model.sid(s).codes() {
            bytes.extend_from_slice(&c.to_le_bytes());
        }
    }
    section.graphs.retain(|b| b.name != MODEL_SIDS_BLOB);
    section.graphs.push(Blob {
        name: MODEL_SIDS_BLOB.into(),
        bytes,
    });
}

/// How the served catalog's SIDs map to the item head's rows (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemMap {
    /// Served SID index -> model SID index, or `NONE`.
    rows: Vec<u32>,
    /// For each served SID without a row (in served order): its family's model SIDs.
    family: Vec<Range<u32>>,
    /// The model's SID count.
    model_sids: usize,
    identity: bool,
}

const NONE: u32 = u32::MAX;

impl ItemMap {
    /// The map from `served`'s SIDs to `model`'s.
    pub fn new(model: &Catalog, served: &Catalog) -> ItemMap {
        let trie = model.trie();
        let mut rows = Vec::with_capacity(served.sid_count());
        let mut family = Vec::new();
        for s in 0..served.sid_count() as u32 {
            let sid = served.sid(s);
            match model.lookup(&sid) {
                Some(m) => rows.push(m),
                None => {
                    rows.push(NONE);
                    let mut node = trie.root();
                    for &c in sid.codes() {
                        match trie.child(node, c) {
                            Some(n) => node = n,
                            None => break,
                        }
                    }
                    family.push(trie.leaf_range(node));
                }
            }
        }
        let identity =
            rows.len() == model.sid_count() && rows.iter().enumerate().all(|(i, &r)| r == i as u32);
        ItemMap {
            rows,
            family,
            model_sids: model.sid_count(),
            identity,
        }
    }

    /// Whether the served SIDs are the model's (no remapping needed).
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Served SIDs the item head has no row for.
    pub fn new_sids(&self) -> usize {
        self.family.len()
    }

    /// Rewrites `model_logits` (`R` rows of the model's SIDs) into `out` (`R` rows of the
    /// served SIDs): a known SID keeps its logit, a new one gets its family's (see the
    /// module docs). `prefix` is scratch.
    pub fn remap(&self, model_logits: &[f32], out: &mut Vec<f32>, prefix: &mut Vec<f64>) {
        out.clear();
        if self.model_sids == 0 {
            return;
        }
        for z in model_logits.chunks_exact(self.model_sids) {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if !self.family.is_empty() {
                prefix.clear();
                prefix.push(0.0);
                let mut acc = 0.0f64;
                for &v in z {
                    acc += libm::exp(f64::from(v - max));
                    prefix.push(acc);
                }
            }
            let mut next_new = 0;
            for &row in &self.rows {
                if row != NONE {
                    out.push(z[row as usize]);
                    continue;
                }
                let f = &self.family[next_new];
                next_new += 1;
                let mass = prefix[f.end as usize] - prefix[f.start as usize];
                let n = f64::from(f.end - f.start).max(1.0);
                out.push(max + libm::log(mass / n) as f32);
            }
        }
    }
}

/// A model serving a catalog other than its own: every call goes to `model`, and the item
/// head's logits come back in the served catalog's SID order ([`ItemMap::remap`]).
#[derive(Debug)]
pub struct ServedModel<'m, M> {
    /// The model, on its own SID table.
    pub model: &'m M,
    /// The served catalog's map.
    pub map: &'m ItemMap,
}

/// The cache of a [`ServedModel`]: the model's, and the remapped item logits.
#[derive(Debug)]
pub struct ServedCache<C> {
    pub(crate) inner: C,
    items: Vec<f32>,
    prefix: Vec<f64>,
}

impl<C> ServedCache<C> {
    /// Wraps a model's cache (the remapped item logits start empty).
    pub(crate) fn new(inner: C) -> ServedCache<C> {
        ServedCache {
            inner,
            items: Vec::new(),
            prefix: Vec::new(),
        }
    }
}

impl<M: SidModel> SidModel for ServedModel<'_, M> {
    type Cache = ServedCache<M::Cache>;
    type Error = M::Error;

    fn has_confidence(&self) -> bool {
        self.model.has_confidence()
    }

    fn new_cache(&self) -> Self::Cache {
        ServedCache::new(self.model.new_cache())
    }

    fn prefill(
        &self,
        cache: &mut Self::Cache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), M::Error> {
        self.model.prefill(&mut cache.inner, histories, logits_for)?;
        if !self.map.is_identity()
            && let Some(z) = self.model.item_logits(&cache.inner)
        {
            self.map.remap(z, &mut cache.items, &mut cache.prefix);
        }
        Ok(())
    }

    fn step(&self, cache: &mut Self::Cache, step: &Step<'_>) -> Result<(), M::Error> {
        self.model.step(&mut cache.inner, step)
    }

    fn logits<'a>(&'a self, cache: &'a Self::Cache) -> &'a [f32] {
        self.model.logits(&cache.inner)
    }

    fn item_logits<'a>(&'a self, cache: &'a Self::Cache) -> Option<&'a [f32]> {
        let z = self.model.item_logits(&cache.inner)?;
        Some(if self.map.is_identity() { z } else { &cache.items })
    }

    /// The model's shortlist when the served catalog is the model's own. A changed catalog
    /// needs the full row to score its new SIDs: with a model that only has a shortlist
    /// (above [`ITEM_INDEX_MIN_SIDS`](crate::native::ITEM_INDEX_MIN_SIDS)) it is served
    /// without the item head (docs/catalog-changes.md).
    fn item_shortlist<'a>(&'a self, cache: &'a Self::Cache) -> Option<crate::ItemShortlist<'a>> {
        if self.map.is_identity() {
            self.model.item_shortlist(&cache.inner)
        } else {
            None
        }
    }

    fn item_logit(&self, cache: &Self::Cache, r: usize, sid: u32) -> Option<f32> {
        if self.map.is_identity() {
            self.model.item_logit(&cache.inner, r, sid)
        } else {
            None
        }
    }

    fn item_weight(&self) -> Option<f32> {
        self.model.item_weight()
    }
}

/// What [`change_catalog`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatalogChange {
    /// Items removed.
    pub removed: usize,
    /// Items added.
    pub added: usize,
    /// Items in the new catalog.
    pub items: usize,
    /// SIDs of the new catalog that the model's item head has no row for.
    pub new_sids: usize,
}

/// The artifact `bundle` with its catalog changed and its model untouched: `remove` leaves
/// the catalog (each must be a catalog item), `add` joins it with the given SIDs (new ids,
/// SIDs of the model's codebooks, any SID: a model SID or a new one), with popularity 0 and
/// an empty title. The model section keeps the model's SID table (written from the current
/// catalog if the artifact did not carry one yet), so the weights still find their rows.
pub fn change_catalog(
    mut bundle: Bundle,
    remove: &[ItemId],
    add: &[(ItemId, Sid)],
) -> Result<(Bundle, CatalogChange)> {
    let section = bundle
        .model
        .as_mut()
        .ok_or(Error::Corrupt("the artifact has no model"))?;
    let served = Arc::new(bundle.catalog);
    let model = model_catalog(&section.view(), &served)?;
    write_model_sids(section, &model);
    let mut removed: Vec<ItemId> = remove.to_vec();
    removed.sort_unstable();
    removed.dedup();
    if let Some(&unknown) = removed.iter().find(|&&i| served.position(i).is_none()) {
        return Err(Error::UnknownItem(unknown));
    }
    let gone = |i: &ItemId| removed.binary_search(i).is_ok();
    let mut b = CatalogBuilder::new(*served.vocab());
    let mut titles = Vec::new();
    for (pos, &i) in served.item_ids().iter().enumerate() {
        if !gone(&i) {
            b.push_with_popularity(i, served.sid_of(i)?, served.popularity(i)?)?;
            if let Some(t) = &bundle.titles {
                titles.push((i, t[pos].clone()));
            }
        }
    }
    for &(i, sid) in add {
        if served.position(i).is_some() && !gone(&i) {
            return Err(Error::DuplicateItem(i));
        }
        b.push(i, sid)?;
        titles.push((i, alloc::string::String::new()));
    }
    let catalog = b.build()?;
    if bundle.titles.is_some() {
        titles.sort_by_key(|t| t.0);
        bundle.titles = Some(titles.into_iter().map(|t| t.1).collect());
    }
    let change = CatalogChange {
        removed: removed.len(),
        added: add.len(),
        items: catalog.len(),
        new_sids: ItemMap::new(&model, &catalog).new_sids(),
    };
    bundle.catalog = catalog;
    bundle.validate()?;
    Ok((bundle, change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SidVocab;
    use alloc::vec;

    fn catalog(sids: &[[u16; 2]]) -> Catalog {
        let mut b = CatalogBuilder::new(SidVocab::new(&[4, 4]).unwrap());
        for (i, s) in sids.iter().enumerate() {
            b.push(ItemId::new(i as u32), Sid::new(s).unwrap()).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn known_sids_keep_their_logit_and_new_ones_take_their_family_mean() {
        let model = catalog(&[[0, 0], [0, 1], [1, 0], [2, 3]]);
        // Served, in SID order: [0,1] kept, [0,2] new (family <a_0>: model SIDs 0 and 1),
        // [2,3] kept, [3,3] new (no known first code: every model SID); [0,0], [1,0] removed.
        let served = catalog(&[[0, 1], [0, 2], [3, 3], [2, 3]]);
        let map = ItemMap::new(&model, &served);
        assert!(!map.is_identity());
        assert_eq!(map.new_sids(), 2);
        let z = [1.0f32, 2.0, 3.0, 4.0, /* second row */ 0.0, 0.0, 0.0, 0.0];
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        map.remap(&z, &mut out, &mut scratch);
        let lme =
            |v: &[f32]| (v.iter().map(|&x| f64::from(x).exp()).sum::<f64>() / v.len() as f64).ln() as f32;
        let want = [2.0, lme(&[1.0, 2.0]), 4.0, lme(&[1.0, 2.0, 3.0, 4.0])];
        for (g, w) in out[..4].iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{out:?}");
        }
        assert!(out[4..].iter().all(|v| v.abs() < 1e-6));
        assert!(ItemMap::new(&model, &model).is_identity());
    }

    #[test]
    fn the_model_sid_table_round_trips_through_its_blob() {
        let model = Arc::new(catalog(&[[0, 0], [0, 1], [1, 0], [2, 3]]));
        let served = Arc::new(catalog(&[[0, 1], [3, 3]]));
        let mut section = ModelSection {
            config_json: "{}".into(),
            graphs: Vec::new(),
        };
        assert!(Arc::ptr_eq(
            &model_catalog(&section.view(), &served).unwrap(),
            &served
        ));
        write_model_sids(&mut section, &model);
        let back = model_catalog(&section.view(), &served).unwrap();
        assert_eq!(back.sid_count(), 4);
        assert!((0..4).all(|s| back.sid(s) == model.sid(s)));
        // A corrupt table is a typed error.
        for bytes in [vec![1u8, 0, 0], vec![0, 0, 1, 0, 0, 0, 0, 0], vec![9, 0, 0, 0]] {
            section.graphs.last_mut().unwrap().bytes = bytes;
            assert!(matches!(
                model_catalog(&section.view(), &served),
                Err(Error::Corrupt(_))
            ));
        }
    }
}
