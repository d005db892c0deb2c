//! Users' own data: a CSV of `user,item,timestamp` (header optional; item ids are the SID
//! index's ids; timestamps are integers or decimals, any unit) plus a SID index given with
//! `--index`, split leave-one-out or by global time 8:1:1.
//!
//! Global time split: every position `i >= 1` of a user's time-ordered sequence is a
//! sample (the last `max_history` items before it -> item `i`); all samples sorted by the
//! target's time (ties: user, then position) go 80% to train, 10% to valid, 10% to test.
//! A user's training samples are then always a prefix of their sequence.

use std::collections::BTreeMap;
use std::path::Path;

use ugr_core::ItemId;

use super::index::SidIndex;
use super::letter::leave_one_out;
use super::{
    DataError, Dataset, Example, LoadOptions, SplitProtocol, TrainSequence, UnknownItems, build_catalog,
    last_n,
};

/// Reads an interactions CSV with the index named in `opts.index`.
pub fn read(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let index_path = opts.index.clone().ok_or_else(|| DataError::Format {
        path: path.to_owned(),
        reason: "an interactions CSV needs its SID index: pass --index <file>.index.json".into(),
    })?;
    let index = SidIndex::read(&index_path)?;
    let mut unknown = UnknownItems::new();
    let sequences = read_sequences(path, |item| index.sids.contains_key(&item), &mut unknown)?;
    let skipped = unknown.finish(path, opts.skip_unknown)?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("interactions")
        .to_owned();
    let mut ds = match opts.split {
        SplitProtocol::Loo => {
            let items: Vec<Vec<ItemId>> = sequences
                .iter()
                .map(|s| s.iter().map(|x| x.1).collect())
                .collect();
            leave_one_out(
                &name,
                "interactions",
                &index,
                &items,
                opts.max_history,
                &index_path,
            )?
        }
        SplitProtocol::Time => time_split(&name, &index, &sequences, opts.max_history, &index_path)?,
    };
    ds.skipped_unknown = skipped;
    Ok(ds)
}

/// Per-user time-ordered `(timestamp, item)` sequences of an interactions CSV (users in
/// the order of their ids as strings; ties in time keep the file order). Items for which
/// `keep` is false are noted in `unknown` and left out.
pub(crate) fn read_sequences(
    path: &Path,
    keep: impl Fn(ItemId) -> bool,
    unknown: &mut UnknownItems,
) -> Result<Vec<Vec<(f64, ItemId)>>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| DataError::parse(path, 0, format!("a CSV file ({e})")))?;
    let mut users: BTreeMap<String, Vec<(f64, usize, ItemId)>> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let r = record.map_err(|e| DataError::parse(path, line, format!("a CSV record ({e})")))?;
        if r.len() < 3 {
            return Err(DataError::parse(
                path,
                line,
                format!("user,item,timestamp; found {} field(s)", r.len()),
            ));
        }
        let (user, item, ts) = (&r[0], &r[1], &r[2]);
        let Ok(time) = ts.parse::<f64>() else {
            if line == 1 {
                continue; // header
            }
            return Err(DataError::parse(
                path,
                line,
                format!("a numeric timestamp, found {ts:?}"),
            ));
        };
        let id = item.parse::<u32>().map_err(|_| {
            DataError::parse(
                path,
                line,
                format!("an integer item id (as in the SID index), found {item:?}"),
            )
        })?;
        if !keep(ItemId::new(id)) {
            unknown.note(item);
            continue;
        }
        users
            .entry(user.to_owned())
            .or_default()
            .push((time, line, ItemId::new(id)));
    }
    Ok(users
        .into_values()
        .map(|mut v| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v.into_iter().map(|(t, _, i)| (t, i)).collect()
        })
        .collect())
}

fn time_split(
    name: &str,
    index: &SidIndex,
    sequences: &[Vec<(f64, ItemId)>],
    max_history: usize,
    index_path: &Path,
) -> Result<Dataset, DataError> {
    let mut samples: Vec<(f64, usize, usize)> = Vec::new();
    for (u, seq) in sequences.iter().enumerate() {
        for (i, &(t, _)) in seq.iter().enumerate().skip(1) {
            samples.push((t, u, i));
        }
    }
    samples.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let n = samples.len();
    let (n_train, n_valid) = (n * 8 / 10, n / 10);
    let mut train_end = vec![0usize; sequences.len()];
    let mut valid = Vec::new();
    let mut test = Vec::new();
    for (k, &(_, u, i)) in samples.iter().enumerate() {
        let items: Vec<ItemId> = sequences[u].iter().map(|x| x.1).collect();
        if k < n_train {
            train_end[u] = train_end[u].max(i + 1);
        } else {
            let ex = Example {
                user: u as u32,
                history: last_n(&items[..i], max_history),
                target: items[i],
            };
            if k < n_train + n_valid {
                valid.push(ex)
            } else {
                test.push(ex)
            }
        }
    }
    let train: Vec<TrainSequence> = train_end
        .iter()
        .enumerate()
        .filter(|&(_, &end)| end >= 2)
        .map(|(u, &end)| TrainSequence {
            user: u as u32,
            items: sequences[u][..end].iter().map(|x| x.1).collect(),
            first_target: 1,
        })
        .collect();
    let catalog = build_catalog(index, &train, index_path)?;
    Ok(Dataset {
        name: name.to_owned(),
        format: "interactions",
        catalog,
        train,
        valid,
        test,
        titles: BTreeMap::new(),
        skipped_unknown: 0,
    })
}
