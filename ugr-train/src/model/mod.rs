//! The SID transformer (candle).
//!
//! # Architecture (and why)
//!
//! A decoder-only design in two parts, both causal transformers over SID tokens:
//!
//! - **User encoder**: reads `BOS` followed by the history, most recent last, and gives a
//!   user state after every item. With [`HistoryEncoding::Item`] (the default) an item is
//!   *one position*: the sum of its L token embeddings (token ids are level-specific, so
//!   the sum is level-aware); with [`HistoryEncoding::Token`] an item is L positions (the
//!   classic flattened token sequence) and the state after an item is read at its last
//!   token. Item positions cut the sequence length by L. Optionally
//!   ([`ModelConfig::sid_embeddings`]) each history item also adds a free identity vector of
//!   its SID (items sharing a SID share it; SIDs added to the catalog after training use row
//!   0), which lets the encoder memorise item-to-item transitions the way ID-based models do;
//!   the output remains pure SID generation.
//! - **SID head**: a small causal transformer over `[user state, code_1, ..., code_L,
//!   CONF_Q]` that emits the next item's codes one level at a time, then (after RL) the
//!   confidence. Its logits are the dot products with the (tied) token embeddings of the
//!   requested range, so a decoding step can compute only the current level's codebook.
//!
//! Why not TIGER's encoder-decoder: with the causal user encoder, one forward pass over a
//! user's training sequence produces the state for *every* prefix, so all the user's
//! next-item targets train at once (TIGER re-encodes each prefix). At inference the
//! encoder runs once per request (prefill); the head's KV cache is the per-beam state the
//! beam search re-orders. Both parts export to ONNX with explicit cache inputs/outputs.
//!
//! Scores: training uses a cross-entropy per level, over the level's codebook or, with
//! `trie_loss` (on in `ugr train sft`'s recipe), over the codes the catalog trie allows after
//! the target's prefix; the engine decodes with the matching normalisation
//! ([`ModelConfig::normalization`], recorded in the exported contract).

mod decode;
pub mod init;
pub mod layers;

pub use decode::{CandleCache, CandleModel};

use candle_core::{D, DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};
use serde::{Deserialize, Serialize};
use ugr_core::contract::{HistoryPositions, TrainedNormalization};
use ugr_core::history::HistoryLayout;
use ugr_core::vocab::SPECIAL_TOKENS;
use ugr_core::{Catalog, Normalization, Sid, SidVocab, Special};

use self::layers::{Block, Dropout, Kv, LayerNorm, causal_mask};

/// How a history item enters the user encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HistoryEncoding {
    /// One position per item: the sum of its level token embeddings.
    Item,
    /// L positions per item: its tokens in level order.
    Token,
}

/// Model hyper-parameters (saved as `config.json` in a run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Codebook size per SID level.
    pub codebooks: Vec<u32>,
    /// Width.
    pub d_model: usize,
    /// User-encoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// SID-head layers.
    pub head_layers: usize,
    /// Dropout on embeddings and residual branches (training only).
    pub dropout: f32,
    /// History items the model reads (the most recent ones).
    pub max_history: usize,
    /// Item or token positions.
    pub history: HistoryEncoding,
    /// Whether the confidence tokens have been trained (the RL stage sets this).
    pub confidence: bool,
    /// Train each level's softmax over the codes the catalog trie allows after the target's
    /// prefix (instead of the whole codebook); decode with [`Normalization::Trie`] then.
    #[serde(default)]
    pub trie_loss: bool,
    /// Rows of the SID identity embedding added to each history item (number of catalog SIDs
    /// + 1; row 0 serves BOS, padding and SIDs the model has not seen); 0 = off.
    #[serde(default)]
    pub sid_embeddings: usize,
    /// Weight of the item-level loss (training only; needs SID embeddings): a softmax over
    /// every catalog SID from the user state, scored by the item head's output table
    /// ([`ItemOutput`]: its own table and per-SID bias by default, or the SID identity table
    /// tied as output, as SASRec ties its item table). It trains the item head that serving
    /// fuses with the generative scores, and shapes the user state to point at the next item
    /// as a whole, which the level-by-level code loss reaches only through L separate
    /// softmaxes; 0 = off.
    #[serde(default)]
    pub item_loss: f32,
    /// Which table scores the item head (see [`ItemOutput`]; `ugr train sft` defaults to
    /// [`ItemOutput::Untied`]); runs written before the choice existed read as
    /// [`ItemOutput::Tied`], the format's serde default.
    #[serde(default)]
    pub item_output: ItemOutput,
}

