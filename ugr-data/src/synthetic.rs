//! The built-in synthetic dataset (`--data builtin:synthetic`): a catalog with
//! hierarchical SIDs and users whose histories have real sequential structure, so a model
//! has something to learn and baselines have something to miss. Fully determined by the seed.
//!
//! Items fall into categories (SID level 1) and sub-categories (level 2); level 3
//! separates items within a sub-category (some collide, as in the public indexes). Each
//! user prefers one category. Each item has a fixed successor in its category. A user's
//! next item is the current item's successor with probability `p_successor`, a
//! popularity-weighted item of the user's category with `p_taste`, otherwise a
//! popularity-weighted item of the whole catalog. A last-item-transition baseline
//! captures the successors; only a sequence model also captures the taste.

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ugr_core::{ItemId, Sid, SidVocab};

use super::Dataset;
use super::index::SidIndex;
use super::letter::leave_one_out;

/// The `--data` value that selects this generator.
pub const BUILTIN: &str = "builtin:synthetic";

/// Shape of the generated data.
#[derive(Clone, Debug)]
pub struct SyntheticSpec {
    /// Items in the catalog.
    pub items: usize,
    /// Categories (level-1 codes used).
    pub categories: usize,
    /// Codebook size of every level (3 levels).
    pub codebook: u32,
    /// Users.
    pub users: usize,
    /// Shortest and longest user sequence.
    pub length: (usize, usize),
    /// Probability of following the current item's successor.
    pub p_successor: f64,
    /// Probability of a random item of the user's category.
    pub p_taste: f64,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            items: 800,
            categories: 8,
            codebook: 32,
            users: 2_000,
            length: (5, 16),
            p_successor: 0.5,
            p_taste: 0.35,
            seed: 17,
        }
    }
}

/// Zipf-like weights 1/(rank+1) over `n` items in a fixed shuffled order.
fn weighted_pick(rng: &mut StdRng, pool: &[usize], cumulative: &[f64]) -> usize {
    let total = *cumulative.last().unwrap_or(&1.0);
    let x = rng.random::<f64>() * total;
    let i = cumulative.partition_point(|&c| c <= x).min(pool.len() - 1);
    pool[i]
}

fn cumulative(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    (0..n)
        .map(|r| {
            acc += 1.0 / (r as f64 + 1.0);
            acc
        })
        .collect()
}

/// The SID index of the synthetic catalog (also written by `ugr data synth`).
pub fn index(spec: &SyntheticSpec) -> (SidIndex, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let c = spec.codebook;
    let vocab = SidVocab::new(&[c, c, c]).expect("3 levels of a valid codebook");
    let mut category = Vec::with_capacity(spec.items);
    let mut sids = BTreeMap::new();
    let mut next_leaf: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    for i in 0..spec.items {
        let cat = rng.random_range(0..spec.categories);
        let sub = (cat * 5 + rng.random_range(0..6)) % c as usize;
        // Leaves are handed out in order within a sub-category; about 3% of items reuse the
        // previous leaf on purpose, so the catalog has SID collisions like the public ones.
        let counter = next_leaf.entry((cat, sub)).or_insert(0);
        if *counter == 0 || rng.random::<f64>() >= 0.03 {
            *counter += 1;
        }
        let leaf = (*counter - 1) % c;
        let sid = Sid::new(&[cat as u16, sub as u16, leaf as u16]).expect("3 codes");
        sids.insert(ItemId::new(i as u32), sid);
        category.push(cat);
    }
    (SidIndex { vocab, sids }, category)
}

/// The user sequences (chronological item ids).
pub fn sequences(spec: &SyntheticSpec, category: &[usize]) -> Vec<Vec<ItemId>> {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x5eed);
    let by_cat: Vec<Vec<usize>> = (0..spec.categories)
        .map(|c| (0..spec.items).filter(|&i| category[i] == c).collect())
        .collect();
    let all: Vec<usize> = (0..spec.items).collect();
    let cum_all = cumulative(all.len());
    let cum_cat: Vec<Vec<f64>> = by_cat.iter().map(|p| cumulative(p.len())).collect();
    let successor: Vec<usize> = (0..spec.items)
        .map(|i| {
            let pool = &by_cat[category[i]];
            pool[rng.random_range(0..pool.len())]
        })
        .collect();
    (0..spec.users)
        .map(|_| {
            let taste = rng.random_range(0..spec.categories);
            let len = rng.random_range(spec.length.0..=spec.length.1);
            let pool = if by_cat[taste].is_empty() {
                &all
            } else {
                &by_cat[taste]
            };
            let cum = if by_cat[taste].is_empty() {
                &cum_all
            } else {
                &cum_cat[taste]
            };
            let mut cur = weighted_pick(&mut rng, pool, cum);
            let mut seq = vec![ItemId::new(cur as u32)];
            while seq.len() < len {
                let x: f64 = rng.random();
                let mut next = if x < spec.p_successor {
                    successor[cur]
                } else if x < spec.p_successor + spec.p_taste {
                    weighted_pick(&mut rng, pool, cum)
                } else {
                    weighted_pick(&mut rng, &all, &cum_all)
                };
                if next == cur {
                    next = weighted_pick(&mut rng, &all, &cum_all);
                }
                if next != cur {
                    seq.push(ItemId::new(next as u32));
                    cur = next;
                }
            }
            seq
        })
        .collect()
}

/// The users' item sequences alone, without SIDs (what `ugr sid build --interactions
/// builtin:synthetic` learns SIDs from).
pub fn raw_sequences(spec: &SyntheticSpec) -> Vec<Vec<ItemId>> {
    let (_, category) = index(spec);
    sequences(spec, &category)
}

/// The dataset with the SIDs of the index file `index_path` instead of the generated ones
/// (the titles stay); every item must have a SID there.
pub fn generate_with_index(
    spec: &SyntheticSpec,
    max_history: usize,
    index_path: &Path,
) -> Result<Dataset, crate::DataError> {
    let index = SidIndex::read(index_path)?;
    let generated = generate(spec, max_history);
    let seqs = raw_sequences(spec);
    let mut ds = leave_one_out("synthetic", "synthetic", &index, &seqs, max_history, index_path)?;
    ds.titles = generated.titles;
    Ok(ds)
}

/// Generates the dataset (leave-one-out split, like the LETTER sets).
pub fn generate(spec: &SyntheticSpec, max_history: usize) -> Dataset {
    let (index, category) = index(spec);
    let seqs = sequences(spec, &category);
    let mut ds = leave_one_out(
        "synthetic",
        "synthetic",
        &index,
        &seqs,
        max_history,
        Path::new(BUILTIN),
    )
    .expect("the generated index is valid");
    ds.titles = (0..spec.items)
        .map(|i| {
            (
                ItemId::new(i as u32),
                format!("synthetic item {i} (category {})", category[i]),
            )
        })
        .collect();
    ds
}
