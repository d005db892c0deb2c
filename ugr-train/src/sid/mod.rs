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
    /// Items without signal (no embedding, or a zero one: e.g. no co-occurrence in the
    /// interactions), placed by [`place_blind`] instead of the clustering; their SIDs carry
    /// no meaning of their own.
    pub blind_items: usize,
    /// How they were placed (`"content neighbours"` or `"balanced"`), when there were any.
    pub blind_placement: Option<&'static str>,
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
    /// The centroids of each clustered level (`codebook x dim`, row-major), for assigning
    /// SIDs to new items later ([`Codebooks`]).
    pub centroids: Vec<Vec<f32>>,
    /// Statistics.
    pub stats: BuildStats,
}

/// The residual codebooks of a build, saved next to its index (`<name>.codebooks.json`):
/// new items with embeddings of the same space get SIDs from them ([`Codebooks::assign`]).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Codebooks {
    /// Embedding dimensions.
    pub dim: usize,
    /// Per clustered level, `codebook x dim` centroids, row-major.
    pub centroids: Vec<Vec<f32>>,
}

impl Codebooks {
    /// The code tuple of `x` (one code per clustered level): at each level the centroid
    /// nearest to what the previous levels left.
    pub fn quantize(&self, x: &[f32]) -> Vec<u32> {
        let mut residual = x.to_vec();
        let mut codes = Vec::with_capacity(self.centroids.len());
        for level in &self.centroids {
            let (code, centroid) = nearest(level, self.dim, &residual);
            codes.push(code as u32);
            for (r, c) in residual.iter_mut().zip(centroid) {
                *r -= c;
            }
        }
        codes
    }

    /// SIDs for new items: each quantized, then moved off a SID already taken (by `taken` or
    /// an earlier new item) to the nearest last-level code free under its prefix, when there
    /// is one (ranked by distance from the last level's input). Returns one code tuple per row.
    pub fn assign(
        &self,
        emb: &Embeddings,
        taken: &mut std::collections::BTreeSet<Vec<u32>>,
    ) -> Vec<Vec<u32>> {
        let last = self.centroids.len() - 1;
        emb.data
            .chunks(emb.dim)
            .map(|x| {
                let mut codes = self.quantize(x);
                if taken.contains(&codes) {
                    // The input of the last level: x minus the earlier levels' centroids.
                    let mut before_last = x.to_vec();
                    for (level, &c) in self.centroids[..last].iter().zip(&codes) {
                        for (r, m) in before_last
                            .iter_mut()
                            .zip(&level[c as usize * self.dim..][..self.dim])
                        {
                            *r -= m;
                        }
                    }
                    let k = self.centroids[last].len() / self.dim;
                    let mut order: Vec<(f32, usize)> = (0..k)
                        .map(|c| {
                            (
                                sq_dist(&before_last, &self.centroids[last][c * self.dim..][..self.dim]),
                                c,
                            )
                        })
                        .collect();
                    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    if let Some(&(_, c)) = order.iter().find(|&&(_, c)| {
                        let mut t = codes.clone();
                        t[last] = c as u32;
                        !taken.contains(&t)
                    }) {
                        codes[last] = c as u32;
                    }
                }
                taken.insert(codes.clone());
                codes
            })
            .collect()
    }
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The nearest of `centroids` (rows of `dim`) to `x`: its index and row.
fn nearest<'c>(centroids: &'c [f32], dim: usize, x: &[f32]) -> (usize, &'c [f32]) {
    centroids
        .chunks(dim)
        .enumerate()
        .map(|(i, c)| (sq_dist(x, c), i, c))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, i, c)| (i, c))
        .unwrap_or((0, &[]))
}

