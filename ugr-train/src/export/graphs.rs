//! The SID transformer as ONNX graphs (the model contract is documented in
//! `ugr_core::onnx`): `prefill`, one `step_<l>` per further level, and `confidence` when
//! the model has learned the confidence tokens. Only the row count `R` (and the history
//! length `T` of `prefill`) are symbolic; positions and past lengths are fixed per graph.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use candle_core::Var;
use ugr_core::Special;
use ugr_core::vocab::SidVocab;

use super::onnx::{Attr, Dim, Elem, GraphBuilder};
use crate::model::{HistoryEncoding, ItemOutput, ModelConfig};

/// Reads named weights from a candle var map.
pub struct Weights<'a> {
    map: &'a HashMap<String, Var>,
}

impl<'a> Weights<'a> {
    /// Wraps the var map's content.
    pub fn new(map: &'a HashMap<String, Var>) -> Self {
        Weights { map }
    }

    fn var(&self, name: &str) -> Result<&Var> {
        self.map
            .get(name)
            .ok_or_else(|| anyhow!("the checkpoint lacks {name}"))
    }

    /// Shape and row-major values.
    pub fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let v = self.var(name)?;
        Ok((v.dims().to_vec(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
    }

    /// A 2-D weight transposed (candle `Linear` stores `[out, in]`; `MatMul` wants `[in, out]`).
    pub fn get_t(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.var(name)?.as_tensor().t()?.contiguous()?;
        Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?))
    }

    /// Rows `start..start + n` of a 2-D weight, transposed: `[cols, n]`.
    pub fn rows_t(&self, name: &str, start: usize, n: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self
            .var(name)?
            .as_tensor()
            .narrow(0, start, n)?
            .t()?
            .contiguous()?;
        Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?))
    }

    /// Elements `start..start + n` of a 1-D weight, or rows of a 2-D one.
    pub fn slice(&self, name: &str, start: usize, n: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.var(name)?.as_tensor().narrow(0, start, n)?.contiguous()?;
        Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?))
    }
}

struct Emitter<'a> {
    g: GraphBuilder,
    w: &'a Weights<'a>,
    cfg: &'a ModelConfig,
    names: HashMap<String, String>,
}

