//! The native backend (feature `native`, `no_std` + `alloc`): the exported model run by
//! ugr-core's own code, without a graph interpreter.
//!
//! It implements [`SidModel`] for the architecture that `ugr export` writes (named by
//! [`WEIGHTS_FORMAT`]) from the artifact's weight section ([`weights`]); the ONNX graphs stay
//! in the artifact for tract and onnxruntime. Loading checks the contract and every tensor's
//! name and shape; a model this backend cannot run is a [`NativeError`] that names what
//! differs, never a wrong answer.
//!
//! What a call computes, and how:
//! - **prefill**: the encoder over each request's own positions (BOS and its most recent
//!   `max_history` items; no padding, so no work on padding), every request's rows stacked
//!   into one matrix for the projections and feed-forward layers, causal attention per
//!   request; the user state (last position) enters the SID head at position 0. The item
//!   head's logits, when the model has one, come from the same user states.
//! - **step**: the KV cache lives in flat buffers `[layer][row][position][d_model]` (two of
//!   them, swapped), re-ordered by beam parent with one copy of the live positions per row;
//!   only the new positions are computed; attention reads the cache in place.
//! - logits are computed for the current level's codebook only (or `C_LOW`/`C_HIGH`).
//!
//! Every matrix product goes through [`kernels::PackedLinear`] (weights packed once at load;
//! the SIMD micro-kernels with a portable twin). Scratch buffers live in the [`NativeCache`]
//! and are reused across calls.
//!
//! Memory: loading reads the weight section in place ([`WeightFileRef`], nothing copied) and
//! packs each matrix once, in its stored type: an f16 export keeps its matrices in f16 (the
//! kernel widens them, in registers where the CPU has F16C; compute is f32 either way). Vectors (biases, LayerNorm,
//! positions) and the token embeddings, small next to the matrices, are held as f32.

mod item_index;
pub mod kernels;
pub mod weights;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

pub use self::item_index::{ITEM_INDEX_MIN_SIDS, ITEM_INDEX_PROBES};
use self::item_index::{ItemIndex, Shortlist};
use self::kernels::PackedLinear;
pub use self::weights::{
    WEIGHTS_BLOB, WEIGHTS_FORMAT, WeightFile, WeightFileRef, WeightTensor, WeightTensorRef, WeightType,
};
use crate::contract::ModelContract;
use crate::history::sid_row;
use crate::{Catalog, ModelSectionRef, Normalization, Sid, SidModel, Special, Step};

/// Why the native backend cannot load or run a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// The contract does not fit this backend or the catalog.
    #[error("model contract: {0}")]
    Contract(&'static str),
    /// The artifact has no weight section (exported before it existed): the model does not
    /// fit this backend (an engine opens it with tract where that is built).
    #[error("the artifact has no weight section (exported before ugr-native-1); re-export it, or use tract")]
    NoWeightSection,
    /// The weight section names an architecture this build does not compute: the model does
    /// not fit this backend (a newer export, for example).
    #[error("the weight section's architecture {0:?} is not this build's ({WEIGHTS_FORMAT:?})")]
    UnknownRevision(String),
    /// The weight section cannot be decoded, or a tensor's data does not match its shape.
    #[error("weight section: {0}")]
    Weights(&'static str),
    /// A tensor the architecture needs is absent.
    #[error("weight `{0}` is missing")]
    Missing(String),
    /// A tensor has another shape than the contract implies.
    #[error("weight `{name}` has shape {found:?}, the contract implies {expected:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape implied by the contract.
        expected: Vec<u32>,
        /// Shape stored.
        found: Vec<u32>,
    },
    /// A tensor holds a NaN or an infinity.
    #[error("weight `{0}` holds a non-finite value")]
    NotFinite(String),
    /// A call that the contract does not allow (wrong level range, too many tokens).
    #[error("unsupported call: {0}")]
    Unsupported(&'static str),
}

impl NativeError {
    /// Whether the model is simply not one this backend runs (no weight section, another
    /// architecture), as opposed to a broken one: only then does an engine's automatic choice
    /// fall back to tract. A corrupt or inconsistent weight section is an error everywhere.
    pub fn is_other_model(&self) -> bool {
        matches!(
            self,
            NativeError::NoWeightSection | NativeError::UnknownRevision(_)
        )
    }
}

const LN_EPS: f32 = 1e-5;

struct LayerNorm {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Normalises each `d`-wide row of `x` into `y`.
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        let d = self.gain.len();
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let mean = xr.iter().sum::<f32>() / d as f32;
            let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / libm::sqrtf(var + LN_EPS);
            for (((o, &v), &g), &b) in yr.iter_mut().zip(xr).zip(&self.gain).zip(&self.bias) {
                *o = (v - mean) * inv * g + b;
            }
        }
    }
}

