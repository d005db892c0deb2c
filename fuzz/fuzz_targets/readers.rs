//! The data readers on fuzzed files: the first byte picks a format, the next bytes the
//! options, and length-prefixed chunks become the files of a dataset directory (written to
//! a scratch directory). Every reader returns a dataset or a typed error; none panics.
//!
//! | byte 0 % 8 | files |
//! |---|---|
//! | 0 | LETTER: `X.inter.json`, `X.index.json` |
//! | 1 | Amazon-2023: `X.{train,valid,test}.inter`, `X.index.json`, `X.item.json` |
//! | 2 | MiniOneRec: `index/X.index.json`, `index/X.item.json`, `valid/x.csv`, `test/x.csv` |
//! | 3 | interactions CSV + `--index` |
//! | 4 | `raw_sequences` of a LETTER directory or a CSV (what `ugr sid build --interactions` reads) |
//! | 5 | a SID index alone |
//! | 6 | embeddings `.npy` |
//! | 7 | embeddings CSV |
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ugr_data::embeddings::Embeddings;
use ugr_data::index::SidIndex;
use ugr_data::{LoadOptions, SplitProtocol};
use ugr_fuzz::{Input, scratch_dir};

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create a scratch subdirectory");
    }
    std::fs::write(path, bytes).expect("write a scratch file");
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let kind = inp.u8() % 8;
    let flags = inp.u8();
    let opts = LoadOptions {
        max_history: usize::from(flags % 32),
        skip_unknown: flags & 32 != 0,
        index: None,
        split: if flags & 64 != 0 {
            SplitProtocol::Time
        } else {
            SplitProtocol::Loo
        },
        // Sometimes leave items out as a cold-start study does (any value, even a bad one).
        cold_items: if flags & 128 != 0 {
            f64::from(inp.f32())
        } else {
            0.0
        },
    };
    let dir = scratch_dir();
    match kind {
        0 => {
            write(&dir.join("X.inter.json"), inp.chunk());
            write(&dir.join("X.index.json"), inp.rest());
            let _ = ugr_data::load(&dir, &opts);
        }
        1 => {
            for part in ["train", "valid", "test"] {
                write(&dir.join(format!("X.{part}.inter")), inp.chunk());
            }
            write(&dir.join("X.item.json"), inp.chunk());
            write(&dir.join("X.index.json"), inp.rest());
            let _ = ugr_data::load(&dir, &opts);
        }
        2 => {
            write(&dir.join("index/X.index.json"), inp.chunk());
            write(&dir.join("index/X.item.json"), inp.chunk());
            write(&dir.join("valid/x.csv"), inp.chunk());
            write(&dir.join("test/x.csv"), inp.rest());
            let _ = ugr_data::load(&dir, &opts);
        }
        3 => {
            let csv = dir.join("log.csv");
            write(&csv, inp.chunk());
            let index = dir.join("sids.index.json");
            write(&index, inp.rest());
            let _ = ugr_data::load(
                &csv,
                &LoadOptions {
                    index: Some(index),
                    ..opts
                },
            );
        }
        4 => {
            if flags & 128 != 0 {
                let csv = dir.join("log.csv");
                write(&csv, inp.rest());
                let _ = ugr_data::raw_sequences(&csv);
            } else {
                write(&dir.join("X.inter.json"), inp.rest());
                let _ = ugr_data::raw_sequences(&dir);
            }
        }
        5 => {
            let path = dir.join("X.index.json");
            write(&path, inp.rest());
            if let Ok(index) = SidIndex::read(&path) {
                let _ = index.catalog(|_| 1, &path);
            }
        }
        6 | 7 => {
            let path = dir.join(if kind == 6 { "e.npy" } else { "e.csv" });
            write(&path, inp.rest());
            if let Ok(e) = Embeddings::read(&path) {
                assert_eq!(e.data.len(), e.items.len() * e.dim);
                assert!(e.data.iter().all(|v| v.is_finite()));
            }
        }
        _ => unreachable!(),
    }
});
