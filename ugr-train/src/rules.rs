//! What enforcing a business rule inside the search buys over filtering its output.
//!
//! A rule here is a denylist shared by every request (items out of stock, a category that
//! may not be shown). For each rule and each test row the study ranks the items four ways:
//! - **in-search**: the engine's constrained search (`Constraints::deny`), beam B, top K;
//! - **post-filter top 20 / top 100**: the unconstrained search's top 20 (beam B) and top 100
//!   (beam 100), with the denied items removed, cut at K;
//! - **floor**: the last-item transition floor with the denied items removed
//!   ([`Baselines::transitions_where`]);
//!
//! and, on a sample of rows, the **oracle**: the exhaustive ranking of every catalog SID
//! (a beam as wide as the catalog, which the property tests prove exhaustive) with the
//! denied items removed, against which both the constrained search and the unconstrained
//! search (rule "none") measure their gap.
//!
//! Metrics are over the rows whose target the rule allows (a denied target cannot be hit by
//! any method); the row count is reported with each rule.

use anyhow::Result;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use ugr_core::metrics::{RankingMetrics, rank_of};
use ugr_core::{Catalog, Constraints, Engine, ItemId, Request, SearchOptions};

use crate::baselines::Baselines;
use crate::data::Example;

/// A denylist shared by every request.
#[derive(Clone, Debug)]
pub struct Rule {
    /// What it denies, in words.
    pub name: String,
    /// The denied items, sorted.
    pub deny: Vec<ItemId>,
    /// By catalog position: denied or not.
    denied: Vec<bool>,
}

impl Rule {
    /// A rule denying `deny` (catalog items).
    pub fn new(catalog: &Catalog, name: impl Into<String>, mut deny: Vec<ItemId>) -> Rule {
        deny.sort_unstable();
        deny.dedup();
        let mut denied = vec![false; catalog.len()];
        for i in &deny {
            if let Some(p) = catalog.position(*i) {
                denied[p] = true;
            }
        }
        Rule {
            name: name.into(),
            deny,
            denied,
        }
    }

    /// Whether the rule allows `item`.
    pub fn allows(&self, catalog: &Catalog, item: ItemId) -> bool {
        catalog.position(item).is_some_and(|p| !self.denied[p])
    }

    /// The rule as a request's constraints.
    pub fn constraints(&self) -> Constraints<'_> {
        Constraints {
            deny: &self.deny,
            ..Constraints::NONE
        }
    }
}

/// `fraction` of the catalog's items drawn uniformly (seeded), denied.
pub fn random_deny(catalog: &Catalog, fraction: f64, seed: u64) -> Rule {
    let mut items = catalog.item_ids().to_vec();
    items.shuffle(&mut StdRng::seed_from_u64(seed));
    let n = (items.len() as f64 * fraction).round() as usize;
    items.truncate(n);
    Rule::new(
        catalog,
        format!("deny {:.0}% of items at random", 100.0 * fraction),
        items,
    )
}

/// Every item under the level-1 codes that hold the most `targets`, taken in that order
/// until they cover at least `share` of the targets: a rule correlated with what users want.
pub fn category_deny(catalog: &Catalog, targets: &[ItemId], share: f64) -> Rule {
    let level1 = |i: ItemId| catalog.sid_of(i).map(|s| s.codes()[0]).unwrap_or(u16::MAX);
    let mut per_code = std::collections::BTreeMap::<u16, usize>::new();
    for &t in targets {
        *per_code.entry(level1(t)).or_default() += 1;
    }
    let mut codes: Vec<(u16, usize)> = per_code.into_iter().collect();
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (mut covered, mut chosen) = (0usize, Vec::new());
    for (code, n) in codes {
        if covered as f64 >= share * targets.len() as f64 {
            break;
        }
        covered += n;
        chosen.push(code);
    }
    let deny: Vec<ItemId> = catalog
        .item_ids()
        .iter()
        .copied()
        .filter(|&i| chosen.contains(&level1(i)))
        .collect();
    Rule::new(
        catalog,
        format!(
            "deny the {} most-wanted level-1 codes ({:.0}% of targets)",
            chosen.len(),
            100.0 * covered as f64 / targets.len().max(1) as f64
        ),
        deny,
    )
}

/// The study's rules: random denylists of 10, 30, 50 and 90% of the items, and the category
/// rule over `targets` at 50%.
pub fn standard_rules(catalog: &Catalog, targets: &[ItemId], seed: u64) -> Vec<Rule> {
    let mut rules: Vec<Rule> = [0.1, 0.3, 0.5, 0.9]
        .iter()
        .enumerate()
        .map(|(i, &f)| random_deny(catalog, f, seed + i as u64))
        .collect();
    rules.push(category_deny(catalog, targets, 0.5));
    rules
}