struct Block {
    ln1: LayerNorm,
    qkv: PackedLinear,
    out: PackedLinear,
    ln2: LayerNorm,
    up: PackedLinear,
    down: PackedLinear,
}

/// An embedding table `[n, d]` in its stored type (one row per SID on large catalogs: f16
/// stays f16).
enum Rows {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

impl Rows {
    /// `out += row`.
    fn add_row(&self, row: usize, out: &mut [f32]) {
        let d = out.len();
        match self {
            Rows::F32(v) => add(out, &v[row * d..(row + 1) * d]),
            Rows::F16(v) => {
                for (o, h) in out.iter_mut().zip(&v[row * d..(row + 1) * d]) {
                    *o += h.to_f32();
                }
            }
        }
    }
}

/// The item head's output: `user . table^T (+ bias)`, over the whole table or through the
/// index on large catalogs ([`item_index`]).
struct ItemHead {
    table: PackedLinear,
    index: Option<ItemIndex>,
}

/// Scratch reused across calls (grown, never shrunk).
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    ff: Vec<f32>,
    scores: Vec<f32>,
    last: Vec<f32>,
}

/// The KV cache and buffers of one batch (see the module docs).
#[derive(Default)]
pub struct NativeCache {
    rows: usize,
    /// SID positions filled (1 after prefill).
    position: usize,
    /// `[layers][rows][cap][d]` keys and values.
    k: Vec<f32>,
    v: Vec<f32>,
    /// The same, for the re-ordered batch (swapped with `k`/`v` after a gather).
    k_next: Vec<f32>,
    v_next: Vec<f32>,
    logits: Vec<f32>,
    items: Option<Vec<f32>>,
    /// The user states of the last prefill (the item head's input), one `d`-wide row each.
    users: Vec<f32>,
    /// The item head's candidates when the model has an item index (`short_valid`).
    short: Shortlist,
    short_valid: bool,
    s: Scratch,
}

impl core::fmt::Debug for NativeCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NativeCache")
            .field("rows", &self.rows)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// The exported model run natively (see the module docs).
pub struct NativeModel {
    contract: ModelContract,
    catalog: Arc<Catalog>,
    d: usize,
    heads: usize,
    /// Positions of the SID head: user state, L codes, `CONF_Q`.
    cap: usize,
    tok_emb: Vec<f32>,
    sid_emb: Option<Rows>,
    enc_pos: Vec<f32>,
    enc: Vec<Block>,
    enc_ln: LayerNorm,
    head_pos: Vec<f32>,
    head: Vec<Block>,
    head_ln: LayerNorm,
    /// Logits of each level's codebook, and of `C_LOW`, `C_HIGH` (last entry).
    level_logits: Vec<PackedLinear>,
    item: Option<ItemHead>,
}

impl core::fmt::Debug for NativeModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NativeModel")
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

/// Reads tensors by name with their expected shapes.
struct Loader<'a> {
    file: &'a WeightFileRef<'a>,
    /// Told each tensor's bytes once they have been copied (see [`NativeModel::new_releasing`]).
    release: &'a dyn Fn(&[u8]),
}

