//! `ugr sid`: building Semantic IDs and the statistics of an index.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ugr_train::data;
use ugr_train::data::index::SidIndex;
use ugr_train::sid;

#[derive(Subcommand)]
pub(crate) enum SidCommand {
    /// Print the shape of a SID index: prefixes and codes per level, collisions, trie size.
    Stats {
        /// The `*.index.json` file.
        #[arg(long)]
        index: PathBuf,
    },
    /// Build Semantic IDs (RQ-KMeans) from item embeddings or from interactions alone.
    Build(SidBuildArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["embeddings", "interactions"])))]
pub(crate) struct SidBuildArgs {
    /// Item embeddings: `.npy` (float32 items x dim; row i = item i) or CSV (`item_id,v1,v2,...`).
    #[arg(long)]
    pub(crate) embeddings: Option<PathBuf>,
    /// Interactions instead of embeddings (a LETTER directory, an Amazon-2023 directory (its
    /// train split) or a `user,item,timestamp` CSV):
    /// collaborative embeddings from the PPMI co-occurrence matrix by truncated SVD.
    #[arg(long)]
    pub(crate) interactions: Option<PathBuf>,
    /// The index to write (`<name>.index.json`); statistics go to `<name>.stats.json`.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// SID levels from the clustering.
    #[arg(long, default_value_t = 4)]
    pub(crate) levels: usize,
    /// Codes per level.
    #[arg(long, default_value_t = 256)]
    pub(crate) codebook: usize,
    /// Collision handling.
    #[arg(long, value_enum, default_value_t = sid::Collisions::ExtraLevel)]
    pub(crate) collisions: sid::Collisions,
    /// Size-constrained k-means: every code holds at most ceil(items / codebook) items per level.
    #[arg(long)]
    pub(crate) balanced: bool,
    /// Most k-means iterations per level.
    #[arg(long, default_value_t = 50)]
    pub(crate) iters: usize,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Collaborative embeddings: dimensions.
    #[arg(long, default_value_t = 64)]
    pub(crate) dim: usize,
    /// Collaborative embeddings: co-occurrence window (items apart in a user's sequence).
    #[arg(long, default_value_t = 5)]
    pub(crate) window: usize,
    /// Collaborative embeddings: items held out at the end of each user's sequence (2 keeps the
    /// valid and test targets of a leave-one-out split out of the SIDs; 0 uses everything).
    #[arg(long, default_value_t = 2)]
    pub(crate) holdout: usize,
}

/// Runs `ugr sid ...`.
pub(crate) fn run(cmd: SidCommand) -> Result<()> {
    match cmd {
        SidCommand::Stats { index } => sid_stats(&index),
        SidCommand::Build(args) => sid_build(&args),
    }
}

pub(crate) fn sid_build(a: &SidBuildArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=8).contains(&a.levels) && (1..=65536).contains(&a.codebook),
        "--levels must be 1..=8 and --codebook 1..=65536"
    );
    let start = std::time::Instant::now();
    let emb = match (&a.embeddings, &a.interactions) {
        (Some(path), _) => sid::Embeddings::read(path)?,
        (None, Some(path)) => {
            let seqs = data::raw_sequences(path)?;
            let cfg = sid::CollabConfig {
                dim: a.dim,
                window: a.window.max(1),
                holdout: a.holdout,
                seed: a.seed,
                ..sid::CollabConfig::default()
            };
            let emb = sid::collaborative(&seqs, &cfg);
            println!(
                "collaborative embeddings: {} users, {} items, {} dims ({:.1}s)",
                seqs.len(),
                emb.items.len(),
                emb.dim,
                start.elapsed().as_secs_f64()
            );
            emb
        }
        (None, None) => unreachable!("clap requires one source"),
    };
    let extra = usize::from(a.collisions == sid::Collisions::ExtraLevel);
    anyhow::ensure!(
        a.levels + extra <= 8,
        "--levels {} plus the extra collision level exceeds 8 levels",
        a.levels
    );
    let cfg = sid::BuildConfig {
        levels: a.levels,
        codebook: a.codebook,
        iters: a.iters,
        seed: a.seed,
        balanced: a.balanced,
        collisions: a.collisions,
        ..sid::BuildConfig::default()
    };
    let built = sid::build(&emb, &cfg);
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    built
        .write_index(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let stats_path = stats_path(&a.out);
    std::fs::write(&stats_path, serde_json::to_string_pretty(&built.stats)?)
        .with_context(|| format!("writing {}", stats_path.display()))?;
    print!("{}", built.summary());
    println!(
        "wrote {} and {} ({:.1}s)",
        a.out.display(),
        stats_path.display(),
        start.elapsed().as_secs_f64()
    );
    // The written file must read back as an index with one catalog entry per item.
    let index = SidIndex::read(&a.out)?;
    anyhow::ensure!(
        index.sids.len() == built.items.len(),
        "the written index lost items"
    );
    Ok(())
}

/// `x.index.json` -> `x.stats.json` (otherwise `<out>.stats.json`).
pub(crate) fn stats_path(out: &Path) -> PathBuf {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("sid");
    let stem = name.strip_suffix(".index.json").unwrap_or(name);
    out.with_file_name(format!("{stem}.stats.json"))
}

pub(crate) fn sid_stats(path: &Path) -> Result<()> {
    let index = SidIndex::read(path)?;
    let catalog = index.catalog(|_| 0, path)?;
    let s = catalog.stats();
    println!("{}", path.display());
    println!("items {}  distinct SIDs {}  levels {}", s.items, s.sids, s.levels);
    println!("codebook sizes {:?}", catalog.vocab().codebook_sizes());
    println!("level  codes used  prefixes  max items per prefix  child lookup");
    for l in 0..s.levels {
        println!(
            "{:>5}  {:>10}  {:>8}  {:>20}  {}",
            l + 1,
            s.codes_used[l],
            s.prefixes[l],
            s.max_items_per_prefix[l],
            if catalog.trie().is_dense(l) {
                "bitmap"
            } else {
                "binary search"
            }
        );
    }
    println!(
        "collisions: {} SIDs shared by {} items",
        s.colliding_sids, s.colliding_items
    );
    println!(
        "trie: {} nodes, {} bytes; catalog arrays {} bytes",
        catalog.trie().node_count(),
        catalog.trie().heap_bytes(),
        catalog.heap_bytes()
    );
    Ok(())
}
