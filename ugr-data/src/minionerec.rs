//! MiniOneRec format (Amazon 2018 Industrial / Office): `valid/*.csv` and `test/*.csv`
//! with the header `user_id,history_item_title,item_title,history_item_id,item_id,
//! history_item_sid,item_sid` (list columns in Python literal syntax, titles with commas
//! and quotes: read with a real CSV parser), `index/*.index.json` and `index/*.item.json`.
//! The train split is absent here: these sets serve evaluation only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ugr_core::ItemId;

use super::amazon23::read_titles;
use super::index::SidIndex;
use super::{DataError, Dataset, Example, LoadOptions, UnknownItems, last_n};

fn single_file(dir: &Path, suffix: &str) -> Result<PathBuf, DataError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(DataError::Format {
            path: dir.to_owned(),
            reason: format!("expected exactly one *{suffix} file, found {n}"),
        }),
    }
}

/// Parses a Python list literal of integers such as `[117, 118]`.
fn int_list(s: &str) -> Option<Vec<u32>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|t| t.trim().parse().ok()).collect()
}

fn read_split(
    path: &Path,
    index: &SidIndex,
    users: &mut BTreeMap<String, u32>,
    unknown: &mut UnknownItems,
    max_history: usize,
) -> Result<Vec<Example>, DataError> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| DataError::parse(path, 0, format!("a CSV file ({e})")))?;
    let headers = reader
        .headers()
        .map_err(|e| DataError::parse(path, 1, format!("a CSV header ({e})")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::parse(path, 1, format!("a column named {name}")))
    };
    let (c_user, c_hist, c_item) = (col("user_id")?, col("history_item_id")?, col("item_id")?);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| DataError::parse(path, line, format!("a CSV record ({e})")))?;
        let field = |c: usize| record.get(c).unwrap_or("");
        let history = int_list(field(c_hist)).ok_or_else(|| {
            DataError::parse(
                path,
                line,
                format!("a list like [1, 2] in history_item_id, found {:?}", field(c_hist)),
            )
        })?;
        let target: u32 = field(c_item).trim().parse().map_err(|_| {
            DataError::parse(
                path,
                line,
                format!("an integer item_id, found {:?}", field(c_item)),
            )
        })?;
        let mut kept = Vec::with_capacity(history.len());
        for id in history {
            if index.sids.contains_key(&ItemId::new(id)) {
                kept.push(ItemId::new(id));
            } else {
                unknown.note(id.to_string());
            }
        }
        if !index.sids.contains_key(&ItemId::new(target)) {
            unknown.note(target.to_string());
            continue;
        }
        let next = users.len() as u32;
        let user = *users.entry(field(c_user).to_owned()).or_insert(next);
        rows.push(Example {
            user,
            history: last_n(&kept, max_history),
            target: ItemId::new(target),
        });
    }
    Ok(rows)
}

/// Reads a MiniOneRec dataset directory (`index/`, `valid/`, `test/`).
pub fn read(dir: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let index_path = single_file(&dir.join("index"), ".index.json")?;
    let index = SidIndex::read(&index_path)?;
    let mut users = BTreeMap::new();
    let mut unknown = UnknownItems::new();
    let valid_path = single_file(&dir.join("valid"), ".csv")?;
    let test_path = single_file(&dir.join("test"), ".csv")?;
    let valid = read_split(&valid_path, &index, &mut users, &mut unknown, opts.max_history)?;
    let test = read_split(&test_path, &index, &mut users, &mut unknown, opts.max_history)?;
    let skipped = unknown.finish(&test_path, opts.skip_unknown)?;
    let catalog = index.catalog(|_| 0, &index_path)?;
    let name = index_path
        .file_name()
        .and_then(|n| n.to_str())
        .map_or("minionerec".to_owned(), |n| {
            n.trim_end_matches(".index.json").to_owned()
        });
    let titles = single_file(&dir.join("index"), ".item.json")
        .map(|p| read_titles(&p))
        .unwrap_or_default();
    Ok(Dataset {
        name,
        format: "minionerec",
        catalog,
        train: Vec::new(),
        valid,
        test,
        titles,
        skipped_unknown: skipped,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_int_lists() {
        assert_eq!(super::int_list("[117, 118]"), Some(vec![117, 118]));
        assert_eq!(super::int_list(" [] "), Some(vec![]));
        assert_eq!(super::int_list("[1, x]"), None);
        assert_eq!(super::int_list("1, 2"), None);
    }
}