/// HR@10 / NDCG@10 of one method under one rule.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Score {
    /// HR@10.
    pub hr10: f64,
    /// NDCG@10.
    pub ndcg10: f64,
    /// One standard error of HR@10 (binomial).
    pub hr10_se: f64,
}

impl From<&RankingMetrics> for Score {
    fn from(m: &RankingMetrics) -> Score {
        let (hr, n) = (m.hr(10), m.rows().max(1) as f64);
        Score {
            hr10: hr,
            ndcg10: m.ndcg(10),
            hr10_se: (hr * (1.0 - hr) / n).sqrt(),
        }
    }
}

/// The oracle comparison on the sampled rows whose target the rule allows.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct OracleScore {
    /// Rows.
    pub rows: u64,
    /// The exhaustive ranking over the allowed items.
    pub oracle: Score,
    /// The search (constrained for a rule, plain for "none") on the same rows.
    pub search: Score,
}

/// One rule's row of the study.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuleRow {
    /// The rule.
    pub rule: String,
    /// Items it denies.
    pub denied: usize,
    /// Test rows whose target it allows (the metrics' rows).
    pub rows: u64,
    /// Constrained inside the search.
    pub in_search: Score,
    /// The unconstrained top 20, filtered.
    pub post_filter_20: Score,
    /// The unconstrained top 100 (beam 100), filtered.
    pub post_filter_100: Score,
    /// The transition floor under the rule.
    pub floor: Score,
    /// The exhaustive oracle on the sample.
    pub oracle: OracleScore,
}

/// One row's ranks of its target under every method (index 0: rule "none").
#[derive(Clone, Debug, Default)]
struct RowRanks {
    /// Per rule: in-search, post-20, post-100, floor.
    ranks: Vec<[Option<usize>; 4]>,
}

fn search_options(engine: &Engine, beam: usize, k: usize) -> SearchOptions {
    SearchOptions {
        beam,
        top_k: k,
        learned_confidence: false,
        normalization: engine.model().normalization(),
        ..SearchOptions::default()
    }
}

/// Ranks of each row's target under every rule and method (rules[0] must be "none").
fn rank_rows(
    engine: &Engine,
    baselines: &Baselines,
    rows: &[Example],
    rules: &[Rule],
    beam: usize,
) -> Result<Vec<RowRanks>> {
    let catalog = &*engine.catalog();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(32) {
        let histories: Vec<&[ItemId]> = chunk.iter().map(|e| e.history.as_slice()).collect();
        let top20 = engine.recommend_batch(&histories, &search_options(engine, beam, 20))?;
        let top100 = engine.recommend_batch(&histories, &search_options(engine, beam.max(100), 100))?;
        let mut per_rule = Vec::new();
        for rule in rules {
            let requests: Vec<Request<'_>> = histories
                .iter()
                .map(|h| Request {
                    history: h,
                    constraints: rule.constraints(),
                })
                .collect();
            per_rule.push(engine.recommend_requests(&requests, &search_options(engine, beam, 10))?);
        }
        for (i, e) in chunk.iter().enumerate() {
            let filtered = |list: &ugr_core::Recommendations, rule: &Rule| {
                let kept = list
                    .items
                    .iter()
                    .map(|r| r.item)
                    .filter(|&x| rule.allows(catalog, x))
                    .take(10);
                rank_of(kept, &e.target)
            };
            let ranks = rules
                .iter()
                .zip(&per_rule)
                .map(|(rule, constrained)| {
                    let floor = baselines.transitions_where(&e.history, |x| rule.allows(catalog, x));
                    [
                        rank_of(constrained[i].items.iter().map(|r| r.item), &e.target),
                        filtered(&top20[i], rule),
                        filtered(&top100[i], rule),
                        rank_of(floor.into_iter().take(10), &e.target),
                    ]
                })
                .collect();
            out.push(RowRanks { ranks });
        }
    }
    Ok(out)
}

/// Each sampled row's exhaustive ranking (every catalog item, best first).
fn exhaustive_lists(engine: &Engine, rows: &[Example]) -> Result<Vec<Vec<ItemId>>> {
    let catalog = &*engine.catalog();
    let opts = search_options(engine, catalog.sid_count(), catalog.len());
    rows.iter()
        .map(|e| {
            let r = engine.recommend(&e.history, &opts)?;
            Ok(r.items.iter().map(|x| x.item).collect())
        })
        .collect()
}