impl Emitter<'_> {
    fn weight(&mut self, name: &str) -> Result<String> {
        if let Some(n) = self.names.get(name) {
            return Ok(n.clone());
        }
        let (dims, data) = self.w.get(name)?;
        let n = self.g.weight(name, &dims, &data);
        self.names.insert(name.to_owned(), n.clone());
        Ok(n)
    }

    fn weight_t(&mut self, name: &str) -> Result<String> {
        let key = format!("{name}^T");
        if let Some(n) = self.names.get(&key) {
            return Ok(n.clone());
        }
        let (dims, data) = self.w.get_t(name)?;
        let n = self.g.weight(&key, &dims, &data);
        self.names.insert(key, n.clone());
        Ok(n)
    }

    fn linear(&mut self, x: &str, prefix: &str) -> Result<String> {
        let w = self.weight_t(&format!("{prefix}.weight"))?;
        let b = self.weight(&format!("{prefix}.bias"))?;
        let y = self.g.node("MatMul", &[x, &w], vec![]);
        Ok(self.g.node("Add", &[&y, &b], vec![]))
    }

    fn layer_norm(&mut self, x: &str, prefix: &str) -> Result<String> {
        let s = self.weight(&format!("{prefix}.weight"))?;
        let b = self.weight(&format!("{prefix}.bias"))?;
        Ok(self.g.node(
            "LayerNormalization",
            &[x, &s, &b],
            vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-5))],
        ))
    }

    /// Exact GELU: `x * 0.5 * (1 + erf(x / sqrt(2)))`.
    fn gelu(&mut self, x: &str) -> String {
        let inv_sqrt2 = self.g.const_f32(&[], &[std::f32::consts::FRAC_1_SQRT_2]);
        let half = self.g.const_f32(&[], &[0.5]);
        let one = self.g.const_f32(&[], &[1.0]);
        let scaled = self.g.node("Mul", &[x, &inv_sqrt2], vec![]);
        let e = self.g.node("Erf", &[&scaled], vec![]);
        let e1 = self.g.node("Add", &[&e, &one], vec![]);
        let xh = self.g.node("Mul", &[x, &half], vec![]);
        self.g.node("Mul", &[&xh, &e1], vec![])
    }

    /// Attention over `x` `[R, T, d]`; returns the output and the full keys/values `[R, H, past + T, dh]`.
    fn attention(
        &mut self,
        x: &str,
        prefix: &str,
        mask: Option<&str>,
        past: Option<(&str, &str)>,
    ) -> Result<(String, String, String)> {
        let (h, d) = (self.cfg.heads as i64, self.cfg.d_model as i64);
        let dh = d / h;
        let qkv = self.linear(x, &format!("{prefix}.qkv"))?;
        let shape = self.g.const_i64(&[5], &[0, 0, 3, h, dh]);
        let qkv = self.g.node("Reshape", &[&qkv, &shape], vec![]);
        let qkv = self.g.node(
            "Transpose",
            &[&qkv],
            vec![("perm", Attr::Ints(vec![2, 0, 3, 1, 4]))],
        );
        let mut parts = Vec::new();
        for i in 0..3 {
            let idx = self.g.const_i64(&[], &[i]);
            parts.push(self.g.node("Gather", &[&qkv, &idx], vec![("axis", Attr::Int(0))]));
        }
        let (q, mut k, mut v) = (parts[0].clone(), parts[1].clone(), parts[2].clone());
        if let Some((pk, pv)) = past {
            k = self.g.node("Concat", &[pk, &k], vec![("axis", Attr::Int(2))]);
            v = self.g.node("Concat", &[pv, &v], vec![("axis", Attr::Int(2))]);
        }
        let kt = self
            .g
            .node("Transpose", &[&k], vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))]);
        let scores = self.g.node("MatMul", &[&q, &kt], vec![]);
        let scale = self.g.const_f32(&[], &[1.0 / (dh as f32).sqrt()]);
        let mut scores = self.g.node("Mul", &[&scores, &scale], vec![]);
        if let Some(m) = mask {
            scores = self.g.node("Add", &[&scores, m], vec![]);
        }
        let p = self.g.node("Softmax", &[&scores], vec![("axis", Attr::Int(-1))]);
        let o = self.g.node("MatMul", &[&p, &v], vec![]);
        let o = self
            .g
            .node("Transpose", &[&o], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let shape = self.g.const_i64(&[3], &[0, 0, d]);
        let o = self.g.node("Reshape", &[&o, &shape], vec![]);
        let out = self.linear(&o, &format!("{prefix}.out"))?;
        Ok((out, k, v))
    }

    fn block(
        &mut self,
        x: &str,
        prefix: &str,
        mask: Option<&str>,
        past: Option<(&str, &str)>,
    ) -> Result<(String, String, String)> {
        let h = self.layer_norm(x, &format!("{prefix}.ln1"))?;
        let (a, k, v) = self.attention(&h, &format!("{prefix}.attn"), mask, past)?;
        let x = self.g.node("Add", &[x, &a], vec![]);
        let h = self.layer_norm(&x, &format!("{prefix}.ln2"))?;
        let up = self.linear(&h, &format!("{prefix}.ff.up"))?;
        let act = self.gelu(&up);
        let down = self.linear(&act, &format!("{prefix}.ff.down"))?;
        Ok((self.g.node("Add", &[&x, &down], vec![]), k, v))
    }

    /// The SID head over `x` `[R, n, d]`; declares `present.*` outputs when `present` is set.
    fn head(&mut self, x: &str, past_len: usize, mask: Option<&str>, present: bool) -> Result<String> {
        let (h, dh) = (self.cfg.heads as i64, (self.cfg.d_model / self.cfg.heads) as i64);
        let mut x = x.to_owned();
        for i in 0..self.cfg.head_layers {
            let past = if past_len > 0 {
                let dims = [
                    Dim::Sym("R"),
                    Dim::Fixed(h),
                    Dim::Fixed(past_len as i64),
                    Dim::Fixed(dh),
                ];
                let pk = self.g.input(&format!("past.{i}.k"), Elem::F32, &dims);
                let pv = self.g.input(&format!("past.{i}.v"), Elem::F32, &dims);
                Some((pk, pv))
            } else {
                None
            };
            let (y, k, v) = self.block(
                &x,
                &format!("head.layers.{i}"),
                mask,
                past.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            )?;
            if present {
                let n = past_len + 1;
                let dims = [Dim::Sym("R"), Dim::Fixed(h), Dim::Fixed(n as i64), Dim::Fixed(dh)];
                self.g.output(&k, &format!("present.{i}.k"), Elem::F32, &dims);
                self.g.output(&v, &format!("present.{i}.v"), Elem::F32, &dims);
            }
            x = y;
        }
        self.layer_norm(&x, "head.ln_f")
    }

    /// `[R, d]` hidden states -> logits of tokens `start..start + n`: `[R, n]`.
    fn logits(&mut self, h: &str, start: usize, n: usize) -> Result<String> {
        let (dims, data) = self.w.rows_t("tok_emb.weight", start, n)?;
        let w = self
            .g
            .weight(&format!("tok_emb^T[{start}..{}]", start + n), &dims, &data);
        let (bd, bdata) = self.w.slice("out_bias", start, n)?;
        let b = self
            .g
            .weight(&format!("out_bias[{start}..{}]", start + n), &bd, &bdata);
        let y = self.g.node("MatMul", &[h, &w], vec![]);
        Ok(self.g.node("Add", &[&y, &b], vec![]))
    }

    /// Head position embedding rows `start..start + n`: `[n, d]`.
    fn head_pos(&mut self, start: usize, n: usize) -> Result<String> {
        let (dims, data) = self.w.slice("head.pos", start, n)?;
        Ok(self
            .g
            .weight(&format!("head.pos[{start}..{}]", start + n), &dims, &data))
    }
}

