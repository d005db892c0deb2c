//! The artifact: round trip, corruption (every byte flip, every truncation), invariant
//! checks behind a valid checksum, and a committed golden file that pins the format.

use std::path::PathBuf;

use ugr_core::artifact::{FORMAT_VERSION, HEADER_LEN, MAGIC};
use ugr_core::model::testing::HashModel;
use ugr_core::{
    BeamSearch, Blob, Bundle, Calibration, CatalogBuilder, Error, ItemId, ModelSection, SearchOptions, Sid,
    SidVocab,
};

/// A small bundle exercising every field: collisions, popularity, titles, calibration, a model section.
fn tiny() -> Bundle {
    let mut b = CatalogBuilder::new(SidVocab::new(&[4, 3, 2]).unwrap());
    let sids = [
        [0, 0, 0],
        [0, 0, 1],
        [0, 2, 1],
        [1, 1, 0],
        [3, 0, 1],
        [3, 0, 1],
        [3, 2, 0],
    ];
    for (i, s) in sids.iter().enumerate() {
        b.push_with_popularity(
            ItemId::new(10 + 3 * i as u32),
            Sid::new(s).unwrap(),
            (i % 3) as u32,
        )
        .unwrap();
    }
    let catalog = b.build().unwrap();
    let titles = (0..catalog.len()).map(|i| format!("item {i}")).collect();
    Bundle {
        catalog,
        calibration: Some(Calibration::isotonic(vec![0.1, 0.4, 0.9], vec![0.05, 0.3, 0.7]).unwrap()),
        titles: Some(titles),
        model: Some(ModelSection {
            config_json: "{\"d_model\":8}".into(),
            graphs: vec![Blob {
                name: "step".into(),
                bytes: vec![1, 2, 3, 4],
            }],
        }),
    }
}

/// Wraps an arbitrary payload in a header with a correct checksum.
fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out);
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn round_trip() {
    let bundle = tiny();
    let bytes = bundle.to_bytes().unwrap();
    assert_eq!(&bytes[..8], b"UGRMODEL");
    assert_eq!(Bundle::from_bytes(&bytes).unwrap(), bundle);
    assert_eq!(wrap(&bytes[HEADER_LEN..]), bytes);
}

/// Under Miri (CI) three values per byte instead of 255: each decode is interpreted.
fn replacement_bytes(original: u8) -> Vec<u8> {
    if cfg!(miri) {
        vec![original ^ 1, original ^ 0x80, !original]
    } else {
        (0..=255u8).collect()
    }
}

#[test]
fn every_byte_flip_is_an_error() {
    let bytes = tiny().to_bytes().unwrap();
    for at in 0..bytes.len() {
        for v in replacement_bytes(bytes[at]) {
            if v == bytes[at] {
                continue;
            }
            let mut bad = bytes.clone();
            bad[at] = v;
            assert!(
                Bundle::from_bytes(&bad).is_err(),
                "byte {at} set to {v} was accepted"
            );
        }
    }
}

#[test]
fn every_truncation_and_extension_is_an_error() {
    let bytes = tiny().to_bytes().unwrap();
    for len in 0..bytes.len() {
        match Bundle::from_bytes(&bytes[..len]) {
            Err(Error::Truncated { .. }) => {}
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Bundle::from_bytes(&longer),
        Err(Error::TrailingBytes { extra: 1 })
    ));
    assert!(matches!(
        Bundle::from_bytes(b"not an artifact at all, definitely"),
        Err(Error::BadMagic)
    ));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert!(matches!(
        Bundle::from_bytes(&v2),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
}

/// Behind a *valid* checksum, a changed payload byte must still never panic: it is
/// refused by decoding or validation, or it is a consistent bundle that searches fine.
#[test]
fn payload_changes_behind_a_valid_checksum_never_panic() {
    let bundle = tiny();
    let bytes = bundle.to_bytes().unwrap();
    let payload = &bytes[HEADER_LEN..];
    let (mut refused, mut accepted) = (0, 0);
    // Under Miri (CI) every third byte, once: each change is a decode and a validation, and
    // each accepted one a search, all interpreted (about 0.4 s each).
    let values = |b: u8| {
        if cfg!(miri) {
            vec![b ^ 1]
        } else {
            vec![0u8, 1, 2, 0x7f, 0x80, 0xff, b ^ 1, b.wrapping_add(1)]
        }
    };
    for at in (0..payload.len()).step_by(if cfg!(miri) { 3 } else { 1 }) {
        for v in values(payload[at]) {
            if v == payload[at] {
                continue;
            }
            let mut p = payload.to_vec();
            p[at] = v;
            match Bundle::from_bytes(&wrap(&p)) {
                Err(_) => refused += 1,
                Ok(b) => {
                    accepted += 1;
                    b.validate().unwrap();
                    let model = HashModel::new(*b.catalog.vocab(), 3).with_confidence(true);
                    let first = b.catalog.item_ids()[0];
                    BeamSearch::new(&b.catalog)
                        .with_calibration(b.calibration.as_ref())
                        .run(&model, &[&[first]], &SearchOptions::default())
                        .unwrap();
                }
            }
        }
    }
    assert!(refused > accepted, "refused {refused}, accepted {accepted}");
}

/// The committed `tests/data/tiny.ugr` must still read and equal the bundle built today:
/// a format change must bump FORMAT_VERSION. `UGR_BLESS=1` rewrites the file.
#[test]
#[cfg_attr(miri, ignore = "reads tests/data/tiny.ugr; Miri isolates the file system")]
fn golden_artifact_still_reads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tiny.ugr");
    let bytes = tiny().to_bytes().unwrap();
    if std::env::var_os("UGR_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden = std::fs::read(&path).expect("tests/data/tiny.ugr (UGR_BLESS=1 to create)");
    assert_eq!(Bundle::from_bytes(&golden).unwrap(), tiny());
    assert_eq!(
        golden, bytes,
        "the encoding changed: bump FORMAT_VERSION and re-bless"
    );
}
