//! The `Engine`: an artifact opened for serving, on the backend that fits it.
//!
//! Backends: the native one (feature `native`: ugr-core's own kernels, `no_std`, the default
//! when the artifact has a weight section it can run) and tract (feature `onnx`: the ONNX
//! graphs through tract-onnx, for artifacts the native backend cannot run, or on request).
//! [`EngineModel`] is whichever was chosen, itself a [`SidModel`], so evaluation code drives
//! it like any model; [`Engine::backend`] says which one runs.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use crate::contract::ModelContract;
#[cfg(feature = "std")]
use crate::mapped::ArtifactFile;
#[cfg(feature = "native")]
use crate::native::{NativeCache, NativeError, NativeModel};
#[cfg(feature = "onnx")]
use crate::onnx::{OnnxError, TractCache, TractModel};
use crate::served::{ItemMap, ServedCache, ServedModel};
use crate::sync::Lock;
use crate::{
    Availability, BeamSearch, Bundle, BundleRef, Calibration, Catalog, Constraints, Error, ItemId,
    ModelSection, ModelSectionRef, Normalization, Recommendations, Request, Result, SearchOptions, Sid,
    SidModel, Step,
};

/// The backend that runs an engine's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// ugr-core's own kernels over the artifact's weight section.
    Native,
    /// tract-onnx over the artifact's ONNX graphs.
    Tract,
}

impl Backend {
    /// `"native"` or `"tract"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Tract => "tract",
        }
    }
}

/// Which backend an engine should open a model with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// Native when the feature is built and the artifact has a weight section of this
    /// build's architecture; tract (when built) for artifacts without one or of another
    /// architecture. A weight section that is present but broken is an error, not a fallback.
    #[default]
    Auto,
    /// Only the native backend (its error when it cannot run the model).
    Native,
    /// Only tract.
    Tract,
}

/// The model behind an engine: whichever backend was chosen.
// One per engine: the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineModel {
    /// The native backend.
    #[cfg(feature = "native")]
    Native(NativeModel),
    /// The tract backend.
    #[cfg(feature = "onnx")]
    Tract(TractModel),
}

/// The cache of an [`EngineModel`].
// One per search: the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum EngineCache {
    /// The native backend's.
    #[cfg(feature = "native")]
    Native(NativeCache),
    /// The tract backend's.
    #[cfg(feature = "onnx")]
    Tract(TractCache),
}

/// The error of an [`EngineModel`]'s backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineModelError {
    /// From the native backend.
    #[cfg(feature = "native")]
    #[error(transparent)]
    Native(#[from] NativeError),
    /// From the tract backend.
    #[cfg(feature = "onnx")]
    #[error(transparent)]
    Tract(#[from] OnnxError),
    /// A cache of one backend handed to the other.
    #[error("a cache of another backend")]
    CacheMismatch,
}

impl EngineModel {
    /// Opens `section` for `catalog` with the chosen backend.
    pub fn open(
        section: &ModelSectionRef<'_>,
        catalog: Arc<Catalog>,
        choice: BackendChoice,
    ) -> core::result::Result<EngineModel, EngineModelError> {
        EngineModel::open_releasing(section, catalog, choice, &|_| {})
    }

    /// As [`open`](Self::open); `release` is told the parts of `section` the backend has
    /// copied ([`NativeModel::new_releasing`]).
    pub fn open_releasing(
        section: &ModelSectionRef<'_>,
        catalog: Arc<Catalog>,
        choice: BackendChoice,
        release: &dyn Fn(&[u8]),
    ) -> core::result::Result<EngineModel, EngineModelError> {
        #[cfg(feature = "native")]
        {
            if choice != BackendChoice::Tract {
                match NativeModel::new_releasing(section, Arc::clone(&catalog), release) {
                    Ok(m) => return Ok(EngineModel::Native(m)),
                    // Auto falls back to tract only for a model of another kind (no weight
                    // section, another architecture); a broken weight section is an error.
                    Err(e)
                        if choice == BackendChoice::Native
                            || !cfg!(feature = "onnx")
                            || !e.is_other_model() =>
                    {
                        return Err(e.into());
                    }
                    Err(_) => {}
                }
            }
        }
        #[cfg(feature = "onnx")]
        {
            if choice != BackendChoice::Native {
                return Ok(EngineModel::Tract(TractModel::new(section, catalog)?));
            }
        }
        let _ = (section, catalog, choice, release);
        #[cfg(feature = "native")]
        return Err(NativeError::Unsupported("this build has no tract backend").into());
        #[cfg(not(feature = "native"))]
        return Err(OnnxError::Contract("this build has no native backend").into());
    }

    /// Which backend runs.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "native")]
            EngineModel::Native(_) => Backend::Native,
            #[cfg(feature = "onnx")]
            EngineModel::Tract(_) => Backend::Tract,
        }
    }

    /// The model's contract.
    pub fn contract(&self) -> &ModelContract {
        match self {
            #[cfg(feature = "native")]
            EngineModel::Native(m) => m.contract(),
            #[cfg(feature = "onnx")]
            EngineModel::Tract(m) => m.contract(),
        }
    }

    /// The normalisation the model was trained with.
    pub fn normalization(&self) -> Normalization {
        match self {
            #[cfg(feature = "native")]
            EngineModel::Native(m) => m.normalization(),
            #[cfg(feature = "onnx")]
            EngineModel::Tract(m) => m.normalization(),
        }
    }
}

