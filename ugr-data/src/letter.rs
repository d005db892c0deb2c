//! LETTER / LC-Rec / TIGER format: `<Name>.inter.json` (user -> chronological item ids)
//! and `<Name>.index.json`, split leave-one-out per user: test target = last item,
//! valid target = second last, train = the sequence without those two (every position
//! from 1 on is a target). Users too short for a split part are left out of that part.

use std::collections::BTreeMap;
use std::path::Path;

use ugr_core::ItemId;

use super::index::SidIndex;
use super::{DataError, Dataset, Example, LoadOptions, TrainSequence, UnknownItems, build_catalog, last_n};

/// Reads `<dir>/<name>.inter.json` and `<dir>/<name>.index.json` (or the index given in
/// `opts.index`, to train on other SIDs for the same interactions).
pub fn read(dir: &Path, name: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let index_path = opts
        .index
        .clone()
        .unwrap_or_else(|| dir.join(format!("{name}.index.json")));
    let index = SidIndex::read(&index_path)?;
    let inter_path = dir.join(format!("{name}.inter.json"));
    let mut unknown = UnknownItems::new();
    let sequences = read_sequences(&inter_path, |i| index.sids.contains_key(&i), &mut unknown)?;
    let skipped = unknown.finish(&inter_path, opts.skip_unknown)?;
    let mut ds = leave_one_out(name, "letter", &index, &sequences, opts.max_history, &index_path)?;
    ds.skipped_unknown = skipped;
    Ok(ds)
}

/// Per-user chronological sequences of a `<Name>.inter.json` (users in numeric order).
/// Items for which `keep` is false are noted in `unknown` and left out.
pub(crate) fn read_sequences(
    inter_path: &Path,
    keep: impl Fn(ItemId) -> bool,
    unknown: &mut UnknownItems,
) -> Result<Vec<Vec<ItemId>>, DataError> {
    let text = std::fs::read_to_string(inter_path).map_err(|e| DataError::io(inter_path, e))?;
    let raw: BTreeMap<String, Vec<u64>> = serde_json::from_str(&text)
        .map_err(|e| DataError::parse(inter_path, e.line(), format!("{{\"user\": [item ids]}} ({e})")))?;
    let mut users: Vec<(u64, Vec<ItemId>)> = Vec::with_capacity(raw.len());
    for (key, items) in raw {
        let order = key.parse::<u64>().unwrap_or(u64::MAX);
        let mut seq = Vec::with_capacity(items.len());
        for id in items {
            let item = u32::try_from(id).ok().map(ItemId::new);
            match item.filter(|&i| keep(i)) {
                Some(i) => seq.push(i),
                None => unknown.note(id.to_string()),
            }
        }
        users.push((order, seq));
    }
    users.sort_by_key(|u| u.0);
    Ok(users.into_iter().map(|u| u.1).collect())
}

/// The leave-one-out split of chronological per-user sequences (user number = position).
pub(crate) fn leave_one_out(
    name: &str,
    format: &'static str,
    index: &SidIndex,
    sequences: &[Vec<ItemId>],
    max_history: usize,
    index_path: &Path,
) -> Result<Dataset, DataError> {
    let mut train = Vec::new();
    let mut valid = Vec::new();
    let mut test = Vec::new();
    for (u, seq) in sequences.iter().enumerate() {
        let user = u as u32;
        let n = seq.len();
        if n >= 2 {
            test.push(Example {
                user,
                history: last_n(&seq[..n - 1], max_history),
                target: seq[n - 1],
            });
        }
        if n >= 3 {
            valid.push(Example {
                user,
                history: last_n(&seq[..n - 2], max_history),
                target: seq[n - 2],
            });
        }
        if n >= 4 {
            train.push(TrainSequence {
                user,
                items: seq[..n - 2].to_vec(),
                first_target: 1,
            });
        }
    }
    let catalog = build_catalog(index, &train, index_path)?;
    Ok(Dataset {
        name: name.to_owned(),
        format,
        catalog,
        train,
        valid,
        test,
        titles: BTreeMap::new(),
        skipped_unknown: 0,
    })
}
