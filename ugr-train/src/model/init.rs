//! Deterministic parameter initialisation.
//!
//! candle's CPU random generator cannot be seeded, so every parameter is drawn from its
//! own `StdRng` seeded by (run seed, parameter name): the same seed gives the same model
//! on any device and in any parameter order. GPT-2 style: normal(0, 0.02) for weights and
//! embeddings, 0.02 / sqrt(2 * layers) for the projections that end a residual branch,
//! ones and zeros for layer norms, zeros for biases.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::ModelConfig;

fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the seed.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Overwrites every variable of `varmap` with its deterministic initial value.
pub fn initialize(varmap: &VarMap, cfg: &ModelConfig, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned var map".into()))?;
    let residual_std = 0.02 / ((2 * (cfg.layers + cfg.head_layers)) as f64).sqrt();
    for (name, var) in data.iter() {
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let is_norm = name.contains(".ln1.") || name.contains(".ln2.") || name.contains(".ln_f.");
        let values: Vec<f32> = if name.ends_with(".bias") || name == "out_bias" {
            vec![0.0; n]
        } else if is_norm {
            vec![1.0; n]
        } else {
            let std = if name.ends_with("attn.out.weight") || name.ends_with("ff.down.weight") {
                residual_std
            } else {
                0.02
            };
            let normal = Normal::new(0.0f32, std as f32).map_err(candle_core::Error::wrap)?;
            let mut rng = StdRng::seed_from_u64(name_seed(seed, name));
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        };
        let t = Tensor::from_vec(values, shape, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}
