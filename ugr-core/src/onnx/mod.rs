//! The tract-onnx backend (feature `onnx`): runs an exported model behind [`SidModel`].
//!
//! # Model contract
//!
//! The complete contract (with the search a runtime must reproduce: normalisation, item
//! fusion and its forced prefixes, tie-breaks, the order of items within a SID) is
//! `docs/serving.md`; this table is the graphs' part of it. An artifact's [`ModelSection`](crate::ModelSection) holds a JSON [`ModelContract`] and these ONNX graphs
//! (IR 8, opset 17, standard operators, weights as initializers, float32 compute). `R` is
//! the symbolic number of rows, `T` the symbolic encoder length, `L` the SID levels, `H`
//! the heads, `dh = d_model / H`. Token ids follow [`crate::vocab`].
//!
//! | graph | inputs | outputs |
//! |---|---|---|
//! | `prefill` | `items` i64 `[R, T, L]` (item positions: row 0 of each request is `[BOS, PAD, ...]`, then one row of level tokens per history item, PAD-padded) **or** `tokens` i64 `[R, T]` (token positions: `BOS`, then L tokens per item); `sid_rows` i64 `[R, T]` when `sid_embeddings > 0` (catalog SID index + 1 at each item's last position, else 0); `last` i64 `[R]` (flat index `r * T + p` of row `r`'s last position `p`: `r * T` for an empty history); layout: [`crate::history`] | `logits` f32 `[R, C_0]` (level 0 codebook); `present.<i>.k`, `present.<i>.v` f32 `[R, H, 1, dh]` per head layer; `item_logits` f32 `[R, S]` when `item_head` (the item head's logit of every catalog SID, S = `sid_embeddings - 1` = the catalog's SID count, in SID index order) |
//! | `step_<l>`, `1 <= l < L` (an L-level model has L - 1) | `token` i64 `[R]` (the level `l-1` code's token id); `past.<i>.k`, `past.<i>.v` f32 `[R, H, l, dh]` | `logits` f32 `[R, C_l]`; `present.<i>.{k,v}` `[R, H, l + 1, dh]` |
//! | `confidence` (when `confidence`) | `tokens` i64 `[R, 2]` (last code token, `CONF_Q`); `past.<i>.{k,v}` `[R, H, L, dh]` | `logits` f32 `[R, 2]` (`C_LOW`, `C_HIGH`) |
//!
//! With `item_head`, the search fuses `item_logits` with the generative score at the
//! contract's `item_weight` ([`ItemFusion`](crate::ItemFusion)); a contract without the field
//! is a generative-only model.
//!
//! The search passes whole histories; [`feeds::prefill`] truncates them to the last
//! `max_history` items. The KV cache lives in Rust between calls: rows are gathered by beam
//! parent before each step, so the beam search's re-selection costs one copy per layer.
//!
//! Every step graph has fixed shapes but for `R`; [`TractModel::warm`] builds plans with
//! `R` concretised for the row counts a service expects (tract optimises them further),
//! and the symbolic plan serves every other count.

pub mod check;
pub mod feeds;

use std::collections::HashMap;
use std::format;
use std::ops::Range;
use std::string::String;
use std::sync::{Arc, RwLock};
use std::vec;
use std::vec::Vec;

use tract_onnx::prelude::*;

use crate::contract::ModelContract;
use crate::{Catalog, ModelSectionRef, Normalization, Sid, SidModel, Step};

