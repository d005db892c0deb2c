//! `ugr catalog`: a new artifact with the same model and a changed catalog (items removed,
//! items added with their SIDs), without retraining.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ugr_core::{Bundle, ItemId, Sid};

#[derive(Args)]
pub(crate) struct CatalogArgs {
    /// Artifact written by `ugr export` (or by an earlier `ugr catalog`).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// The artifact to write: the same model, the changed catalog.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Items to remove: ids separated by whitespace or newlines.
    #[arg(long, value_name = "FILE")]
    pub(crate) remove: Option<PathBuf>,
    /// Items to add with their SIDs: an index in the `*.index.json` format (`{"item":
    /// ["<a_1>", "<b_2>", ...]}`), as `ugr sid assign` writes it. Their SIDs may be any of the
    /// model's codebooks, known to the model or not.
    #[arg(long, value_name = "INDEX")]
    pub(crate) add: Option<PathBuf>,
}

pub(crate) fn run(a: &CatalogArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let bundle =
        Bundle::from_bytes(&bytes).with_context(|| format!("{}: not a ugr artifact", a.model.display()))?;
    let remove: Vec<ItemId> = match &a.remove {
        Some(path) => super::recommend::read_ids(path)?,
        None => Vec::new(),
    };
    let add: Vec<(ItemId, Sid)> = match &a.add {
        Some(path) => {
            let index = ugr_train::data::index::SidIndex::read(path)?;
            let levels = bundle.catalog.vocab().levels();
            if let Some((item, sid)) = index.sids.iter().find(|(_, s)| s.len() != levels) {
                anyhow::bail!(
                    "{}: item {item} has {} SID levels, the model {levels}",
                    path.display(),
                    sid.len()
                );
            }
            index.sids.into_iter().collect()
        }
        None => Vec::new(),
    };
    let (bundle, change) = ugr_core::served::change_catalog(bundle, &remove, &add)
        .with_context(|| format!("changing the catalog of {}", a.model.display()))?;
    std::fs::write(&a.out, bundle.to_bytes()?).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "wrote {}: {} items ({} removed, {} added; {} SIDs new to the model, scored by the generative head \
         and their family's item-head mean)",
        a.out.display(),
        change.items,
        change.removed,
        change.added,
        change.new_sids
    );
    Ok(())
}
