//! `ugr sid build`: RQ-KMeans determinism under a seed, collision handling, the index
//! format round trip, the embedding readers, and collaborative embeddings that find the
//! synthetic data's categories.

use std::collections::BTreeMap;

use ugr_core::ItemId;
use ugr_train::data::index::SidIndex;
use ugr_train::data::synthetic::{SyntheticSpec, generate};
use ugr_train::sid::{self, BuildConfig, CollabConfig, Collisions, EmbeddingError, Embeddings};

/// 300 items in 2-D: 6 clusters, plus 12 exact duplicates of item 0 (forced collisions).
fn points() -> Embeddings {
    let mut data = Vec::new();
    let mut x = 7u64;
    for i in 0..300u32 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = |s: u64| ((s >> 33) % 1000) as f32 / 1000.0 - 0.5;
        let c = (i % 6) as f32;
        if i >= 288 {
            data.extend([data[0], data[1]]);
        } else {
            data.extend([c * 10.0 + noise(x), (c * 7.0) % 13.0 + noise(x >> 7)]);
        }
    }
    Embeddings {
        items: (0..300).map(|i| ItemId::new(i * 3)).collect(),
        dim: 2,
        data,
    }
}

fn cfg(collisions: Collisions, seed: u64) -> BuildConfig {
    BuildConfig {
        levels: 3,
        codebook: 8,
        iters: 30,
        seed,
        balanced: false,
        collisions,
        threads: 2,
    }
}

#[test]
fn deterministic_under_a_seed() {
    let e = points();
    let a = sid::build(&e, &cfg(Collisions::Keep, 5));
    let b = sid::build(&e, &cfg(Collisions::Keep, 5));
    assert_eq!(a.codes, b.codes);
    let one_thread = sid::build(
        &e,
        &BuildConfig {
            threads: 1,
            ..cfg(Collisions::Keep, 5)
        },
    );
    assert_eq!(
        a.codes, one_thread.codes,
        "the thread count does not change the result"
    );
    let other = sid::build(&e, &cfg(Collisions::Keep, 6));
    assert_ne!(a.codes, other.codes, "another seed gives another clustering");
    // Residual levels reduce the error.
    let err: Vec<f64> = a.stats.levels.iter().map(|l| l.relative_error).collect();
    assert!(err.windows(2).all(|w| w[1] <= w[0] + 1e-9), "{err:?}");
    assert!(
        err[0] < 0.2,
        "6 clusters, 8 codes: level 1 explains most variance ({err:?})"
    );
}

#[test]
fn collisions_are_counted_and_resolved() {
    let e = points();
    let keep = sid::build(&e, &cfg(Collisions::Keep, 1));
    // Item 0 and its 12 duplicates share one SID at least.
    assert!(
        keep.stats.collisions_before.largest >= 13,
        "{:?}",
        keep.stats.collisions_before
    );
    assert_eq!(keep.stats.collisions_before, keep.stats.collisions_after);

    let extra = sid::build(&e, &cfg(Collisions::ExtraLevel, 1));
    assert_eq!(extra.codebooks.len(), 4);
    assert_eq!(extra.codebooks[3] as usize, keep.stats.collisions_before.largest);
    assert_eq!(extra.stats.collisions_after.groups, 0);
    for (k, x) in keep.codes.iter().zip(&extra.codes) {
        assert_eq!(&x[..3], &k[..], "the extra level only appends");
    }

    let free = sid::build(&e, &cfg(Collisions::NearestFree, 1));
    assert_eq!(free.codebooks.len(), 3);
    // 13 identical points cannot all move: a prefix has 8 last-level codes, some already used.
    assert!(free.stats.collisions_after.items < keep.stats.collisions_before.items);
    assert_eq!(free.codebooks.len(), 3);
}

