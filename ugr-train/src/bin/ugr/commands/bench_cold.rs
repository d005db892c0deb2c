//! `ugr bench cold`: a model trained without some items (`--cold-items`), served with them
//! added (`ugr catalog --add`), against the same model without them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ugr_train::data;

use super::DataArgs;

#[derive(Args)]
pub(crate) struct BenchColdArgs {
    /// The artifact serving the new items (`ugr catalog --add` on the run's export).
    #[arg(long = "with")]
    pub(crate) with: PathBuf,
    /// The run's own export (without the new items).
    #[arg(long)]
    pub(crate) without: PathBuf,
    /// The dataset, with `--cold-items` as the run was trained (test rows are read in full).
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Threads scoring rows.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Write the figures as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

pub(crate) fn run(a: &BenchColdArgs) -> Result<()> {
    let fraction = a.data.load.cold_items;
    anyhow::ensure!(
        fraction > 0.0,
        "give --cold-items FRACTION, as the run was trained"
    );
    let open = |p: &PathBuf| ugr_core::Engine::open(p).with_context(|| format!("opening {}", p.display()));
    let (with, without) = (open(&a.with)?, open(&a.without)?);
    let full = data::load(
        &a.data.data,
        &data::LoadOptions {
            cold_items: 0.0,
            ..a.data.load_options()
        },
    )?;
    let cold = data::cold_items(&full.catalog, fraction);
    anyhow::ensure!(
        *with.catalog() == full.catalog || with.catalog().len() == full.catalog.len(),
        "{} does not serve the whole catalog of {}",
        a.with.display(),
        full.name
    );
    let t = std::time::Instant::now();
    let r = ugr_train::cold::study(&with, &without, &full, &cold, a.threads)?;
    let cell = |s: &ugr_train::rules::Score| format!("{:.4} / {:.4} (SE {:.4})", s.hr10, s.ndcg10, s.hr10_se);
    println!(
        "ugr bench cold: {} new items ({:.0}% of {}), {} served by the generative head and their family's \
         item-head mean",
        r.new_items,
        100.0 * fraction,
        full.name,
        with.served().new_sids()
    );
    println!(
        "\ntest rows whose target is new ({}): HR@10 / NDCG@10",
        r.new_rows
    );
    println!("  {:<44} {}", "served (every item)", cell(&r.served));
    println!(
        "  {:<44} {}",
        "served, generative head only",
        cell(&r.served_generative)
    );
    println!(
        "  {:<44} {}",
        "served, among new items only",
        cell(&r.served_among_new)
    );
    println!(
        "  {:<44} {}",
        "popularity among new items (unseen counts)",
        cell(&r.popularity_among_new)
    );
    println!(
        "  {:<44} {:.4}",
        "random among new items (expected HR@10)", r.random_among_new_hr10
    );
    println!("\nother test rows ({}): HR@10 / NDCG@10", r.other_rows);
    println!("  {:<44} {}", "with the new items", cell(&r.other_with));
    println!("  {:<44} {}", "without them", cell(&r.other_without));
    println!(
        "  {:<44} HR@10 {:+.4} (SE {:.4}), NDCG@10 {:+.4}",
        "with - without, paired",
        r.other_difference.hr10,
        r.other_difference.hr10_se,
        r.other_difference.ndcg10
    );
    println!("(scored in {:.0} s)", t.elapsed().as_secs_f64());
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}
