//! The exported model's description, stored as JSON in an artifact's model section.
//!
//! It tells a backend which graphs exist and how to feed them; the full input/output
//! contract (names, shapes, dtypes) is documented in `ugr_core::onnx` (feature `onnx`).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::Catalog;

/// The `format` value of this contract.
pub const CONTRACT_FORMAT: &str = "ugr-onnx-1";

/// How history items enter the exported encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryPositions {
    /// One position per item: input `items` `[R, T, L]`.
    Item,
    /// L positions per item: input `tokens` `[R, T]`.
    Token,
}

/// The per-level normalisation a model was trained with (the contract's `normalization`,
/// `"level"` or `"trie"` in JSON); the search decodes with the matching
/// [`Normalization`](crate::Normalization).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainedNormalization {
    /// Each level's softmax over its whole codebook: decode with [`Normalization::Level`](crate::Normalization::Level).
    Level,
    /// Each level's softmax over the codes the catalog trie allows after the prefix
    /// (`ugr train sft --trie-loss`): decode with [`Normalization::Trie`](crate::Normalization::Trie).
    Trie,
}

impl TrainedNormalization {
    /// The search normalisation that matches how the model was trained.
    pub fn search(self) -> crate::Normalization {
        match self {
            TrainedNormalization::Level => crate::Normalization::Level,
            TrainedNormalization::Trie => crate::Normalization::Trie,
        }
    }
}

/// Description of an exported model (JSON in [`ModelSection::config_json`](crate::ModelSection)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelContract {
    /// Always [`CONTRACT_FORMAT`].
    pub format: String,
    /// Codebook size per SID level (must equal the catalog's vocabulary).
    pub codebooks: Vec<u32>,
    /// Model width.
    pub d_model: u32,
    /// Attention heads of the SID head (KV cache: `[R, heads, positions, d_model / heads]`).
    pub heads: u32,
    /// SID-head layers (one `past.<i>.k` / `past.<i>.v` pair each).
    pub head_layers: u32,
    /// History items the encoder reads (the most recent ones).
    pub max_history: u32,
    /// Item or token positions.
    pub history: HistoryPositions,
    /// Rows of the SID identity embedding (0 = no `sid_rows` input).
    pub sid_embeddings: u32,
    /// Whether a `confidence` graph exists.
    pub confidence: bool,
    /// The normalisation the model was trained with (`"level"` or `"trie"`).
    pub normalization: TrainedNormalization,
    /// `"f32"` or `"f16"`: how weights are stored (compute is f32).
    pub weights: String,
    /// User-encoder layers (informational, for FLOP accounting; 0 when not recorded).
    #[serde(default)]
    pub encoder_layers: u32,
    /// Feed-forward width of every block (informational, like `encoder_layers`).
    #[serde(default)]
    pub d_ff: u32,
    /// Whether `prefill` also outputs `item_logits` `[R, S]`: the item head's logits of every
    /// catalog SID (S = the catalog's SID count, columns in SID index order). Older artifacts
    /// lack the field (no item head); an engine that does not know it serves them generatively.
    #[serde(default)]
    pub item_head: bool,
    /// The item-fusion weight fitted on the validation split
    /// ([`ItemFusion::Model`](crate::ItemFusion::Model) uses it); `None`: generative ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_weight: Option<f32>,
}

impl ModelContract {
    /// How a history becomes the encoder's positions ([`crate::history`]).
    pub fn history_layout(&self) -> crate::history::HistoryLayout {
        crate::history::HistoryLayout {
            positions: self.history,
            levels: self.codebooks.len(),
            max_history: self.max_history as usize,
        }
    }

    /// The checks every backend makes before it runs a model for `catalog`: the format, the
    /// codebooks, the head sizes, the SID embeddings and item head against the catalog's
    /// SIDs, and the fusion weight. The error says what does not fit.
    pub fn check(&self, catalog: &Catalog) -> Result<(), &'static str> {
        if self.format != CONTRACT_FORMAT {
            return Err("unknown contract format");
        }
        if self.codebooks != catalog.vocab().codebook_sizes() {
            return Err("codebooks differ from the catalog's");
        }
        if self.heads == 0
            || self.d_model == 0
            || !self.d_model.is_multiple_of(self.heads)
            || self.head_layers == 0
        {
            return Err("bad head sizes");
        }
        if self.sid_embeddings as usize > catalog.sid_count() + 1 {
            return Err("more SID embeddings than catalog SIDs");
        }
        if self.item_head && self.sid_embeddings as usize != catalog.sid_count() + 1 {
            return Err("an item head needs one SID embedding per catalog SID (+1)");
        }
        if self
            .item_weight
            .is_some_and(|w| !(w.is_finite() && w >= 0.0 && self.item_head))
        {
            return Err("the item weight must be finite, >= 0, and needs an item head");
        }
        Ok(())
    }
}