impl SidModel for EngineModel {
    type Cache = EngineCache;
    type Error = EngineModelError;

    fn has_confidence(&self) -> bool {
        self.contract().confidence
    }

    fn new_cache(&self) -> EngineCache {
        match self {
            #[cfg(feature = "native")]
            EngineModel::Native(m) => EngineCache::Native(m.new_cache()),
            #[cfg(feature = "onnx")]
            EngineModel::Tract(m) => EngineCache::Tract(m.new_cache()),
        }
    }

    fn prefill(
        &self,
        cache: &mut EngineCache,
        histories: &[&[Sid]],
        logits_for: Range<u32>,
    ) -> core::result::Result<(), EngineModelError> {
        match (self, cache) {
            #[cfg(feature = "native")]
            (EngineModel::Native(m), EngineCache::Native(c)) => Ok(m.prefill(c, histories, logits_for)?),
            #[cfg(feature = "onnx")]
            (EngineModel::Tract(m), EngineCache::Tract(c)) => Ok(m.prefill(c, histories, logits_for)?),
            #[allow(unreachable_patterns)]
            _ => Err(EngineModelError::CacheMismatch),
        }
    }

    fn step(&self, cache: &mut EngineCache, step: &Step<'_>) -> core::result::Result<(), EngineModelError> {
        match (self, cache) {
            #[cfg(feature = "native")]
            (EngineModel::Native(m), EngineCache::Native(c)) => Ok(m.step(c, step)?),
            #[cfg(feature = "onnx")]
            (EngineModel::Tract(m), EngineCache::Tract(c)) => Ok(m.step(c, step)?),
            #[allow(unreachable_patterns)]
            _ => Err(EngineModelError::CacheMismatch),
        }
    }

    fn logits<'a>(&'a self, cache: &'a EngineCache) -> &'a [f32] {
        match (self, cache) {
            #[cfg(feature = "native")]
            (EngineModel::Native(m), EngineCache::Native(c)) => m.logits(c),
            #[cfg(feature = "onnx")]
            (EngineModel::Tract(m), EngineCache::Tract(c)) => m.logits(c),
            #[allow(unreachable_patterns)]
            _ => &[],
        }
    }

