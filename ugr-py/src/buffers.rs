//! The flat little-endian buffers that cross the Python boundary: reading ids and offsets,
//! writing the answer columns.

use std::ops::Range;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use ugr_core::Recommendations;

/// The `u32` values of a little-endian buffer, or None when its length is not a multiple of 4.
pub(crate) fn u32s(bytes: &[u8]) -> Option<impl Iterator<Item = u32> + '_> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    })
}

/// The `u64` values of a little-endian buffer, or None when its length is not a multiple of 8.
pub(crate) fn offsets_u64(bytes: &[u8]) -> Option<Vec<u64>> {
    bytes.len().is_multiple_of(8).then(|| {
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    })
}

/// The rows `offsets[r]..offsets[r + 1]` of a values buffer of `len` items: offsets must
/// not decrease and must stay within the values (the first need not be 0, as in a sliced
/// Arrow array).
pub(crate) fn ranges(offsets: &[u64], len: usize) -> Result<Vec<Range<usize>>, String> {
    if offsets.is_empty() {
        return Err("offsets must hold at least one entry (rows + 1)".into());
    }
    let mut out = Vec::with_capacity(offsets.len() - 1);
    for (r, w) in offsets.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        if a > b {
            return Err(format!("offsets decrease at row {r}: {a} > {b}"));
        }
        if b > len as u64 {
            return Err(format!("offset {b} of row {r} is past the {len} values"));
        }
        out.push(a as usize..b as usize);
    }
    Ok(out)
}

/// The answers as columns, one entry per recommended item, rows in order, ranks from 0.
#[derive(Default)]
pub(crate) struct Columns {
    row: Vec<u32>,
    rank: Vec<u32>,
    item: Vec<u32>,
    sid_index: Vec<u32>,
    score: Vec<f32>,
    confidence: Vec<f32>,
    posterior: Vec<f32>,
    log_prob: Vec<f32>,
}

impl Columns {
    pub(crate) fn from_answers(answers: &[Recommendations]) -> Columns {
        let n: usize = answers.iter().map(|a| a.items.len()).sum();
        let mut c = Columns {
            row: Vec::with_capacity(n),
            rank: Vec::with_capacity(n),
            item: Vec::with_capacity(n),
            sid_index: Vec::with_capacity(n),
            score: Vec::with_capacity(n),
            confidence: Vec::with_capacity(n),
            posterior: Vec::with_capacity(n),
            log_prob: Vec::with_capacity(n),
        };
        for (row, answer) in answers.iter().enumerate() {
            for (rank, r) in answer.items.iter().enumerate() {
                c.row.push(row as u32);
                c.rank.push(rank as u32);
                c.item.push(r.item.as_u32());
                c.sid_index.push(r.sid_index);
                c.score.push(r.score);
                c.confidence.push(r.confidence);
                c.posterior.push(r.posterior);
                c.log_prob.push(r.log_prob);
            }
        }
        c
    }

    /// The columns in the order `ugr._ugr.Engine.recommend_flat` documents.
    pub(crate) fn into_bytes(self, py: Python<'_>) -> Vec<Bound<'_, PyBytes>> {
        fn le<const N: usize, T: Copy>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(|&x| f(x)).collect()
        }
        vec![
            PyBytes::new(py, &le(&self.row, u32::to_le_bytes)),
            PyBytes::new(py, &le(&self.rank, u32::to_le_bytes)),
            PyBytes::new(py, &le(&self.item, u32::to_le_bytes)),
            PyBytes::new(py, &le(&self.sid_index, u32::to_le_bytes)),
            PyBytes::new(py, &le(&self.score, f32::to_le_bytes)),
            PyBytes::new(py, &le(&self.confidence, f32::to_le_bytes)),
            PyBytes::new(py, &le(&self.posterior, f32::to_le_bytes)),
            PyBytes::new(py, &le(&self.log_prob, f32::to_le_bytes)),
        ]
    }
}
