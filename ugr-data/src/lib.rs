//! ugr's data readers: the public benchmark formats (LETTER/LC-Rec, Amazon-2023, MiniOneRec; `docs/training.md`) and
//! users' own interaction logs, all producing one [`Dataset`]; SID indexes ([`index`]) and
//! item embeddings ([`embeddings`]). The trainer re-exports this crate as `ugr_train::data`.
//!
//! Every reader turns malformed input into a typed error naming the file and the line
//! ([`DataError`], [`index::IndexError`], [`embeddings::EmbeddingError`]); none panics
//! (`fuzz/` runs them on arbitrary bytes).
//!
//! | format | files | split |
//! |---|---|---|
//! | [`letter`] (LETTER / LC-Rec / TIGER) | `<Name>.inter.json` + `<Name>.index.json` | leave-one-out |
//! | [`amazon23`] | `<Name>.{train,valid,test}.inter` (TSV) + `<Name>.index.json` | given (global time) |
//! | [`minionerec`] | `valid/*.csv`, `test/*.csv`, `index/*.index.json` | given; no train split |
//! | [`interactions`] | a `user,item,timestamp` CSV + a SID index | leave-one-out or global time 8:1:1 |
//! | [`synthetic`] | none: generated (`builtin:synthetic`) | leave-one-out |
//!
//! Training data is kept as whole user sequences ([`TrainSequence`]): every position from
//! `first_target` on is a next-item target predicted from the items before it, so one
//! causal pass trains all prefixes of a user. Valid and test rows are [`Example`]s whose
//! history is already truncated to the last `max_history` items.

pub mod amazon23;
pub mod embeddings;
pub mod index;
pub mod interactions;
pub mod letter;
pub mod minionerec;
pub mod synthetic;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ugr_core::{Catalog, ItemId};

use self::index::{IndexError, SidIndex};

/// A next-item example: history (most recent last) and target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Dense user number within the dataset.
    pub user: u32,
    /// The last `max_history` items before the target.
    pub history: Vec<ItemId>,
    /// The item to predict.
    pub target: ItemId,
}

/// A user's training sequence: `items[first_target..]` are targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainSequence {
    /// Dense user number within the dataset.
    pub user: u32,
    /// Chronological items.
    pub items: Vec<ItemId>,
    /// First position that is a target (>= 1 for the public splits).
    pub first_target: usize,
}

impl TrainSequence {
    /// Number of targets.
    pub fn targets(&self) -> usize {
        self.items.len().saturating_sub(self.first_target)
    }
}

/// Which split to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Split {
    /// Training sequences.
    Train,
    /// Validation rows.
    Valid,
    /// Test rows.
    Test,
}

/// How a plain interactions CSV is split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SplitProtocol {
    /// Per user: test = last item, valid = second last, train = the rest.
    #[default]
    Loo,
    /// All next-item samples sorted by time: first 80% train, next 10% valid, last 10% test.
    Time,
}

/// History items kept for valid and test rows by default (and read by the model).
pub const DEFAULT_MAX_HISTORY: usize = 20;

/// Options shared by the readers (with the `clap` feature, also the command line's data
/// flags: `--max-history`, `--skip-unknown`, `--index`, `--split-protocol`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct LoadOptions {
    /// History items kept (and read by the model).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_MAX_HISTORY))]
    pub max_history: usize,
    /// Drop interactions with items missing from the SID index (reported) instead of failing.
    #[cfg_attr(feature = "clap", arg(long))]
    pub skip_unknown: bool,
    /// SID index: required for an interactions CSV; for a LETTER or Amazon-2023 directory it
    /// replaces the dataset's own index (e.g. SIDs from `ugr sid build`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub index: Option<PathBuf>,
    /// Split protocol for an interactions CSV.
    #[cfg_attr(feature = "clap", arg(long = "split-protocol", id = "split_protocol", value_name = "SPLIT_PROTOCOL", value_enum, default_value_t = SplitProtocol::Loo))]
    pub split: SplitProtocol,
    /// Leave this fraction of the items out, as the new items of a cold-start study: drawn
    /// with a fixed seed ([`cold_items`]), removed from the catalog, from every training
    /// sequence and from the valid and test histories; rows whose target is one of them are
    /// dropped. 0 keeps every item.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0, value_name = "FRACTION"))]
    #[serde(default)]
    pub cold_items: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_history: DEFAULT_MAX_HISTORY,
            skip_unknown: false,
            index: None,
            split: SplitProtocol::Loo,
            cold_items: 0.0,
        }
    }
}