impl Loader<'_> {
    /// The tensor `name`, checked to have shape `dims` and data to match.
    fn tensor(&self, name: &str, dims: &[usize]) -> Result<&WeightTensorRef<'_>, NativeError> {
        let t = self
            .file
            .get(name)
            .ok_or_else(|| NativeError::Missing(name.into()))?;
        let expected: Vec<u32> = dims.iter().map(|&d| d as u32).collect();
        if t.dims != expected || dims.iter().any(|&d| d > u32::MAX as usize) {
            return Err(NativeError::Shape {
                name: name.into(),
                expected,
                found: t.dims.clone(),
            });
        }
        if t.len().is_none() {
            return Err(NativeError::Weights("a tensor's data does not match its shape"));
        }
        Ok(t)
    }

    /// A tensor widened to f32 (the small ones).
    fn get(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>, NativeError> {
        let t = self.tensor(name, dims)?;
        let values = t
            .to_f32()
            .ok_or(NativeError::Weights("a tensor's data does not match its shape"))?;
        (self.release)(t.data);
        if values.iter().any(|v| !v.is_finite()) {
            return Err(NativeError::NotFinite(name.into()));
        }
        Ok(values)
    }

    /// A `[n, k]` matrix packed in its stored type, with an optional `[n]` bias.
    fn matrix(
        &self,
        name: &str,
        bias: Option<&str>,
        n: usize,
        k: usize,
    ) -> Result<PackedLinear, NativeError> {
        let t = self.tensor(name, &[n, k])?;
        let b = bias.map(|b| self.get(b, &[n])).transpose()?;
        PackedLinear::from_le_bytes_releasing(t.data, t.dtype, b.as_deref(), n, k, self.release)
            .ok_or_else(|| NativeError::NotFinite(name.into()))
    }

    /// An `[n, d]` embedding table in its stored type.
    fn rows(&self, name: &str, n: usize, d: usize) -> Result<Rows, NativeError> {
        let t = self.tensor(name, &[n, d])?;
        let rows = match t.dtype {
            WeightType::F32 => Rows::F32(self.get(name, &[n, d])?),
            WeightType::F16 => {
                let v: Vec<half::f16> = t
                    .data
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                    .collect();
                if v.iter().any(|h| !h.is_finite()) {
                    return Err(NativeError::NotFinite(name.into()));
                }
                (self.release)(t.data);
                Rows::F16(v)
            }
        };
        Ok(rows)
    }

    fn linear(&self, prefix: &str, n: usize, k: usize) -> Result<PackedLinear, NativeError> {
        self.matrix(&format!("{prefix}.weight"), Some(&format!("{prefix}.bias")), n, k)
    }

    fn layer_norm(&self, prefix: &str, d: usize) -> Result<LayerNorm, NativeError> {
        Ok(LayerNorm {
            gain: self.get(&format!("{prefix}.weight"), &[d])?,
            bias: self.get(&format!("{prefix}.bias"), &[d])?,
        })
    }

    fn block(&self, prefix: &str, d: usize, d_ff: usize) -> Result<Block, NativeError> {
        Ok(Block {
            ln1: self.layer_norm(&format!("{prefix}.ln1"), d)?,
            qkv: self.linear(&format!("{prefix}.attn.qkv"), 3 * d, d)?,
            out: self.linear(&format!("{prefix}.attn.out"), d, d)?,
            ln2: self.layer_norm(&format!("{prefix}.ln2"), d)?,
            up: self.linear(&format!("{prefix}.ff.up"), d_ff, d)?,
            down: self.linear(&format!("{prefix}.ff.down"), d, d_ff)?,
        })
    }
}

/// The contract checks of every backend, then what this backend also needs: the recorded
/// encoder depth and feed-forward width, sizes an export can have.
fn check_contract(contract: &ModelContract, catalog: &Catalog) -> Result<(), NativeError> {
    contract.check(catalog).map_err(NativeError::Contract)?;
    if contract.encoder_layers == 0 || contract.d_ff == 0 {
        return Err(NativeError::Contract(
            "the contract does not record the encoder layers and feed-forward width",
        ));
    }
    if contract.d_model > 1 << 14 || contract.d_ff > 1 << 16 || contract.max_history > 1 << 16 {
        return Err(NativeError::Contract("sizes beyond what an exported model uses"));
    }
    Ok(())
}

impl NativeModel {
    /// Loads the weight section of `section` for `catalog`; checks the contract against the
    /// catalog and every tensor against the contract.
    pub fn new(section: &ModelSectionRef<'_>, catalog: Arc<Catalog>) -> Result<NativeModel, NativeError> {
        NativeModel::new_releasing(section, catalog, &|_| {})
    }

