//! `ugr._ugr`: the native half of the `ugr` Python package.
//!
//! The public API is the pure-Python package (`ugr-py/python/ugr`): it turns the input forms
//! (lists, numpy arrays, pyarrow arrays) into flat little-endian buffers, and the buffers
//! coming back into records, numpy arrays or a pyarrow Table. This module only crosses the
//! boundary: it reads those buffers, runs the engine with the GIL released, and raises the
//! exceptions of `ugr.errors` with libugr's status names.
//!
//! Buffers: item ids are `u32`, offsets `u64`, flags `u8`, scores `f32`, all little-endian.
//!
//! Fork safety: no thread exists outside a call (`Engine::recommend_parallel` scopes its
//! threads to the call), so a process may fork between calls.

mod buffers;

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use ugr::ugr_status;
use ugr_core::{Constraints, Error, ItemId, Request, SearchOptions, Sid};

use buffers::{Columns, offsets_u64, ranges, u32s};

/// Raises `ugr.errors.<class for status>(message)`.
fn raise(py: Python<'_>, status: ugr_status, message: &str) -> PyErr {
    let made = PyModule::import(py, "ugr.errors")
        .and_then(|m| m.getattr("from_status"))
        .and_then(|f| f.call1((status.name(), message)));
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}

/// Runs `f` with the GIL released; a panic (a bug in ugr) becomes `ugr.PanicError` instead
/// of tearing through the interpreter.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            raise(
                py,
                ugr_status::Panic,
                &format!("panic inside ugr (please report it): {what}"),
            )
        })
}

fn invalid(py: Python<'_>, message: &str) -> PyErr {
    raise(py, ugr_status::InvalidArgument, message)
}

fn recommending(py: Python<'_>, e: &Error) -> PyErr {
    raise(py, ugr_status::of_recommending(e), &e.to_string())
}

/// An artifact opened for serving. Share one between threads: every method may be called
/// from any number of threads at once.
#[pyclass(frozen, module = "ugr._ugr", name = "Engine")]
struct Engine {
    inner: Arc<ugr_core::Engine>,
}

/// The search options and rules of one call, as Python passed them.
struct Call {
    opts: SearchOptions,
    allow: Option<Vec<ItemId>>,
    deny: Vec<ItemId>,
    prefixes: Vec<Sid>,
}

