//! `ugr bench rules` (business rules inside the search against post-filtering, the oracle and
//! the floor; availability changes per second) and the rule latency rows of `ugr bench engine --rules`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ugr_core::{Availability, Catalog, ItemId, Request};
use ugr_train::bench_engine::{self as be, LatencyRow, RuleConfig};
use ugr_train::data::{self, Example, Split};
use ugr_train::rules::{self, Rule};

use super::DataArgs;

#[derive(Args)]
pub(crate) struct BenchRulesArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// The dataset whose rows are scored (the floor is fitted on its training split).
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub(crate) split: Split,
    /// Rows scored (0: all of the split).
    #[arg(long, default_value_t = 0)]
    pub(crate) rows: usize,
    /// Rows (the first of the scored ones) that also get the exhaustive oracle (a beam as wide
    /// as the catalog: about 300x a request's cost).
    #[arg(long, default_value_t = 200)]
    pub(crate) oracle_rows: usize,
    #[arg(long, default_value_t = 20)]
    pub(crate) beam: usize,
    /// Threads scoring rows.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Seed of the random denylists.
    #[arg(long, default_value_t = 17)]
    pub(crate) seed: u64,
    /// Items of the synthetic catalog on which availability changes are timed (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) availability_items: usize,
    /// Write the tables as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// The study's rules for `rows` (the category rule is cut by their targets).
fn study_rules(catalog: &Catalog, rows: &[Example], seed: u64) -> Vec<Rule> {
    let targets: Vec<ItemId> = rows.iter().map(|e| e.target).collect();
    rules::standard_rules(catalog, &targets, seed)
}

pub(crate) fn run(a: &BenchRulesArgs) -> Result<()> {
    let engine =
        ugr_core::Engine::open(&a.model).with_context(|| format!("opening {}", a.model.display()))?;
    let ds = data::load(&a.data.data, &a.data.load_options())?;
    anyhow::ensure!(
        *engine.catalog() == ds.catalog,
        "{} was exported with another catalog",
        a.model.display()
    );
    let all = ds.examples(a.split, engine.model().contract().max_history as usize);
    let rows = ugr_train::train::sample_rows(&all, a.rows, 23);
    let baselines = ugr_train::baselines::Baselines::fit(&ds.catalog, &ds.train);
    let rules = study_rules(&engine.catalog(), &rows, a.seed);
    println!(
        "ugr bench rules: {} on {} {:?} ({} rows, oracle on the first {}), beam {}, top-10",
        a.model.display(),
        ds.name,
        a.split,
        rows.len(),
        a.oracle_rows.min(rows.len()),
        a.beam
    );
    let t = std::time::Instant::now();
    let table = rules::study(
        &engine,
        &baselines,
        &rows,
        &rules,
        a.beam,
        a.oracle_rows,
        a.threads,
    )?;
    println!(
        "\n{:<58} {:>6} {:>6}  {:>15} {:>15} {:>15} {:>15}  {:>7} {:>7}",
        "HR@10 / NDCG@10 (rows whose target the rule allows)",
        "denied",
        "rows",
        "in-search",
        "post-filter@20",
        "post-filter@100",
        "floor",
        "x@20",
        "x@100"
    );
    let cell = |s: &rules::Score| format!("{:.4}/{:.4}", s.hr10, s.ndcg10);
    for r in &table {
        println!(
            "{:<58} {:>6} {:>6}  {:>15} {:>15} {:>15} {:>15}  {:>7.2} {:>7.2}",
            r.rule,
            r.denied,
            r.rows,
            cell(&r.in_search),
            cell(&r.post_filter_20),
            cell(&r.post_filter_100),
            cell(&r.floor),
            r.in_search.hr10 / r.post_filter_20.hr10.max(1e-12),
            r.in_search.hr10 / r.post_filter_100.hr10.max(1e-12),
        );
    }
    println!(
        "\n{:<58} {:>6} {:>9} {:>9} {:>9} {:>14}",
        "oracle sample (HR@10)", "rows", "oracle", "search", "gap", "gap - none's"
    );
    let none_gap = table[0].oracle.oracle.hr10 - table[0].oracle.search.hr10;
    for r in &table {
        let gap = r.oracle.oracle.hr10 - r.oracle.search.hr10;
        println!(
            "{:<58} {:>6} {:>9.4} {:>9.4} {:>9.4} {:>+14.4}",
            r.rule,
            r.oracle.rows,
            r.oracle.oracle.hr10,
            r.oracle.search.hr10,
            gap,
            gap - none_gap
        );
    }
    println!("(scored in {:.0} s)", t.elapsed().as_secs_f64());
    let rate = if a.availability_items > 0 {
        let r = rules::availability_rate(a.availability_items, 2_000_000, a.seed)?;
        println!(
            "\navailability changes on a synthetic catalog of {} items ({} trie nodes), {} changes, one thread: \
             {:.2} M/s one at a time, {:.2} M/s in batches of 1,000, {:.2} M/s one per locked batch",
            r.items,
            r.nodes,
            r.changes,
            r.single_per_s * 1e-6,
            r.batched_per_s * 1e-6,
            r.locked_single_per_s * 1e-6
        );
        Some(r)
    } else {
        None
    };
    if let Some(path) = &a.json {
        let json = serde_json::json!({ "rules": table, "availability": rate, "rows": rows.len() });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

/// `ugr bench engine --rules`: single-thread latency of requests under each rule of the study
/// (and a 10-item denylist, and half the catalog marked unavailable) against the same requests
/// unconstrained, interleaved in one run.
pub(crate) fn rule_latency(
    engine: &ugr_core::Engine,
    requests: &[Example],
    all_rows: &[Example],
    opts: &ugr_core::SearchOptions,
) -> Result<Vec<LatencyRow>> {
    let catalog = &*engine.catalog();
    let rules = study_rules(catalog, all_rows, 17);
    let few = Rule::new(
        catalog,
        "deny 10 items",
        rules[2].deny.iter().copied().take(10).collect(),
    );
    let half = &rules[2];
    fn config<'a>(
        requests: &'a [Example],
        rule: Option<&'a Rule>,
        live: Option<Availability>,
        name: &str,
    ) -> RuleConfig<'a> {
        RuleConfig {
            name: name.to_owned(),
            requests: requests
                .iter()
                .map(|e| Request {
                    history: &e.history,
                    constraints: rule.map_or(ugr_core::Constraints::NONE, Rule::constraints),
                })
                .collect(),
            live,
        }
    }
    let mut unavailable = Availability::new(catalog);
    let changes: Vec<(ItemId, bool)> = half.deny.iter().map(|&i| (i, false)).collect();
    unavailable.apply(catalog, &changes)?;
    let mut configs = vec![
        config(requests, None, None, "rules: none"),
        config(requests, Some(&few), None, "rules: deny 10 items"),
    ];
    let names = [
        "deny 10% at random",
        "deny 30% at random",
        "deny 50% at random",
        "deny 90% at random",
        "category rule",
    ];
    for (rule, name) in rules.iter().zip(names) {
        configs.push(config(requests, Some(rule), None, &format!("rules: {name}")));
    }
    configs.push(config(
        requests,
        None,
        Some(unavailable),
        "rules: 50% unavailable",
    ));
    be::rule_latency(catalog, engine.model(), &configs, 10, opts)
}
