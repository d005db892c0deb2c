//! k-means with k-means++ initialisation and an optional size-constrained (balanced)
//! assignment, deterministic under a seed, parallel over points.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// k-means settings.
#[derive(Clone, Copy, Debug)]
pub struct KMeans {
    /// Clusters (codebook size).
    pub k: usize,
    /// Most Lloyd iterations (it stops earlier when no assignment changes).
    pub iters: usize,
    /// Seed of the k-means++ sampling.
    pub seed: u64,
    /// Size-constrained assignment: no cluster holds more than `ceil(n / k)` points, so the
    /// codebook is used evenly (greedy on each point's nearest centroids, closest pairs first).
    pub balanced: bool,
    /// Worker threads for the distance computations (results do not depend on it).
    pub threads: usize,
}

/// The result of [`KMeans::fit`].
#[derive(Clone, Debug)]
pub struct Clustering {
    /// `k x dim` centroids, row-major.
    pub centroids: Vec<f32>,
    /// Cluster of each point.
    pub assign: Vec<u32>,
    /// Sum of squared distances of the points to their centroids.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Runs `f(first_point, chunk_of_out)` over `out` split into contiguous chunks on `threads` threads.
fn par_chunks<T: Send>(out: &mut [T], per_point: usize, threads: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let n = out.len() / per_point.max(1);
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads) * per_point;
    if threads == 1 || chunk == 0 {
        f(0, out);
        return;
    }
    std::thread::scope(|s| {
        for (i, part) in out.chunks_mut(chunk).enumerate() {
            let f = &f;
            s.spawn(move || f(i * chunk / per_point, part));
        }
    });
}

