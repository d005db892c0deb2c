//! The `Engine`: an artifact opened for serving.

use std::boxed::Box;
use std::path::Path;
use std::string::String;
use std::sync::Arc;
use std::vec::Vec;

use super::TractModel;
use crate::{
    BeamSearch, Bundle, Calibration, Catalog, Error, ItemId, Recommendations, Result, SearchOptions,
};

/// An exported model with its catalog, ready to recommend.
///
/// `Send + Sync`: share one engine between threads (`Arc<Engine>` or `&Engine`). Each call
/// allocates its own search scratch and model cache and frees them on return, so memory
/// does not grow across calls. The search uses the normalisation the model was trained
/// with, whatever `SearchOptions::normalization` says.
///
/// ```no_run
/// use ugr_core::onnx::Engine;
/// use ugr_core::{ItemId, SearchOptions};
/// let engine = Engine::open("model.ugr")?;
/// let recs = engine.recommend(&[ItemId::new(12), ItemId::new(873)], &SearchOptions::default())?;
/// for r in &recs.items {
///     println!("{} {:?} score {:.3} confidence {:.3}", r.item, engine.title(r.item), r.score, r.confidence);
/// }
/// # Ok::<(), ugr_core::Error>(())
/// ```
pub struct Engine {
    catalog: Arc<Catalog>,
    model: TractModel,
    calibration: Option<Calibration>,
    titles: Option<Vec<String>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("items", &self.catalog.len())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens an artifact file.
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        let bytes = std::fs::read(path.as_ref()).map_err(Error::Io)?;
        Engine::from_bytes(&bytes)
    }

    /// Opens an artifact from bytes (validated: see [`Bundle::from_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Engine> {
        Engine::from_bundle(Bundle::from_bytes(bytes)?)
    }

    /// Opens a validated bundle.
    pub fn from_bundle(bundle: Bundle) -> Result<Engine> {
        let section = bundle
            .model
            .as_ref()
            .ok_or(Error::Corrupt("the artifact has no model"))?;
        let catalog = Arc::new(bundle.catalog.clone());
        let model = TractModel::new(section, Arc::clone(&catalog)).map_err(|e| Error::Model(Box::new(e)))?;
        Ok(Engine {
            catalog,
            model,
            calibration: bundle.calibration,
            titles: bundle.titles,
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Whether the artifact carries a calibration map for the confidence.
    pub fn has_calibration(&self) -> bool {
        self.calibration.is_some()
    }

    /// Whether the artifact carries item titles.
    pub fn has_titles(&self) -> bool {
        self.titles.is_some()
    }

    /// The model backend (its contract, plan warm-up).
    pub fn model(&self) -> &TractModel {
        &self.model
    }

    /// The item's title, when the artifact has titles.
    pub fn title(&self, item: ItemId) -> Option<&str> {
        let titles = self.titles.as_ref()?;
        titles
            .get(self.catalog.position(item)?)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// Builds concretised plans for one request at this beam width (faster steps at that size).
    pub fn warm(&self, beam: usize) -> Result<()> {
        self.model.warm(&[beam]).map_err(|e| Error::Model(Box::new(e)))
    }

    fn options(&self, opts: &SearchOptions) -> SearchOptions {
        SearchOptions {
            normalization: self.model.normalization(),
            ..*opts
        }
    }

    /// Recommendations for one history (most recent item last).
    pub fn recommend(&self, history: &[ItemId], opts: &SearchOptions) -> Result<Recommendations> {
        let mut out = self.recommend_batch(&[history], opts)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Recommendations for many histories in one batched search.
    pub fn recommend_batch(
        &self,
        histories: &[&[ItemId]],
        opts: &SearchOptions,
    ) -> Result<Vec<Recommendations>> {
        let mut search = BeamSearch::new(&self.catalog).with_calibration(self.calibration.as_ref());
        search.run(&self.model, histories, &self.options(opts))
    }
}
