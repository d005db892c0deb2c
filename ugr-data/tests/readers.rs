//! The data readers on small handmade files: splits, merging, and located errors.

use std::path::Path;

use ugr_core::ItemId;
use ugr_data::{self as data, DataError, LoadOptions, Split, SplitProtocol};

const INDEX: &str = r#"{"0": ["<a_0>", "<b_1>"], "1": ["<a_0>", "<b_2>"], "2": ["<a_1>", "<b_0>"], "3": ["<a_1>", "<b_0>"], "4": ["<a_2>", "<b_3>"]}"#;

fn ids(v: &[u32]) -> Vec<ItemId> {
    v.iter().copied().map(ItemId::new).collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn letter_leave_one_out() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "T.index.json", INDEX);
    write(
        dir.path(),
        "T.inter.json",
        r#"{"0": [0, 1, 2, 3, 4], "1": [4, 3, 2], "2": [1, 0]}"#,
    );
    let opts = LoadOptions {
        max_history: 3,
        ..LoadOptions::default()
    };
    let ds = data::load(dir.path(), &opts).unwrap();
    assert_eq!(ds.format, "letter");
    // user 0: test [1,2,3] -> 4 (history truncated to 3), valid [0,1,2] -> 3, train [0,1,2]
    assert_eq!(ds.test[0].history, ids(&[1, 2, 3]));
    assert_eq!(ds.test[0].target, ItemId::new(4));
    assert_eq!(ds.valid[0].history, ids(&[0, 1, 2]));
    assert_eq!(ds.valid[0].target, ItemId::new(3));
    assert_eq!(ds.train.len(), 1); // only user 0 has >= 4 items
    assert_eq!(ds.train[0].items, ids(&[0, 1, 2]));
    // user 2 (2 items) has a test row only
    assert_eq!(ds.test.len(), 3);
    assert_eq!(ds.valid.len(), 2);
    let train_rows = ds.examples(Split::Train, 3);
    assert_eq!(train_rows.len(), 2); // targets 1 and 2 of [0, 1, 2]
    // popularity = training targets: items 1 and 2 once; colliding items 2 and 3 expand 2 first
    assert_eq!(ds.catalog.popularity(ItemId::new(2)).unwrap(), 1);
    let sid = ds.catalog.sid_index_of(ItemId::new(3)).unwrap();
    assert_eq!(ds.catalog.items_of(sid), &ids(&[2, 3])[..]);
    assert!(ds.summary().contains("users 3"));
}

#[test]
fn letter_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "T.index.json", INDEX);
    write(dir.path(), "T.inter.json", "{\"0\": [0, 1],\n \"1\": [7, 1]}");
    let e = data::load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::UnknownItems { count: 1, .. }), "{e}");
    assert!(e.to_string().contains("T.inter.json"), "{e}");
    let skip = LoadOptions {
        skip_unknown: true,
        ..LoadOptions::default()
    };
    assert_eq!(data::load(dir.path(), &skip).unwrap().skipped_unknown, 1);
    write(dir.path(), "T.inter.json", "{\"0\": [0, 1],\n \"1\": [x]}");
    let e = data::load(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("T.inter.json: line 2"), "{e}");
}

#[test]
fn amazon23_rows_merge_into_sequences() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "S.index.json", INDEX);
    let header = "user_id:token\titem_id_list:token_seq\titem_id:token\n";
    write(
        dir.path(),
        "S.train.inter",
        &format!("{header}u1\t0\t1\nu1\t0 1\t2\nu2\t3\t4\n"),
    );
    write(dir.path(), "S.valid.inter", &format!("{header}u1\t0 1 2\t3\n"));
    write(dir.path(), "S.test.inter", &format!("{header}u1\t0 1 2 3\t4\n"));
    let ds = data::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(ds.format, "amazon23");
    assert_eq!(ds.train.len(), 2);
    let u1 = ds.train.iter().find(|s| s.items.len() == 3).unwrap();
    assert_eq!((u1.items.clone(), u1.first_target), (ids(&[0, 1, 2]), 1));
    assert_eq!(ds.test[0].history, ids(&[0, 1, 2, 3]));
    write(dir.path(), "S.test.inter", &format!("{header}u1\t0 1\n"));
    let e = data::load(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("S.test.inter: line 2: expected 3 tab-separated fields"),
        "{e}"
    );
    write(dir.path(), "S.test.inter", &format!("{header}u1\t0 z\t1\n"));
    let e = data::load(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2: expected an item id, found \"z\""), "{e}");
}