impl Call {
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        k: usize,
        beam: usize,
        exclude_history: bool,
        allow: Option<&[u8]>,
        deny: &[u8],
        prefixes: &[String],
        min_confidence: Option<f32>,
    ) -> PyResult<Call> {
        let opts = SearchOptions {
            beam,
            top_k: k,
            exclude_history,
            min_confidence,
            ..SearchOptions::default()
        };
        opts.validate().map_err(|e| recommending(py, &e))?;
        let ids = |bytes: &[u8], what: &str| -> PyResult<Vec<ItemId>> {
            Ok(u32s(bytes)
                .ok_or_else(|| invalid(py, &format!("{what}: not a u32 buffer")))?
                .map(ItemId::new)
                .collect())
        };
        let prefixes = prefixes
            .iter()
            .map(|p| {
                Sid::parse(p).map_err(|e| {
                    invalid(
                        py,
                        &format!("prefix {p:?}: {e} (expected SID tokens such as '<a_3><b_12>')"),
                    )
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Call {
            opts,
            allow: allow.map(|a| ids(a, "allow")).transpose()?,
            deny: ids(deny, "deny")?,
            prefixes,
        })
    }

    fn constraints(&self) -> Constraints<'_> {
        Constraints {
            allow: self.allow.as_deref(),
            deny: &self.deny,
            prefixes: &self.prefixes,
        }
    }
}

// PyO3 extracts arguments as owned values (a path, a list of strings).
#[allow(clippy::needless_pass_by_value)]
#[pymethods]
impl Engine {
    /// Opens the artifact at `path` (GIL released while it loads).
    #[staticmethod]
    fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Engine> {
        let engine = detached(py, || ugr_core::Engine::open(&path))?;
        let engine = engine.map_err(|e| {
            raise(
                py,
                ugr_status::of_opening(&e),
                &format!("{}: {e}", path.display()),
            )
        })?;
        Ok(Engine {
            inner: Arc::new(engine),
        })
    }

    /// Opens an artifact from its bytes (GIL released while it loads).
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Engine> {
        let engine = detached(py, || ugr_core::Engine::from_bytes(data))?;
        let engine = engine.map_err(|e| raise(py, ugr_status::of_opening(&e), &e.to_string()))?;
        Ok(Engine {
            inner: Arc::new(engine),
        })
    }

    /// What the artifact holds: items, SIDs, levels, codebook sizes, backend, calibration,
    /// titles, item head, learned confidence, unavailable items.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let served = self.inner.served();
        let catalog = served.catalog();
        let contract = self.inner.model().contract();
        let d = PyDict::new(py);
        d.set_item("items", catalog.len())?;
        d.set_item("sids", catalog.sid_count())?;
        d.set_item("levels", catalog.vocab().levels())?;
        d.set_item("codebook_sizes", catalog.vocab().codebook_sizes().to_vec())?;
        d.set_item("backend", self.inner.backend().name())?;
        d.set_item("calibration", self.inner.has_calibration())?;
        d.set_item("titles", self.inner.has_titles())?;
        d.set_item("item_head", contract.item_head)?;
        d.set_item("learned_confidence", contract.confidence)?;
        d.set_item("max_history", contract.max_history)?;
        d.set_item("unavailable", self.inner.unavailable_count())?;
        Ok(d)
    }

    /// The served catalog's item ids, in catalog order, as a u32 buffer.
    fn items<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let served = self.inner.served();
        let bytes: Vec<u8> = served
            .catalog()
            .item_ids()
            .iter()
            .flat_map(|i| i.as_u32().to_le_bytes())
            .collect();
        PyBytes::new(py, &bytes)
    }

    /// The item's title (None when the artifact has no titles).
    fn title(&self, py: Python<'_>, item: u32) -> PyResult<Option<String>> {
        self.sid(py, item)?;
        Ok(self.inner.title(ItemId::new(item)))
    }

    /// The item's SID as text (`<a_3><b_12><c_7>`).
    fn sid(&self, py: Python<'_>, item: u32) -> PyResult<String> {
        let served = self.inner.served();
        let sid = served
            .catalog()
            .sid_of(ItemId::new(item))
            .map_err(|e| recommending(py, &e))?;
        Ok(sid.to_string())
    }

    /// Recommendations for the histories `values[offsets[r]..offsets[r + 1]]`, each under
    /// the same rules, over `threads` threads with the GIL released. Returns the columns
    /// (row, rank, item, sid_index, score, confidence, posterior, log_prob) as buffers.
    #[pyo3(signature = (values, offsets, k, beam, exclude_history, allow, deny, prefixes, min_confidence, threads))]
    #[allow(clippy::too_many_arguments)]
    fn recommend_flat<'py>(
        &self,
        py: Python<'py>,
        values: &[u8],
        offsets: &[u8],
        k: usize,
        beam: usize,
        exclude_history: bool,
        allow: Option<&[u8]>,
        deny: &[u8],
        prefixes: Vec<String>,
        min_confidence: Option<f32>,
        threads: usize,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let call = Call::new(
            py,
            k,
            beam,
            exclude_history,
            allow,
            deny,
            &prefixes,
            min_confidence,
        )?;
        let values: Vec<ItemId> = u32s(values)
            .ok_or_else(|| invalid(py, "values: not a u32 buffer"))?
            .map(ItemId::new)
            .collect();
        let offsets = offsets_u64(offsets).ok_or_else(|| invalid(py, "offsets: not a u64 buffer"))?;
        let rows = ranges(&offsets, values.len()).map_err(|m| invalid(py, &m))?;
        if threads == 0 {
            return Err(invalid(py, "threads must be at least 1"));
        }
        let engine = &self.inner;
        let answers = detached(py, || {
            let constraints = call.constraints();
            let requests: Vec<Request<'_>> = rows
                .iter()
                .map(|r| Request {
                    history: &values[r.clone()],
                    constraints,
                })
                .collect();
            engine
                .recommend_parallel(&requests, &call.opts, threads)
                .map(|recs| Columns::from_answers(&recs))
        })?;
        let columns = answers.map_err(|e| recommending(py, &e))?;
        Ok(columns.into_bytes(py))
    }

    /// Marks `items[i]` available when `available[i]` is nonzero, unavailable otherwise, as
    /// one batch (all or nothing). Returns how many items changed state.
    fn update_availability(&self, py: Python<'_>, items: &[u8], available: &[u8]) -> PyResult<usize> {
        let items: Vec<u32> = u32s(items)
            .ok_or_else(|| invalid(py, "items: not a u32 buffer"))?
            .collect();
        if items.len() != available.len() {
            return Err(invalid(py, "items and available differ in length"));
        }
        let changes: Vec<(ItemId, bool)> = items
            .into_iter()
            .zip(available)
            .map(|(i, &a)| (ItemId::new(i), a != 0))
            .collect();
        let engine = &self.inner;
        detached(py, || engine.update_availability(&changes))?.map_err(|e| recommending(py, &e))
    }

    /// Whether `item` is available now.
    fn is_available(&self, py: Python<'_>, item: u32) -> PyResult<bool> {
        self.inner
            .is_available(ItemId::new(item))
            .map_err(|e| recommending(py, &e))
    }

    /// Items marked unavailable now.
    fn unavailable_count(&self) -> usize {
        self.inner.unavailable_count()
    }

    /// Marks every item available again.
    fn reset_availability(&self) {
        self.inner.reset_availability();
    }
}

/// The module `ugr._ugr`.
#[pymodule]
fn _ugr(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add("ENGINE_VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add("PARALLEL_CHUNK", ugr_core::Engine::PARALLEL_CHUNK)?;
    Ok(())
}