/// Runs `f` over `rows` split into `threads` contiguous chunks, results in row order.
pub fn parallel<T: Send>(
    rows: &[Example],
    threads: usize,
    f: impl Fn(&[Example]) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let per = rows.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Result<Vec<T>>> = std::thread::scope(|s| {
        let handles: Vec<_> = rows.chunks(per).map(|c| s.spawn(|| f(c))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a study thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(rows.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// The study: one row per rule, "none" first. `oracle_rows` rows (the first of `rows`) also
/// get the exhaustive oracle.
pub fn study(
    engine: &Engine,
    baselines: &Baselines,
    rows: &[Example],
    rules: &[Rule],
    beam: usize,
    oracle_rows: usize,
    threads: usize,
) -> Result<Vec<RuleRow>> {
    let catalog = &*engine.catalog();
    let mut all = vec![Rule::new(catalog, "none", Vec::new())];
    all.extend(rules.iter().cloned());
    let ranks = parallel(rows, threads, |c| rank_rows(engine, baselines, c, &all, beam))?;
    let sample = &rows[..oracle_rows.min(rows.len())];
    let lists = parallel(sample, threads, |c| exhaustive_lists(engine, c))?;
    Ok(all
        .iter()
        .enumerate()
        .map(|(r, rule)| {
            let mut m: [RankingMetrics; 4] = Default::default();
            for (e, row) in rows.iter().zip(&ranks) {
                if rule.allows(catalog, e.target) {
                    for (metric, &rank) in m.iter_mut().zip(&row.ranks[r]) {
                        metric.add(rank);
                    }
                }
            }
            let (mut oracle, mut search) = (RankingMetrics::default(), RankingMetrics::default());
            for ((e, list), row) in sample.iter().zip(&lists).zip(&ranks) {
                if rule.allows(catalog, e.target) {
                    let allowed = list.iter().copied().filter(|&x| rule.allows(catalog, x)).take(10);
                    oracle.add(rank_of(allowed, &e.target));
                    search.add(row.ranks[r][0]);
                }
            }
            RuleRow {
                rule: rule.name.clone(),
                denied: rule.deny.len(),
                rows: m[0].rows(),
                in_search: (&m[0]).into(),
                post_filter_20: (&m[1]).into(),
                post_filter_100: (&m[2]).into(),
                floor: (&m[3]).into(),
                oracle: OracleScore {
                    rows: oracle.rows(),
                    oracle: (&oracle).into(),
                    search: (&search).into(),
                },
            }
        })
        .collect())
}

/// Availability changes per second on a synthetic catalog (4 levels of 256 codes, random SIDs).
#[derive(Clone, Debug, serde::Serialize)]
pub struct AvailabilityRate {
    /// Catalog items.
    pub items: usize,
    /// Trie nodes.
    pub nodes: usize,
    /// Changes timed per figure.
    pub changes: usize,
    /// One [`Availability::set`](ugr_core::Availability::set) per change, one thread.
    pub single_per_s: f64,
    /// Batches of 1,000 changes through [`Availability::apply`](ugr_core::Availability::apply).
    pub batched_per_s: f64,
    /// One change per batch behind a reader-writer lock, as `Engine::update_availability` does.
    pub locked_single_per_s: f64,
}

/// Times availability changes on a synthetic catalog of `items` items.
pub fn availability_rate(items: usize, changes: usize, seed: u64) -> Result<AvailabilityRate> {
    use rand::Rng;
    use ugr_core::{Availability, CatalogBuilder, Sid, SidVocab};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = CatalogBuilder::new(SidVocab::new(&[256, 256, 256, 256])?);
    for i in 0..items as u32 {
        let codes: [u16; 4] = std::array::from_fn(|_| rng.random_range(0..256));
        b.push(ItemId::new(i), Sid::new(&codes)?)?;
    }
    let catalog = b.build()?;
    let picks: Vec<ItemId> = (0..changes)
        .map(|_| ItemId::new(rng.random_range(0..items as u32)))
        .collect();
    let mut live = Availability::new(&catalog);
    let t = std::time::Instant::now();
    for (n, &item) in picks.iter().enumerate() {
        live.set(&catalog, item, n % 2 == 1)?;
    }
    let single = changes as f64 / t.elapsed().as_secs_f64();
    live.reset();
    let batch: Vec<(ItemId, bool)> = picks.iter().enumerate().map(|(n, &i)| (i, n % 2 == 1)).collect();
    let t = std::time::Instant::now();
    for chunk in batch.chunks(1000) {
        live.apply(&catalog, chunk)?;
    }
    let batched = changes as f64 / t.elapsed().as_secs_f64();
    let locked = std::sync::RwLock::new(Availability::new(&catalog));
    let t = std::time::Instant::now();
    for change in &batch {
        locked
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .apply(&catalog, std::slice::from_ref(change))?;
    }
    let locked_single = changes as f64 / t.elapsed().as_secs_f64();
    Ok(AvailabilityRate {
        items,
        nodes: catalog.trie().node_count(),
        changes,
        single_per_s: single,
        batched_per_s: batched,
        locked_single_per_s: locked_single,
    })
}