    /// As [`new`](Self::new); `release` is told each tensor's bytes once they have been
    /// copied into the model, so that a memory-mapped caller can let those pages go while
    /// the next tensors load (the peak then stays near what the model keeps).
    pub fn new_releasing(
        section: &ModelSectionRef<'_>,
        catalog: Arc<Catalog>,
        release: &dyn Fn(&[u8]),
    ) -> Result<NativeModel, NativeError> {
        let contract: ModelContract = serde_json::from_str(section.config_json)
            .map_err(|_| NativeError::Contract("config is not a model contract"))?;
        check_contract(&contract, &catalog)?;
        let blob = section.blob(WEIGHTS_BLOB).ok_or(NativeError::NoWeightSection)?;
        let file = WeightFileRef::from_bytes(blob)
            .map_err(|_| NativeError::Weights("cannot decode the weight section"))?;
        if file.format != WEIGHTS_FORMAT {
            return Err(NativeError::UnknownRevision(file.format.into()));
        }
        let w = Loader { file: &file, release };
        let vocab = catalog.vocab();
        let d = contract.d_model as usize;
        let heads = contract.heads as usize;
        let d_ff = contract.d_ff as usize;
        let levels = vocab.levels();
        let v = vocab.size() as usize;
        let enc_positions = contract.history_layout().len(contract.max_history as usize);
        let cap = levels + 2;
        let tok_emb = w.get("tok_emb.weight", &[v, d])?;
        let out_bias = w.get("out_bias", &[v])?;
        let sid_emb = match contract.sid_embeddings as usize {
            0 => None,
            n => Some(w.rows("sid_emb.weight", n, d)?),
        };
        let enc = (0..contract.encoder_layers as usize)
            .map(|i| w.block(&format!("enc.layers.{i}"), d, d_ff))
            .collect::<Result<Vec<_>, _>>()?;
        let head = (0..contract.head_layers as usize)
            .map(|i| w.block(&format!("head.layers.{i}"), d, d_ff))
            .collect::<Result<Vec<_>, _>>()?;
        let logits_table = |r: Range<u32>| {
            let (a, b) = (r.start as usize, r.end as usize);
            PackedLinear::new(&tok_emb[a * d..b * d], Some(&out_bias[a..b]), b - a, d)
        };
        let lo = Special::CLow.token().as_u32();
        let level_logits = (0..levels)
            .map(|l| vocab.level_tokens(l))
            .chain(core::iter::once(lo..lo + 2))
            .map(logits_table)
            .collect();
        let item = if contract.item_head {
            let s = catalog.sid_count();
            let table = if w.file.get("item_out.weight").is_some() {
                w.matrix("item_out.weight", Some("item_out.bias"), s, d)?
            } else {
                // Tied: the SID embedding rows 1.. (row 0 is "no SID").
                let e = w.tensor("sid_emb.weight", &[s + 1, d]).map_err(|_| {
                    NativeError::Contract("an item head needs SID embeddings, one row per SID and row 0")
                })?;
                let skip = e.data.len() / (s + 1);
                PackedLinear::from_le_bytes(&e.data[skip..], e.dtype, None, s, d)
                    .ok_or_else(|| NativeError::NotFinite("sid_emb.weight".into()))?
            };
            let index =
                (s >= ITEM_INDEX_MIN_SIDS).then(|| ItemIndex::build(&table, &catalog, ITEM_INDEX_PROBES));
            Some(ItemHead { table, index })
        } else {
            None
        };
        Ok(NativeModel {
            enc_pos: w.get("enc.pos", &[enc_positions, d])?,
            enc_ln: w.layer_norm("enc.ln_f", d)?,
            head_pos: w.get("head.pos", &[cap, d])?,
            head_ln: w.layer_norm("head.ln_f", d)?,
            contract,
            catalog,
            d,
            heads,
            cap,
            tok_emb,
            sid_emb,
            enc,
            head,
            level_logits,
            item,
        })
    }

    /// Scores the item head through an index (see `native/item_index.rs`) with `probes` expansions,
    /// whatever the catalog's size (engines build it from
    /// [`ITEM_INDEX_MIN_SIDS`] SIDs on): for tests and measurements of the index.
    pub fn with_item_index(mut self, probes: usize) -> NativeModel {
        if let Some(head) = &mut self.item {
            head.index = Some(ItemIndex::build(&head.table, &self.catalog, probes));
        }
        self
    }

