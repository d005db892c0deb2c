//! The `*.index.json` SID index: item id -> list of level tokens.
//!
//! `{"0": ["<a_12>", "<b_3>", "<c_200>", "<d_7>"], "1": [...], ...}`. Item ids are
//! decimal strings. Every item must have the same number of levels. The codebook size
//! of a level is 256 (the public indexes' size), or the largest code seen + 1 when
//! larger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ugr_core::{Catalog, CatalogBuilder, ItemId, Sid, SidVocab};

/// Why an index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object of string lists.
    #[error("{path}: line {line}, column {column}: expected {{\"item id\": [\"<a_N>\", ...]}}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// An item id that is not a decimal `u32`.
    #[error("{path}: item id {key:?} is not a non-negative integer")]
    ItemId {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A SID that does not parse or does not fit the vocabulary.
    #[error("{path}: item {key}: {source}")]
    Sid {
        /// The file.
        path: PathBuf,
        /// The item id.
        key: String,
        /// The core error.
        source: ugr_core::Error,
    },
    /// Items with different numbers of levels.
    #[error("{path}: item {key} has {got} levels, the first item has {expected}")]
    Levels {
        /// The file.
        path: PathBuf,
        /// The item id.
        key: String,
        /// Levels of the first item.
        expected: usize,
        /// Levels of this item.
        got: usize,
    },
    /// The index holds no item.
    #[error("{path}: the index is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The catalog could not be built (empty, duplicate item).
    #[error("{path}: {source}")]
    Catalog {
        /// The file.
        path: PathBuf,
        /// The core error.
        source: ugr_core::Error,
    },
}

/// A parsed SID index.
#[derive(Clone, Debug)]
pub struct SidIndex {
    /// The vocabulary inferred from the index.
    pub vocab: SidVocab,
    /// Item id -> SID, sorted by item id.
    pub sids: BTreeMap<ItemId, Sid>,
}

impl SidIndex {
    /// Reads and parses an index file.
    pub fn read(path: &Path) -> Result<SidIndex, IndexError> {
        let text = std::fs::read_to_string(path).map_err(|source| IndexError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses index JSON text (`path` is only used in error messages).
    pub fn parse(text: &str, path: &Path) -> Result<SidIndex, IndexError> {
        let raw: BTreeMap<String, Vec<String>> =
            serde_json::from_str(text).map_err(|source| IndexError::Json {
                path: path.to_owned(),
                line: source.line(),
                column: source.column(),
                source,
            })?;
        let mut sids = BTreeMap::new();
        let mut levels = None;
        let mut max_code = [0u32; ugr_core::vocab::MAX_LEVELS];
        for (key, tokens) in &raw {
            let id: u32 = key.parse().map_err(|_| IndexError::ItemId {
                path: path.to_owned(),
                key: key.clone(),
            })?;
            let sid =
                Sid::parse_tokens(tokens.iter().map(String::as_str)).map_err(|source| IndexError::Sid {
                    path: path.to_owned(),
                    key: key.clone(),
                    source,
                })?;
            let expected = *levels.get_or_insert(sid.len());
            if sid.len() != expected {
                return Err(IndexError::Levels {
                    path: path.to_owned(),
                    key: key.clone(),
                    expected,
                    got: sid.len(),
                });
            }
            for (l, &c) in sid.codes().iter().enumerate() {
                max_code[l] = max_code[l].max(u32::from(c));
            }
            sids.insert(ItemId::new(id), sid);
        }
        let Some(levels) = levels else {
            return Err(IndexError::Empty {
                path: path.to_owned(),
            });
        };
        let sizes: Vec<u32> = max_code[..levels].iter().map(|&m| (m + 1).max(256)).collect();
        let vocab = SidVocab::new(&sizes).map_err(|source| IndexError::Catalog {
            path: path.to_owned(),
            source,
        })?;
        Ok(SidIndex { vocab, sids })
    }

    /// Builds the catalog, with popularity counts for the expansion order of shared SIDs.
    pub fn catalog(&self, popularity: impl Fn(ItemId) -> u32, path: &Path) -> Result<Catalog, IndexError> {
        let err = |source| IndexError::Catalog {
            path: path.to_owned(),
            source,
        };
        let mut b = CatalogBuilder::new(self.vocab);
        for (&item, &sid) in &self.sids {
            b.push_with_popularity(item, sid, popularity(item)).map_err(err)?;
        }
        b.build().map_err(err)
    }
}