/// What `ugr sid build --interactions` reads: every format with training interactions.
#[test]
fn raw_sequences_of_every_training_format() {
    let dir = tempfile::tempdir().unwrap();
    let header = "user_id:token\titem_id_list:token_seq\titem_id:token\n";
    let a23 = dir.path().join("a23");
    write(
        &a23,
        "S.train.inter",
        &format!("{header}u1\t0\t1\nu1\t0 1\t2\nu2\t3\t4\n"),
    );
    write(&a23, "S.test.inter", &format!("{header}u1\t0 1 2\t9\n"));
    let mut seqs = data::raw_sequences(&a23).unwrap();
    seqs.sort();
    // The train split only: the test target 9 never appears.
    assert_eq!(seqs, vec![ids(&[0, 1, 2]), ids(&[3, 4])]);
    let letter = dir.path().join("letter");
    write(&letter, "T.inter.json", r#"{"0": [0, 1, 2], "1": [4, 3]}"#);
    assert_eq!(
        data::raw_sequences(&letter).unwrap(),
        vec![ids(&[0, 1, 2]), ids(&[4, 3])]
    );
    let csv = dir.path().join("log.csv");
    std::fs::write(&csv, "user,item,timestamp\nu,5,2\nu,6,1\n").unwrap();
    assert_eq!(data::raw_sequences(&csv).unwrap(), vec![ids(&[6, 5])]);
    let mini = dir.path().join("mini");
    write(&mini, "index/M.index.json", INDEX);
    write(&mini, "test/m.csv", "user_id\n");
    let e = data::raw_sequences(&mini).unwrap_err().to_string();
    assert!(e.contains("only evaluation rows"), "{e}");
}

#[test]
fn minionerec_csv_with_quoted_titles() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index/X.index.json", INDEX);
    write(
        dir.path(),
        "index/X.item.json",
        r#"{"0": {"title": "Pen, blue"}}"#,
    );
    let csv = "user_id,history_item_title,item_title,history_item_id,item_id,history_item_sid,item_sid\n\
               A1,\"['Pen, blue', 'a \"\"quoted\"\" one']\",Ink,\"[0, 1]\",2,\"['<a_0><b_1>']\",<a_1><b_0>\n";
    write(dir.path(), "valid/X_5.csv", csv);
    write(dir.path(), "test/X_5.csv", csv);
    let ds = data::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(ds.format, "minionerec");
    assert!(ds.train.is_empty());
    assert_eq!(ds.test[0].history, ids(&[0, 1]));
    assert_eq!(ds.test[0].target, ItemId::new(2));
    assert_eq!(ds.titles[&ItemId::new(0)], "Pen, blue");
    write(
        dir.path(),
        "test/X_5.csv",
        "user_id,history_item_id,item_id\nA1,[0 1],2\n",
    );
    let e = data::load(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("X_5.csv: line 2: expected a list like [1, 2]"), "{e}");
}