/// Why data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Malformed content at a known place.
    #[error("{path}: line {line}: expected {expected}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What was expected there (and what was found).
        expected: String,
    },
    /// Items missing from the SID index.
    #[error(
        "{path}: {count} interaction(s) name items missing from the SID index (first: {first:?}); \
         pass --skip-unknown to drop them"
    )]
    UnknownItems {
        /// The file.
        path: PathBuf,
        /// How many interactions.
        count: usize,
        /// The first few unknown ids.
        first: Vec<String>,
    },
    /// The directory matches no known format.
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The SID index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, line: usize, expected: impl Into<String>) -> Self {
        DataError::Parse {
            path: path.to_owned(),
            line,
            expected: expected.into(),
        }
    }
}

/// A dataset ready for training and evaluation.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Short name (the file stem, or `synthetic`).
    pub name: String,
    /// The format it was read from.
    pub format: &'static str,
    /// The catalog; popularity = number of training targets of each item.
    pub catalog: Catalog,
    /// Training sequences (empty for evaluation-only data).
    pub train: Vec<TrainSequence>,
    /// Validation rows.
    pub valid: Vec<Example>,
    /// Test rows.
    pub test: Vec<Example>,
    /// Item titles, where the data has them.
    pub titles: BTreeMap<ItemId, String>,
    /// Interactions dropped because their item is not in the index.
    pub skipped_unknown: usize,
}

/// Keeps the last `n` items.
pub(crate) fn last_n(items: &[ItemId], n: usize) -> Vec<ItemId> {
    items[items.len().saturating_sub(n)..].to_vec()
}

/// Counts training targets per item (the catalog's popularity).
pub(crate) fn popularity(train: &[TrainSequence]) -> BTreeMap<ItemId, u32> {
    let mut counts = BTreeMap::new();
    for s in train {
        for &item in &s.items[s.first_target.min(s.items.len())..] {
            *counts.entry(item).or_insert(0u32) += 1;
        }
    }
    counts
}

/// Builds the catalog from an index and training popularity.
pub(crate) fn build_catalog(
    index: &SidIndex,
    train: &[TrainSequence],
    path: &Path,
) -> Result<Catalog, DataError> {
    let pop = popularity(train);
    Ok(index.catalog(|item| pop.get(&item).copied().unwrap_or(0), path)?)
}

/// Tracks items missing from the index while reading.
pub(crate) struct UnknownItems {
    count: usize,
    first: Vec<String>,
}

impl UnknownItems {
    pub(crate) fn new() -> Self {
        UnknownItems {
            count: 0,
            first: Vec::new(),
        }
    }

    pub(crate) fn note(&mut self, id: impl Into<String>) {
        self.count += 1;
        if self.first.len() < 5 {
            self.first.push(id.into());
        }
    }

    /// Fails unless skipping is allowed; returns the number skipped.
    pub(crate) fn finish(self, path: &Path, skip: bool) -> Result<usize, DataError> {
        if self.count > 0 && !skip {
            return Err(DataError::UnknownItems {
                path: path.to_owned(),
                count: self.count,
                first: self.first,
            });
        }
        Ok(self.count)
    }
}

/// Reads a dataset, detecting the format from the directory's files.
///
/// `builtin:synthetic` generates the built-in synthetic dataset instead (with its own SIDs,
/// or those of `opts.index`, e.g. from `ugr sid build --interactions builtin:synthetic`).
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let ds = load_all(path, opts)?;
    if opts.cold_items == 0.0 {
        return Ok(ds);
    }
    if !(0.0..1.0).contains(&opts.cold_items) {
        return Err(DataError::Format {
            path: path.to_owned(),
            reason: format!("--cold-items {} must be in [0, 1)", opts.cold_items),
        });
    }
    let cold = cold_items(&ds.catalog, opts.cold_items);
    ds.without_items(&cold).map_err(|e| DataError::Format {
        path: path.to_owned(),
        reason: format!("--cold-items: {e}"),
    })
}

