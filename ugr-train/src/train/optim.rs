//! AdamW with decoupled weight decay and a checkpointable state.
//!
//! The update is candle-nn's `AdamW` (same formulas); it lives here because candle's keeps
//! its moments private, so a resumed run would restart them from zero. Weight decay applies
//! to 2-D weight matrices only (not to biases, norms, embeddings or position tables).

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

/// Optimiser hyper-parameters.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct AdamWParams {
    /// Learning rate (set per step by the schedule).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
    /// Per-element learning-rate multiplier (broadcast against the variable), if any.
    lr_scale: Option<Tensor>,
}

/// AdamW over named variables.
pub struct AdamW {
    slots: Vec<Slot>,
    /// Steps taken.
    pub step_count: usize,
    /// Hyper-parameters.
    pub params: AdamWParams,
}

impl AdamW {
    /// An optimiser over `vars` (sorted by name for a stable state layout).
    pub fn new(mut vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.zeros_like()?;
                let v = var.zeros_like()?;
                let decay = var.rank() == 2 && !name.contains("emb") && !name.ends_with(".pos");
                Ok(Slot {
                    name,
                    var,
                    m,
                    v,
                    decay,
                    lr_scale: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            slots,
            step_count: 0,
            params,
        })
    }

    /// Multiplies the learning rate of variable `name` element-wise by `scale` (any shape
    /// that broadcasts against it, e.g. `[rows, 1]` for per-row rates). Fails for an unknown name.
    pub fn set_lr_scale(&mut self, name: &str, scale: Tensor) -> Result<()> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))?;
        slot.lr_scale = Some(scale);
        Ok(())
    }

    /// Global L2 norm of the gradients.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for s in &self.slots {
            if let Some(g) = grads.get(&s.var) {
                total += f64::from(
                    g.sqr()?
                        .sum_all()?
                        .to_dtype(candle_core::DType::F32)?
                        .to_scalar::<f32>()?,
                );
            }
        }
        Ok(total.sqrt())
    }

    /// One update with the gradients' global L2 norm clipped to `clip` (no clipping when
    /// `clip <= 0`); returns the norm before clipping.
    pub fn clipped_step(&mut self, grads: &GradStore, clip: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        let scale = if clip > 0.0 && norm > clip {
            clip / norm
        } else {
            1.0
        };
        self.step(grads, scale)?;
        Ok(norm)
    }

    /// One update; gradients are scaled by `grad_scale` first (for clipping).
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        self.step_count += 1;
        let p = self.params;
        let t = self.step_count as i32;
        let scale_m = 1.0 / (1.0 - p.beta1.powi(t));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(t));
        for s in &mut self.slots {
            let Some(g) = grads.get(&s.var) else { continue };
            let g = (g * grad_scale)?;
            s.m = ((&s.m * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            s.v = ((&s.v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let mut update = ((&s.m * scale_m)? / ((&s.v * scale_v)?.sqrt()? + p.eps)?)?;
            if let Some(scale) = &s.lr_scale {
                update = update.broadcast_mul(scale)?;
            }
            let decay = if s.decay { 1.0 - p.lr * p.weight_decay } else { 1.0 };
            let next = ((s.var.as_tensor() * decay)? - (update * p.lr)?)?;
            s.var.set(&next)?;
        }
        Ok(())
    }

    /// Saves the moments (`m.<name>`, `v.<name>`) as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for s in &self.slots {
            map.insert(format!("m.{}", s.name), s.m.clone());
            map.insert(format!("v.{}", s.name), s.v.clone());
        }
        candle_core::safetensors::save(&map, path)
    }

    /// Restores the moments saved by [`save`](Self::save).
    pub fn load(&mut self, path: &Path, device: &Device) -> Result<()> {
        let mut map = candle_core::safetensors::load(path, device)?;
        for s in &mut self.slots {
            let missing = || candle_core::Error::Msg(format!("optimizer state lacks {}", s.name));
            s.m = map.remove(&format!("m.{}", s.name)).ok_or_else(missing)?;
            s.v = map.remove(&format!("v.{}", s.name)).ok_or_else(missing)?;
        }
        Ok(())
    }
}

/// Linear warm-up to `peak`, then cosine decay to `peak * floor` at `total` steps.
pub fn learning_rate(step: usize, warmup: usize, total: usize, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (floor + (1.0 - floor) * cosine)
}

#[cfg(test)]
mod tests {
    use super::learning_rate;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((learning_rate(0, 10, 100, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 10, 100, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((learning_rate(10, 10, 100, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((learning_rate(100, 10, 100, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!(learning_rate(55, 10, 100, 1.0, 0.1) < 1.0);
    }
}