fn emitter<'a>(w: &'a Weights<'a>, cfg: &'a ModelConfig, f16: bool) -> Emitter<'a> {
    Emitter {
        g: GraphBuilder::new(f16),
        w,
        cfg,
        names: HashMap::new(),
    }
}

/// `prefill`: inputs `items` `[R, T, L]` (item positions) or `tokens` `[R, T]` (token
/// positions), `sid_rows` `[R, T]` (with SID embeddings), `last` `[R]` (flat index
/// `r * T + position` of each row's last history position); outputs `logits` `[R, C_0]`,
/// `present.<i>.{k,v}` `[R, H, 1, dh]`, and `item_logits` `[R, S]` (S = catalog SIDs) when
/// the model has an item head.
pub fn prefill(w: &Weights<'_>, cfg: &ModelConfig, vocab: &SidVocab, f16: bool) -> Result<Vec<u8>> {
    let mut e = emitter(w, cfg, f16);
    let l = cfg.levels() as i64;
    let d = cfg.d_model as i64;
    let emb = e.weight("tok_emb.weight")?;
    let x = match cfg.history {
        HistoryEncoding::Item => {
            let items =
                e.g.input("items", Elem::I64, &[Dim::Sym("R"), Dim::Sym("T"), Dim::Fixed(l)]);
            let gathered = e.g.node("Gather", &[&emb, &items], vec![("axis", Attr::Int(0))]);
            let pad = e.g.const_i64(&[], &[i64::from(Special::Pad.token().as_u32())]);
            let is_pad = e.g.node("Equal", &[&items, &pad], vec![]);
            let real = e.g.node("Not", &[&is_pad], vec![]);
            let mask = e.g.node("Cast", &[&real], vec![("to", Attr::Int(1))]);
            let axes = e.g.const_i64(&[1], &[3]);
            let mask = e.g.node("Unsqueeze", &[&mask, &axes], vec![]);
            let masked = e.g.node("Mul", &[&gathered, &mask], vec![]);
            let axes = e.g.const_i64(&[1], &[2]);
            e.g.node("ReduceSum", &[&masked, &axes], vec![("keepdims", Attr::Int(0))])
        }
        HistoryEncoding::Token => {
            let tokens = e.g.input("tokens", Elem::I64, &[Dim::Sym("R"), Dim::Sym("T")]);
            e.g.node("Gather", &[&emb, &tokens], vec![("axis", Attr::Int(0))])
        }
    };
    let x = if cfg.sid_embeddings > 0 {
        let rows = e.g.input("sid_rows", Elem::I64, &[Dim::Sym("R"), Dim::Sym("T")]);
        let sid_emb = e.weight("sid_emb.weight")?;
        let s =
            e.g.node("Gather", &[&sid_emb, &rows], vec![("axis", Attr::Int(0))]);
        e.g.node("Add", &[&x, &s], vec![])
    } else {
        x
    };
    let last = e.g.input("last", Elem::I64, &[Dim::Sym("R")]);
    // Positions 0..T and the causal mask from the input's length (Range + Greater, not Trilu).
    let shape = e.g.node("Shape", &[&x], vec![]);
    let one_idx = e.g.const_i64(&[], &[1]);
    let t =
        e.g.node("Gather", &[&shape, &one_idx], vec![("axis", Attr::Int(0))]);
    let zero = e.g.const_i64(&[], &[0]);
    let one = e.g.const_i64(&[], &[1]);
    let range = e.g.node("Range", &[&zero, &t, &one], vec![]);
    let pos_table = e.weight("enc.pos")?;
    let pos =
        e.g.node("Gather", &[&pos_table, &range], vec![("axis", Attr::Int(0))]);
    let mut x = e.g.node("Add", &[&x, &pos], vec![]);
    let ax1 = e.g.const_i64(&[1], &[1]);
    let ax0 = e.g.const_i64(&[1], &[0]);
    let rows = e.g.node("Unsqueeze", &[&range, &ax1], vec![]);
    let cols = e.g.node("Unsqueeze", &[&range, &ax0], vec![]);
    let future = e.g.node("Greater", &[&cols, &rows], vec![]);
    let neg = e.g.const_f32(&[], &[-1e9]);
    let zero_f = e.g.const_f32(&[], &[0.0]);
    let mask = e.g.node("Where", &[&future, &neg, &zero_f], vec![]);
    for i in 0..cfg.layers {
        x = e.block(&x, &format!("enc.layers.{i}"), Some(&mask), None)?.0;
    }
    let states = e.layer_norm(&x, "enc.ln_f")?;
    let flat_shape = e.g.const_i64(&[2], &[-1, d]);
    let flat = e.g.node("Reshape", &[&states, &flat_shape], vec![]);
    let user = e.g.node("Gather", &[&flat, &last], vec![("axis", Attr::Int(0))]);
    let p0 = e.head_pos(0, 1)?;
    let x0 = e.g.node("Add", &[&user, &p0], vec![]);
    let x0 = e.g.node("Unsqueeze", &[&x0, &ax1], vec![]);
    let h = e.head(&x0, 0, None, true)?;
    let h = e.g.node("Squeeze", &[&h, &ax1], vec![]);
    let r0 = vocab.level_tokens(0);
    let logits = e.logits(&h, r0.start as usize, (r0.end - r0.start) as usize)?;
    e.g.output(
        &logits,
        "logits",
        Elem::F32,
        &[Dim::Sym("R"), Dim::Fixed(i64::from(r0.end - r0.start))],
    );
    if cfg.has_item_head() {
        let sids = cfg.sid_embeddings as i64 - 1;
        let items = match cfg.item_output {
            ItemOutput::Untied => {
                // The untied head: user state . item_out^T + item_bias.
                let table = e.weight("item_out.weight")?;
                let bias = e.weight("item_out.bias")?;
                e.g.node("Gemm", &[&user, &table, &bias], vec![("transB", Attr::Int(1))])
            }
            ItemOutput::Tied => {
                // user state . sid_emb[1..] (row 0, "no SID", is not a candidate), read from
                // the same initializer as the history's SID embeddings.
                let sid_emb = e.weight("sid_emb.weight")?;
                let starts = e.g.const_i64(&[1], &[1]);
                let ends = e.g.const_i64(&[1], &[sids + 1]);
                let candidates = e.g.node("Slice", &[&sid_emb, &starts, &ends, &ax0], vec![]);
                e.g.node("Gemm", &[&user, &candidates], vec![("transB", Attr::Int(1))])
            }
        };
        e.g.output(
            &items,
            "item_logits",
            Elem::F32,
            &[Dim::Sym("R"), Dim::Fixed(sids)],
        );
    }
    Ok(e.g.finish("ugr_prefill"))
}