/// The item head's output table.
///
/// Tied (SASRec's choice) scores `user . sid_emb[row]`: one table for "this item is in the
/// history" and "this item comes next". That ties the head to a rank-`d_model` bilinear form
/// between consecutive items, which cannot hold an arbitrary item-to-successor map (the
/// quick start's successors, remembered transitions on Beauty). Untied gives the head its own
/// table and a per-SID bias (a learned popularity prior): `user . item_out[s] + item_bias[s]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ItemOutput {
    /// The SID identity table is the output table.
    #[default]
    Tied,
    /// A separate output table and bias.
    Untied,
}

impl ModelConfig {
    /// Default width (near TIGER's).
    pub const D_MODEL: usize = 128;
    /// Default user-encoder layers.
    pub const LAYERS: usize = 4;
    /// Default attention heads.
    pub const HEADS: usize = 4;
    /// Default feed-forward width.
    pub const D_FF: usize = 512;
    /// Default SID-head layers.
    pub const HEAD_LAYERS: usize = 2;

    /// A generative-only model of the default size for `vocab`: no SID embeddings, no item
    /// head, the level softmax, dropout 0.1. `ugr train sft`'s recipe
    /// ([`crate::args::ModelArgs`]) starts from it.
    pub fn default_for(vocab: &SidVocab) -> Self {
        ModelConfig {
            codebooks: vocab.codebook_sizes().to_vec(),
            d_model: Self::D_MODEL,
            layers: Self::LAYERS,
            heads: Self::HEADS,
            d_ff: Self::D_FF,
            head_layers: Self::HEAD_LAYERS,
            dropout: 0.1,
            max_history: crate::data::DEFAULT_MAX_HISTORY,
            history: HistoryEncoding::Item,
            confidence: false,
            trie_loss: false,
            sid_embeddings: 0,
            item_loss: 0.0,
            item_output: ItemOutput::Tied,
        }
    }

    /// The beam search normalisation matching how the model was trained.
    pub fn normalization(&self) -> Normalization {
        self.trained_normalization().search()
    }

    /// How each level's softmax was trained (what the exported contract records).
    pub fn trained_normalization(&self) -> TrainedNormalization {
        if self.trie_loss {
            TrainedNormalization::Trie
        } else {
            TrainedNormalization::Level
        }
    }

    /// The SID vocabulary.
    pub fn vocab(&self) -> Result<SidVocab> {
        SidVocab::new(&self.codebooks).map_err(candle_core::Error::wrap)
    }

    /// Number of SID levels.
    pub fn levels(&self) -> usize {
        self.codebooks.len()
    }

    /// How a history becomes encoder positions ([`ugr_core::history`]).
    pub fn history_layout(&self) -> HistoryLayout {
        HistoryLayout {
            positions: match self.history {
                HistoryEncoding::Item => HistoryPositions::Item,
                HistoryEncoding::Token => HistoryPositions::Token,
            },
            levels: self.levels(),
            max_history: self.max_history,
        }
    }

    /// Encoder positions: BOS plus the longest history.
    pub fn encoder_positions(&self) -> usize {
        self.history_layout().len(self.max_history)
    }

    /// Head positions: user state, L codes, CONF_Q.
    pub fn head_positions(&self) -> usize {
        self.levels() + 2
    }

