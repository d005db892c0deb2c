//! Transformer building blocks, written with differentiable candle ops only.
//!
//! candle 0.11's fused `layer_norm` and `softmax_last_dim` pass no gradient (candle
//! issue 3011), so layer norm is composed from mean/sub/div and attention uses the
//! composite `candle_nn::ops::softmax`. `tests/it/model.rs` checks that every parameter
//! receives a gradient.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use rand::Rng;
use rand::rngs::StdRng;

/// Draws dropout masks from a seeded RNG (candle's CPU RNG cannot be seeded).
pub struct Dropout<'r> {
    /// Drop probability.
    pub p: f32,
    /// The RNG (seeded per step by the trainer).
    pub rng: &'r mut StdRng,
}

impl Dropout<'_> {
    /// `x * mask / (1 - p)` with a fresh Bernoulli mask.
    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let n = x.elem_count();
        let keep = 1.0 - self.p;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.random::<f32>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}

/// Applies dropout when training (`Some`), identity otherwise.
pub fn dropout(x: &Tensor, d: &mut Option<Dropout<'_>>) -> Result<Tensor> {
    match d {
        Some(d) => d.apply(x),
        None => Ok(x.clone()),
    }
}

/// Layer normalisation over the last dimension (unfused, differentiable).
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    /// Parameters `weight` (init 1) and `bias` (init 0) under `vb`.
    pub fn new(d: usize, vb: &VarBuilder<'_>) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", candle_nn::Init::Const(0.0))?,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Multi-head self-attention with an optional KV cache.
pub struct SelfAttention {
    qkv: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

/// Cached keys and values of one layer: `[rows, heads, positions, head_dim]` each.
pub type Kv = (Tensor, Tensor);

impl SelfAttention {
    /// Parameters `qkv` (`[3d, d]`) and `out` (`[d, d]`).
    pub fn new(d: usize, heads: usize, vb: &VarBuilder<'_>) -> Result<Self> {
        Ok(SelfAttention {
            qkv: linear(d, 3 * d, vb.pp("qkv"))?,
            out: linear(d, d, vb.pp("out"))?,
            heads,
            head_dim: d / heads,
        })
    }

    /// `x`: `[B, T, d]`; `mask`: additive, broadcastable to `[B, heads, T, past + T]`.
    /// Returns the output and the keys/values including `past`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>, past: Option<&Kv>) -> Result<(Tensor, Kv)> {
        let (b, t, d) = x.dims3()?;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let mut k = qkv.get(1)?.contiguous()?;
        let mut v = qkv.get(2)?.contiguous()?;
        if let Some((pk, pv)) = past {
            k = Tensor::cat(&[pk, &k], 2)?;
            v = Tensor::cat(&[pv, &v], 2)?;
        }
        let scores = (q.matmul(&k.t()?)? * (1.0 / (self.head_dim as f64).sqrt()))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let o = p.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        Ok((self.out.forward(&o)?, (k, v)))
    }
}

/// A pre-norm transformer block: attention and a GELU feed-forward, each residual.
pub struct Block {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    up: Linear,
    down: Linear,
}

impl Block {
    /// Parameters under `vb`: `ln1`, `attn`, `ln2`, `ff.up`, `ff.down`.
    pub fn new(d: usize, heads: usize, d_ff: usize, vb: &VarBuilder<'_>) -> Result<Self> {
        Ok(Block {
            ln1: LayerNorm::new(d, &vb.pp("ln1"))?,
            attn: SelfAttention::new(d, heads, &vb.pp("attn"))?,
            ln2: LayerNorm::new(d, &vb.pp("ln2"))?,
            up: linear(d, d_ff, vb.pp("ff.up"))?,
            down: linear(d_ff, d, vb.pp("ff.down"))?,
        })
    }

    /// One block; returns the output and this layer's keys/values.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        past: Option<&Kv>,
        drop: &mut Option<Dropout<'_>>,
    ) -> Result<(Tensor, Kv)> {
        let (a, kv) = self.attn.forward(&self.ln1.forward(x)?, mask, past)?;
        let x = (x + dropout(&a, drop)?)?;
        let f = self
            .down
            .forward(&self.up.forward(&self.ln2.forward(&x)?)?.gelu_erf()?)?;
        let x = (&x + dropout(&f, drop)?)?;
        Ok((x, kv))
    }
}

/// Additive causal mask `[t, past + t]`: new position `i` sees all `past` positions and new
/// positions `<= i`.
pub fn causal_mask(t: usize, past: usize, device: &candle_core::Device) -> Result<Tensor> {
    let total = past + t;
    let v: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j <= past + i { 0.0 } else { -1e9 }))
        .collect();
    Tensor::from_vec(v, (t, total), device)
}