/// Why the backend could not load or run a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The contract or graphs do not fit this backend or the catalog.
    #[error("model contract: {0}")]
    Contract(&'static str),
    /// A graph is not one the model contract's exporter writes ([`check::check_graph`]).
    #[error("graph: {0}")]
    Graph(String),
    /// tract failed to load, optimise or run a graph.
    #[error("tract: {0}")]
    Tract(String),
    /// A call that the contract does not allow (wrong level range, too many tokens).
    #[error("unsupported call: {0}")]
    Unsupported(&'static str),
}

fn tract_err(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::Tract(format!("{e:#}"))
}

type Plan = Arc<TypedRunnableModel>;

/// One graph: its symbolic plan, input/output positions by name, concretised plans by `R`.
struct Graph {
    typed: TypedModel,
    plan: Plan,
    inputs: HashMap<String, usize>,
    outputs: HashMap<String, usize>,
    concrete: RwLock<HashMap<usize, Plan>>,
}

impl Graph {
    /// Checks the graph ([`check::check_graph`]), then loads it with tract; a panic inside
    /// tract is an error too (tract does not promise to survive arbitrary graphs).
    fn load(bytes: &[u8]) -> Result<Graph, OnnxError> {
        check::check_graph(bytes).map_err(OnnxError::Graph)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Graph::load_checked(bytes)))
            .map_err(|_| OnnxError::Tract("tract panicked while loading a graph".into()))?
    }

    fn load_checked(bytes: &[u8]) -> Result<Graph, OnnxError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(tract_err)?;
        let typed = model
            .into_typed()
            .map_err(tract_err)?
            .into_decluttered()
            .map_err(tract_err)?;
        let label = |outlet: &OutletId| typed.node(outlet.node).name.clone();
        let inputs = typed
            .input_outlets()
            .map_err(tract_err)?
            .iter()
            .enumerate()
            .map(|(i, o)| (label(o), i))
            .collect();
        let outputs = typed
            .output_outlets()
            .map_err(tract_err)?
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    typed
                        .outlet_label(*o)
                        .map(String::from)
                        .unwrap_or_else(|| label(o)),
                    i,
                )
            })
            .collect();
        let plan = typed
            .clone()
            .into_optimized()
            .map_err(tract_err)?
            .into_runnable()
            .map_err(tract_err)?;
        Ok(Graph {
            typed,
            plan,
            inputs,
            outputs,
            concrete: RwLock::new(HashMap::new()),
        })
    }

    fn input(&self, name: &str) -> Result<usize, OnnxError> {
        self.inputs
            .get(name)
            .copied()
            .ok_or(OnnxError::Contract("a graph lacks an input of the contract"))
    }

    fn output(&self, name: &str) -> Result<usize, OnnxError> {
        self.outputs
            .get(name)
            .copied()
            .ok_or(OnnxError::Contract("a graph lacks an output of the contract"))
    }

    /// Builds the plan with `R = rows` (once per row count).
    fn warm(&self, rows: usize) -> Result<(), OnnxError> {
        if self
            .concrete
            .read()
            .map_err(|_| OnnxError::Tract("poisoned".into()))?
            .contains_key(&rows)
        {
            return Ok(());
        }
        let r = self.typed.symbols.sym("R");
        let subs: HashMap<Symbol, TDim> = [(r, TDim::Val(rows as i64))].into_iter().collect();
        let build = || {
            self.typed
                .set_symbols(&subs)
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
        };
        let plan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(build))
            .map_err(|_| OnnxError::Tract("tract panicked while concretising a plan".into()))?
            .map_err(tract_err)?;
        self.concrete
            .write()
            .map_err(|_| OnnxError::Tract("poisoned".into()))?
            .insert(rows, plan);
        Ok(())
    }

    /// Runs the plan concretised for `rows` when there is one, else the symbolic plan.
    fn run(&self, rows: usize, inputs: TVec<TValue>) -> Result<TVec<TValue>, OnnxError> {
        let concrete = self.concrete.read().ok().and_then(|m| m.get(&rows).cloned());
        run_plan(concrete.as_ref().unwrap_or(&self.plan), inputs)
    }
}

/// Runs a plan; a panic inside tract is an error too. The load-time checks
/// ([`check::check_graph`]) bound what a graph may hold, but a constant that passes them can
/// still drive an out-of-range `Gather` at run time (tract panics there). Plans are immutable
/// and every run builds its own state, so the model stays usable after such a failure: the
/// same request fails the same way, other requests are unaffected.
fn run_plan(plan: &Plan, inputs: TVec<TValue>) -> Result<TVec<TValue>, OnnxError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.run(inputs))) {
        Ok(out) => out.map_err(tract_err),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message");
            Err(OnnxError::Tract(format!(
                "tract panicked while running a graph: {what}"
            )))
        }
    }
}

/// An exported model run by tract.
pub struct TractModel {
    contract: ModelContract,
    catalog: Arc<Catalog>,
    prefill: Graph,
    steps: Vec<Graph>,
    confidence: Option<Graph>,
}

impl std::fmt::Debug for TractModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractModel")
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

/// Decoding state: the SID head's keys and values per layer, and the last logits.
#[derive(Debug, Default)]
pub struct TractCache {
    rows: usize,
    position: usize,
    kv: Vec<Tensor>,
    logits: Vec<f32>,
    items: Option<Vec<f32>>,
}

fn i64_tensor(shape: &[usize], data: Vec<i64>) -> Result<TValue, OnnxError> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, data)
        .map_err(tract_err)?
        .into_tvalue())
}

impl TractModel {
    /// Loads the graphs of `section` for `catalog`; checks the contract against the catalog.
    pub fn new(section: &ModelSectionRef<'_>, catalog: Arc<Catalog>) -> Result<TractModel, OnnxError> {
        let contract: ModelContract = serde_json::from_str(section.config_json)
            .map_err(|_| OnnxError::Contract("config is not a model contract"))?;
        contract.check(&catalog).map_err(OnnxError::Contract)?;
        let graph = |name: &str| -> Result<Graph, OnnxError> {
            let bytes = section
                .blob(name)
                .ok_or(OnnxError::Contract("a graph of the contract is missing"))?;
            Graph::load(bytes)
        };
        let levels = contract.codebooks.len();
        let prefill = graph("prefill")?;
        if contract.item_head {
            prefill.output("item_logits")?;
        }
        let steps = (1..levels)
            .map(|l| graph(&format!("step_{l}")))
            .collect::<Result<Vec<_>, _>>()?;
        let confidence = if contract.confidence {
            Some(graph("confidence")?)
        } else {
            None
        };
        Ok(TractModel {
            contract,
            catalog,
            prefill,
            steps,
            confidence,
        })
    }

