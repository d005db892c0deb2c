//! `ugr bench scale`'s synthetic artifacts: streamed in the artifact's own encoding, so
//! they must decode, validate and serve like exported ones.

use ugr_core::native::WeightType;
use ugr_core::{BackendChoice, Bundle, Engine, ItemId, SearchOptions};
use ugr_train::bench_scale::{measure, write_synthetic};

#[test]
fn synthetic_artifacts_decode_validate_and_serve() {
    let donor = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny-model.ugr");
    let dir = tempfile::tempdir().unwrap();
    for (dtype, items) in [(WeightType::F16, 3000), (WeightType::F32, 1500)] {
        let out = dir.path().join(format!("scale-{items}.ugr"));
        let w = write_synthetic(&donor, items, dtype, &out, 5).unwrap();
        assert_eq!(w.items, items);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(w.bytes, bytes.len() as u64);
        let bundle = Bundle::from_bytes(&bytes).unwrap();
        assert_eq!(bundle.catalog.len(), items);
        assert_eq!(bundle.catalog.sid_count(), items, "one item per distinct SID");
        let engine = Engine::open_with(&out, BackendChoice::Native).unwrap();
        let h: Vec<ItemId> = engine.catalog().item_ids()[..4].to_vec();
        let r = engine.recommend(&h, &SearchOptions::default()).unwrap();
        assert_eq!(r.items.len(), 10);
        let m = measure(&out, 5, 1).unwrap();
        assert_eq!((m.items, m.requests), (items, 5));
        assert!(m.p50_ms > 0.0 && m.p50_ms <= m.p99_ms);
    }
}
