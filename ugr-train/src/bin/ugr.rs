//! The `ugr` command line.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use ugr_train::data::index::SidIndex;

/// ugr: uncertainty-aware generative recommendation.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Semantic ID tools.
    #[command(subcommand)]
    Sid(SidCommand),
}

#[derive(Subcommand)]
enum SidCommand {
    /// Print the shape of a SID index: prefixes and codes per level, collisions, trie size.
    Stats {
        /// The `*.index.json` file.
        #[arg(long)]
        index: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sid(SidCommand::Stats { index }) => sid_stats(&index),
    }
}

fn sid_stats(path: &std::path::Path) -> Result<()> {
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