    /// Coarse nodes of the item index, when the model has one.
    pub fn item_index_nodes(&self) -> Option<usize> {
        self.item.as_ref()?.index.as_ref().map(ItemIndex::nodes)
    }

    /// The model's contract.
    pub fn contract(&self) -> &ModelContract {
        &self.contract
    }

    /// The normalisation the model was trained with.
    pub fn normalization(&self) -> Normalization {
        self.contract.normalization.search()
    }

    /// Multiply-adds of one prefill for a history of `items` items, and of one level step
    /// over `rows` rows (FLOP accounting for benchmarks; attention's few products left out).
    pub fn macs(&self, items: usize, rows: usize) -> (u64, u64) {
        let d = self.d as u64;
        let per_row = 4 * d * d + 2 * d * u64::from(self.contract.d_ff);
        let t = self.contract.history_layout().len(items) as u64;
        let head = per_row * self.head.len() as u64;
        let item_head = self.item.as_ref().map_or(0, |i| i.table.n() as u64 * d);
        let level = |l: usize| self.level_logits[l].n() as u64 * d;
        let prefill = t * per_row * self.enc.len() as u64 + head + item_head + level(0);
        let next = 1.min(self.level_logits.len() - 2);
        (prefill, rows as u64 * (head + level(next)))
    }

    /// One pre-LN block over `n` rows of `s.x` (in place). `attend` fills `s.att` from
    /// `s.qkv` (rows of `[q | k | v]`).
    fn block(
        &self,
        b: &Block,
        n: usize,
        s: &mut Scratch,
        attend: impl FnOnce(&[f32], &mut [f32], &mut Vec<f32>),
    ) {
        let d = self.d;
        let ff = b.up.n();
        grow(&mut s.h, n * d);
        grow(&mut s.qkv, n * 3 * d);
        grow(&mut s.att, n * d);
        grow(&mut s.proj, n * d);
        grow(&mut s.ff, n * ff);
        b.ln1.apply(&s.x[..n * d], &mut s.h[..n * d]);
        b.qkv.apply(&s.h[..n * d], &mut s.qkv[..n * 3 * d]);
        attend(&s.qkv[..n * 3 * d], &mut s.att[..n * d], &mut s.scores);
        b.out.apply(&s.att[..n * d], &mut s.proj[..n * d]);
        add(&mut s.x[..n * d], &s.proj[..n * d]);
        b.ln2.apply(&s.x[..n * d], &mut s.h[..n * d]);
        b.up.apply(&s.h[..n * d], &mut s.ff[..n * ff]);
        gelu(&mut s.ff[..n * ff]);
        b.down.apply(&s.ff[..n * ff], &mut s.proj[..n * d]);
        add(&mut s.x[..n * d], &s.proj[..n * d]);
    }

    /// The encoder input of one (truncated) history, laid out as [`crate::history`] says:
    /// rows `[t, d]` appended to `x`; returns `t`.
    fn embed_history(&self, h: &[Sid], x: &mut Vec<f32>) -> Result<usize, NativeError> {
        let d = self.d;
        let vocab = self.catalog.vocab();
        let layout = self.contract.history_layout();
        let t = layout.len(h.len());
        let start = x.len();
        x.resize(start + t * d, 0.0);
        let mut rows = vec![0u32; t];
        let add_token = |x: &mut [f32], p: usize, tok: u32| {
            let tok = tok as usize;
            add(
                &mut x[start + p * d..start + (p + 1) * d],
                &self.tok_emb[tok * d..(tok + 1) * d],
            );
        };
        add_token(x, 0, Special::Bos.token().as_u32());
        for (i, sid) in h.iter().enumerate() {
            vocab
                .check(sid)
                .map_err(|_| NativeError::Unsupported("history SID outside the vocabulary"))?;
            for (k, &c) in sid.codes().iter().enumerate() {
                add_token(x, layout.token_position(i, k).0, vocab.code_token(k, c).as_u32());
            }
            rows[layout.sid_row_position(i)] =
                sid_row(&self.catalog, sid, self.contract.sid_embeddings as usize);
        }
        for (p, &row) in rows.iter().enumerate() {
            let xr = &mut x[start + p * d..start + (p + 1) * d];
            if let Some(e) = &self.sid_emb {
                e.add_row(row as usize, xr);
            }
            add(xr, &self.enc_pos[p * d..(p + 1) * d]);
        }
        Ok(t)
    }