/// The items a cold-start study leaves out: `fraction` of the catalog's items, drawn by a
/// fixed seed, so that every command (training, evaluation, `ugr catalog`) names the same ones.
pub fn cold_items(catalog: &Catalog, fraction: f64) -> Vec<ItemId> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut items = catalog.item_ids().to_vec();
    items.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0xc01d_57a7));
    items.truncate((items.len() as f64 * fraction).round() as usize);
    items.sort_unstable();
    items
}

fn load_all(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    if path == Path::new(synthetic::BUILTIN) {
        let spec = synthetic::SyntheticSpec::default();
        return match &opts.index {
            None => Ok(synthetic::generate(&spec, opts.max_history)),
            Some(index) => synthetic::generate_with_index(&spec, opts.max_history, index),
        };
    }
    if path.is_file() {
        return interactions::read(path, opts);
    }
    let names = dir_names(path)?;
    if let Some(n) = names.iter().find(|n| n.ends_with(".inter.json")) {
        return letter::read(path, n.trim_end_matches(".inter.json"), opts);
    }
    if let Some(n) = names.iter().find(|n| n.ends_with(".train.inter")) {
        return amazon23::read(path, n.trim_end_matches(".train.inter"), opts);
    }
    if names.iter().any(|n| n == "index") && names.iter().any(|n| n == "test") {
        return minionerec::read(path, opts);
    }
    if let Some(n) = names.iter().find(|n| n.ends_with(".csv")) {
        return interactions::read(&path.join(n), opts);
    }
    Err(DataError::Format {
        path: path.to_owned(),
        reason:
            "no <Name>.inter.json, <Name>.train.inter, MiniOneRec index/ + test/, or interactions CSV found"
                .into(),
    })
}

