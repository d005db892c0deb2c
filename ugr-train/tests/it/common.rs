//! Small models and synthetic catalogs shared by the test modules.

use ugr_core::Catalog;
use ugr_train::data::Dataset;
use ugr_train::data::synthetic::{SyntheticSpec, generate};
use ugr_train::model::{HistoryEncoding, ModelConfig};

/// The smallest useful model (1 + 1 layers, no dropout, 20 history items): for tests that
/// train it for a few steps.
pub(crate) fn one_layer(catalog: &Catalog) -> ModelConfig {
    ModelConfig {
        d_model: 32,
        layers: 1,
        heads: 2,
        d_ff: 64,
        head_layers: 1,
        dropout: 0.0,
        max_history: 20,
        history: HistoryEncoding::Item,
        ..ModelConfig::default_for(catalog.vocab())
    }
}

/// A 2 + 2 layer model over 8 history items: for tests of the layers, the cache and export.
pub(crate) fn two_layer(catalog: &Catalog, history: HistoryEncoding, dropout: f32) -> ModelConfig {
    ModelConfig {
        d_model: 32,
        layers: 2,
        heads: 4,
        d_ff: 64,
        head_layers: 2,
        dropout,
        max_history: 8,
        history,
        ..ModelConfig::default_for(catalog.vocab())
    }
}

/// A generated dataset of `items` items and `users` users, histories cut to `max_history`.
pub(crate) fn synthetic(items: usize, users: usize, max_history: usize) -> Dataset {
    generate(
        &SyntheticSpec {
            items,
            users,
            ..SyntheticSpec::default()
        },
        max_history,
    )
}
