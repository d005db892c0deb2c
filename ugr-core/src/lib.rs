//! # ugr-core: the engine of uncertainty-aware generative recommendation
//!
//! Items are Semantic IDs (SIDs): a few codebook tokens per item. A model reads a
//! user's history as SID tokens and generates the next item's SID with a beam search
//! constrained by a trie of the catalog, so every recommendation is a real item, and
//! every item comes with a confidence.
//!
//! This crate is `#![no_std]` + `alloc`: it runs on a phone or a microcontroller-class
//! device as well as in a server. Feature `std` adds `std` error integration; feature
//! `native` (no_std) adds the native backend, which runs exported models with the crate's
//! own kernels; feature `onnx` (implies `std`) adds the tract-onnx backend. Either one
//! brings the serving `Engine`.
//!
//! | module | what lives there |
//! |---|---|
//! | [`vocab`], [`sid`] | token id layout, special tokens, `<a_12><b_3>` SIDs |
//! | [`catalog`], [`trie`] | item <-> SID (collisions included), the flat-array trie |
//! | [`availability`] | items out of stock and back, live, O(levels) per change |
//! | [`model`] | the [`SidModel`] trait the search drives; test models |
//! | [`search`] | the one beam search: exact constraint, request rules (allow, deny, prefixes), pruning, confidence |
//! | [`confidence`] | confidence fields, calibration maps |
//! | [`artifact`], [`contract`] | the versioned, checksummed model bundle; the exported model's description |
//! | [`served`] | serving a catalog other than the model's own: the item head's map, new items' scores |
//! | [`math`] | log-sum-exp and friends |
//! | `engine` (feature `native` or `onnx`) | the `Engine`: an artifact opened on the backend that fits it |
//! | `native` (feature `native`) | the native backend: weight section, kernels, `NativeModel` |
//! | `onnx` (feature `onnx`) | the tract backend and the graphs' contract |
//! | [`metrics`] | HR@K and NDCG@K (the one metrics routine) |
//!
//! ```
//! use ugr_core::prelude::*;
//! use ugr_core::model::testing::HashModel;
//!
//! let vocab = SidVocab::new(&[16, 16])?;
//! let mut builder = CatalogBuilder::new(vocab);
//! for i in 0..100u32 {
//!     let sid = Sid::parse(&format!("<a_{}><b_{}>", i % 16, (i * 7) % 16))?;
//!     builder.push(ItemId::new(i), sid)?;
//! }
//! let catalog = builder.build()?;
//! let model = HashModel::new(vocab, 42).with_confidence(true);
//! let results = BeamSearch::new(&catalog).run(&model, &[&[ItemId::new(5)]], &SearchOptions::default())?;
//! for r in &results[0].items {
//!     assert!(catalog.sid_of(r.item).is_ok()); // always a catalog item
//!     assert!(r.learned_confidence.is_some());
//! }
//! # Ok::<(), ugr_core::Error>(())
//! ```

#![no_std]
#![deny(missing_docs)]
// `unsafe` lives in one module only: `native::kernels` (the AVX2 micro-kernel).
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod artifact;
pub mod availability;
pub mod catalog;
pub mod confidence;
pub mod contract;
#[cfg(any(feature = "native", feature = "onnx"))]
pub mod engine;
mod error;
pub mod history;
pub mod ids;
#[cfg(all(feature = "std", any(feature = "native", feature = "onnx")))]
mod mapped;
pub mod math;
pub mod metrics;
pub mod model;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod search;
pub mod served;
pub mod sid;
#[cfg(any(feature = "native", feature = "onnx"))]
mod sync;
pub mod trie;
pub mod vocab;

pub use artifact::{Blob, BlobRef, Bundle, BundleRef, ModelSection, ModelSectionRef};
pub use availability::Availability;
pub use catalog::{Catalog, CatalogBuilder, CatalogStats};
pub use confidence::Calibration;
#[cfg(any(feature = "native", feature = "onnx"))]
pub use engine::{Backend, BackendChoice, Engine, ServedCatalog};
pub use error::{BoxedModelError, Error, Result, SidParseReason};
pub use ids::{ItemId, NodeId, TokenId};
pub use model::{ItemShortlist, SidModel, Step};
pub use search::{
    BeamSearch, Constraints, ItemFusion, Normalization, Pruning, RankBy, Recommendation, Recommendations,
    Request, SearchOptions, SearchStats,
};
pub use sid::Sid;
pub use trie::Trie;
pub use vocab::{SidVocab, Special, TokenKind};

/// The types most users need.
pub mod prelude {
    pub use crate::{
        BeamSearch, Bundle, Calibration, Catalog, CatalogBuilder, Constraints, Error, ItemId, Pruning,
        Recommendation, Request, SearchOptions, Sid, SidModel, SidVocab, TokenId,
    };
}
