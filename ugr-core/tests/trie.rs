//! The flat-array trie against a brute-force model of the catalog's prefixes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::catalog_strategy;
use proptest::prelude::*;
use ugr_core::NodeId;

proptest! {
    #![proptest_config(common::proptest_config(256))]

    #[test]
    fn trie_matches_brute_force(catalog in catalog_strategy()) {
        catalog.validate().unwrap();
        let trie = catalog.trie();
        let vocab = catalog.vocab();
        let levels = vocab.levels();
        // Brute force: every prefix with the number of items below it.
        let mut prefixes: BTreeMap<Vec<u16>, u32> = BTreeMap::new();
        for &item in catalog.item_ids() {
            let sid = catalog.sid_of(item).unwrap();
            for d in 0..=levels {
                *prefixes.entry(sid.codes()[..d].to_vec()).or_default() += 1;
            }
        }
        prop_assert_eq!(trie.node_count(), prefixes.len());
        // Node ids follow (depth, lexicographic prefix) order.
        let mut ordered: Vec<&Vec<u16>> = prefixes.keys().collect();
        ordered.sort_by_key(|p| (p.len(), (*p).clone()));
        for (id, prefix) in ordered.iter().enumerate() {
            let node = trie.walk(prefix).unwrap();
            prop_assert_eq!(node, NodeId::new(id as u32));
            prop_assert_eq!(trie.depth(node), Some(prefix.len()));
            prop_assert_eq!(trie.item_count(node), prefixes[*prefix]);
            // Every code of the codebook (and beyond) against the brute-force set.
            if prefix.len() < levels {
                let size = vocab.codebook_size(prefix.len()) as u16;
                let (first, codes) = trie.children(node);
                let want: BTreeSet<u16> = prefixes
                    .keys()
                    .filter(|p| p.len() == prefix.len() + 1 && p.starts_with(prefix))
                    .map(|p| p[prefix.len()])
                    .collect();
                prop_assert_eq!(codes.iter().copied().collect::<BTreeSet<_>>(), want.clone());
                for code in 0..size + 70 {
                    let child = trie.child(node, code);
                    prop_assert_eq!(child.is_some(), want.contains(&code));
                    if let Some(c) = child {
                        prop_assert_eq!(trie.code(c), code);
                        let i = codes.iter().position(|&x| x == code).unwrap();
                        prop_assert_eq!(c, NodeId::new(first.as_u32() + i as u32));
                    }
                }
            } else {
                let s = trie.leaf_index(node).unwrap();
                let sid = catalog.sid(s);
                prop_assert_eq!(sid.codes(), prefix.as_slice());
            }
        }
        prop_assert_eq!(trie.depth(NodeId::new(trie.node_count() as u32)), None);
        prop_assert!(trie.children(NodeId::new(u32::MAX)).1.is_empty());
    }
}

#[test]
#[cfg_attr(miri, ignore = "a check of the generator (200 catalogs), not of unsafe code")]
fn both_child_lookups_are_exercised() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut dense, mut sparse) = (false, false);
    for _ in 0..200 {
        let c = catalog_strategy().new_tree(&mut runner).unwrap().current();
        for d in 0..c.vocab().levels() {
            dense |= c.trie().is_dense(d);
            sparse |= !c.trie().is_dense(d);
        }
    }
    assert!(dense && sparse);
}
