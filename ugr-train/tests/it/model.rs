//! The candle model: gradients reach every parameter, the cached decoding path used by the
//! beam search agrees with the teacher-forced forward pass, and initialisation is seeded.

use candle_core::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use ugr_core::{BeamSearch, Catalog, ItemId, SearchOptions, Sid};
use ugr_train::model::layers::Dropout;
use ugr_train::model::{CandleModel, HistoryEncoding, ModelConfig};
use ugr_train::train::batches::{build_batch, windows};
use ugr_train::train::new_model;

use crate::common::{synthetic, two_layer};

fn small(catalog: &Catalog, history: HistoryEncoding) -> ModelConfig {
    two_layer(catalog, history, 0.1)
}

fn tiny_data() -> ugr_train::data::Dataset {
    synthetic(120, 60, 8)
}

#[test]
fn every_parameter_receives_a_gradient() {
    let ds = tiny_data();
    let sids = ds.catalog.sid_count() + 1;
    for (history, trie_loss, sid_embeddings) in [
        (HistoryEncoding::Item, false, sids),
        (HistoryEncoding::Token, true, sids),
    ] {
        let cfg = ModelConfig {
            trie_loss,
            sid_embeddings,
            ..small(&ds.catalog, history)
        };
        let (model, varmap) = new_model(&cfg, 1, &Device::Cpu).unwrap();
        let ws = windows(&ds.train, cfg.max_history);
        let all: Vec<usize> = (0..ws.len()).collect();
        let batch = build_batch(&cfg, &ds.catalog, &ds.train, &ws, &all, &Device::Cpu).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let loss = model
            .loss(
                &batch,
                &mut Some(Dropout {
                    p: 0.1,
                    rng: &mut rng,
                }),
            )
            .unwrap();
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        assert!(data.len() > 20);
        for (name, var) in data.iter() {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{history:?}: no gradient for {name}"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{history:?}: gradient of {name} is {norm}"
            );
        }
    }
}

/// The beam search's scores come from the cached, incremental decoding path; they must
/// equal the teacher-forced log-probs of the same SIDs.
#[test]
fn cached_decoding_matches_teacher_forcing() {
    let ds = tiny_data();
    let sids = ds.catalog.sid_count() + 1;
    for (history, trie_loss, sid_embeddings) in [
        (HistoryEncoding::Item, false, 0),
        (HistoryEncoding::Token, false, sids),
        (HistoryEncoding::Item, true, sids),
    ] {
        let cfg = ModelConfig {
            trie_loss,
            sid_embeddings,
            ..small(&ds.catalog, history)
        };
        let (model, _vars) = new_model(&cfg, 7, &Device::Cpu).unwrap();
        let histories: Vec<Vec<ItemId>> = ds
            .test
            .iter()
            .take(6)
            .map(|e| e.history.clone())
            .chain([vec![]])
            .collect();
        let refs: Vec<&[ItemId]> = histories.iter().map(Vec::as_slice).collect();
        let opts = SearchOptions {
            beam: 10,
            top_k: 10,
            normalization: cfg.normalization(),
            ..SearchOptions::default()
        };
        let results = BeamSearch::new(&ds.catalog)
            .run(&CandleModel::new(&model, &ds.catalog), &refs, &opts)
            .unwrap();
        let mut hs: Vec<Vec<Sid>> = Vec::new();
        let mut sids = Vec::new();
        let mut want = Vec::new();
        for (h, r) in histories.iter().zip(&results) {
            assert_eq!(r.items.len(), 10);
            for item in &r.items {
                hs.push(h.iter().map(|&i| ds.catalog.sid_of(i).unwrap()).collect());
                sids.push(ds.catalog.sid(item.sid_index));
                want.push(item.log_prob);
            }
        }
        let refs: Vec<&[Sid]> = hs.iter().map(Vec::as_slice).collect();
        let got: Vec<f32> = model
            .sequence_log_probs(&ds.catalog, &refs, &sids)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-4,
                "{history:?}: teacher-forced {g} vs decoded {w}"
            );
        }
    }
}

#[test]
fn initialisation_is_seeded() {
    let ds = tiny_data();
    let cfg = small(&ds.catalog, HistoryEncoding::Item);
    let weights = |seed| {
        let (_m, vm) = new_model(&cfg, seed, &Device::Cpu).unwrap();
        let data = vm.data().lock().unwrap();
        let t = data["enc.layers.0.attn.qkv.weight"].as_tensor().clone();
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(weights(5), weights(5));
    assert_ne!(weights(5), weights(6));
}