#[test]
fn nearest_free_keeps_what_does_not_fit() {
    // 20 identical points, codebook 4, 2 levels: at most 4 distinct SIDs under one prefix.
    let e = Embeddings {
        items: (0..20).map(ItemId::new).collect(),
        dim: 1,
        data: vec![1.0; 20],
    };
    let c = BuildConfig {
        levels: 2,
        codebook: 4,
        ..cfg(Collisions::NearestFree, 0)
    };
    let b = sid::build(&e, &c);
    let distinct: std::collections::BTreeSet<_> = b.codes.iter().collect();
    assert_eq!(distinct.len(), 4);
    // Three items moved to the free codes; the other 17 still share the first SID.
    assert_eq!(
        (b.stats.collisions_after.groups, b.stats.collisions_after.items),
        (1, 17)
    );
}

#[test]
fn the_index_round_trips_and_trains_a_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let e = points();
    let built = sid::build(&e, &cfg(Collisions::ExtraLevel, 2));
    let path = dir.path().join("mine.index.json");
    built.write_index(&path).unwrap();
    let index = SidIndex::read(&path).unwrap();
    assert_eq!(index.sids.len(), 300);
    for (item, codes) in built.items.iter().zip(&built.codes) {
        assert_eq!(
            index.sids[item].codes(),
            &codes.iter().map(|&c| c as u16).collect::<Vec<_>>()[..]
        );
    }
    let catalog = index.catalog(|_| 0, &path).unwrap();
    assert_eq!(catalog.stats().colliding_sids, 0);
}

