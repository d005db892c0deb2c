//! The fuzzed bytes as the payload of a correctly framed artifact (valid header, length and
//! checksum), so postcard decoding and the catalog, trie and calibration validation are
//! reached. A bundle that validates must also be safe to search: a beam search over its
//! catalog with a test model never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ugr_core::model::testing::HashModel;
use ugr_core::{BeamSearch, Bundle, SearchOptions};
use ugr_fuzz::frame;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_bytes(&frame(data)) else {
        return;
    };
    let bytes = bundle.to_bytes().expect("a decoded bundle re-encodes");
    assert_eq!(Bundle::from_bytes(&bytes).expect("and decodes again"), bundle);
    let catalog = &bundle.catalog;
    let model = HashModel::new(*catalog.vocab(), data.len() as u64);
    let history: Vec<_> = catalog.item_ids().iter().copied().take(3).collect();
    let opts = SearchOptions {
        beam: 4,
        top_k: 5,
        exclude_history: true,
        ..SearchOptions::default()
    };
    let out = BeamSearch::new(catalog)
        .with_calibration(bundle.calibration.as_ref())
        .run(&model, &[&history], &opts)
        .expect("a validated catalog can be searched");
    for r in &out[0].items {
        assert!(catalog.sid_of(r.item).is_ok());
        assert!(!history.contains(&r.item));
    }
});
