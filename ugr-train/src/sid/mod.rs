//! Semantic IDs for a user's own catalog: residual k-means (RQ-KMeans) over item
//! embeddings, with collision handling, statistics, and the `*.index.json` writer.
//!
//! Level 1 clusters the embeddings into `codebook` codes; level `l + 1` clusters the
//! residuals left by level `l` (every item, one global codebook per level). Items that end
//! with the same code tuple collide; [`Collisions`] says what happens to them. The result
//! is written in the LETTER `index.json` format and read back by every
//! `--data`/`--index` reader.
//!
//! ```
//! use ugr_core::ItemId;
//! use ugr_train::sid::{build, BuildConfig, Collisions, Embeddings};
//! let emb = Embeddings {
//!     items: (0..6).map(ItemId::new).collect(),
//!     dim: 1,
//!     data: vec![0.0, 0.1, 5.0, 5.1, 9.0, 9.0],
//! };
//! let cfg = BuildConfig { levels: 2, codebook: 3, collisions: Collisions::ExtraLevel, ..BuildConfig::default() };
//! let built = build(&emb, &cfg);
//! assert_eq!(built.codes[4][..2], built.codes[5][..2]); // identical vectors collide...
//! assert_ne!(built.codes[4], built.codes[5]);           // ...and the extra level separates them
//! assert_eq!(built.stats.collisions_after.groups, 0);
//! ```

pub mod embeddings;
pub mod kmeans;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use ugr_core::ItemId;

pub use embeddings::{CollabConfig, EmbeddingError, Embeddings, collaborative};
pub use kmeans::{Clustering, KMeans};

/// What to do with items whose SIDs collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Collisions {
    /// Leave them: the catalog keeps every item of a shared SID (ranked by popularity).
    Keep,
    /// Append one level whose code is the item's rank in its collision group (closest to
    /// the last centroid first; 0 for items without a collision), as TIGER does. Every SID
    /// becomes unique; the extra codebook is as large as the largest group.
    ExtraLevel,
    /// Move all but the closest item of a group to the nearest last-level code that no
    /// item with the same prefix uses. SIDs keep their length; a collision remains only
    /// where the whole prefix's codebook is taken (counted in the statistics).
    NearestFree,
}

/// Settings of [`build`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BuildConfig {
    /// SID levels from the clustering (before any extra level).
    pub levels: usize,
    /// Codes per level.
    pub codebook: usize,
    /// Most k-means iterations per level.
    pub iters: usize,
    /// Seed (level `l` uses `seed + l`).
    pub seed: u64,
    /// Size-constrained k-means at every level (even codebook use).
    pub balanced: bool,
    /// Collision handling.
    pub collisions: Collisions,
    /// Threads for the distance computations.
    pub threads: usize,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            levels: 4,
            codebook: 256,
            iters: 50,
            seed: 0,
            balanced: false,
            collisions: Collisions::ExtraLevel,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Shape of one level of the built SIDs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LevelStats {
    /// Codes used at this level (of `codebook`).
    pub codes_used: usize,
    /// Distinct prefixes ending at this level.
    pub prefixes: usize,
    /// Mean children per prefix of the previous level (fan-out).
    pub fanout_mean: f64,
    /// Most children of one prefix of the previous level.
    pub fanout_max: usize,
    /// Items in the largest code of this level (even use: about items / codebook).
    pub largest_code: usize,
    /// Squared residual norm left after this level, relative to the embeddings' variance
    /// (`sum ||x - reconstruction||^2 / sum ||x - mean||^2`; extra level: unchanged).
    pub relative_error: f64,
}

/// Items sharing a full SID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CollisionStats {
    /// SIDs held by more than one item.
    pub groups: usize,
    /// Items in those groups.
    pub items: usize,
    /// The largest group.
    pub largest: usize,
}

/// Statistics of a build (printed and saved next to the index).
#[derive(Clone, Debug, Serialize)]
pub struct BuildStats {
    /// Items.
    pub items: usize,
    /// Embedding dimensions.
    pub dim: usize,
    /// Per level, including an extra level.
    pub levels: Vec<LevelStats>,
    /// Collisions of the clustering alone.
    pub collisions_before: CollisionStats,
    /// Collisions in the written SIDs.
    pub collisions_after: CollisionStats,
    /// The settings.
    pub config: BuildConfig,
}