/// The sorted file names of a dataset directory.
fn dir_names(path: &Path) -> Result<Vec<String>, DataError> {
    let entries = std::fs::read_dir(path).map_err(|e| DataError::io(path, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
        .collect();
    names.sort();
    Ok(names)
}

/// The raw per-user chronological item sequences of a dataset, without any SID index:
/// a LETTER directory (`<Name>.inter.json`), an Amazon-2023 directory (its train split only)
/// an interactions CSV (`user,item,timestamp`) or `builtin:synthetic`.
/// What `ugr sid build --interactions` learns item embeddings from.
pub fn raw_sequences(path: &Path) -> Result<Vec<Vec<ItemId>>, DataError> {
    if path == Path::new(synthetic::BUILTIN) {
        return Ok(synthetic::raw_sequences(&synthetic::SyntheticSpec::default()));
    }
    let mut unknown = UnknownItems::new();
    if path.is_file() {
        let seqs = interactions::read_sequences(path, |_| true, &mut unknown)?;
        return Ok(seqs
            .into_iter()
            .map(|s| s.into_iter().map(|x| x.1).collect())
            .collect());
    }
    let names = dir_names(path)?;
    if let Some(n) = names.iter().find(|n| n.ends_with(".inter.json")) {
        return letter::read_sequences(&path.join(n), |_| true, &mut unknown);
    }
    if let Some(n) = names.iter().find(|n| n.ends_with(".train.inter")) {
        return amazon23::train_sequences(path, n.trim_end_matches(".train.inter"));
    }
    if names.iter().any(|n| n == "index") && names.iter().any(|n| n == "test") {
        return Err(DataError::Format {
            path: path.to_owned(),
            reason: "a MiniOneRec directory holds only evaluation rows, no training interactions to learn SIDs from"
                .into(),
        });
    }
    if let Some(n) = names.iter().find(|n| n.ends_with(".csv")) {
        return raw_sequences(&path.join(n));
    }
    Err(DataError::Format {
        path: path.to_owned(),
        reason: "no <Name>.inter.json, <Name>.train.inter or user,item,timestamp CSV found".into(),
    })
}

fn length_stats(lengths: impl Iterator<Item = usize>) -> String {
    let mut v: Vec<usize> = lengths.collect();
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let mean = v.iter().sum::<usize>() as f64 / v.len() as f64;
    format!(
        "mean {mean:.2}, p50 {}, p90 {}, max {}",
        q(0.5),
        q(0.9),
        v[v.len() - 1]
    )
}

impl Dataset {
    /// The dataset without `items` (sorted): removed from the catalog (same SIDs and
    /// popularity for the others), from the training sequences (a sequence left with fewer
    /// than two items is dropped) and from the valid and test histories; rows whose target
    /// is one of them are dropped.
    pub fn without_items(mut self, items: &[ItemId]) -> Result<Dataset, ugr_core::Error> {
        let gone = |i: &ItemId| items.binary_search(i).is_ok();
        let mut b = ugr_core::CatalogBuilder::new(*self.catalog.vocab());
        for &i in self.catalog.item_ids() {
            if !gone(&i) {
                b.push_with_popularity(i, self.catalog.sid_of(i)?, self.catalog.popularity(i)?)?;
            }
        }
        self.catalog = b.build()?;
        self.train = self
            .train
            .into_iter()
            .filter_map(|s| {
                let first_target = s.items[..s.first_target.min(s.items.len())]
                    .iter()
                    .filter(|i| !gone(i))
                    .count();
                let kept: Vec<ItemId> = s.items.into_iter().filter(|i| !gone(i)).collect();
                (kept.len() >= 2).then(|| TrainSequence {
                    user: s.user,
                    first_target: first_target.max(1),
                    items: kept,
                })
            })
            .collect();
        let rows = |rows: Vec<Example>| -> Vec<Example> {
            rows.into_iter()
                .filter(|e| !gone(&e.target))
                .map(|e| Example {
                    history: e.history.into_iter().filter(|i| !gone(i)).collect(),
                    ..e
                })
                .collect()
        };
        self.valid = rows(self.valid);
        self.test = rows(self.test);
        self.titles.retain(|i, _| !gone(i));
        Ok(self)
    }

    /// The rows of a split (training sequences expand to one row per target, history truncated).
    pub fn examples(&self, split: Split, max_history: usize) -> Vec<Example> {
        match split {
            Split::Valid => self.valid.clone(),
            Split::Test => self.test.clone(),
            Split::Train => self
                .train
                .iter()
                .flat_map(|s| {
                    (s.first_target.max(1)..s.items.len()).map(move |t| Example {
                        user: s.user,
                        history: last_n(&s.items[..t], max_history),
                        target: s.items[t],
                    })
                })
                .collect(),
        }
    }

    /// A human-readable summary: users, items, rows per split, history lengths.
    pub fn summary(&self) -> String {
        let users: std::collections::BTreeSet<u32> = self
            .train
            .iter()
            .map(|s| s.user)
            .chain(self.valid.iter().map(|e| e.user))
            .chain(self.test.iter().map(|e| e.user))
            .collect();
        let targets: usize = self.train.iter().map(TrainSequence::targets).sum();
        let stats = self.catalog.stats();
        let mut s = String::new();
        let _ = writeln!(s, "dataset {} ({})", self.name, self.format);
        let _ = writeln!(
            s,
            "  users {}, items {} ({} SIDs, {} levels, {} colliding SIDs)",
            users.len(),
            stats.items,
            stats.sids,
            stats.levels,
            stats.colliding_sids
        );
        let _ = writeln!(
            s,
            "  train: {} sequences, {} targets; valid {} rows; test {} rows",
            self.train.len(),
            targets,
            self.valid.len(),
            self.test.len()
        );
        let _ = writeln!(
            s,
            "  train sequence length: {}",
            length_stats(self.train.iter().map(|t| t.items.len()))
        );
        let _ = writeln!(
            s,
            "  test history length: {}",
            length_stats(self.test.iter().map(|e| e.history.len()))
        );
        if self.skipped_unknown > 0 {
            let _ = writeln!(
                s,
                "  skipped {} interactions with unknown items",
                self.skipped_unknown
            );
        }
        s
    }
}

/// Where the shared benchmark data lives: `$UGR_DATA_DIR`, else `../shared/data` next
/// to the repository. `None` when absent.
pub fn shared_data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("UGR_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    dir.is_dir().then_some(dir)
}

/// The shared data directory, or `None` after telling the user (on the real stderr, which
/// the test harness does not capture) that `what` is skipped.
pub fn shared_data_or_skip(what: &str) -> Option<PathBuf> {
    let dir = shared_data_dir();
    if dir.is_none() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {what}: ../shared/data not found (set UGR_DATA_DIR to the benchmark data to run it)"
        );
    }
    dir
}
