//! How a history becomes the encoder's positions: one layout for the trainer, the exported
//! graphs' inputs ([`crate::onnx::feeds`]) and the native backend.
//!
//! A history (most recent item last) is truncated to its last `max_history` items. Position
//! 0 holds `BOS`; then each item takes one position ([`HistoryPositions::Item`]: the item's
//! L level tokens, summed by the model) or L positions ([`HistoryPositions::Token`]: one
//! token each, in level order). An item's SID identity row (when the model has SID
//! embeddings) sits at its last position; every other position has row 0. The user state
//! is read at the history's last position, `per_item * items` (0 for an empty history).
//! In a batch, rows are right-padded with `PAD` to the longest history's length `T`, and
//! the exported `prefill` graph takes row `r`'s last position as the flat index `r * T + p`
//! ([`crate::onnx::feeds`]).

use crate::contract::HistoryPositions;
use crate::{Catalog, Sid};

/// The position layout of one model's histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLayout {
    /// Item or token positions.
    pub positions: HistoryPositions,
    /// SID levels L.
    pub levels: usize,
    /// History items read (the most recent ones).
    pub max_history: usize,
}

impl HistoryLayout {
    /// Positions per history item: 1 or L.
    pub fn per_item(&self) -> usize {
        match self.positions {
            HistoryPositions::Item => 1,
            HistoryPositions::Token => self.levels,
        }
    }

    /// The items the model reads: the last `max_history`.
    pub fn recent<'h, T>(&self, history: &'h [T]) -> &'h [T] {
        &history[history.len().saturating_sub(self.max_history)..]
    }

    /// Positions a history of `items` items takes (BOS included), after truncation.
    pub fn len(&self, items: usize) -> usize {
        1 + self.per_item() * items.min(self.max_history)
    }

    /// The position the user state is read at: the last one (0 for an empty history).
    pub fn last(&self, items: usize) -> usize {
        self.len(items) - 1
    }

    /// The position of level `level`'s token of the `i`-th (truncated) history item, and
    /// its slot within the position (the level in item positions, 0 in token positions).
    pub fn token_position(&self, i: usize, level: usize) -> (usize, usize) {
        match self.positions {
            HistoryPositions::Item => (1 + i, level),
            HistoryPositions::Token => (1 + i * self.levels + level, 0),
        }
    }

    /// The position that carries the `i`-th (truncated) history item's SID identity row.
    pub fn sid_row_position(&self, i: usize) -> usize {
        (1 + i) * self.per_item()
    }
}

/// The SID identity row of `sid`: its catalog SID index + 1, or 0 when the catalog does not
/// hold it or the model's table (`sid_embeddings` rows, row 0 shared) is too small for it.
pub fn sid_row(catalog: &Catalog, sid: &Sid, sid_embeddings: usize) -> u32 {
    match catalog.lookup(sid) {
        Some(i) if (i as usize) + 1 < sid_embeddings => i + 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_and_token_layouts() {
        let item = HistoryLayout {
            positions: HistoryPositions::Item,
            levels: 3,
            max_history: 4,
        };
        let token = HistoryLayout {
            positions: HistoryPositions::Token,
            ..item
        };
        assert_eq!(item.recent(&[1, 2, 3, 4, 5, 6]), &[3, 4, 5, 6]);
        assert_eq!((item.len(0), item.last(0)), (1, 0));
        assert_eq!((item.len(6), item.last(6)), (5, 4));
        assert_eq!((token.len(2), token.last(2)), (7, 6));
        assert_eq!(item.token_position(1, 2), (2, 2));
        assert_eq!(token.token_position(1, 2), (6, 0));
        // The SID row sits at the item's last position in both layouts.
        assert_eq!(item.sid_row_position(1), 2);
        assert_eq!(token.sid_row_position(1), token.token_position(1, 2).0);
    }
}
