//! Data-parallel training steps: a batch split into shards gives the full batch's gradient
//! (the target-weighted mean), and the thread count never changes the result.

use candle_core::Device;
use ugr_train::model::HistoryEncoding;
use ugr_train::model::new_model;
use ugr_train::train::batches::{build_batch, epoch_batches, windows};
use ugr_train::train::{Sharding, sharded_grads};

use crate::common::{synthetic, two_layer};

#[test]
fn shards_give_the_full_batch_gradient_on_any_thread_count() {
    let ds = synthetic(120, 60, 8);
    let cfg = ugr_train::model::ModelConfig {
        sid_embeddings: ds.catalog.sid_count() + 1,
        item_loss: 1.0,
        trie_loss: true,
        ..two_layer(&ds.catalog, HistoryEncoding::Item, 0.0)
    };
    let (model, varmap) = new_model(&cfg, 3, &Device::Cpu).unwrap();
    let vars = varmap.all_vars();
    let ws = windows(&ds.train, cfg.max_history);
    let batch = &epoch_batches(&ws, 24, 1, 0)[0];
    let grads = |shards, threads| {
        let s = Sharding {
            seed: 1,
            step: 0,
            shards,
            threads,
        };
        sharded_grads(&model, &ds, &ws, batch, s, &vars, &Device::Cpu).unwrap()
    };
    let (full, full_loss, n) = grads(1, 1);
    let one = build_batch(&cfg, &ds.catalog, &ds.train, &ws, batch, &Device::Cpu).unwrap();
    assert_eq!(n, one.n_targets);
    let (two_seq, loss_seq, n_seq) = grads(2, 1);
    let (two_par, loss_par, n_par) = grads(2, 2);
    assert_eq!((n_seq, n_par), (n, n));
    assert_eq!(loss_seq, loss_par, "threads changed the loss");
    assert!(
        (loss_seq - full_loss).abs() < 1e-4 * full_loss.abs(),
        "{loss_seq} vs {full_loss}"
    );
    let mut checked = 0;
    for v in &vars {
        let (Some(f), Some(s), Some(p)) = (full.get(v), two_seq.get(v), two_par.get(v)) else {
            continue;
        };
        let f: Vec<f32> = f.flatten_all().unwrap().to_vec1().unwrap();
        let s: Vec<f32> = s.flatten_all().unwrap().to_vec1().unwrap();
        let p: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(s, p, "threads changed a gradient");
        let scale = f.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
        let diff = f.iter().zip(&s).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "sharded gradient off by {diff} (scale {scale})"
        );
        checked += 1;
    }
    assert!(
        checked * 10 >= vars.len() * 9,
        "only {checked} of {} vars had gradients",
        vars.len()
    );
}