    fn item_logits<'a>(&'a self, cache: &'a EngineCache) -> Option<&'a [f32]> {
        match (self, cache) {
            #[cfg(feature = "native")]
            (EngineModel::Native(m), EngineCache::Native(c)) => m.item_logits(c),
            #[cfg(feature = "onnx")]
            (EngineModel::Tract(m), EngineCache::Tract(c)) => m.item_logits(c),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn item_shortlist<'a>(&'a self, cache: &'a EngineCache) -> Option<crate::ItemShortlist<'a>> {
        match (self, cache) {
            #[cfg(feature = "native")]
            (EngineModel::Native(m), EngineCache::Native(c)) => m.item_shortlist(c),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn item_logit(&self, cache: &EngineCache, r: usize, sid: u32) -> Option<f32> {
        match (self, cache) {
            #[cfg(feature = "native")]
            (EngineModel::Native(m), EngineCache::Native(c)) => m.item_logit(c, r, sid),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn item_weight(&self) -> Option<f32> {
        self.contract().item_weight
    }
}

/// An exported model with its catalog, ready to recommend.
///
/// `Send + Sync`: share one engine between threads (`Arc<Engine>` or `&Engine`). Each call
/// allocates its own search scratch and model cache and frees them on return, so memory
/// does not grow across calls. The search uses the normalisation the model was trained
/// with, whatever `SearchOptions::normalization` says.
///
/// Requests may carry business rules ([`Constraints`]: allowlist, denylist, SID prefixes),
/// enforced inside the search ([`recommend_with`](Engine::recommend_with)). Items can be
/// marked unavailable and available again while other threads serve
/// ([`update_availability`](Engine::update_availability)): a request sees a batch of changes
/// entirely or not at all (it holds a read lock on the availability for its search; a
/// change waits for the searches in flight, and later searches wait for it).
///
/// ```no_run
/// use ugr_core::Engine;
/// use ugr_core::{ItemId, SearchOptions};
/// let bytes = std::fs::read("model.ugr")?; // or `Engine::open` with feature `std`
/// let engine = Engine::from_bytes(&bytes)?;
/// println!("backend: {}", engine.backend().name());
/// let recs = engine.recommend(&[ItemId::new(12), ItemId::new(873)], &SearchOptions::default())?;
/// for r in &recs.items {
///     println!("{} {:?} score {:.3} confidence {:.3}", r.item, engine.title(r.item), r.score, r.confidence);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    /// The model, on its own SID table (`model_catalog`).
    model: EngineModel,
    model_catalog: Arc<Catalog>,
    /// Checksum of the model section without its SID table: what a replacement catalog's
    /// artifact must carry.
    model_fingerprint: u32,
    calibration: Option<Calibration>,
    /// The catalog served now; replaced whole by [`Engine::replace_catalog`].
    served: Lock<Arc<ServedCatalog>>,
}

/// One catalog as an engine serves it: the items, their titles, the map to the model's item
/// head and the live availability. Requests in flight keep the one they started with.
#[derive(Debug)]
pub struct ServedCatalog {
    catalog: Arc<Catalog>,
    titles: Option<Arc<Vec<String>>>,
    map: ItemMap,
    live: Lock<Availability>,
}

impl ServedCatalog {
    fn new(catalog: Arc<Catalog>, titles: Option<Vec<String>>, model: &Catalog) -> Result<ServedCatalog> {
        if titles.as_ref().is_some_and(|t| t.len() != catalog.len()) {
            return Err(Error::Corrupt("titles do not match the catalog"));
        }
        if catalog.vocab() != model.vocab() {
            return Err(Error::InvalidOption {
                name: "catalog",
                reason: "its SID codebooks differ from the model's",
            });
        }
        Ok(ServedCatalog {
            map: ItemMap::new(model, &catalog),
            live: Lock::new(Availability::new(&catalog)),
            titles: titles.map(Arc::new),
            catalog,
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The item's title, when the catalog has titles.
    pub fn title(&self, item: ItemId) -> Option<&str> {
        let titles = self.titles.as_ref()?;
        titles
            .get(self.catalog.position(item)?)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// Every title (parallel to [`Catalog::item_ids`]), when the catalog has titles.
    pub fn titles(&self) -> Option<&Arc<Vec<String>>> {
        self.titles.as_ref()
    }

    /// SIDs of this catalog that the model's item head has no row for (items added after training).
    pub fn new_sids(&self) -> usize {
        self.map.new_sids()
    }

    /// How this catalog's SIDs map to the model's item head (wrap the engine's model in a
    /// [`ServedModel`] with it to search this catalog outside the engine).
    pub fn map(&self) -> &ItemMap {
        &self.map
    }
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("items", &self.catalog().len())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The largest artifact [`Engine::open`] reads (16 GiB): a bound on what one call may
    /// map and decode, whatever the path holds. A 10M-item catalog with the default model
    /// (SID embeddings and item head of 128 values per SID, f16) is 5.2 GB.
    pub const MAX_ARTIFACT_BYTES: u64 = 16 << 30;

    /// Opens an artifact file ([`BackendChoice::Auto`]).
    ///
    /// The path must name a regular file of at most
    /// [`MAX_ARTIFACT_BYTES`](Engine::MAX_ARTIFACT_BYTES); anything else is [`Error::Io`]
    /// (`InvalidInput`). The check is made on the file that was opened, not on the path: on
    /// Unix the file is opened with `O_NONBLOCK` and its descriptor is checked (`fstat`), so a
    /// FIFO cannot block the caller even when the path is swapped between calls, and a device
    /// such as `/dev/zero` is never read.
    #[cfg(feature = "std")]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Engine> {
        Engine::open_with(path, BackendChoice::Auto)
    }

    /// Opens an artifact file (checked as [`open`](Engine::open) does) with the chosen backend.
    ///
    /// On Unix the file is memory-mapped while the engine is built, and pages are let go as
    /// soon as they have been read, so that opening holds about what the engine keeps, not
    /// the file besides it; the engine holds no map afterwards. Replace an artifact file by
    /// renaming a new one over it, never by rewriting it in place (see `docs/serving.md`).
    #[cfg(feature = "std")]
    pub fn open_with(path: impl AsRef<std::path::Path>, choice: BackendChoice) -> Result<Engine> {
        with_artifact_file(path.as_ref(), |view, release| {
            Engine::from_view(view, choice, release)
        })
    }

    /// Opens an artifact from bytes (validated: see [`Bundle::from_bytes`]) with
    /// [`BackendChoice::Auto`]. The bytes are read in place, not copied: the engine keeps
    /// only what it decodes (catalog, packed weights).
    pub fn from_bytes(bytes: &[u8]) -> Result<Engine> {
        Engine::from_bytes_with(bytes, BackendChoice::Auto)
    }

    /// Opens an artifact from bytes with the chosen backend.
    pub fn from_bytes_with(bytes: &[u8], choice: BackendChoice) -> Result<Engine> {
        Engine::from_view(BundleRef::from_bytes(bytes)?, choice, &|_| {})
    }

    /// Opens a validated bundle ([`BackendChoice::Auto`]).
    pub fn from_bundle(bundle: Bundle) -> Result<Engine> {
        Engine::from_bundle_with(bundle, BackendChoice::Auto)
    }

    /// Opens a validated bundle with the chosen backend.
    pub fn from_bundle_with(bundle: Bundle, choice: BackendChoice) -> Result<Engine> {
        with_bundle(bundle, |view| Engine::from_view(view, choice, &|_| {}))
    }

    /// Builds the engine from a decoded artifact whose model section is borrowed; `release`
    /// is told each part of the section once it has been read (see [`open_with`](Self::open_with)).
    fn from_view(view: BundleRef<'_>, choice: BackendChoice, release: &dyn Fn(&[u8])) -> Result<Engine> {
        let section = view
            .model
            .as_ref()
            .ok_or(Error::Corrupt("the artifact has no model"))?;
        let model_fingerprint = model_fingerprint(section, release);
        let served = Arc::new(view.catalog);
        let model_catalog = crate::served::model_catalog(section, &served)?;
        let model = EngineModel::open_releasing(section, Arc::clone(&model_catalog), choice, release)
            .map_err(|e| Error::Model(Box::new(e)))?;
        let served = ServedCatalog::new(served, view.titles, &model_catalog)?;
        Ok(Engine {
            model,
            model_fingerprint,
            model_catalog,
            calibration: view.calibration,
            served: Lock::new(Arc::new(served)),
        })
    }

    /// The catalog served now (a snapshot: a later [`replace_catalog`](Engine::replace_catalog)
    /// does not change it).
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.served.read().catalog)
    }

    /// The catalog served now with its titles, item map and availability (a snapshot).
    pub fn served(&self) -> Arc<ServedCatalog> {
        Arc::clone(&self.served.read())
    }

    /// The catalog the model was trained with (its SID table: one item per SID when the
    /// artifact serves another catalog).
    pub fn model_catalog(&self) -> &Catalog {
        &self.model_catalog
    }

    /// Replaces the served catalog (items removed, items added with any SID of the model's
    /// codebooks) without touching the model: requests in flight finish on the old catalog,
    /// later ones use the new one. Items unavailable now stay unavailable when the new
    /// catalog holds them. `titles`, when given, has one entry per item of `catalog`
    /// (in [`Catalog::item_ids`] order). See [`crate::served`] for what an item the model
    /// never saw scores.
    pub fn replace_catalog(&self, catalog: Catalog, titles: Option<Vec<String>>) -> Result<()> {
        let next = ServedCatalog::new(Arc::new(catalog), titles, &self.model_catalog)?;
        let mut current = self.served.write();
        {
            let old = current.live.read();
            let mut live = next.live.write();
            if old.unavailable_count() > 0 {
                for &item in current.catalog.item_ids() {
                    if !old.is_available(&current.catalog, item)? && next.catalog.position(item).is_some() {
                        live.set(&next.catalog, item, false)?;
                    }
                }
            }
        }
        *current = Arc::new(next);
        Ok(())
    }

    /// [`replace_catalog_from`](Engine::replace_catalog_from) with the artifact file at
    /// `path` (read as [`open`](Engine::open) reads one).
    #[cfg(feature = "std")]
    pub fn replace_catalog_from_path(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        with_artifact_file(path.as_ref(), |view, release| {
            self.replace_catalog_from_view(view, release)
        })
    }

    /// Replaces the served catalog with that of `bundle`, an artifact of the same model
    /// (written by `ugr catalog` from this engine's artifact, or this artifact itself): its
    /// catalog and titles, as [`replace_catalog`](Engine::replace_catalog) does. An artifact
    /// of another model (other weights, graphs or SID table) is refused.
    pub fn replace_catalog_from(&self, bundle: Bundle) -> Result<()> {
        with_bundle(bundle, |view| self.replace_catalog_from_view(view, &|_| {}))
    }

    fn replace_catalog_from_view(&self, view: BundleRef<'_>, release: &dyn Fn(&[u8])) -> Result<()> {
        let section = view
            .model
            .as_ref()
            .ok_or(Error::Corrupt("the artifact has no model"))?;
        let served = Arc::new(view.catalog);
        let model_catalog = crate::served::model_catalog(section, &served)?;
        let same_sids = model_catalog.sid_count() == self.model_catalog.sid_count()
            && (0..model_catalog.sid_count() as u32)
                .all(|s| model_catalog.sid(s) == self.model_catalog.sid(s));
        if model_fingerprint(section, release) != self.model_fingerprint || !same_sids {
            return Err(Error::InvalidOption {
                name: "catalog",
                reason: "the artifact holds another model than the engine's",
            });
        }
        drop(model_catalog);
        let catalog = Arc::try_unwrap(served).unwrap_or_else(|c| (*c).clone());
        self.replace_catalog(catalog, view.titles)
    }

    /// Whether the artifact carries a calibration map for the confidence.
    pub fn has_calibration(&self) -> bool {
        self.calibration.is_some()
    }

    /// Whether the served catalog carries item titles.
    pub fn has_titles(&self) -> bool {
        self.served.read().titles.is_some()
    }

    /// The model (its contract; a [`SidModel`] of its own).
    pub fn model(&self) -> &EngineModel {
        &self.model
    }

    /// Which backend runs the model.
    pub fn backend(&self) -> Backend {
        self.model.backend()
    }

    /// The item's title, when the served catalog has titles.
    pub fn title(&self, item: ItemId) -> Option<String> {
        self.served().title(item).map(String::from)
    }

    /// Prepares for requests at this beam width: tract builds concretised plans for that row
    /// count (faster steps at that size); the native backend needs nothing.
    pub fn warm(&self, beam: usize) -> Result<()> {
        match &self.model {
            #[cfg(feature = "onnx")]
            EngineModel::Tract(m) => m.warm(&[beam]).map_err(|e| Error::Model(Box::new(e))),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = beam;
                Ok(())
            }
        }
    }

    fn options(&self, opts: &SearchOptions) -> SearchOptions {
        SearchOptions {
            normalization: self.model.normalization(),
            ..*opts
        }
    }

    /// Recommendations for one history (most recent item last).
    pub fn recommend(&self, history: &[ItemId], opts: &SearchOptions) -> Result<Recommendations> {
        self.recommend_with(history, &Constraints::NONE, opts)
    }

    /// Recommendations for one history under business rules, enforced inside the search: the
    /// answer is the one a catalog holding only the allowed items would give (see
    /// [`Constraints`]).
    pub fn recommend_with(
        &self,
        history: &[ItemId],
        constraints: &Constraints<'_>,
        opts: &SearchOptions,
    ) -> Result<Recommendations> {
        let request = Request {
            history,
            constraints: *constraints,
        };
        let mut out = self.recommend_requests(&[request], opts)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Recommendations for many histories in one batched search.
    pub fn recommend_batch(
        &self,
        histories: &[&[ItemId]],
        opts: &SearchOptions,
    ) -> Result<Vec<Recommendations>> {
        let requests: Vec<Request<'_>> = histories.iter().map(|h| Request::new(h)).collect();
        self.recommend_requests(&requests, opts)
    }

    /// Recommendations for many requests (each a history with its own rules) in one batched search.
    pub fn recommend_requests(
        &self,
        requests: &[Request<'_>],
        opts: &SearchOptions,
    ) -> Result<Vec<Recommendations>> {
        let mut out = Vec::new();
        self.recommend_into(&mut self.new_scratch(), requests, opts, &mut out)?;
        Ok(out)
    }

    fn new_scratch(&self) -> ServedCache<EngineCache> {
        ServedCache::new(self.model.new_cache())
    }

    /// One batched search, reusing `scratch` (the model's KV cache and the remapped item
    /// logits: the large buffers); `out` becomes the answers.
    fn recommend_into(
        &self,
        scratch: &mut ServedCache<EngineCache>,
        requests: &[Request<'_>],
        opts: &SearchOptions,
        out: &mut Vec<Recommendations>,
    ) -> Result<()> {
        let served = self.served();
        let live = served.live.read();
        let live = (live.unavailable_count() > 0).then_some(&*live);
        let mut search = BeamSearch::new(&served.catalog)
            .with_calibration(self.calibration.as_ref())
            .with_availability(live);
        let opts = self.options(opts);
        if served.map.is_identity() {
            search.run_requests_with_cache(&self.model, &mut scratch.inner, requests, &opts, out)
        } else {
            let model = ServedModel {
                model: &self.model,
                map: &served.map,
            };
            search.run_requests_with_cache(&model, scratch, requests, &opts, out)
        }
    }

    /// Requests per batched search when [`Engine::recommend_parallel`] splits a batch: large
    /// enough that each model call runs `PARALLEL_CHUNK * beam` rows, small enough that the
    /// KV cache of one chunk stays a few MB.
    #[cfg(feature = "std")]
    pub const PARALLEL_CHUNK: usize = 32;

    /// Recommendations for any number of requests: batched searches of
    /// [`Engine::PARALLEL_CHUNK`] requests each, shared among `threads` threads (at least one;
    /// the calling thread is one of them). The threads are scoped to this call, so no thread
    /// outlives it (a process may fork between calls). Each chunk sees the availability of the
    /// moment it starts, whole. Answers come back in request order and equal
    /// [`Engine::recommend_requests`]'s; the first error (in request order) is returned.
    #[cfg(feature = "std")]
    pub fn recommend_parallel(
        &self,
        requests: &[Request<'_>],
        opts: &SearchOptions,
        threads: usize,
    ) -> Result<Vec<Recommendations>> {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let chunks: Vec<&[Request<'_>]> = requests.chunks(Self::PARALLEL_CHUNK).collect();
        let threads = threads.clamp(1, chunks.len().max(1));
        // Each thread keeps one scratch for all its chunks: allocating the KV cache per chunk
        // made a batch 1.25x slower in processes whose allocator returns large blocks to the
        // OS at once (a Python interpreter).
        if threads == 1 {
            let mut scratch = self.new_scratch();
            let (mut out, mut answer) = (Vec::with_capacity(requests.len()), Vec::new());
            for chunk in chunks {
                self.recommend_into(&mut scratch, chunk, opts, &mut answer)?;
                out.append(&mut answer);
            }
            return Ok(out);
        }
        let next = AtomicUsize::new(0);
        let answers: Vec<Mutex<Option<Result<Vec<Recommendations>>>>> =
            chunks.iter().map(|_| Mutex::new(None)).collect();
        let work = || {
            let mut scratch = self.new_scratch();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                let mut answer = Vec::with_capacity(chunk.len());
                let answer = self
                    .recommend_into(&mut scratch, chunk, opts, &mut answer)
                    .map(|()| answer);
                *answers[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
            }
        };
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
            work();
            for h in helpers {
                if let Err(panic) = h.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        let mut out = Vec::with_capacity(requests.len());
        for answer in answers {
            let answer = answer.into_inner().unwrap_or_else(|e| e.into_inner());
            out.extend(answer.expect("every chunk was served")?);
        }
        Ok(out)
    }

    /// Marks items available (`true`) or unavailable (`false`), in order, as one batch: the
    /// next request sees all of it, none sees part of it. Returns how many items changed
    /// state. Every item is checked first: an unknown one is [`Error::UnknownItem`] and
    /// nothing changes. O(levels) per change; no reopen, no copy of the catalog.
    pub fn update_availability(&self, changes: &[(ItemId, bool)]) -> Result<usize> {
        // The served catalog stays locked for reading so that a catalog replacement cannot
        // slip in between and drop the change.
        let served = self.served.read();
        let mut live = served.live.write();
        live.apply(&served.catalog, changes)
    }

    /// Whether `item` is available now.
    pub fn is_available(&self, item: ItemId) -> Result<bool> {
        let served = self.served();
        let live = served.live.read();
        live.is_available(&served.catalog, item)
    }

    /// Items marked unavailable now.
    pub fn unavailable_count(&self) -> usize {
        self.served().live.read().unavailable_count()
    }

    /// Marks every item available again.
    pub fn reset_availability(&self) {
        self.served.read().live.write().reset();
    }
}

/// Decodes the artifact file at `path` (memory-mapped on Unix, see `mapped.rs`) and hands `f`
/// the borrowed view with the hint that lets read pages go.
#[cfg(feature = "std")]
fn with_artifact_file<T>(
    path: &std::path::Path,
    f: impl FnOnce(BundleRef<'_>, &dyn Fn(&[u8])) -> Result<T>,
) -> Result<T> {
    let file = ArtifactFile::open(path, Engine::MAX_ARTIFACT_BYTES).map_err(Error::Io)?;
    let release = |part: &[u8]| file.release(part);
    let view = BundleRef::from_bytes_releasing(file.bytes(), &mut |r| release(&file.bytes()[r]))?;
    f(view, &release)
}

/// Hands `f` an owned bundle as a view (its model section borrowed from it).
fn with_bundle<T>(bundle: Bundle, f: impl FnOnce(BundleRef<'_>) -> Result<T>) -> Result<T> {
    let Bundle {
        catalog,
        calibration,
        titles,
        model,
    } = bundle;
    f(BundleRef {
        catalog,
        calibration,
        titles,
        model: model.as_ref().map(ModelSection::view),
    })
}

/// CRC-32 of the model section without its SID table: equal for two artifacts of one model.
/// `release` is told each blob once hashed.
fn model_fingerprint(section: &ModelSectionRef<'_>, release: &dyn Fn(&[u8])) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(section.config_json.as_bytes());
    for blob in section
        .graphs
        .iter()
        .filter(|b| b.name != crate::served::MODEL_SIDS_BLOB)
    {
        h.update(&(blob.name.len() as u64).to_le_bytes());
        h.update(blob.name.as_bytes());
        h.update(&(blob.bytes.len() as u64).to_le_bytes());
        for chunk in blob.bytes.chunks(crate::artifact::CHECKSUM_CHUNK) {
            h.update(chunk);
            release(chunk);
        }
    }
    h.finalize()
}
