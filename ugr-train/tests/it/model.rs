//! The candle model: gradients reach every parameter, the cached decoding path used by the
//! beam search agrees with the teacher-forced forward pass, and initialisation is seeded.

use candle_core::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use ugr_core::{BeamSearch, Catalog, ItemId, SearchOptions, Sid};
use ugr_train::model::layers::Dropout;
use ugr_train::model::new_model;
use ugr_train::model::{CandleModel, HistoryEncoding, ModelConfig};
use ugr_train::train::batches::{build_batch, windows};

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
    for (history, trie_loss, sid_embeddings, item_loss) in [
        (HistoryEncoding::Item, false, sids, 0.0),
        (HistoryEncoding::Token, true, sids, 1.0),
    ] {
        let cfg = ModelConfig {
            trie_loss,
            sid_embeddings,
            item_loss,
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

/// The item-level auxiliary loss is exactly `item_loss` times the cross-entropy of each
/// target's user state against the SID identity table (computed here from the inference
/// path's user states), and it is refused without SID embeddings.
#[test]
fn item_loss_is_the_weighted_catalog_cross_entropy() {
    let ds = tiny_data();
    let base = ModelConfig {
        sid_embeddings: ds.catalog.sid_count() + 1,
        ..small(&ds.catalog, HistoryEncoding::Item)
    };
    let ws = windows(&ds.train, base.max_history);
    let all: Vec<usize> = (0..ws.len()).collect();
    let loss_at = |weight: f32| {
        let cfg = ModelConfig {
            item_loss: weight,
            ..base.clone()
        };
        let (model, varmap) = new_model(&cfg, 11, &Device::Cpu).unwrap();
        let batch = build_batch(&cfg, &ds.catalog, &ds.train, &ws, &all, &Device::Cpu).unwrap();
        assert_eq!(batch.target_rows.is_some(), weight > 0.0);
        let loss: f32 = model.loss(&batch, &mut None).unwrap().to_scalar().unwrap();
        (loss, model, varmap)
    };
    let (codes_only, _, _) = loss_at(0.0);
    let (weighted, model, varmap) = loss_at(0.5);

    // the same targets, one user state each, through the inference path
    let mut histories: Vec<Vec<Sid>> = Vec::new();
    let mut rows = Vec::new();
    for w in &ws {
        let items = &ds.train[w.seq].items[w.start..w.end];
        for j in items.len() - w.targets..items.len() {
            histories.push(
                items[..j]
                    .iter()
                    .map(|&i| ds.catalog.sid_of(i).unwrap())
                    .collect(),
            );
            rows.push(ds.catalog.sid_index_of(items[j]).unwrap() as usize);
        }
    }
    let refs: Vec<&[Sid]> = histories.iter().map(Vec::as_slice).collect();
    let user = model.user_states(&ds.catalog, &refs).unwrap();
    let table = varmap.data().lock().unwrap()["sid_emb.weight"]
        .as_tensor()
        .clone();
    let logits: Vec<Vec<f32>> = user.matmul(&table.t().unwrap()).unwrap().to_vec2().unwrap();
    let mut ce = 0.0f64;
    for (z, &row) in logits.iter().zip(&rows) {
        let z = &z[1..]; // row 0 is "no SID", not a candidate
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let lse = f64::from(max) + z.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln();
        ce += lse - f64::from(z[row]);
    }
    ce /= rows.len() as f64;
    assert!(
        ce > 1.0,
        "an untrained model is unsure among {} SIDs",
        ds.catalog.sid_count()
    );
    let got = f64::from(weighted - codes_only);
    assert!((got - 0.5 * ce).abs() < 1e-3, "item term {got} vs 0.5 x {ce}");

    let no_table = ModelConfig {
        item_loss: 1.0,
        sid_embeddings: 0,
        ..base.clone()
    };
    let err = new_model(&no_table, 1, &Device::Cpu).err().expect("refused");
    assert!(err.to_string().contains("--sid-embeddings"), "{err}");
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