    /// Final LayerNorm of the head and the logits of `table` for `n` rows of `s.last`.
    fn head_logits(&self, s: &mut Scratch, n: usize, table: &PackedLinear, out: &mut Vec<f32>) {
        let d = self.d;
        grow(&mut s.h, n * d);
        self.head_ln.apply(&s.last[..n * d], &mut s.h[..n * d]);
        out.clear();
        out.resize(n * table.n(), 0.0);
        table.apply(&s.h[..n * d], out);
    }
}

/// Grows `v` to at least `n` elements (never shrinks; contents are overwritten by callers).
fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

fn add(y: &mut [f32], x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// Exact GELU: `x * 0.5 * (1 + erf(x / sqrt(2)))`, with [`erf`].
fn gelu(x: &mut [f32]) {
    for v in x {
        *v = *v * 0.5 * (1.0 + erf(*v * core::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `erf(x)` in f32 as a branch-free rational function of `x` clamped to [-4, 4] (the
/// approximation Eigen and XLA use for f32 `erf`; within a few ulp of the true value, and
/// |erf(4)| rounds to 1 in f32). `libm::erff` spent a third of a request's time here;
/// this form vectorises with the rest of the loop.
#[inline]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// Where attention finds key and value `j`: `k[k0 + j * stride..][..dh]`, likewise `v`.
struct Keys<'a> {
    k: &'a [f32],
    v: &'a [f32],
    k0: usize,
    v0: usize,
    stride: usize,
}

/// Softmax-weighted sum over the first `n` keys: `out = sum_j softmax(q . k_j * scale) v_j`
/// (`scores` is scratch).
fn attend_one(q: &[f32], n: usize, keys: &Keys<'_>, scale: f32, scores: &mut Vec<f32>, out: &mut [f32]) {
    let dh = q.len();
    scores.clear();
    let mut max = f32::NEG_INFINITY;
    for j in 0..n {
        let k = &keys.k[keys.k0 + j * keys.stride..][..dh];
        let s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
        max = max.max(s);
        scores.push(s);
    }
    let mut total = 0.0;
    for s in scores.iter_mut() {
        *s = libm::expf(*s - max);
        total += *s;
    }
    out.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        let v = &keys.v[keys.v0 + j * keys.stride..][..dh];
        let w = p / total;
        for (o, &x) in out.iter_mut().zip(v) {
            *o += w * x;
        }
    }
}

impl SidModel for NativeModel {
    type Cache = NativeCache;
    type Error = NativeError;

    fn has_confidence(&self) -> bool {
        self.contract.confidence
    }

    fn new_cache(&self) -> NativeCache {
        NativeCache::default()
    }

    fn prefill(
        &self,
        cache: &mut NativeCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), NativeError> {
        let vocab = self.catalog.vocab();
        if logits_for != vocab.level_tokens(0) {
            return Err(NativeError::Unsupported(
                "the model computes level logits only (Level or Trie normalisation)",
            ));
        }
        let (d, heads) = (self.d, self.heads);
        let dh = d / heads;
        let scale = 1.0 / libm::sqrtf(dh as f32);
        let r = histories.len();
        let layout = self.contract.history_layout();
        let s = &mut cache.s;
        // Encoder: every request's positions stacked.
        let mut x = core::mem::take(&mut s.x);
        x.clear();
        let mut segments = Vec::with_capacity(r);
        for h in histories {
            let start = x.len() / d;
            let t = self.embed_history(layout.recent(h), &mut x)?;
            segments.push((start, t));
        }
        s.x = x;
        let n = s.x.len() / d;
        for b in &self.enc {
            self.block(b, n, s, |qkv, att, scores| {
                for &(start, t) in &segments {
                    for i in 0..t {
                        let row = (start + i) * 3 * d;
                        for hh in 0..heads {
                            let q = &qkv[row + hh * dh..row + (hh + 1) * dh];
                            let out = &mut att[(start + i) * d + hh * dh..][..dh];
                            let base = start * 3 * d + hh * dh;
                            let keys = Keys {
                                k: qkv,
                                v: qkv,
                                k0: base + d,
                                v0: base + 2 * d,
                                stride: 3 * d,
                            };
                            attend_one(q, i + 1, &keys, scale, scores, out);
                        }
                    }
                }
            });
        }
        // User states: the last position of each request, after the final LayerNorm.
        grow(&mut s.last, r * d);
        grow(&mut s.h, n * d);
        for (i, &(start, t)) in segments.iter().enumerate() {
            let at = (start + t - 1) * d;
            self.enc_ln
                .apply(&s.x[at..at + d], &mut s.last[i * d..(i + 1) * d]);
        }
        cache.short_valid = false;
        cache.users.clear();
        cache.items = match &self.item {
            Some(head) => {
                cache.users.extend_from_slice(&s.last[..r * d]);
                match &head.index {
                    Some(index) => {
                        index.shortlist(&head.table, &cache.users, &mut cache.short);
                        cache.short_valid = true;
                        None
                    }
                    None => {
                        let mut items = cache.items.take().unwrap_or_default();
                        items.clear();
                        items.resize(r * head.table.n(), 0.0);
                        head.table.apply(&s.last[..r * d], &mut items);
                        Some(items)
                    }
                }
            }
            None => None,
        };
        // The SID head at position 0: user state + head.pos[0].
        s.x.clear();
        s.x.extend_from_slice(&s.last[..r * d]);
        for row in s.x.chunks_exact_mut(d) {
            add(row, &self.head_pos[..d]);
        }
        let cap = self.cap;
        let layers = self.head.len();
        for buf in [&mut cache.k, &mut cache.v] {
            buf.clear();
            buf.resize(layers * r * cap * d, 0.0);
        }
        for (li, b) in self.head.iter().enumerate() {
            let (kc, vc) = (&mut cache.k, &mut cache.v);
            self.block(b, r, s, |qkv, att, _| {
                for i in 0..r {
                    let src = &qkv[i * 3 * d..(i + 1) * 3 * d];
                    let at = ((li * r + i) * cap) * d;
                    kc[at..at + d].copy_from_slice(&src[d..2 * d]);
                    vc[at..at + d].copy_from_slice(&src[2 * d..]);
                    // One position: the softmax is 1 and the output is the value.
                    att[i * d..(i + 1) * d].copy_from_slice(&src[2 * d..]);
                }
            });
        }
        s.last.clear();
        s.last.extend_from_slice(&s.x[..r * d]);
        self.head_logits(s, r, &self.level_logits[0], &mut cache.logits);
        cache.rows = r;
        cache.position = 1;
        Ok(())
    }

    fn step(&self, cache: &mut NativeCache, step: &Step<'_>) -> Result<(), NativeError> {
        let vocab = self.catalog.vocab();
        let levels = vocab.levels();
        let rows = step.rows();
        let per = step.tokens_per_row;
        if step.tokens.len() != rows * per {
            return Err(NativeError::Unsupported("tokens do not match rows"));
        }
        let position = cache.position;
        let table = match per {
            1 => {
                if position == 0 || position >= levels || step.logits_for != vocab.level_tokens(position) {
                    return Err(NativeError::Unsupported(
                        "step logits must be the next level's codebook",
                    ));
                }
                &self.level_logits[position]
            }
            2 => {
                let lo = Special::CLow.token().as_u32();
                if position != levels || step.logits_for != (lo..lo + 2) {
                    return Err(NativeError::Unsupported("confidence must follow the last level"));
                }
                if !self.contract.confidence {
                    return Err(NativeError::Unsupported("the model has no confidence graph"));
                }
                &self.level_logits[levels]
            }
            _ => return Err(NativeError::Unsupported("1 or 2 tokens per row")),
        };
        if step.parents.iter().any(|&p| p as usize >= cache.rows) {
            return Err(NativeError::Unsupported("parent row out of range"));
        }
        let v_size = vocab.size();
        if step.tokens.iter().any(|t| t.as_u32() >= v_size) {
            return Err(NativeError::Unsupported("token outside the vocabulary"));
        }
        let (d, heads, cap) = (self.d, self.heads, self.cap);
        let dh = d / heads;
        let scale = 1.0 / libm::sqrtf(dh as f32);
        let layers = self.head.len();
        let old_rows = cache.rows;
        // Re-order the cache by parent: live positions only.
        for (cur, next) in [(&cache.k, &mut cache.k_next), (&cache.v, &mut cache.v_next)] {
            next.clear();
            next.resize(layers * rows * cap * d, 0.0);
            for li in 0..layers {
                for (m, &p) in step.parents.iter().enumerate() {
                    let src = ((li * old_rows + p as usize) * cap) * d;
                    let dst = ((li * rows + m) * cap) * d;
                    next[dst..dst + position * d].copy_from_slice(&cur[src..src + position * d]);
                }
            }
        }
        core::mem::swap(&mut cache.k, &mut cache.k_next);
        core::mem::swap(&mut cache.v, &mut cache.v_next);
        // New positions: token embedding + head position.
        let s = &mut cache.s;
        let n = rows * per;
        s.x.clear();
        for (i, t) in step.tokens.iter().enumerate() {
            let t = t.as_u32() as usize;
            let p = position + i % per;
            s.x.extend_from_slice(&self.tok_emb[t * d..(t + 1) * d]);
            let at = s.x.len() - d;
            add(&mut s.x[at..], &self.head_pos[p * d..(p + 1) * d]);
        }
        for (li, b) in self.head.iter().enumerate() {
            let (kc, vc) = (&mut cache.k, &mut cache.v);
            self.block(b, n, s, |qkv, att, scores| {
                for m in 0..rows {
                    let base = ((li * rows + m) * cap) * d;
                    for j in 0..per {
                        let src = &qkv[(m * per + j) * 3 * d..][..3 * d];
                        let at = base + (position + j) * d;
                        kc[at..at + d].copy_from_slice(&src[d..2 * d]);
                        vc[at..at + d].copy_from_slice(&src[2 * d..]);
                    }
                    for j in 0..per {
                        let src = &qkv[(m * per + j) * 3 * d..][..3 * d];
                        for hh in 0..heads {
                            let q = &src[hh * dh..(hh + 1) * dh];
                            let out = &mut att[(m * per + j) * d + hh * dh..][..dh];
                            let keys = Keys {
                                k: kc,
                                v: vc,
                                k0: base + hh * dh,
                                v0: base + hh * dh,
                                stride: d,
                            };
                            attend_one(q, position + j + 1, &keys, scale, scores, out);
                        }
                    }
                }
            });
        }
        s.last.clear();
        for m in 0..rows {
            let at = (m * per + per - 1) * d;
            s.last.extend_from_slice(&s.x[at..at + d]);
        }
        self.head_logits(s, rows, table, &mut cache.logits);
        cache.rows = rows;
        cache.position = position + per;
        Ok(())
    }

    fn logits<'a>(&'a self, cache: &'a NativeCache) -> &'a [f32] {
        &cache.logits
    }

    fn item_logits<'a>(&'a self, cache: &'a NativeCache) -> Option<&'a [f32]> {
        cache.items.as_deref()
    }

    fn item_shortlist<'a>(&'a self, cache: &'a NativeCache) -> Option<crate::ItemShortlist<'a>> {
        cache.short_valid.then(|| crate::ItemShortlist {
            sids: &cache.short.sids,
            logits: &cache.short.logits,
            bounds: &cache.short.bounds,
            log_norm: &cache.short.log_norm,
        })
    }

    fn item_logit(&self, cache: &NativeCache, r: usize, sid: u32) -> Option<f32> {
        let head = self.item.as_ref()?;
        let user = cache.users.get(r * self.d..(r + 1) * self.d)?;
        ((sid as usize) < head.table.n()).then(|| head.table.column(user, sid as usize))
    }

    fn item_weight(&self) -> Option<f32> {
        self.contract.item_weight
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_is_within_a_few_ulp_of_libm() {
        let mut worst = 0f32;
        for i in -6000..=6000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((super::erf(x) - libm::erff(x)).abs());
        }
        assert!(worst < 1e-6, "max |erf - libm::erff| = {worst}");
    }
}