/// SIDs for every item of the embeddings.
#[derive(Clone, Debug)]
pub struct Built {
    /// Items, as in the embeddings.
    pub items: Vec<ItemId>,
    /// Codes per item (`levels`, or `levels + 1` with an extra level).
    pub codes: Vec<Vec<u32>>,
    /// Codebook size per level.
    pub codebooks: Vec<u32>,
    /// Statistics.
    pub stats: BuildStats,
}

fn collision_stats(codes: &[Vec<u32>]) -> CollisionStats {
    let mut groups: BTreeMap<&[u32], usize> = BTreeMap::new();
    for c in codes {
        *groups.entry(c.as_slice()).or_insert(0) += 1;
    }
    let mut s = CollisionStats::default();
    for &g in groups.values().filter(|&&g| g > 1) {
        s.groups += 1;
        s.items += g;
        s.largest = s.largest.max(g);
    }
    s
}

fn sq_norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// Runs RQ-KMeans over the embeddings and resolves collisions.
pub fn build(emb: &Embeddings, cfg: &BuildConfig) -> Built {
    let (n, dim) = (emb.items.len(), emb.dim);
    let mut residual = emb.data.clone();
    // Variance of the embeddings (the denominator of the relative error).
    let mut mean = vec![0f64; dim];
    for row in emb.data.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v) / n as f64;
        }
    }
    let variance: f64 = emb
        .data
        .chunks(dim)
        .map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&v, m)| (f64::from(v) - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut codes = vec![Vec::with_capacity(cfg.levels + 1); n];
    let mut errors = Vec::new();
    let mut last_centroids = Vec::new();
    let mut before_last = Vec::new();
    for level in 0..cfg.levels {
        if level + 1 == cfg.levels {
            before_last = residual.clone();
        }
        let km = KMeans {
            k: cfg.codebook,
            iters: cfg.iters,
            seed: cfg.seed.wrapping_add(level as u64),
            balanced: cfg.balanced,
            threads: cfg.threads,
        };
        let c = km.fit(&residual, dim);
        for (i, row) in residual.chunks_mut(dim).enumerate() {
            let a = c.assign[i];
            codes[i].push(a);
            for (r, &m) in row.iter_mut().zip(&c.centroids[a as usize * dim..][..dim]) {
                *r -= m;
            }
        }
        errors.push(residual.chunks(dim).map(sq_norm).sum::<f64>() / variance);
        last_centroids = c.centroids;
    }
    let collisions_before = collision_stats(&codes);
    let mut codebooks = vec![cfg.codebook as u32; cfg.levels];
    match cfg.collisions {
        Collisions::Keep => {}
        Collisions::ExtraLevel => {
            let mut groups: BTreeMap<Vec<u32>, Vec<usize>> = BTreeMap::new();
            for (i, c) in codes.iter().enumerate() {
                groups.entry(c.clone()).or_default().push(i);
            }
            let mut largest = 1;
            for members in groups.values_mut() {
                members.sort_by(|&a, &b| {
                    let (ra, rb) = (&residual[a * dim..][..dim], &residual[b * dim..][..dim]);
                    sq_norm(ra)
                        .total_cmp(&sq_norm(rb))
                        .then(emb.items[a].cmp(&emb.items[b]))
                });
                largest = largest.max(members.len());
                for (rank, &i) in members.iter().enumerate() {
                    codes[i].push(rank as u32);
                }
            }
            codebooks.push(largest as u32);
        }
        Collisions::NearestFree => {
            nearest_free(&mut codes, emb, &before_last, &residual, &last_centroids, cfg)
        }
    }
    let collisions_after = collision_stats(&codes);
    let levels = level_stats(&codes, &codebooks, &errors);
    Built {
        items: emb.items.clone(),
        codes,
        codebooks,
        stats: BuildStats {
            items: n,
            dim,
            levels,
            collisions_before,
            collisions_after,
            config: *cfg,
        },
    }
}