/// Places items without signal (see [`BuildStats::blind_items`]) into `built`: next to their
/// nearest neighbour among the built items in `content` embeddings when those are given
/// (its prefix, and the least-used last code under it), otherwise by a balanced rule (at
/// every level the least-used code under the prefix so far, lowest code first), so that they
/// spread over the codebooks instead of collapsing into one cluster.
pub fn place_blind(built: &mut Built, blind: &[ItemId], content: Option<&Embeddings>) {
    if blind.is_empty() {
        return;
    }
    let levels = built.codebooks.len();
    let mut usage: BTreeMap<Vec<u32>, Vec<u32>> = BTreeMap::new();
    let count = |usage: &mut BTreeMap<Vec<u32>, Vec<u32>>, codes: &[u32], codebooks: &[u32]| {
        for l in 0..codes.len() {
            usage
                .entry(codes[..l].to_vec())
                .or_insert_with(|| vec![0; codebooks[l] as usize])[codes[l] as usize] += 1;
        }
    };
    for c in &built.codes {
        count(&mut usage, c, &built.codebooks);
    }
    let least = |usage: &BTreeMap<Vec<u32>, Vec<u32>>, prefix: &[u32], size: u32| -> u32 {
        usage
            .get(prefix)
            .map_or(0, |u| (0..size).min_by_key(|&c| (u[c as usize], c)).unwrap_or(0))
    };
    fn row(e: &Embeddings, item: ItemId) -> Option<&[f32]> {
        e.items
            .binary_search(&item)
            .ok()
            .map(|i| &e.data[i * e.dim..][..e.dim])
    }
    let mut placement = "balanced";
    for &item in blind {
        let mut codes = Vec::with_capacity(levels);
        let neighbour = content.and_then(|e| {
            let x = row(e, item)?;
            built
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, &other)| row(e, other).map(|y| (cosine(x, y), i)))
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, i)| i)
        });
        if let Some(i) = neighbour {
            placement = "content neighbours";
            codes.extend_from_slice(&built.codes[i][..levels - 1]);
        }
        while codes.len() < levels {
            let l = codes.len();
            codes.push(least(&usage, &codes, built.codebooks[l]));
        }
        count(&mut usage, &codes, &built.codebooks);
        built.items.push(item);
        built.codes.push(codes);
    }
    // Keep the items in id order, as the embeddings were.
    let mut order: Vec<usize> = (0..built.items.len()).collect();
    order.sort_by_key(|&i| built.items[i]);
    built.items = order.iter().map(|&i| built.items[i]).collect();
    built.codes = order.iter().map(|&i| built.codes[i].clone()).collect();
    built.stats.items = built.items.len();
    built.stats.blind_items = blind.len();
    built.stats.blind_placement = Some(placement);
    built.stats.collisions_after = collision_stats(&built.codes);
    let errors: Vec<f64> = built.stats.levels.iter().map(|l| l.relative_error).collect();
    built.stats.levels = level_stats(&built.codes, &built.codebooks, &errors);
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = (sq_norm(a) * sq_norm(b)).sqrt() as f32;
    if n > 0.0 { dot / n } else { f32::NEG_INFINITY }
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

/// Splits `emb` into the items with signal (a non-zero row) and the ids of the others,
/// adding `catalog` items the embeddings lack to the latter.
pub fn split_blind(emb: &Embeddings, catalog: &[ItemId]) -> (Embeddings, Vec<ItemId>) {
    let mut signal = Embeddings {
        items: Vec::new(),
        dim: emb.dim,
        data: Vec::new(),
    };
    let mut blind = Vec::new();
    for (i, row) in emb.data.chunks(emb.dim.max(1)).enumerate() {
        if row.iter().any(|&v| v != 0.0) && row.iter().all(|v| v.is_finite()) {
            signal.items.push(emb.items[i]);
            signal.data.extend_from_slice(row);
        } else {
            blind.push(emb.items[i]);
        }
    }
    blind.extend(catalog.iter().filter(|i| emb.items.binary_search(i).is_err()));
    blind.sort_unstable();
    blind.dedup();
    (signal, blind)
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
    let mut centroids = Vec::new();
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
        centroids.push(c.centroids.clone());
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
        centroids,
        stats: BuildStats {
            items: n,
            dim,
            levels,
            collisions_before,
            collisions_after,
            blind_items: 0,
            blind_placement: None,
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
        if s.blind_items > 0 {
            t += &format!(
                "warning: {} of {} items had no signal (no embedding, or a zero one) and were placed by the \
                 {} rule: their SIDs carry no meaning of their own\n",
                s.blind_items,
                s.items,
                s.blind_placement.unwrap_or("balanced")
            );
        }
        t
    }
}