#[test]
fn interactions_csv_both_protocols() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.index.json", INDEX);
    // user a: 0,1,2,3,4 at times 1..5; user b: 4,3 at times 6,7 (rows out of order on purpose)
    let csv = "user,item,timestamp\na,1,2\na,0,1\na,2,3\na,3,4\na,4,5\nb,4,6\nb,3,7\n";
    write(dir.path(), "log.csv", csv);
    let mut opts = LoadOptions {
        index: Some(dir.path().join("x.index.json")),
        ..LoadOptions::default()
    };
    let ds = data::load(&dir.path().join("log.csv"), &opts).unwrap();
    assert_eq!(ds.test[0].target, ItemId::new(4));
    assert_eq!(ds.train[0].items, ids(&[0, 1, 2]));
    opts.split = SplitProtocol::Time;
    let ds = data::load(&dir.path().join("log.csv"), &opts).unwrap();
    // 5 samples: times 2,3,4,5 (user a) and 7 (user b): train 4, valid 0, test 1
    assert_eq!(ds.train.len(), 1);
    assert_eq!(ds.train[0].items, ids(&[0, 1, 2, 3, 4]));
    assert_eq!(ds.test.len(), 1);
    assert_eq!(ds.test[0].history, ids(&[4]));
    write(dir.path(), "log.csv", "user,item,timestamp\na,1,2\na,1,soon\n");
    let e = data::load(&dir.path().join("log.csv"), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("log.csv: line 3: expected a numeric timestamp"), "{e}");
    let no_index = LoadOptions::default();
    assert!(
        data::load(&dir.path().join("log.csv"), &no_index)
            .unwrap_err()
            .to_string()
            .contains("--index")
    );
}

#[test]
fn unknown_directory_layout_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "notes.txt", "hello");
    let e = data::load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e}");
    assert!(data::load(Path::new("/definitely/not/here"), &LoadOptions::default()).is_err());
}

/// `--cold-items`: the same items every time, gone from the catalog, the training sequences,
/// the histories and the targets; every other item keeps its SID.
#[test]
fn cold_items_are_left_out_everywhere() {
    let opts = LoadOptions::default();
    let full = ugr_data::load(Path::new(ugr_data::synthetic::BUILTIN), &opts).unwrap();
    let cold = ugr_data::cold_items(&full.catalog, 0.05);
    assert_eq!(cold.len(), (full.catalog.len() as f64 * 0.05).round() as usize);
    assert_eq!(
        cold,
        ugr_data::cold_items(&full.catalog, 0.05),
        "the draw is fixed"
    );
    let ds = ugr_data::load(
        Path::new(ugr_data::synthetic::BUILTIN),
        &LoadOptions {
            cold_items: 0.05,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(ds.catalog.len(), full.catalog.len() - cold.len());
    let is_cold = |i: &ugr_core::ItemId| cold.binary_search(i).is_ok();
    assert!(ds.catalog.item_ids().iter().all(|i| !is_cold(i)));
    for &i in ds.catalog.item_ids() {
        assert_eq!(ds.catalog.sid_of(i).unwrap(), full.catalog.sid_of(i).unwrap());
    }
    assert!(
        ds.train
            .iter()
            .all(|s| s.items.iter().all(|i| !is_cold(i)) && s.first_target >= 1)
    );
    for e in ds.valid.iter().chain(&ds.test) {
        assert!(!is_cold(&e.target) && e.history.iter().all(|i| !is_cold(i)));
    }
    let dropped = full.test.iter().filter(|e| is_cold(&e.target)).count();
    assert!(dropped > 0);
    assert_eq!(ds.test.len(), full.test.len() - dropped);
    let bad = LoadOptions {
        cold_items: 1.5,
        ..LoadOptions::default()
    };
    assert!(ugr_data::load(Path::new(ugr_data::synthetic::BUILTIN), &bad).is_err());
}

/// A `.npy` whose header length or shape claims more than the file holds is refused before
/// anything of that size is allocated (found by the readers fuzz target: a 2.6 GB header).
#[test]
fn npy_headers_that_claim_more_than_the_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.npy");
    let mut long_header = b"\x93NUMPY\x02\x00".to_vec();
    long_header.extend_from_slice(&0x9a9b_0000u32.to_le_bytes());
    long_header.extend_from_slice(b"{'descr': '<f4'");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000), }";
    let mut huge_shape = b"\x93NUMPY\x01\x00".to_vec();
    huge_shape.extend_from_slice(&(header.len() as u16).to_le_bytes());
    huge_shape.extend_from_slice(header.as_bytes());
    huge_shape.extend_from_slice(&[0u8; 64]);
    for bytes in [long_header, huge_shape] {
        std::fs::write(&path, &bytes).unwrap();
        let err = ugr_data::embeddings::Embeddings::read(&path).unwrap_err();
        assert!(
            matches!(err, ugr_data::embeddings::EmbeddingError::Npy { .. }),
            "{err}"
        );
    }
}