impl KMeans {
    /// Clusters the `n x dim` row-major points `x` (`n = x.len() / dim`). With `n <= k`
    /// every point gets its own cluster.
    pub fn fit(&self, x: &[f32], dim: usize) -> Clustering {
        let n = x.len() / dim;
        let k = self.k.min(n).max(1);
        let row = |i: usize| &x[i * dim..(i + 1) * dim];
        let mut centroids = self.init(x, dim, k);
        let mut assign = vec![u32::MAX; n];
        let mut dist = vec![0f32; n];
        let mut iterations = 0;
        for _ in 0..self.iters.max(1) {
            iterations += 1;
            let new = self.assign(x, dim, &centroids, k);
            let changed = new.iter().zip(&assign).any(|(a, b)| a.0 != *b);
            for (i, (c, d)) in new.into_iter().enumerate() {
                assign[i] = c;
                dist[i] = d;
            }
            // Update: means; an empty cluster takes the point farthest from its centroid
            // (never a point sitting on its centroid: splitting duplicates helps nothing).
            let mut sums = vec![0f64; k * dim];
            let mut counts = vec![0usize; k];
            for (i, &a) in assign.iter().enumerate() {
                let c = a as usize;
                counts[c] += 1;
                for (s, v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                    *s += f64::from(*v);
                }
            }
            for c in 0..k {
                if counts[c] == 0 {
                    let far = (0..n)
                        .filter(|&i| counts[assign[i] as usize] > 1 && dist[i] > 0.0)
                        .max_by(|&a, &b| dist[a].total_cmp(&dist[b]).then(b.cmp(&a)));
                    if let Some(i) = far {
                        let old = assign[i] as usize;
                        counts[old] -= 1;
                        for (s, v) in sums[old * dim..(old + 1) * dim].iter_mut().zip(row(i)) {
                            *s -= f64::from(*v);
                        }
                        assign[i] = c as u32;
                        dist[i] = 0.0;
                        counts[c] = 1;
                        for (s, v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                            *s = f64::from(*v);
                        }
                    }
                }
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for (dst, s) in centroids[c * dim..(c + 1) * dim]
                        .iter_mut()
                        .zip(&sums[c * dim..(c + 1) * dim])
                    {
                        *dst = (*s / counts[c] as f64) as f32;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let inertia = (0..n)
            .map(|i| f64::from(sq_dist(row(i), &centroids[assign[i] as usize * dim..][..dim])))
            .sum();
        Clustering {
            centroids,
            assign,
            inertia,
            iterations,
        }
    }

    /// k-means++: the first centre uniformly, each next one with probability proportional
    /// to the squared distance to the nearest centre chosen so far.
    fn init(&self, x: &[f32], dim: usize, k: usize) -> Vec<f32> {
        let n = x.len() / dim;
        let row = |i: usize| &x[i * dim..(i + 1) * dim];
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut centroids = Vec::with_capacity(k * dim);
        let mut chosen = vec![false; n];
        let first = rng.random_range(0..n);
        chosen[first] = true;
        centroids.extend_from_slice(row(first));
        let mut d2 = vec![f32::INFINITY; n];
        for c in 1..k {
            let last = &centroids[(c - 1) * dim..c * dim];
            par_chunks(&mut d2, 1, self.threads, |start, part| {
                for (j, d) in part.iter_mut().enumerate() {
                    *d = d.min(sq_dist(&x[(start + j) * dim..(start + j + 1) * dim], last));
                }
            });
            let total: f64 = d2.iter().map(|&d| f64::from(d)).sum();
            let pick = if total > 0.0 {
                let mut target = rng.random::<f64>() * total;
                let mut pick = n - 1;
                for (i, &d) in d2.iter().enumerate() {
                    target -= f64::from(d);
                    if target <= 0.0 && d > 0.0 {
                        pick = i;
                        break;
                    }
                }
                pick
            } else {
                // Every point coincides with a centre: take the next unchosen point.
                (0..n).find(|&i| !chosen[i]).unwrap_or(0)
            };
            chosen[pick] = true;
            centroids.extend_from_slice(row(pick));
        }
        centroids
    }

    /// The cluster and squared distance of every point.
    fn assign(&self, x: &[f32], dim: usize, centroids: &[f32], k: usize) -> Vec<(u32, f32)> {
        let n = x.len() / dim;
        if !self.balanced {
            let mut out = vec![(0u32, 0f32); n];
            par_chunks(&mut out, 1, self.threads, |start, part| {
                for (j, o) in part.iter_mut().enumerate() {
                    let p = &x[(start + j) * dim..(start + j + 1) * dim];
                    let mut best = (0u32, f32::INFINITY);
                    for c in 0..k {
                        let d = sq_dist(p, &centroids[c * dim..(c + 1) * dim]);
                        if d < best.1 {
                            best = (c as u32, d);
                        }
                    }
                    *o = best;
                }
            });
            return out;
        }
        // Balanced: each point's `m` nearest centroids; all (distance, point, centroid)
        // pairs closest first; a point takes its pair's centroid while it has room. Points
        // left over (all their m centroids full) take the nearest centroid with room.
        let m = k.min(32);
        let cap = n.div_ceil(k);
        let mut near = vec![(0f32, 0u32); n * m];
        par_chunks(&mut near, m, self.threads, |start, part| {
            let mut all: Vec<(f32, u32)> = Vec::with_capacity(k);
            for (j, slot) in part.chunks_mut(m).enumerate() {
                let p = &x[(start + j) * dim..(start + j + 1) * dim];
                all.clear();
                all.extend((0..k).map(|c| (sq_dist(p, &centroids[c * dim..(c + 1) * dim]), c as u32)));
                all.select_nth_unstable_by(m - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                slot.copy_from_slice(&all[..m]);
            }
        });
        let mut pairs: Vec<(f32, u32, u32)> = near
            .iter()
            .enumerate()
            .map(|(i, &(d, c))| (d, (i / m) as u32, c))
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut out = vec![(u32::MAX, 0f32); n];
        let mut size = vec![0usize; k];
        for (d, i, c) in pairs {
            if out[i as usize].0 == u32::MAX && size[c as usize] < cap {
                out[i as usize] = (c, d);
                size[c as usize] += 1;
            }
        }
        for i in 0..n {
            if out[i].0 == u32::MAX {
                let p = &x[i * dim..(i + 1) * dim];
                let best = (0..k)
                    .filter(|&c| size[c] < cap)
                    .map(|c| (sq_dist(p, &centroids[c * dim..(c + 1) * dim]), c))
                    .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                    .expect("k * cap >= n leaves room");
                out[i] = (best.1 as u32, best.0);
                size[best.1] += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let mut x = Vec::new();
        let mut truth = Vec::new();
        for i in 0..200 {
            let c = i % 4;
            x.push(centres[c][0] + rng.random_range(-1.0..1.0));
            x.push(centres[c][1] + rng.random_range(-1.0..1.0));
            truth.push(c);
        }
        (x, truth)
    }

    fn km(k: usize, balanced: bool, threads: usize) -> KMeans {
        KMeans {
            k,
            iters: 50,
            seed: 3,
            balanced,
            threads,
        }
    }

    #[test]
    fn separated_blobs_are_recovered() {
        let (x, truth) = blobs(1);
        let c = km(4, false, 2).fit(&x, 2);
        // Same partition as the truth, up to the cluster numbering.
        for i in 0..truth.len() {
            for j in 0..truth.len() {
                assert_eq!(truth[i] == truth[j], c.assign[i] == c.assign[j]);
            }
        }
        assert!(c.inertia / (truth.len() as f64) < 1.0);
    }

    #[test]
    fn deterministic_and_thread_count_independent() {
        let (x, _) = blobs(2);
        let a = km(7, false, 1).fit(&x, 2);
        let b = km(7, false, 2).fit(&x, 2);
        assert_eq!(a.assign, b.assign);
        assert_eq!(a.centroids, b.centroids);
        let bal1 = km(7, true, 1).fit(&x, 2);
        let bal2 = km(7, true, 2).fit(&x, 2);
        assert_eq!(bal1.assign, bal2.assign);
    }

    #[test]
    fn balanced_respects_the_capacity_and_plain_does_not_need_to() {
        let (mut x, _) = blobs(3);
        // A dense extra blob of 100 points makes plain k-means uneven.
        for i in 0..100 {
            x.extend([5.0 + i as f32 * 1e-3, 5.0]);
        }
        let n = x.len() / 2;
        let k = 6;
        let sizes = |c: &Clustering| {
            let mut s = vec![0usize; k];
            for &a in &c.assign {
                s[a as usize] += 1;
            }
            s
        };
        let bal = sizes(&km(k, true, 2).fit(&x, 2));
        assert!(bal.iter().all(|&s| s <= n.div_ceil(k)), "{bal:?}");
        assert_eq!(bal.iter().sum::<usize>(), n);
        let plain = sizes(&km(k, false, 2).fit(&x, 2));
        assert!(plain.iter().max() > bal.iter().max(), "{plain:?} vs {bal:?}");
    }

    #[test]
    fn fewer_points_than_clusters_and_duplicates() {
        let x = vec![1.0f32, 1.0, 1.0, 1.0, 2.0, 2.0];
        let c = km(8, false, 1).fit(&x, 2);
        assert_eq!(c.centroids.len(), 3 * 2);
        assert_eq!(c.assign[0], c.assign[1]);
        assert_ne!(c.assign[0], c.assign[2]);
        let same = vec![0.5f32; 20];
        let c = km(4, true, 2).fit(&same, 2);
        assert_eq!(c.assign.len(), 10);
        assert!(c.inertia.abs() < 1e-9);
    }
}
