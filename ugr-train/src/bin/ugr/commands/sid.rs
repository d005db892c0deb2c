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
    /// SIDs for new items from the codebooks `ugr sid build` saved (`<name>.codebooks.json`),
    /// avoiding the SIDs a catalog already uses; writes an index for `ugr catalog --add`.
    Assign(SidAssignArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("catalog").required(true).args(["index", "model"])))]
pub(crate) struct SidAssignArgs {
    /// The codebooks saved by `ugr sid build` (`<name>.codebooks.json`).
    #[arg(long)]
    pub(crate) codebooks: PathBuf,
    /// The new items' embeddings, in the space the codebooks were built from: `.npy` (row i
    /// = item i) or CSV (`item_id,v1,v2,...`).
    #[arg(long)]
    pub(crate) embeddings: PathBuf,
    /// The current catalog's index (`*.index.json`): its SIDs are not given out again.
    #[arg(long)]
    pub(crate) index: Option<PathBuf>,
    /// Or the current catalog as an artifact (`ugr export` / `ugr catalog`).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// The index of the new items to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["embeddings", "interactions"])))]
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
        SidCommand::Assign(args) => sid_assign(&args),
    }
}

pub(crate) fn sid_build(a: &SidBuildArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=8).contains(&a.levels) && (1..=65536).contains(&a.codebook),
        "--levels must be 1..=8 and --codebook 1..=65536"
    );
    let start = std::time::Instant::now();
    let content = a.embeddings.as_deref().map(sid::Embeddings::read).transpose()?;
    // Every item of the catalog gets a SID: those of the dataset's index (when it has one)
    // and of its interactions, or those of the embeddings.
    let mut catalog_items: Vec<ugr_core::ItemId> = Vec::new();
    let emb = match (&content, &a.interactions) {
        (Some(e), None) => e.clone(),
        (_, Some(path)) => {
            let seqs = data::raw_sequences(path)?;
            catalog_items = seqs.iter().flatten().copied().collect();
            if let Ok(ds) = data::load(path, &data::LoadOptions::default()) {
                catalog_items.extend_from_slice(ds.catalog.item_ids());
            }
            catalog_items.sort_unstable();
            catalog_items.dedup();
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
    let (signal, blind) = sid::split_blind(&emb, &catalog_items);
    anyhow::ensure!(!signal.items.is_empty(), "no item has a non-zero embedding");
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
    let mut built = sid::build(&signal, &cfg);
    sid::place_blind(
        &mut built,
        &blind,
        content.as_ref().filter(|_| a.interactions.is_some()),
    );
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    built
        .write_index(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let stats_path = stats_path(&a.out);
    std::fs::write(&stats_path, serde_json::to_string_pretty(&built.stats)?)
        .with_context(|| format!("writing {}", stats_path.display()))?;
    let codebooks_path = sibling(&a.out, "codebooks.json");
    let codebooks = sid::Codebooks {
        dim: signal.dim,
        centroids: built.centroids.clone(),
    };
    std::fs::write(&codebooks_path, serde_json::to_string(&codebooks)?)
        .with_context(|| format!("writing {}", codebooks_path.display()))?;
    print!("{}", built.summary());
    println!(
        "wrote {}, {} and {} ({:.1}s)",
        a.out.display(),
        stats_path.display(),
        codebooks_path.display(),
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
    sibling(out, "stats.json")
}

/// `x.index.json` -> `x.<suffix>` (otherwise `<out>.<suffix>`): the files saved beside an index.
pub(crate) fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("sid");
    let stem = name.strip_suffix(".index.json").unwrap_or(name);
    out.with_file_name(format!("{stem}.{suffix}"))
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

pub(crate) fn sid_assign(a: &SidAssignArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.codebooks)
        .with_context(|| format!("reading {}", a.codebooks.display()))?;
    let codebooks: sid::Codebooks = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected the codebooks.json of `ugr sid build`",
            a.codebooks.display()
        )
    })?;
    anyhow::ensure!(
        !codebooks.centroids.is_empty()
            && codebooks.dim > 0
            && codebooks
                .centroids
                .iter()
                .all(|c| !c.is_empty() && c.len() % codebooks.dim == 0),
        "{}: malformed codebooks",
        a.codebooks.display()
    );
    let emb = sid::Embeddings::read(&a.embeddings)?;
    anyhow::ensure!(
        emb.dim == codebooks.dim,
        "{} has {} dimensions, the codebooks {}",
        a.embeddings.display(),
        emb.dim,
        codebooks.dim
    );
    let catalog = match (&a.index, &a.model) {
        (Some(path), _) => SidIndex::read(path)?.catalog(|_| 0, path)?,
        (None, Some(path)) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            ugr_core::Bundle::from_bytes(&bytes)
                .with_context(|| format!("{}: not a ugr artifact", path.display()))?
                .catalog
        }
        (None, None) => unreachable!("clap requires one"),
    };
    if let Some(&dup) = emb.items.iter().find(|&&i| catalog.position(i).is_some()) {
        anyhow::bail!(
            "item {dup} of {} is already in the catalog",
            a.embeddings.display()
        );
    }
    let clustered = codebooks.centroids.len();
    let levels = catalog.vocab().levels();
    anyhow::ensure!(
        levels == clustered || levels == clustered + 1,
        "the codebooks give {clustered} levels, the catalog has {levels}"
    );
    let sids: Vec<Vec<u32>> = (0..catalog.sid_count() as u32)
        .map(|s| catalog.sid(s).codes().iter().map(|&c| u32::from(c)).collect())
        .collect();
    // With the extra collision level, the clustered codes may repeat and the extra code
    // separates them; otherwise the clustered SIDs themselves avoid the taken ones.
    let mut taken: std::collections::BTreeSet<Vec<u32>> = if levels == clustered {
        sids.iter().cloned().collect()
    } else {
        Default::default()
    };
    let mut full: std::collections::BTreeSet<Vec<u32>> = sids.into_iter().collect();
    let mut out = std::collections::BTreeMap::new();
    for (item, mut codes) in emb.items.iter().zip(codebooks.assign(&emb, &mut taken)) {
        if levels > clustered {
            let extra = catalog.vocab().codebook_size(clustered);
            let free = (0..extra).find(|&c| {
                let mut t = codes.clone();
                t.push(c);
                !full.contains(&t)
            });
            codes.push(free.unwrap_or(0));
        }
        let sid = ugr_core::Sid::new(&codes.iter().map(|&c| c as u16).collect::<Vec<_>>())?;
        catalog
            .vocab()
            .check(&sid)
            .with_context(|| format!("item {item}"))?;
        full.insert(codes);
        let tokens: Vec<String> = sid.to_string().split_inclusive('>').map(str::to_owned).collect();
        out.insert(item.as_u32().to_string(), tokens);
    }
    let collisions = out.len() - out.values().collect::<std::collections::BTreeSet<_>>().len();
    std::fs::write(&a.out, serde_json::to_string(&out)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {}: SIDs for {} new items ({} share a SID with another new item)",
        a.out.display(),
        out.len(),
        collisions
    );
    Ok(())
}