    /// The model's contract.
    pub fn contract(&self) -> &ModelContract {
        &self.contract
    }

    /// The normalisation the model was trained with.
    pub fn normalization(&self) -> Normalization {
        self.contract.normalization.search()
    }

    /// Builds concretised step plans for these row counts (e.g. the beam width for one request).
    pub fn warm(&self, rows: &[usize]) -> Result<(), OnnxError> {
        for &r in rows {
            for g in self.steps.iter().chain(&self.confidence) {
                g.warm(r)?;
            }
        }
        Ok(())
    }

    fn take_outputs(
        &self,
        g: &Graph,
        cache: &mut TractCache,
        mut out: TVec<TValue>,
    ) -> Result<(), OnnxError> {
        let logits = out[g.output("logits")?]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(tract_err)?
            .to_vec();
        cache.logits = logits;
        if g.outputs.len() > 1 {
            let mut kv = Vec::with_capacity(2 * self.contract.head_layers as usize);
            for name in feeds::kv_names(&self.contract, "present") {
                let at = g.output(&name)?;
                let t = std::mem::replace(&mut out[at], Tensor::default().into_tvalue());
                kv.push(t.into_tensor());
            }
            cache.kv = kv;
        }
        Ok(())
    }

    /// Rows of `past` (`[R_old, H, P, dh]`) re-ordered by `parents`.
    fn gather(past: &Tensor, parents: &[u32]) -> Result<TValue, OnnxError> {
        let shape = past.shape();
        let row: usize = shape[1..].iter().product();
        let src = past
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(tract_err)?;
        let mut data = Vec::new();
        feeds::gather_rows(src, row, parents, &mut data)?;
        let mut new_shape: Vec<usize> = shape.to_vec();
        new_shape[0] = parents.len();
        Ok(tract_ndarray::ArrayD::from_shape_vec(new_shape, data)
            .map_err(tract_err)?
            .into_tvalue())
    }
}

impl SidModel for TractModel {
    type Cache = TractCache;
    type Error = OnnxError;

    fn has_confidence(&self) -> bool {
        self.contract.confidence
    }

    fn new_cache(&self) -> TractCache {
        TractCache::default()
    }

    fn prefill(
        &self,
        cache: &mut TractCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), OnnxError> {
        let feeds = feeds::prefill(&self.contract, &self.catalog, histories, logits_for)?;
        let r = histories.len();
        let g = &self.prefill;
        let mut inputs: Vec<(usize, TValue)> = Vec::with_capacity(feeds.len());
        for f in feeds {
            inputs.push((g.input(f.name)?, i64_tensor(&f.shape, f.data)?));
        }
        inputs.sort_by_key(|e| e.0);
        let out = run_plan(&g.plan, inputs.into_iter().map(|e| e.1).collect())?;
        cache.rows = r;
        cache.position = 1;
        cache.items = if self.contract.item_head {
            Some(
                out[g.output("item_logits")?]
                    .try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>())
                    .map_err(tract_err)?
                    .to_vec(),
            )
        } else {
            None
        };
        self.take_outputs(g, cache, out)
    }

    fn step(&self, cache: &mut TractCache, step: &Step<'_>) -> Result<(), OnnxError> {
        let rows = step.rows();
        let (graph, feed) = feeds::step(&self.contract, &self.catalog, cache.position, step)?;
        let g = match graph {
            feeds::StepGraph::Level(l) => &self.steps[l - 1],
            feeds::StepGraph::Confidence => self
                .confidence
                .as_ref()
                .ok_or(OnnxError::Unsupported("the model has no confidence graph"))?,
        };
        let mut inputs: Vec<(usize, TValue)> =
            vec![(g.input(feed.name)?, i64_tensor(&feed.shape, feed.data)?)];
        for (j, name) in feeds::kv_names(&self.contract, "past").iter().enumerate() {
            let past = cache
                .kv
                .get(j)
                .ok_or(OnnxError::Unsupported("step before prefill"))?;
            inputs.push((g.input(name)?, Self::gather(past, step.parents)?));
        }
        inputs.sort_by_key(|e| e.0);
        let out = g.run(rows, inputs.into_iter().map(|e| e.1).collect())?;
        cache.rows = rows;
        cache.position += step.tokens_per_row;
        self.take_outputs(g, cache, out)
    }

    fn logits<'a>(&'a self, cache: &'a TractCache) -> &'a [f32] {
        &cache.logits
    }

    fn item_logits<'a>(&'a self, cache: &'a TractCache) -> Option<&'a [f32]> {
        cache.items.as_deref()
    }

    fn item_weight(&self) -> Option<f32> {
        self.contract.item_weight
    }
}
