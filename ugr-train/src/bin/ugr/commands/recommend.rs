//! `ugr recommend`: recommendations for a history from an artifact, through the embedded engine.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::{BackendArg, parse_pruning};

#[derive(Args)]
pub(crate) struct RecommendArgs {
    /// Artifact written by `ugr export`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// History item ids, most recent last, separated by spaces or commas.
    #[arg(long, default_value = "")]
    pub(crate) history: String,
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    #[arg(long, default_value_t = 20)]
    pub(crate) beam: usize,
    /// Never recommend an item of the history.
    #[arg(long)]
    pub(crate) exclude_history: bool,
    /// Only recommend items listed in FILE (item ids separated by whitespace or newlines).
    /// Enforced inside the search: K allowed items come back whenever the catalog has them.
    #[arg(long, value_name = "FILE")]
    pub(crate) allow: Option<PathBuf>,
    /// Never recommend the items listed in FILE (ids separated by whitespace or newlines).
    #[arg(long, value_name = "FILE")]
    pub(crate) deny: Option<PathBuf>,
    /// Only recommend items whose SID starts with this prefix, e.g. '<a_3>' or '<a_3><b_12>'
    /// (repeatable: any of them).
    #[arg(long = "prefix", value_name = "SID_PREFIX")]
    pub(crate) prefixes: Vec<String>,
    /// Mark the items listed in FILE unavailable (out of stock) on the engine before serving.
    #[arg(long, value_name = "FILE")]
    pub(crate) unavailable: Option<PathBuf>,
    /// Beam pruning: off, fixed:<nats>, or adaptive:<min>:<max>.
    #[arg(long, default_value = "off")]
    pub(crate) prune: String,
    /// Drop items whose calibrated confidence is below this.
    #[arg(long)]
    pub(crate) min_confidence: Option<f32>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Backend: auto (native when the artifact has a weight section, tract otherwise),
    /// native or tract.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub(crate) backend: BackendArg,
}

pub(crate) fn run(a: &RecommendArgs) -> Result<()> {
    let engine = ugr_core::Engine::open_with(&a.model, a.backend.into()).with_context(|| {
        format!(
            "{}: expected an artifact file written by `ugr export`",
            a.model.display()
        )
    })?;
    let history = parse_ids(&a.history, "history item")?;
    let allow = a.allow.as_deref().map(read_ids).transpose()?;
    let deny = a.deny.as_deref().map(read_ids).transpose()?.unwrap_or_default();
    let prefixes = a
        .prefixes
        .iter()
        .map(|p| {
            ugr_core::Sid::parse(p)
                .with_context(|| format!("--prefix {p:?}: expected SID tokens such as '<a_3><b_12>'"))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(path) = &a.unavailable {
        let changes: Vec<(ugr_core::ItemId, bool)> =
            read_ids(path)?.into_iter().map(|i| (i, false)).collect();
        engine
            .update_availability(&changes)
            .with_context(|| format!("--unavailable {}", path.display()))?;
    }
    let constraints = ugr_core::Constraints {
        allow: allow.as_deref(),
        deny: &deny,
        prefixes: &prefixes,
    };
    let opts = ugr_core::SearchOptions {
        beam: a.beam,
        top_k: a.k,
        exclude_history: a.exclude_history,
        pruning: parse_pruning(&a.prune)?,
        min_confidence: a.min_confidence,
        ..ugr_core::SearchOptions::default()
    };
    let recs = engine.recommend_with(&history, &constraints, &opts)?;
    if a.json {
        let items: Vec<serde_json::Value> = recs
            .items
            .iter()
            .map(|r| {
                serde_json::json!({
                    "item": r.item.as_u32(),
                    "title": engine.title(r.item),
                    "sid": engine.catalog().sid(r.sid_index).to_string(),
                    "score": r.score,
                    "log_prob": r.log_prob,
                    "posterior": r.posterior,
                    "learned_confidence": r.learned_confidence,
                    "confidence": r.confidence,
                    "hybrid": r.hybrid,
                })
            })
            .collect();
        let out = serde_json::json!({ "history": history.iter().map(|i| i.as_u32()).collect::<Vec<_>>(),
            "items": items, "model_rows": recs.stats.model_rows, "backend": engine.backend().name() });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:>4} {:>7}  {:<24} {:>8} {:>9} {:>10}  title",
        "rank", "item", "SID", "score", "posterior", "confidence"
    );
    for (i, r) in recs.items.iter().enumerate() {
        println!(
            "{:>4} {:>7}  {:<24} {:>8.3} {:>9.3} {:>10.3}  {}",
            i + 1,
            r.item.as_u32(),
            engine.catalog().sid(r.sid_index).to_string(),
            r.score,
            r.posterior,
            r.confidence,
            engine.title(r.item).unwrap_or_default()
        );
    }
    println!("(backend: {})", engine.backend().name());
    Ok(())
}

/// Item ids separated by whitespace or commas.
fn parse_ids(text: &str, what: &str) -> Result<Vec<ugr_core::ItemId>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map(ugr_core::ItemId::new)
                .with_context(|| format!("{what} {t:?} is not an item id"))
        })
        .collect()
}

/// The item ids listed in a file (separated by whitespace, newlines or commas).
pub(crate) fn read_ids(path: &std::path::Path) -> Result<Vec<ugr_core::ItemId>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_ids(&text, &format!("{}: item", path.display()))
}
