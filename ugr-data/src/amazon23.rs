//! The small Amazon-2023 format: `<Name>.{train,valid,test}.inter`, tab-separated with the
//! header `user_id:token  item_id_list:token_seq  item_id:token`, one next-item sample
//! per row (`user<TAB>space-separated history<TAB>target`), plus `<Name>.index.json` and
//! optional `<Name>.item.json` titles. The split is given (global time 8:1:1).
//!
//! Training rows of one user are prefixes of each other; they are merged into one
//! sequence per chain so that one causal pass trains them all (a row that is not a prefix
//! of a longer one stays a sequence of its own).

use std::collections::BTreeMap;
use std::path::Path;

use ugr_core::ItemId;

use super::index::SidIndex;
use super::{DataError, Dataset, Example, LoadOptions, TrainSequence, UnknownItems, build_catalog, last_n};

struct Row {
    user: String,
    history: Vec<ItemId>,
    target: ItemId,
}

fn read_rows(
    path: &Path,
    is_known: impl Fn(ItemId) -> bool,
    unknown: &mut UnknownItems,
) -> Result<Vec<Row>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if i == 0 && line.starts_with("user_id") {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 3 {
            return Err(DataError::parse(
                path,
                line_no,
                format!(
                    "3 tab-separated fields (user, history, target), found {}",
                    fields.len()
                ),
            ));
        }
        let parse = |s: &str| -> Result<ItemId, DataError> {
            s.parse::<u32>()
                .map(ItemId::new)
                .map_err(|_| DataError::parse(path, line_no, format!("an item id, found {s:?}")))
        };
        let mut history = Vec::new();
        let mut known = true;
        for tok in fields[1].split_whitespace() {
            let item = parse(tok)?;
            if is_known(item) {
                history.push(item);
            } else {
                unknown.note(tok);
            }
        }
        let target = parse(fields[2].trim())?;
        if !is_known(target) {
            unknown.note(fields[2].trim());
            known = false;
        }
        if known {
            rows.push(Row {
                user: fields[0].to_owned(),
                history,
                target,
            });
        }
    }
    Ok(rows)
}

/// Reads `<dir>/<name>.{train,valid,test}.inter` with `<name>.index.json`.
pub fn read(dir: &Path, name: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let index_path = opts
        .index
        .clone()
        .unwrap_or_else(|| dir.join(format!("{name}.index.json")));
    let index = SidIndex::read(&index_path)?;
    let mut unknown = UnknownItems::new();
    let mut users: BTreeMap<String, u32> = BTreeMap::new();
    let mut split = |part: &str| -> Result<Vec<Row>, DataError> {
        read_rows(
            &dir.join(format!("{name}.{part}.inter")),
            |i| index.sids.contains_key(&i),
            &mut unknown,
        )
    };
    let train_rows = split("train")?;
    let valid_rows = split("valid")?;
    let test_rows = split("test")?;
    let skipped = unknown.finish(&dir.join(format!("{name}.*.inter")), opts.skip_unknown)?;
    for r in train_rows.iter().chain(&valid_rows).chain(&test_rows) {
        let next = users.len() as u32;
        users.entry(r.user.clone()).or_insert(next);
    }
    let train = merge_prefix_chains(&train_rows, &users);
    let examples = |rows: &[Row]| -> Vec<Example> {
        rows.iter()
            .map(|r| Example {
                user: users[&r.user],
                history: last_n(&r.history, opts.max_history),
                target: r.target,
            })
            .collect()
    };
    let catalog = build_catalog(&index, &train, &index_path)?;
    Ok(Dataset {
        name: name.to_owned(),
        format: "amazon23",
        catalog,
        train,
        valid: examples(&valid_rows),
        test: examples(&test_rows),
        titles: read_titles(&dir.join(format!("{name}.item.json"))),
        skipped_unknown: skipped,
    })
}

/// Merges a user's rows whose full sequence (history + target) is a prefix of a longer one.
fn merge_prefix_chains(rows: &[Row], users: &BTreeMap<String, u32>) -> Vec<TrainSequence> {
    let mut by_user: BTreeMap<u32, Vec<(Vec<ItemId>, usize)>> = BTreeMap::new();
    for r in rows {
        let mut seq = r.history.clone();
        seq.push(r.target);
        by_user
            .entry(users[&r.user])
            .or_default()
            .push((seq, r.history.len()));
    }
    let mut out = Vec::new();
    for (user, mut seqs) in by_user {
        // Longest first; each shorter one either extends an existing chain's targets or starts one.
        seqs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let mut chains: Vec<TrainSequence> = Vec::new();
        for (seq, first) in seqs {
            match chains.iter_mut().find(|c| c.items.starts_with(&seq)) {
                Some(c) => c.first_target = c.first_target.min(first),
                None => chains.push(TrainSequence {
                    user,
                    items: seq,
                    first_target: first,
                }),
            }
        }
        // A chain's targets are contiguous only if every position from first_target was a row;
        // the public sets produce every position, so this holds there.
        out.extend(chains);
    }
    out
}

/// Titles from an `*.item.json` (`{"id": {"title": ...}}`); empty when absent or malformed.
pub(crate) fn read_titles(path: &Path) -> BTreeMap<ItemId, String> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(default)]
        title: String,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let raw: BTreeMap<String, Info> = serde_json::from_str(&text).unwrap_or_default();
    raw.into_iter()
        .filter_map(|(k, v)| Some((ItemId::new(k.parse().ok()?), v.title)))
        .collect()
}

/// The users' item sequences of the train split (`<name>.train.inter`), without an index:
/// per user, the longest `history + target` of its rows. The valid and test files are not
/// read, so no evaluation target reaches what `ugr sid build --interactions` learns from.
pub(crate) fn train_sequences(dir: &Path, name: &str) -> Result<Vec<Vec<ItemId>>, DataError> {
    let mut unknown = UnknownItems::new();
    let rows = read_rows(&dir.join(format!("{name}.train.inter")), |_| true, &mut unknown)?;
    let mut longest: BTreeMap<String, Vec<ItemId>> = BTreeMap::new();
    for row in rows {
        let mut seq = row.history;
        seq.push(row.target);
        let slot = longest.entry(row.user).or_default();
        if seq.len() > slot.len() {
            *slot = seq;
        }
    }
    Ok(longest.into_values().collect())
}
