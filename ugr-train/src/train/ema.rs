//! An exponential moving average of the weights (Polyak averaging), for `ugr train sft --ema`.
//!
//! After every optimiser step, `avg <- d * avg + (1 - d) * w` for every variable, with the
//! decay ramped in as `d_t = min(d, (1 + t) / (10 + t))` so the first steps do not keep the
//! random initialisation. Validation, `model.safetensors` (the best epoch) and the fusion fit
//! use the averaged weights; training continues on the live ones. The average is checkpointed
//! in `ema.safetensors` at every epoch end, so `--resume` continues it exactly.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, Var};

/// File of the averaged weights in a run directory (for `--resume`).
pub const FILE: &str = "ema.safetensors";

/// The averaged weights of a set of named variables.
pub struct Ema {
    decay: f64,
    slots: Vec<(String, Var, Tensor)>,
}

impl Ema {
    /// Starts the average at the variables' current values.
    pub fn new(vars: &[(String, Var)], decay: f64) -> Result<Self> {
        anyhow::ensure!(
            (0.0..1.0).contains(&decay),
            "--ema {decay}: expected a decay in [0, 1), such as 0.999"
        );
        let slots = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.clone(), var.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        Ok(Ema { decay, slots })
    }

    /// The decay used after optimiser step `step` (0-based).
    pub fn decay_at(&self, step: usize) -> f64 {
        let t = step as f64;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    /// Folds the variables' values after optimiser step `step` into the average.
    pub fn update(&mut self, step: usize) -> Result<()> {
        let d = self.decay_at(step);
        for (_, var, avg) in &mut self.slots {
            *avg = ((&*avg * d)? + (var.as_tensor() * (1.0 - d))?)?;
        }
        Ok(())
    }

    /// Exchanges the live weights and the averaged ones (call twice to restore).
    pub fn swap(&mut self) -> Result<()> {
        for (_, var, avg) in &mut self.slots {
            let live = var.as_tensor().copy()?;
            var.set(avg)?;
            *avg = live;
        }
        Ok(())
    }

    /// Writes the average to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> = self
            .slots
            .iter()
            .map(|(n, _, t)| (n.clone(), t.clone()))
            .collect();
        candle_core::safetensors::save(&map, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads the average from `path` (written by [`Ema::save`] for the same model).
    pub fn load(&mut self, path: &Path, device: &Device) -> Result<()> {
        let mut map = candle_core::safetensors::load(path, device)
            .with_context(|| format!("{}: expected the weight average of this run", path.display()))?;
        for (name, var, avg) in &mut self.slots {
            let t = map
                .remove(name.as_str())
                .with_context(|| format!("{}: no tensor {name}", path.display()))?;
            anyhow::ensure!(
                t.dims() == var.dims(),
                "{}: {name} has shape {:?}, the model {:?}",
                path.display(),
                t.dims(),
                var.dims()
            );
            *avg = t;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_follows_the_weights_and_swaps_back() -> Result<()> {
        let var = Var::from_slice(&[0f32, 0.0], 2, &Device::Cpu)?;
        let mut ema = Ema::new(&[("w".into(), var.clone())], 0.5)?;
        assert!((ema.decay_at(0) - 0.1).abs() < 1e-12);
        assert!((ema.decay_at(1000) - 0.5).abs() < 1e-12);
        var.set(&Tensor::new(&[10f32, 20.0], &Device::Cpu)?)?;
        ema.update(1000)?;
        ema.swap()?;
        assert_eq!(var.as_tensor().to_vec1::<f32>()?, vec![5.0, 10.0]);
        ema.swap()?;
        assert_eq!(var.as_tensor().to_vec1::<f32>()?, vec![10.0, 20.0]);
        assert!(Ema::new(&[("w".into(), var)], 1.0).is_err());
        Ok(())
    }
}