/// `step_<level>` (1 <= level < L): inputs `token` `[R]` (the token of the level `level - 1`
/// code) and
/// `past.<i>.{k,v}` `[R, H, level, dh]`; outputs `logits` `[R, C_level]` and `present.*`.
pub fn step(
    w: &Weights<'_>,
    cfg: &ModelConfig,
    vocab: &SidVocab,
    level: usize,
    f16: bool,
) -> Result<Vec<u8>> {
    let mut e = emitter(w, cfg, f16);
    let token = e.g.input("token", Elem::I64, &[Dim::Sym("R")]);
    let emb = e.weight("tok_emb.weight")?;
    let x = e.g.node("Gather", &[&emb, &token], vec![("axis", Attr::Int(0))]);
    let p = e.head_pos(level, 1)?;
    let x = e.g.node("Add", &[&x, &p], vec![]);
    let ax1 = e.g.const_i64(&[1], &[1]);
    let x = e.g.node("Unsqueeze", &[&x, &ax1], vec![]);
    let h = e.head(&x, level, None, true)?;
    let h = e.g.node("Squeeze", &[&h, &ax1], vec![]);
    let r = vocab.level_tokens(level);
    let logits = e.logits(&h, r.start as usize, (r.end - r.start) as usize)?;
    e.g.output(
        &logits,
        "logits",
        Elem::F32,
        &[Dim::Sym("R"), Dim::Fixed(i64::from(r.end - r.start))],
    );
    Ok(e.g.finish(&format!("ugr_step_{level}")))
}