#[test]
fn embedding_files_read_or_fail_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("e.csv");
    std::fs::write(&csv, "item,x,y\n5,0.5,1\n2,1.5,-2\n").unwrap();
    let e = Embeddings::read(&csv).unwrap();
    assert_eq!(e.items, vec![ItemId::new(2), ItemId::new(5)]);
    assert_eq!(e.data, vec![1.5, -2.0, 0.5, 1.0]);

    std::fs::write(&csv, "1,0.5,1\n2,1.5\n").unwrap();
    match Embeddings::read(&csv) {
        Err(EmbeddingError::Csv { line: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    std::fs::write(&csv, "1,0.5\n1,1.5\n").unwrap();
    assert!(matches!(
        Embeddings::read(&csv),
        Err(EmbeddingError::Invalid { .. })
    ));
    std::fs::write(&csv, "1,NaN\n").unwrap();
    assert!(matches!(
        Embeddings::read(&csv),
        Err(EmbeddingError::Invalid { .. })
    ));

    let npy = dir.path().join("e.npy");
    let a = ndarray::Array2::from_shape_vec((3, 2), vec![1f32, 2., 3., 4., 5., 6.]).unwrap();
    ndarray_npy::write_npy(&npy, &a).unwrap();
    let e = Embeddings::read(&npy).unwrap();
    assert_eq!((e.items.len(), e.dim), (3, 2));
    assert_eq!(e.data[5], 6.0);
    std::fs::write(&npy, b"not numpy").unwrap();
    assert!(matches!(Embeddings::read(&npy), Err(EmbeddingError::Npy { .. })));
    assert!(matches!(
        Embeddings::read(&dir.path().join("missing.npy")),
        Err(EmbeddingError::Io { .. })
    ));
}

#[test]
fn collaborative_embeddings_find_the_categories() {
    let spec = SyntheticSpec::default();
    let ds = generate(&spec, 20);
    let seqs: Vec<Vec<ItemId>> = ds.train.iter().map(|s| s.items.clone()).collect();
    let cfg_c = CollabConfig {
        dim: 16,
        ..CollabConfig::default()
    };
    let emb = sid::collaborative(&seqs, &cfg_c);
    assert_eq!(emb.dim, 16);
    let again = sid::collaborative(&seqs, &cfg_c);
    assert_eq!(emb.data, again.data, "deterministic under a seed");
    // The first SID level groups items of one synthetic category (from the titles).
    let category = |i: ItemId| -> String {
        let t = &ds.titles[&i];
        t[t.find("(category").unwrap()..].to_owned()
    };
    let built = sid::build(
        &emb,
        &BuildConfig {
            levels: 2,
            codebook: spec.categories,
            ..BuildConfig::default()
        },
    );
    let mut by_code: BTreeMap<u32, BTreeMap<String, usize>> = BTreeMap::new();
    for (item, codes) in built.items.iter().zip(&built.codes) {
        *by_code
            .entry(codes[0])
            .or_default()
            .entry(category(*item))
            .or_default() += 1;
    }
    // Purity: the share of items in their code's majority category (chance: about 1/8).
    let majority: usize = by_code.values().map(|m| m.values().max().unwrap()).sum();
    let purity = majority as f64 / built.items.len() as f64;
    assert!(purity > 0.6, "purity {purity:.2}");
}

/// Items without signal (zero rows, or missing from the embeddings) get SIDs too: spread by
/// the balanced rule, not collapsed into one cluster, and counted in the statistics.
#[test]
fn blind_items_are_placed_and_counted() {
    let mut emb = points();
    for row in emb.data.chunks_mut(2).skip(200).take(60) {
        row.fill(0.0);
    }
    let missing: Vec<ItemId> = (0..40).map(|i| ItemId::new(100_000 + i)).collect();
    let mut catalog = emb.items.clone();
    catalog.extend(&missing);
    let (signal, blind) = sid::split_blind(&emb, &catalog);
    assert_eq!((signal.items.len(), blind.len()), (240, 100));
    let mut built = sid::build(&signal, &cfg(Collisions::NearestFree, 1));
    sid::place_blind(&mut built, &blind, None);
    assert_eq!(built.items.len(), 340);
    assert!(built.items.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(built.stats.blind_items, 100);
    assert_eq!(built.stats.blind_placement, Some("balanced"));
    // Spread: blind items fill the least-used level-1 codes, so no code ends above the
    // larger of the signal items' fullest code and an even share of all items.
    let count = |pick: &dyn Fn(&ItemId) -> bool| {
        let mut per_code = BTreeMap::<u32, usize>::new();
        for (item, codes) in built.items.iter().zip(&built.codes) {
            if pick(item) {
                *per_code.entry(codes[0]).or_default() += 1;
            }
        }
        per_code
    };
    let signal_max = *count(&|i| !blind.contains(i)).values().max().unwrap();
    let all = count(&|_| true);
    assert!(
        *all.values().max().unwrap() <= signal_max.max(340usize.div_ceil(8)),
        "{all:?}"
    );
    assert!(
        count(&|i| blind.contains(i)).len() > 1,
        "blind items collapsed into one code"
    );
    // With content embeddings, a blind item joins its nearest neighbour's prefix.
    let mut content = points();
    content.items.extend(&missing);
    let (x, y) = (content.data[10], content.data[11]);
    content.data.extend((0..40).flat_map(|_| [x, y]));
    let mut built = sid::build(&signal, &cfg(Collisions::NearestFree, 1));
    sid::place_blind(&mut built, &missing, Some(&content));
    let code_of = |b: &sid::Built, i: ItemId| b.codes[b.items.binary_search(&i).unwrap()].clone();
    assert_eq!(
        code_of(&built, missing[0])[..2],
        code_of(&built, emb.items[5])[..2]
    );
    assert_eq!(built.stats.blind_placement, Some("content neighbours"));
}

/// `ugr sid assign`'s codebooks: an existing item's embedding quantizes to its clustered
/// codes, and new items avoid the SIDs already taken where the last level has room.
#[test]
fn codebooks_assign_new_items_off_taken_sids() {
    let emb = points();
    let built = sid::build(&emb, &cfg(Collisions::Keep, 3));
    let books = sid::Codebooks {
        dim: 2,
        centroids: built.centroids.clone(),
    };
    for (i, codes) in built.codes.iter().enumerate().take(50) {
        assert_eq!(&books.quantize(&emb.data[i * 2..][..2]), codes);
    }
    let new = Embeddings {
        items: (0..20).map(|i| ItemId::new(50_000 + i)).collect(),
        dim: 2,
        data: emb.data[..40].to_vec(),
    };
    let mut taken: std::collections::BTreeSet<Vec<u32>> = built.codes.iter().cloned().collect();
    let before = taken.clone();
    let assigned = books.assign(&new, &mut taken);
    assert_eq!(assigned.len(), 20);
    let fresh = assigned.iter().filter(|c| !before.contains(*c)).count();
    assert!(fresh >= 18, "only {fresh} of 20 new items got a free SID");
    let distinct: std::collections::BTreeSet<_> = assigned.iter().collect();
    assert_eq!(distinct.len(), 20);
}