/// [`Collisions::NearestFree`]: within each group, the item closest to its centroid keeps
/// the code; the others take, in item order, the nearest last-level code unused under
/// their prefix (distances from the residual before the last level).
fn nearest_free(
    codes: &mut [Vec<u32>],
    emb: &Embeddings,
    before_last: &[f32],
    residual: &[f32],
    centroids: &[f32],
    cfg: &BuildConfig,
) {
    let dim = emb.dim;
    let k = centroids.len() / dim;
    let last = cfg.levels - 1;
    let mut used: BTreeMap<&[u32], Vec<bool>> = BTreeMap::new();
    let snapshot: Vec<Vec<u32>> = codes.to_vec();
    for c in &snapshot {
        used.entry(&c[..last]).or_insert_with(|| vec![false; k])[c[last] as usize] = true;
    }
    let mut groups: BTreeMap<&[u32], Vec<usize>> = BTreeMap::new();
    for (i, c) in snapshot.iter().enumerate() {
        groups.entry(c.as_slice()).or_default().push(i);
    }
    for (full, mut members) in groups.into_iter().filter(|g| g.1.len() > 1) {
        members.sort_by(|&a, &b| {
            sq_norm(&residual[a * dim..][..dim])
                .total_cmp(&sq_norm(&residual[b * dim..][..dim]))
                .then(emb.items[a].cmp(&emb.items[b]))
        });
        let taken = used.get_mut(&full[..last]).expect("every prefix is registered");
        for &i in &members[1..] {
            let x = &before_last[i * dim..][..dim];
            let best = (0..k)
                .filter(|&c| !taken[c])
                .map(|c| {
                    let d: f32 = x
                        .iter()
                        .zip(&centroids[c * dim..][..dim])
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    (d, c)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            if let Some((_, c)) = best {
                taken[c] = true;
                codes[i][last] = c as u32;
            }
        }
    }
}

fn level_stats(codes: &[Vec<u32>], codebooks: &[u32], errors: &[f64]) -> Vec<LevelStats> {
    let levels = codebooks.len();
    let mut out = Vec::with_capacity(levels);
    let mut prev_prefixes = 1usize;
    for l in 0..levels {
        let mut per_code = vec![0usize; codebooks[l] as usize];
        let mut children: BTreeMap<&[u32], std::collections::BTreeSet<u32>> = BTreeMap::new();
        for c in codes {
            per_code[c[l] as usize] += 1;
            children.entry(&c[..l]).or_default().insert(c[l]);
        }
        let prefixes: usize = children.values().map(|s| s.len()).sum();
        out.push(LevelStats {
            codes_used: per_code.iter().filter(|&&c| c > 0).count(),
            prefixes,
            fanout_mean: prefixes as f64 / prev_prefixes as f64,
            fanout_max: children.values().map(|s| s.len()).max().unwrap_or(0),
            largest_code: per_code.iter().copied().max().unwrap_or(0),
            relative_error: errors
                .get(l)
                .copied()
                .unwrap_or_else(|| errors.last().copied().unwrap_or(1.0)),
        });
        prev_prefixes = prefixes;
    }
    out
}

impl Built {
    /// Writes the index in the LETTER `index.json` format: one `"item": ["<a_12>", ...]` per
    /// line, items in increasing id order.
    pub fn write_index(&self, path: &Path) -> std::io::Result<()> {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by_key(|&i| self.items[i]);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        out.write_all(b"{")?;
        for (n, &i) in order.iter().enumerate() {
            let tokens: Vec<String> = self.codes[i]
                .iter()
                .enumerate()
                .map(|(l, c)| format!("<{}_{c}>", char::from(b'a' + l as u8)))
                .collect();
            let sep = if n == 0 { "" } else { ",\n" };
            write!(
                out,
                "{sep}\"{}\": {}",
                self.items[i],
                serde_json::to_string(&tokens)?
            )?;
        }
        out.write_all(b"}\n")?;
        out.flush()
    }

    /// A table of the statistics for the terminal.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let mut t = format!(
            "{} items, {} dims, codebooks {:?}\nlevel  codes used  prefixes  fan-out mean/max  largest code  rel. error\n",
            s.items, s.dim, self.codebooks
        );
        for (l, x) in s.levels.iter().enumerate() {
            t += &format!(
                "{:>5}  {:>10}  {:>8}  {:>9.2}/{:<6}  {:>12}  {:>10.4}\n",
                l + 1,
                x.codes_used,
                x.prefixes,
                x.fanout_mean,
                x.fanout_max,
                x.largest_code,
                x.relative_error
            );
        }
        let c = |c: &CollisionStats| {
            format!(
                "{} SIDs shared by {} items (largest {})",
                c.groups, c.items, c.largest
            )
        };
        t += &format!(
            "collisions: {} after clustering; {} after `{:?}`\n",
            c(&s.collisions_before),
            c(&s.collisions_after),
            s.config.collisions
        );
        t
    }
}