/// `confidence`: inputs `tokens` `[R, 2]` (the last code token, then `CONF_Q`) and
/// `past.<i>.{k,v}` `[R, H, L, dh]`; output `logits` `[R, 2]` of `C_LOW`, `C_HIGH`.
pub fn confidence(w: &Weights<'_>, cfg: &ModelConfig, f16: bool) -> Result<Vec<u8>> {
    let mut e = emitter(w, cfg, f16);
    let l = cfg.levels();
    let tokens = e.g.input("tokens", Elem::I64, &[Dim::Sym("R"), Dim::Fixed(2)]);
    let emb = e.weight("tok_emb.weight")?;
    let x = e.g.node("Gather", &[&emb, &tokens], vec![("axis", Attr::Int(0))]);
    let p = e.head_pos(l, 2)?;
    let x = e.g.node("Add", &[&x, &p], vec![]);
    // The first new position must not see the second.
    let mut m = vec![0f32; 2 * (l + 2)];
    m[l + 1] = -1e9;
    let mask = e.g.const_f32(&[2, l + 2], &m);
    let h = e.head(&x, l, Some(&mask), false)?;
    let one = e.g.const_i64(&[], &[1]);
    let h = e.g.node("Gather", &[&h, &one], vec![("axis", Attr::Int(1))]);
    let lo = Special::CLow.token().as_u32() as usize;
    let logits = e.logits(&h, lo, 2)?;
    e.g.output(&logits, "logits", Elem::F32, &[Dim::Sym("R"), Dim::Fixed(2)]);
    Ok(e.g.finish("ugr_confidence"))
}
