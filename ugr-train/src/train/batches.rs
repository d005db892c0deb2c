//! Training windows and batches.
//!
//! A user's training sequence is cut into windows of at most `max_history + 1` items; the
//! encoder reads `BOS` + all but the window's last item, and the state before item `j`
//! predicts item `j`. A sequence that fits one window trains all its targets in one pass
//! (including the first item, predicted from the empty history: cold start, training data
//! only). Longer sequences get further windows every `stride = max_history / 4` items
//! whose last `stride` items are targets, so a target deep in a long sequence sees
//! between `3/4` of `max_history` and `max_history` previous items.
//!
//! Each epoch sorts windows by length with a seeded random tie-break, cuts batches of
//! similar length and shuffles the batch order: little padding, a different order each
//! epoch, the same order for the same (seed, epoch).

use candle_core::{Device, Result, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use ugr_core::{Catalog, Sid};

use crate::data::TrainSequence;
use crate::model::{ModelConfig, TrainBatch, allowed_mask, encoder_input};

/// A window of a training sequence: items `start..end`, targets from `end - targets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Index of the sequence.
    pub seq: usize,
    /// First item.
    pub start: usize,
    /// One past the last item.
    pub end: usize,
    /// How many of the window's last items are targets.
    pub targets: usize,
}

/// Cuts every sequence into windows (see the module docs).
pub fn windows(train: &[TrainSequence], max_history: usize) -> Vec<Window> {
    let span = max_history + 1;
    let stride = (max_history / 4).max(1);
    let mut out = Vec::new();
    for (seq, s) in train.iter().enumerate() {
        let n = s.items.len();
        if n == 0 {
            continue;
        }
        let first = n.min(span);
        out.push(Window {
            seq,
            start: 0,
            end: first,
            targets: first,
        });
        let mut e = first;
        while e < n {
            let next = (e + stride).min(n);
            out.push(Window {
                seq,
                start: next - span,
                end: next,
                targets: next - e,
            });
            e = next;
        }
    }
    out
}

/// The batches of one epoch: window indexes, similar lengths together, seeded order.
pub fn epoch_batches(windows: &[Window], batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut keyed: Vec<(usize, u64, usize)> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| (w.end - w.start, rng.random::<u64>(), i))
        .collect();
    keyed.sort_unstable();
    let mut batches: Vec<Vec<usize>> = keyed
        .chunks(batch_size.max(1))
        .map(|c| c.iter().map(|k| k.2).collect())
        .collect();
    batches.shuffle(&mut rng);
    batches
}

/// Builds the tensors of one batch on `device`.
pub fn build_batch(
    cfg: &ModelConfig,
    catalog: &Catalog,
    train: &[TrainSequence],
    windows: &[Window],
    batch: &[usize],
    device: &Device,
) -> Result<TrainBatch> {
    let vocab = catalog.vocab();
    let l = vocab.levels();
    let layout = cfg.history_layout();
    let sid = |item| catalog.sid_of(item).map_err(candle_core::Error::wrap);
    // Each window's history: every item but the last (windows hold at most max_history + 1).
    let histories: Vec<Vec<Sid>> = batch
        .iter()
        .map(|&wi| {
            let w = windows[wi];
            train[w.seq].items[w.start..w.end - 1]
                .iter()
                .map(|&i| sid(i))
                .collect()
        })
        .collect::<Result<_>>()?;
    let refs: Vec<&[Sid]> = histories.iter().map(Vec::as_slice).collect();
    let (encoder, _) = encoder_input(cfg, catalog, &refs, device)?;
    let t = layout.len(refs.iter().map(|h| h.len()).max().unwrap_or(0));
    let mut positions = Vec::new();
    let mut target_sids = Vec::new();
    let mut target_rows = Vec::new();
    let mut head_inputs = Vec::new();
    let mut targets: Vec<Vec<u32>> = vec![Vec::new(); l];
    for (r, &wi) in batch.iter().enumerate() {
        let w = windows[wi];
        let items = &train[w.seq].items[w.start..w.end];
        // The target after j history items is predicted from the user state at position
        // `last(j)`.
        for (j, &item) in items.iter().enumerate().skip(items.len() - w.targets) {
            positions.push((r * t + layout.last(j)) as u32);
            let s = sid(item)?;
            target_sids.push(s);
            if cfg.item_loss > 0.0 {
                target_rows.push(catalog.sid_index_of(item).map_err(candle_core::Error::wrap)?);
            }
            head_inputs.extend((0..l - 1).map(|k| vocab.code_token(k, s.codes()[k]).as_u32()));
            for (k, tg) in targets.iter_mut().enumerate() {
                tg.push(u32::from(s.codes()[k]));
            }
        }
    }
    let n = positions.len();
    let masks = if cfg.trie_loss {
        Some(
            (0..l)
                .map(|k| allowed_mask(catalog, &target_sids, k, device))
                .collect::<Result<Vec<_>>>()?,
        )
    } else {
        None
    };
    let target_rows = (cfg.item_loss > 0.0)
        .then(|| Tensor::from_vec(target_rows, n, device))
        .transpose()?;
    Ok(TrainBatch {
        masks,
        target_rows,
        encoder,
        positions: Tensor::from_vec(positions, n, device)?,
        head_inputs: Tensor::from_vec(head_inputs, (n, l - 1), device)?,
        targets: targets
            .into_iter()
            .map(|t| Tensor::from_vec(t, n, device))
            .collect::<Result<_>>()?,
        n_targets: n,
        positions_total: batch.len() * t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ugr_core::ItemId;

    fn seq(n: usize) -> TrainSequence {
        TrainSequence {
            user: 0,
            items: (0..n as u32).map(ItemId::new).collect(),
            first_target: 1,
        }
    }

    #[test]
    fn every_target_once_with_enough_history() {
        for n in [1, 5, 21, 22, 37, 100] {
            let ws = windows(&[seq(n)], 20);
            let mut covered = vec![0; n];
            for w in &ws {
                assert!(w.end - w.start <= 21);
                for (j, c) in covered.iter_mut().enumerate().take(w.end).skip(w.end - w.targets) {
                    *c += 1;
                    // history seen = j - w.start items: all of them, or at least 15 of the last 20
                    assert!(j - w.start >= j.min(15), "n {n} target {j} window {w:?}");
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "n {n}: {covered:?}");
        }
    }
}
