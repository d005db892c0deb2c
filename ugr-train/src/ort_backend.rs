//! onnxruntime running the exported graphs behind [`SidModel`] (feature `ort`), for the
//! side-by-side benchmark of `ugr bench engine`: the same artifact, the same inputs
//! ([`ugr_core::onnx::feeds`]) and the same beam search as the tract engine, so the two
//! rows of the table differ only in the runtime.
//!
//! The shared library is loaded at run time (`--ort-dylib`, e.g. the
//! `onnxruntime/capi/libonnxruntime.so.*` inside the onnxruntime PyPI wheel). Sessions run
//! with one intra-op thread and all graph optimisations; `run` needs `&mut Session`, so each
//! graph sits behind a mutex (the benchmark gives every thread its own model).

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use ugr_core::contract::ModelContract;
use ugr_core::onnx::OnnxError;
use ugr_core::onnx::feeds::{self, Feed, StepGraph};
use ugr_core::{Catalog, ModelSection, Sid, SidModel, Step};

/// Why onnxruntime could not load or run a model.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    /// onnxruntime reported an error.
    #[error("onnxruntime: {0}")]
    Ort(String),
    /// The inputs do not fit the contract.
    #[error(transparent)]
    Feed(#[from] OnnxError),
}

fn ort_err(e: impl std::fmt::Display) -> OrtError {
    OrtError::Ort(e.to_string())
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Loads the onnxruntime shared library (once per process).
pub fn environment(dylib: &Path) -> Result<Environment, OrtError> {
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(dylib)
                .map_err(|e| format!("loading {}: {e}", dylib.display()))?
                .with_name("ugr-bench")
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(OrtError::Ort)
}

/// The exported graphs in onnxruntime sessions.
pub struct OrtModel {
    contract: ModelContract,
    catalog: Arc<Catalog>,
    prefill: Mutex<Session>,
    steps: Vec<Mutex<Session>>,
    confidence: Option<Mutex<Session>>,
}

/// Decoding state: the KV cache (shape, values) per `past` input, and the last logits.
#[derive(Debug, Default)]
pub struct OrtCache {
    position: usize,
    kv: Vec<(Vec<usize>, Vec<f32>)>,
    logits: Vec<f32>,
    items: Option<Vec<f32>>,
}

impl OrtModel {
    /// Opens the graphs of `section` (its contract was checked by [`ugr_core::onnx::TractModel`]).
    pub fn new(
        env: &Environment,
        contract: ModelContract,
        section: &ModelSection,
        catalog: Arc<Catalog>,
    ) -> Result<OrtModel, OrtError> {
        let session = |name: &str| -> Result<Mutex<Session>, OrtError> {
            let blob = section
                .graphs
                .iter()
                .find(|g| g.name == name)
                .ok_or(OnnxError::Contract("a graph of the contract is missing"))?;
            let s = Session::builder(env)
                .map_err(ort_err)?
                .with_intra_threads(1)
                .map_err(ort_err)?
                .with_inter_threads(1)
                .map_err(ort_err)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(ort_err)?
                .commit_from_memory(&blob.bytes)
                .map_err(ort_err)?;
            Ok(Mutex::new(s))
        };
        let levels = contract.codebooks.len();
        Ok(OrtModel {
            prefill: session("prefill")?,
            steps: (1..levels)
                .map(|l| session(&StepGraph::Level(l).name()))
                .collect::<Result<_, _>>()?,
            confidence: if contract.confidence {
                Some(session("confidence")?)
            } else {
                None
            },
            contract,
            catalog,
        })
    }

    fn run(
        &self,
        session: &Mutex<Session>,
        inputs: Vec<(Cow<'static, str>, SessionInputValue<'static>)>,
        cache: &mut OrtCache,
        with_kv: bool,
    ) -> Result<(), OrtError> {
        let mut session = session
            .lock()
            .map_err(|_| OrtError::Ort("poisoned session".into()))?;
        let out = session.run(inputs).map_err(ort_err)?;
        let (_, logits) = out["logits"].try_extract_tensor::<f32>().map_err(ort_err)?;
        cache.logits.clear();
        cache.logits.extend_from_slice(logits);
        if with_kv && self.contract.item_head && cache.position == 0 {
            let (_, items) = out["item_logits"].try_extract_tensor::<f32>().map_err(ort_err)?;
            cache.items = Some(items.to_vec());
        }
        if with_kv {
            cache.kv.clear();
            for name in feeds::kv_names(&self.contract, "present") {
                let (shape, data) = out[name.as_str()].try_extract_tensor::<f32>().map_err(ort_err)?;
                let shape = shape.iter().map(|&d| d as usize).collect();
                cache.kv.push((shape, data.to_vec()));
            }
        }
        Ok(())
    }
}

fn i64_input(f: Feed) -> Result<(Cow<'static, str>, SessionInputValue<'static>), OrtError> {
    let t = Tensor::from_array((f.shape, f.data)).map_err(ort_err)?;
    Ok((Cow::Borrowed(f.name), t.into()))
}

impl SidModel for OrtModel {
    type Cache = OrtCache;
    type Error = OrtError;

    fn has_confidence(&self) -> bool {
        self.contract.confidence
    }

    fn new_cache(&self) -> OrtCache {
        OrtCache::default()
    }

    fn prefill(
        &self,
        cache: &mut OrtCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> Result<(), OrtError> {
        let inputs = feeds::prefill(&self.contract, &self.catalog, histories, logits_for)?
            .into_iter()
            .map(i64_input)
            .collect::<Result<_, _>>()?;
        cache.position = 0;
        cache.items = None;
        self.run(&self.prefill, inputs, cache, true)?;
        cache.position = 1;
        Ok(())
    }

    fn step(&self, cache: &mut OrtCache, step: &Step<'_>) -> Result<(), OrtError> {
        let (graph, feed) = feeds::step(&self.contract, &self.catalog, cache.position, step)?;
        let session = match graph {
            StepGraph::Level(l) => &self.steps[l - 1],
            StepGraph::Confidence => self
                .confidence
                .as_ref()
                .ok_or(OnnxError::Unsupported("the model has no confidence graph"))?,
        };
        let mut inputs = vec![i64_input(feed)?];
        let names = feeds::kv_names(&self.contract, "past");
        if cache.kv.len() != names.len() {
            return Err(OnnxError::Unsupported("step before prefill").into());
        }
        for (name, (shape, data)) in names.into_iter().zip(&cache.kv) {
            let row: usize = shape[1..].iter().product();
            let mut gathered = Vec::new();
            feeds::gather_rows(data, row, step.parents, &mut gathered)?;
            let mut shape = shape.clone();
            shape[0] = step.parents.len();
            let t = Tensor::from_array((shape, gathered)).map_err(ort_err)?;
            inputs.push((Cow::Owned(name), t.into()));
        }
        self.run(session, inputs, cache, graph != StepGraph::Confidence)?;
        cache.position += step.tokens_per_row;
        Ok(())
    }

    fn logits<'a>(&'a self, cache: &'a OrtCache) -> &'a [f32] {
        &cache.logits
    }

    fn item_logits<'a>(&'a self, cache: &'a OrtCache) -> Option<&'a [f32]> {
        cache.items.as_deref()
    }

    fn item_weight(&self) -> Option<f32> {
        self.contract.item_weight
    }
}
