//! What each graph of the model contract is fed, independent of the runtime: the integer
//! inputs built from histories and beam steps, and the KV-cache gather by beam parent.
//! The tract backend uses it, and so can any other runtime of the same graphs (the
//! onnxruntime comparison in `ugr bench engine`), so both see identical inputs.

use std::format;
use std::ops::Range;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::OnnxError;
use crate::contract::{HistoryPositions, ModelContract};
use crate::history::sid_row;
use crate::{Catalog, Sid, Special, Step};

/// One i64 input: its name in the graph, shape and row-major data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    /// Input name.
    pub name: &'static str,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<i64>,
}

/// The inputs of the `prefill` graph for `histories`, laid out as [`crate::history`] says
/// (each truncated to the most recent `max_history` items). `logits_for` must be the first
/// level's codebook. `last` holds each row's flat index `r * T + p` of its last position `p`
/// in the `[R, T]` batch (`r * T` for an empty history).
pub fn prefill(
    contract: &ModelContract,
    catalog: &Catalog,
    histories: &[&[Sid]],
    logits_for: Range<u32>,
) -> Result<Vec<Feed>, OnnxError> {
    let vocab = catalog.vocab();
    if logits_for != vocab.level_tokens(0) {
        return Err(OnnxError::Unsupported(
            "the exported graphs compute level logits only (Level or Trie normalisation)",
        ));
    }
    let l = vocab.levels();
    let layout = contract.history_layout();
    let recent: Vec<&[Sid]> = histories.iter().map(|h| layout.recent(h)).collect();
    let r = histories.len();
    let t = layout.len(recent.iter().map(|h| h.len()).max().unwrap_or(0));
    let pad = i64::from(Special::Pad.token().as_u32());
    let bos = i64::from(Special::Bos.token().as_u32());
    let width = if layout.per_item() == 1 { l } else { 1 };
    let mut ids = vec![pad; r * t * width];
    let mut sid_rows = vec![0i64; r * t];
    let mut last = Vec::with_capacity(r);
    for (row, h) in recent.iter().enumerate() {
        ids[row * t * width] = bos;
        for (i, sid) in h.iter().enumerate() {
            vocab
                .check(sid)
                .map_err(|_| OnnxError::Unsupported("history SID outside the vocabulary"))?;
            for (k, &c) in sid.codes().iter().enumerate() {
                let (p, slot) = layout.token_position(i, k);
                ids[(row * t + p) * width + slot] = i64::from(vocab.code_token(k, c).as_u32());
            }
            let s = sid_row(catalog, sid, contract.sid_embeddings as usize);
            sid_rows[row * t + layout.sid_row_position(i)] = i64::from(s);
        }
        // The flat index of the row's last position in the `[R, T]` batch.
        last.push((row * t + layout.last(h.len())) as i64);
    }
    let mut feeds = Vec::with_capacity(3);
    feeds.push(match contract.history {
        HistoryPositions::Item => Feed {
            name: "items",
            shape: vec![r, t, l],
            data: ids,
        },
        HistoryPositions::Token => Feed {
            name: "tokens",
            shape: vec![r, t],
            data: ids,
        },
    });
    if contract.sid_embeddings > 0 {
        feeds.push(Feed {
            name: "sid_rows",
            shape: vec![r, t],
            data: sid_rows,
        });
    }
    feeds.push(Feed {
        name: "last",
        shape: vec![r],
        data: last,
    });
    Ok(feeds)
}

/// Which graph a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepGraph {
    /// `step_<l>`: one code token in, level `l`'s logits out.
    Level(usize),
    /// `confidence`: last code + `CONF_Q` in, `C_LOW`/`C_HIGH` logits out.
    Confidence,
}

impl StepGraph {
    /// The graph's name in the artifact.
    pub fn name(self) -> String {
        match self {
            StepGraph::Level(l) => format!("step_{l}"),
            StepGraph::Confidence => "confidence".into(),
        }
    }
}

/// The graph and token input of a search step taken after `position` SID tokens
/// (1 after prefill). Checks the step against the contract.
pub fn step(
    contract: &ModelContract,
    catalog: &Catalog,
    position: usize,
    step: &Step<'_>,
) -> Result<(StepGraph, Feed), OnnxError> {
    let vocab = catalog.vocab();
    let rows = step.rows();
    if step.tokens.len() != rows * step.tokens_per_row {
        return Err(OnnxError::Unsupported("tokens do not match rows"));
    }
    let data: Vec<i64> = step.tokens.iter().map(|t| i64::from(t.as_u32())).collect();
    match step.tokens_per_row {
        1 => {
            if position == 0 || position >= vocab.levels() || step.logits_for != vocab.level_tokens(position)
            {
                return Err(OnnxError::Unsupported(
                    "step logits must be the next level's codebook",
                ));
            }
            let feed = Feed {
                name: "token",
                shape: vec![rows],
                data,
            };
            Ok((StepGraph::Level(position), feed))
        }
        2 => {
            let lo = Special::CLow.token().as_u32();
            if position != vocab.levels() || step.logits_for != (lo..lo + 2) {
                return Err(OnnxError::Unsupported("confidence must follow the last level"));
            }
            if !contract.confidence {
                return Err(OnnxError::Unsupported("the model has no confidence graph"));
            }
            let feed = Feed {
                name: "tokens",
                shape: vec![rows, 2],
                data,
            };
            Ok((StepGraph::Confidence, feed))
        }
        _ => Err(OnnxError::Unsupported("1 or 2 tokens per row")),
    }
}

/// The names of the KV-cache inputs (`past.<i>.{k,v}`) or outputs (`present.<i>.{k,v}`), in
/// cache order.
pub fn kv_names(contract: &ModelContract, prefix: &str) -> Vec<String> {
    (0..contract.head_layers)
        .flat_map(|i| ["k", "v"].map(|kind| format!("{prefix}.{i}.{kind}")))
        .collect()
}

/// Rows of a `[R_old, ...]` tensor (`row_len` floats per row) re-ordered by `parents`,
/// appended to `out`.
pub fn gather_rows(
    src: &[f32],
    row_len: usize,
    parents: &[u32],
    out: &mut Vec<f32>,
) -> Result<(), OnnxError> {
    out.reserve(parents.len() * row_len);
    for &p in parents {
        let p = p as usize;
        let rows = src
            .get(p * row_len..(p + 1) * row_len)
            .ok_or(OnnxError::Unsupported("parent row out of range"))?;
        out.extend_from_slice(rows);
    }
    Ok(())
}