    /// Whether the configuration trains an item head (SID embeddings and `item_loss > 0`).
    pub fn has_item_head(&self) -> bool {
        self.sid_embeddings > 1 && self.item_loss > 0.0
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        self.vocab()?;
        if self.d_model == 0 || self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            candle_core::bail!(
                "d_model {} must be a positive multiple of heads {}",
                self.d_model,
                self.heads
            )
        }
        if self.layers == 0 || self.head_layers == 0 || self.d_ff == 0 || self.max_history == 0 {
            candle_core::bail!("layers, head_layers, d_ff and max_history must be positive")
        }
        if !(0.0..1.0).contains(&self.dropout) {
            candle_core::bail!("dropout must be in [0, 1)")
        }
        if !(self.item_loss >= 0.0 && self.item_loss.is_finite()) {
            candle_core::bail!("item_loss must be a finite weight >= 0")
        }
        if self.item_loss > 0.0 && self.sid_embeddings < 2 {
            candle_core::bail!("the item-level loss needs SID embeddings (--sid-embeddings)")
        }
        Ok(())
    }
}

/// Encoder input for a batch of histories.
pub struct EncoderInput {
    /// Item mode: `[B, T, L]` token ids; token mode: `[B, T]`.
    pub ids: Tensor,
    /// Item mode: `[B, T, L, 1]`, 1 for real tokens (BOS has one, padding none).
    pub mask: Option<Tensor>,
    /// `[B, T]` SID identity rows (0 = none), when the model has SID embeddings.
    pub sid_ids: Option<Tensor>,
}

/// The model's parameters and forward passes.
pub struct SidTransformer {
    cfg: ModelConfig,
    vocab: SidVocab,
    tok_emb: Embedding,
    sid_emb: Option<Embedding>,
    /// The untied item head: output table `[S, d]` and bias `[S]` (S = catalog SIDs).
    item_out: Option<(Tensor, Tensor)>,
    out_bias: Tensor,
    enc_pos: Tensor,
    enc_blocks: Vec<Block>,
    enc_ln: LayerNorm,
    head_pos: Tensor,
    head_blocks: Vec<Block>,
    head_ln: LayerNorm,
    device: Device,
}

