//! Every public SID index in ../shared/data loads into a catalog whose shape matches the
//! statistics published in ../shared/data/README.md (prefixes, fan-out, collisions), and
//! survives an artifact round trip. Skips with a message when the data is absent.

use ugr_core::Bundle;
use ugr_train::data::index::SidIndex;
use ugr_train::data::shared_data_or_skip;

struct Expected {
    path: &'static str,
    items: usize,
    prefixes: &'static [usize],
    max_items: &'static [usize],
    codes_used_first: usize,
    colliding_sids: usize,
    colliding_items: usize,
}

const EXPECTED: &[Expected] = &[
    Expected {
        path: "Beauty/Beauty.index.json",
        items: 12_101,
        prefixes: &[197, 7_931, 11_696, 12_088],
        max_items: &[565, 51, 27, 3],
        codes_used_first: 197,
        colliding_sids: 11,
        colliding_items: 24,
    },
    Expected {
        path: "Instruments/Instruments.index.json",
        items: 9_922,
        prefixes: &[150, 6_702, 9_608, 9_897],
        max_items: &[471, 25, 16, 3],
        codes_used_first: 150,
        colliding_sids: 23,
        colliding_items: 48,
    },
    Expected {
        path: "Instruments/lcrec_genrec/Instruments.index.json",
        items: 9_922,
        prefixes: &[162, 6_996, 9_172, 9_897],
        max_items: &[348, 27, 22, 3],
        codes_used_first: 162,
        colliding_sids: 23,
        colliding_items: 48,
    },
    Expected {
        path: "Yelp/Yelp.index.json",
        items: 20_033,
        prefixes: &[256, 15_879, 19_145, 19_201],
        max_items: &[250, 72, 65, 65],
        codes_used_first: 256,
        colliding_sids: 415,
        colliding_items: 1_247,
    },
    Expected {
        path: "Industrial_and_Scientific_amazon23/Industrial_and_Scientific.index.json",
        items: 1_204,
        prefixes: &[52, 989, 1_180, 1_204],
        max_items: &[],
        codes_used_first: 52,
        colliding_sids: 0,
        colliding_items: 0,
    },
    Expected {
        path: "Industrial_and_Scientific/index/Industrial_and_Scientific.index.json",
        items: 3_686,
        prefixes: &[48, 2_295, 3_670],
        max_items: &[247, 47, 3],
        codes_used_first: 48,
        colliding_sids: 15,
        colliding_items: 31,
    },
    Expected {
        path: "Office_Products/index/Office_Products.index.json",
        items: 3_459,
        prefixes: &[88, 2_488, 3_444],
        max_items: &[123, 13, 2],
        codes_used_first: 88,
        colliding_sids: 15,
        colliding_items: 30,
    },
];

#[test]
fn public_indexes_match_their_published_statistics() {
    let Some(dir) = shared_data_or_skip("public_indexes_match_their_published_statistics") else {
        return;
    };
    for e in EXPECTED {
        let path = dir.join(e.path);
        let index = SidIndex::read(&path).unwrap();
        let catalog = index.catalog(|_| 0, &path).unwrap();
        let s = catalog.stats();
        assert_eq!(s.items, e.items, "{}", e.path);
        assert_eq!(&s.prefixes[..s.levels], e.prefixes, "{}", e.path);
        if !e.max_items.is_empty() {
            assert_eq!(&s.max_items_per_prefix[..s.levels], e.max_items, "{}", e.path);
        }
        assert_eq!(s.codes_used[0], e.codes_used_first, "{}", e.path);
        assert_eq!(
            (s.colliding_sids, s.colliding_items),
            (e.colliding_sids, e.colliding_items),
            "{}",
            e.path
        );
        // Every item's SID leads to a leaf that lists the item.
        for &item in catalog.item_ids() {
            let sid = catalog.sid_of(item).unwrap();
            let leaf = catalog.lookup(&sid).unwrap();
            assert!(catalog.items_of(leaf).contains(&item));
        }
        let bundle = Bundle::new(catalog);
        let bytes = bundle.to_bytes().unwrap();
        assert_eq!(Bundle::from_bytes(&bytes).unwrap(), bundle, "{}", e.path);
    }
}

#[test]
fn malformed_indexes_give_located_errors() {
    let p = std::path::Path::new("x.index.json");
    let cases = [
        (
            "{\"0\": [\"<a_1>\", \"<b_2>\"], \"1\": [\"<a_1>\"]}",
            "item 1 has 1 levels",
        ),
        ("{\"0\": [\"<a_1>\", \"<c_2>\"]}", "item 0: cannot parse SID"),
        ("{\"x\": [\"<a_1>\"]}", "item id \"x\""),
        ("{\"0\": [\"<a_1>\"],\n \"1\": 5}", "line 2"),
        ("{}", "empty"),
    ];
    for (text, want) in cases {
        let err = SidIndex::parse(text, p)
            .and_then(|i| i.catalog(|_| 0, p))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(err.starts_with("x.index.json"), "{err}");
    }
}
