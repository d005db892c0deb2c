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
    let history = a
        .history
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map(ugr_core::ItemId::new)
                .with_context(|| format!("history item {t:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = ugr_core::SearchOptions {
        beam: a.beam,
        top_k: a.k,
        exclude_history: a.exclude_history,
        pruning: parse_pruning(&a.prune)?,
        min_confidence: a.min_confidence,
        ..ugr_core::SearchOptions::default()
    };
    let recs = engine.recommend(&history, &opts)?;
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
            engine.title(r.item).unwrap_or("")
        );
    }
    println!("(backend: {})", engine.backend().name());
    Ok(())
}