impl SidTransformer {
    /// Builds the model's parameters under `vb` (names are stable: they are the checkpoint keys).
    pub fn new(cfg: &ModelConfig, vb: &VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let vocab = cfg.vocab()?;
        let d = cfg.d_model;
        let v = vocab.size() as usize;
        let tok_emb = embedding(v, d, vb.pp("tok_emb"))?;
        let out_bias = vb.get_with_hints(v, "out_bias", candle_nn::Init::Const(0.0))?;
        let sid_emb = match cfg.sid_embeddings {
            0 => None,
            n => Some(embedding(n, d, vb.pp("sid_emb"))?),
        };
        let item_out = if cfg.has_item_head() && cfg.item_output == ItemOutput::Untied {
            let s = cfg.sid_embeddings - 1;
            let p = vb.pp("item_out");
            let w = p.get_with_hints((s, d), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
            let b = p.get_with_hints(s, "bias", candle_nn::Init::Const(0.0))?;
            Some((w, b))
        } else {
            None
        };
        let enc = vb.pp("enc");
        let enc_pos = enc.get_with_hints(
            (cfg.encoder_positions(), d),
            "pos",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let enc_blocks = (0..cfg.layers)
            .map(|i| Block::new(d, cfg.heads, cfg.d_ff, &enc.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let enc_ln = LayerNorm::new(d, &enc.pp("ln_f"))?;
        let head = vb.pp("head");
        let head_pos = head.get_with_hints(
            (cfg.head_positions(), d),
            "pos",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let head_blocks = (0..cfg.head_layers)
            .map(|i| Block::new(d, cfg.heads, cfg.d_ff, &head.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let head_ln = LayerNorm::new(d, &head.pp("ln_f"))?;
        Ok(SidTransformer {
            cfg: cfg.clone(),
            vocab,
            tok_emb,
            sid_emb,
            item_out,
            out_bias,
            enc_pos,
            enc_blocks,
            enc_ln,
            head_pos,
            head_blocks,
            head_ln,
            device: vb.device().clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The SID vocabulary.
    pub fn vocab(&self) -> &SidVocab {
        &self.vocab
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Encoder input for histories (each truncated to its last `max_history` items,
    /// prefixed with BOS, right-padded). Returns the input and each row's last position.
    pub fn encoder_input(
        &self,
        catalog: &Catalog,
        histories: &[&[Sid]],
    ) -> Result<(EncoderInput, Vec<usize>)> {
        encoder_input(&self.cfg, catalog, histories, &self.device)
    }

    /// User states after every position: `[B, T, d]`.
    pub fn encode(&self, input: &EncoderInput, drop: &mut Option<Dropout<'_>>) -> Result<Tensor> {
        let x = match &input.mask {
            Some(mask) => {
                let (b, t, l) = input.ids.dims3()?;
                let e =
                    self.tok_emb
                        .forward(&input.ids.flatten_all()?)?
                        .reshape((b, t, l, self.cfg.d_model))?;
                e.broadcast_mul(mask)?.sum(2)?
            }
            None => self.tok_emb.forward(&input.ids)?,
        };
        let x = match (&self.sid_emb, &input.sid_ids) {
            (Some(e), Some(ids)) => (x + e.forward(ids)?)?,
            _ => x,
        };
        let t = x.dim(1)?;
        if t > self.cfg.encoder_positions() {
            candle_core::bail!(
                "encoder input of {t} positions exceeds {}",
                self.cfg.encoder_positions()
            )
        }
        let x = x.broadcast_add(&self.enc_pos.narrow(0, 0, t)?)?;
        let mut x = layers::dropout(&x, drop)?;
        let mask = causal_mask(t, 0, &self.device)?;
        for block in &self.enc_blocks {
            x = block.forward(&x, Some(&mask), None, drop)?.0;
        }
        self.enc_ln.forward(&x)
    }

    /// The SID identity row of a history item (0 when off or unknown).
    pub fn sid_row(&self, catalog: &Catalog, sid: &Sid) -> u32 {
        ugr_core::history::sid_row(catalog, sid, self.cfg.sid_embeddings)
    }

    /// Embeddings of head inputs at positions `start..start + tokens_per_row`: `[R, n, d]`.
    fn head_embed(&self, tokens: &Tensor, start: usize) -> Result<Tensor> {
        let n = tokens.dim(1)?;
        if start + n > self.cfg.head_positions() {
            candle_core::bail!("SID head position {} out of range", start + n)
        }
        self.tok_emb
            .forward(tokens)?
            .broadcast_add(&self.head_pos.narrow(0, start, n)?)
    }

    /// Runs the head over `x` (`[R, n, d]`, already position-embedded) after `past`.
    /// Returns the normalised hidden states `[R, n, d]` and the new cache.
    pub fn head(
        &self,
        x: &Tensor,
        past: Option<&[Kv]>,
        drop: &mut Option<Dropout<'_>>,
    ) -> Result<(Tensor, Vec<Kv>)> {
        let n = x.dim(1)?;
        let past_len = past.and_then(|p| p.first()).map_or(Ok(0), |(k, _)| k.dim(2))?;
        let mask = causal_mask(n, past_len, &self.device)?;
        let mut x = x.clone();
        let mut kvs = Vec::with_capacity(self.head_blocks.len());
        for (i, block) in self.head_blocks.iter().enumerate() {
            let (y, kv) = block.forward(&x, Some(&mask), past.map(|p| &p[i]), drop)?;
            x = y;
            kvs.push(kv);
        }
        Ok((self.head_ln.forward(&x)?, kvs))
    }

    /// Logits of the tokens `range` for hidden states `h` (`[R, d]`): `[R, range.len()]`.
    pub fn logits(&self, h: &Tensor, range: std::ops::Range<u32>) -> Result<Tensor> {
        let (start, len) = (range.start as usize, (range.end - range.start) as usize);
        let w = self.tok_emb.embeddings().narrow(0, start, len)?;
        h.matmul(&w.t()?)?
            .broadcast_add(&self.out_bias.narrow(0, start, len)?)
    }

    /// The head input at position 0: the user state plus its position embedding, `[R, 1, d]`.
    pub fn head_start(&self, user: &Tensor) -> Result<Tensor> {
        user.broadcast_add(&self.head_pos.i(0)?)?.unsqueeze(1)
    }

    /// Teacher-forced training loss of a batch: the mean cross-entropy per target token (each
    /// level normalised over its codebook, or over the trie's allowed codes), plus
    /// `item_loss` times the item-level cross-entropy when that is on.
    pub fn loss(&self, batch: &TrainBatch, drop: &mut Option<Dropout<'_>>) -> Result<Tensor> {
        let states = self.encode(&batch.encoder, drop)?;
        let (b, t, d) = states.dims3()?;
        let user = states.reshape((b * t, d))?.index_select(&batch.positions, 0)?;
        let mut x = self.head_start(&user)?;
        if self.cfg.levels() > 1 {
            let rest = self.head_embed(&batch.head_inputs, 1)?;
            x = Tensor::cat(&[&x, &rest], 1)?;
        }
        let x = layers::dropout(&x, drop)?;
        let (h, _) = self.head(&x, None, drop)?;
        let mut total = Tensor::zeros((), DType::F32, &self.device)?;
        for (level, target) in batch.targets.iter().enumerate() {
            let mut logits = self.logits(
                &h.i((.., level, ..))?.contiguous()?,
                self.vocab.level_tokens(level),
            )?;
            if let Some(masks) = &batch.masks {
                logits = (logits + &masks[level])?;
            }
            total = (total + candle_nn::loss::cross_entropy(&logits, target)?)?;
        }
        let codes = (total / self.cfg.levels() as f64)?;
        match (self.item_scores(&user)?, &batch.target_rows) {
            (Some(logits), Some(rows)) => {
                let item = candle_nn::loss::cross_entropy(&logits, rows)?;
                codes + (item * f64::from(self.cfg.item_loss))?
            }
            _ => Ok(codes),
        }
    }

    /// Whether the model has a trained item head: SID embeddings trained with the item-level
    /// loss (`item_loss > 0`). Serving fuses its scores with the generative ones.
    pub fn has_item_head(&self) -> bool {
        self.sid_emb.is_some() && self.cfg.has_item_head()
    }

    /// The item head's logits `[N, catalog SIDs]` of user states `[N, d]` (columns in catalog
    /// SID index order), when the model has an item head: against the untied output table
    /// and bias, or the SID identity table's rows 1.. (row 0, "none", is not a candidate).
    pub fn item_scores(&self, user: &Tensor) -> Result<Option<Tensor>> {
        match (&self.item_out, &self.sid_emb) {
            (Some((w, b)), _) => Ok(Some(user.matmul(&w.t()?)?.broadcast_add(b)?)),
            (None, Some(table)) if self.has_item_head() => {
                let w = table.embeddings();
                let w = w.narrow(0, 1, w.dim(0)? - 1)?;
                Ok(Some(user.matmul(&w.t()?)?))
            }
            _ => Ok(None),
        }
    }

    /// Encodes `histories` (no dropout) and returns each user's state at its last history
    /// position, `[users, d_model]`: what the SID head starts from.
    pub fn user_states(&self, catalog: &Catalog, histories: &[&[Sid]]) -> Result<Tensor> {
        let (input, last) = self.encoder_input(catalog, histories)?;
        let states = self.encode(&input, &mut None)?;
        let (b, t, d) = states.dims3()?;
        let rows: Vec<u32> = last
            .iter()
            .enumerate()
            .map(|(r, &p)| (r * t + p) as u32)
            .collect();
        states
            .reshape((b * t, d))?
            .index_select(&Tensor::new(rows.as_slice(), &self.device)?, 0)
    }

    /// Sum of the token log-probs of each row's SID (level-normalised), with gradients:
    /// `histories[i]` -> `sids[i]`. Used by parity checks; the RL stage calls
    /// [`score_sids`](Self::score_sids) on shared user states.
    pub fn sequence_log_probs(
        &self,
        catalog: &Catalog,
        histories: &[&[Sid]],
        sids: &[Sid],
    ) -> Result<Tensor> {
        let user = self.user_states(catalog, histories)?;
        self.score_sids(catalog, &user, sids, false)?.0.sum(1)
    }

    /// One teacher-forced head pass over `[user, code_1, ..., code_L, CONF_Q]` for each row:
    /// `user` is `[R, d]` (with gradients if the caller wants them), `sids[r]` the row's SID.
    /// Returns `[R, L]` token log-probs (each level normalised as in decoding: over its
    /// codebook, or over the trie's allowed codes with the trie loss) and, with
    /// `confidence`, `[R]` logit differences `z[C_HIGH] - z[C_LOW]` read after `CONF_Q`
    /// (the learned confidence is their sigmoid), exactly the search's confidence step.
    pub fn score_sids(
        &self,
        catalog: &Catalog,
        user: &Tensor,
        sids: &[Sid],
        confidence: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let l = self.cfg.levels();
        let rows = sids.len();
        let toks: Vec<Vec<u32>> = sids
            .iter()
            .map(|s| {
                Ok(self
                    .vocab
                    .encode(s)
                    .map_err(candle_core::Error::wrap)?
                    .map(|t| t.as_u32())
                    .collect())
            })
            .collect::<Result<_>>()?;
        let mut x = self.head_start(user)?;
        // inputs after the user state: all L codes (+ CONF_Q) or the first L - 1
        let fed = if confidence { l } else { l - 1 };
        let mut inputs: Vec<u32> = toks.iter().flat_map(|t| t[..fed].iter().copied()).collect();
        let per_row = fed + usize::from(confidence);
        if confidence {
            let q = Special::ConfQ.token().as_u32();
            inputs = inputs
                .chunks(fed)
                .flat_map(|c| c.iter().copied().chain(std::iter::once(q)))
                .collect();
        }
        if per_row > 0 {
            let inputs = Tensor::from_vec(inputs, (rows, per_row), &self.device)?;
            x = Tensor::cat(&[&x, &self.head_embed(&inputs, 1)?], 1)?;
        }
        let (h, _) = self.head(&x, None, &mut None)?;
        let mut picked = Vec::with_capacity(l);
        for level in 0..l {
            let range = self.vocab.level_tokens(level);
            let mut logits = self.logits(&h.i((.., level, ..))?.contiguous()?, range.clone())?;
            if self.cfg.trie_loss {
                logits = (logits + allowed_mask(catalog, sids, level, &self.device)?)?;
            }
            let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let codes: Vec<u32> = toks.iter().map(|t| t[level] - range.start).collect();
            let codes = Tensor::from_vec(codes, (rows, 1), &self.device)?;
            picked.push(lp.gather(&codes, 1)?);
        }
        let log_probs = Tensor::cat(&picked, 1)?;
        let conf = if confidence {
            let lo = Special::CLow.token().as_u32();
            let z = self.logits(&h.i((.., l + 1, ..))?.contiguous()?, lo..lo + 2)?;
            Some((z.i((.., 1))? - z.i((.., 0))?)?)
        } else {
            None
        };
        Ok((log_probs, conf))
    }
}

/// A training batch (built on the CPU by the trainer's batching, moved to the device).
pub struct TrainBatch {
    /// Encoder input.
    pub encoder: EncoderInput,
    /// `[N]` indexes into the flattened `[B * T]` encoder positions: the state that predicts each target.
    pub positions: Tensor,
    /// `[N, L - 1]` teacher-forced head inputs: the target's codes of levels `0..L-1` as tokens.
    pub head_inputs: Tensor,
    /// Per level, `[N]` target codes (0-based within the level's codebook).
    pub targets: Vec<Tensor>,
    /// `[N]` catalog SID index of each target (its SID row - 1) when the item-level loss is on.
    pub target_rows: Option<Tensor>,
    /// Per level, `[N, C]` additive masks (0 where the trie allows the code after the
    /// target's prefix, -1e9 elsewhere) when the model trains with the trie loss.
    pub masks: Option<Vec<Tensor>>,
    /// Number of targets N.
    pub n_targets: usize,
    /// Encoder positions in the batch (B * T).
    pub positions_total: usize,
}

/// The special-token count, re-exported for batch builders.
pub const SPECIALS: u32 = SPECIAL_TOKENS;

/// `[N, C]` additive mask of the codes the catalog allows at `level` after each SID's prefix.
pub fn allowed_mask(catalog: &Catalog, sids: &[Sid], level: usize, device: &Device) -> Result<Tensor> {
    let trie = catalog.trie();
    let c = catalog.vocab().codebook_size(level) as usize;
    let mut mask = vec![-1e9f32; sids.len() * c];
    for (r, sid) in sids.iter().enumerate() {
        let node = trie
            .walk(&sid.codes()[..level])
            .ok_or_else(|| candle_core::Error::Msg(format!("SID {sid} is not in the catalog")))?;
        for &code in trie.children(node).1 {
            mask[r * c + usize::from(code)] = 0.0;
        }
    }
    Tensor::from_vec(mask, (sids.len(), c), device)
}

/// A model of `cfg` on `device` with fresh variables (to be initialised or loaded).
pub fn with_fresh_vars(cfg: &ModelConfig, device: &Device) -> Result<(SidTransformer, candle_nn::VarMap)> {
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = SidTransformer::new(cfg, &vb)?;
    Ok((model, varmap))
}

/// A model of `cfg` with deterministic initial weights from `seed` ([`init`]).
pub fn new_model(
    cfg: &ModelConfig,
    seed: u64,
    device: &Device,
) -> Result<(SidTransformer, candle_nn::VarMap)> {
    let (model, varmap) = with_fresh_vars(cfg, device)?;
    init::initialize(&varmap, cfg, seed)?;
    Ok((model, varmap))
}

/// Encoder input for histories, laid out as [`ugr_core::history`] says (each truncated to
/// its last `max_history` items, BOS first, right-padded): the input and each row's last
/// position. Training batches and every search go through it.
pub fn encoder_input(
    cfg: &ModelConfig,
    catalog: &Catalog,
    histories: &[&[Sid]],
    device: &Device,
) -> Result<(EncoderInput, Vec<usize>)> {
    let l = cfg.levels();
    let vocab = catalog.vocab();
    let pad = Special::Pad.token().as_u32();
    let bos = Special::Bos.token().as_u32();
    let layout = cfg.history_layout();
    let recent: Vec<&[Sid]> = histories.iter().map(|h| layout.recent(h)).collect();
    let t = layout.len(recent.iter().map(|h| h.len()).max().unwrap_or(0));
    let b = histories.len();
    // Item positions hold L token slots each (a mask marks the real ones); token
    // positions hold one.
    let width = if layout.per_item() == 1 { l } else { 1 };
    let mut ids = vec![pad; b * t * width];
    let mut mask = vec![0f32; b * t * width];
    let mut sid_ids = vec![0u32; b * t];
    let mut last = Vec::with_capacity(b);
    for (r, h) in recent.iter().enumerate() {
        ids[r * t * width] = bos;
        mask[r * t * width] = 1.0;
        for (i, sid) in h.iter().enumerate() {
            let tokens = vocab.encode(sid).map_err(candle_core::Error::wrap)?;
            for (k, tok) in tokens.enumerate() {
                let (p, slot) = layout.token_position(i, k);
                ids[(r * t + p) * width + slot] = tok.as_u32();
                mask[(r * t + p) * width + slot] = 1.0;
            }
            sid_ids[r * t + layout.sid_row_position(i)] =
                ugr_core::history::sid_row(catalog, sid, cfg.sid_embeddings);
        }
        last.push(layout.last(h.len()));
    }
    let sid_ids = (cfg.sid_embeddings > 0)
        .then(|| Tensor::from_vec(sid_ids, (b, t), device))
        .transpose()?;
    let input = match cfg.history {
        HistoryEncoding::Item => EncoderInput {
            ids: Tensor::from_vec(ids, (b, t, l), device)?,
            mask: Some(Tensor::from_vec(mask, (b, t, l, 1), device)?),
            sid_ids,
        },
        HistoryEncoding::Token => EncoderInput {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: None,
            sid_ids,
        },
    };
    Ok((input, last))
}
