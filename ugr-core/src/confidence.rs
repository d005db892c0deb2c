//! Confidence of a recommended item, and the calibration map stored with a model.
//!
//! For every returned item the search reports (see [`Recommendation`](crate::Recommendation)):
//!
//! - the **beam posterior**: softmax of the returned items' scores (mean token
//!   log-probs); it says how the model spreads its belief over this list;
//! - the **sequence probability** `exp(sum of token log-probs)`;
//! - the **learned confidence** `c = sigmoid(z[C_HIGH] - z[C_LOW])`, read after one
//!   extra batched step that feeds the item's last code and `CONF_Q`, when the model
//!   has learned the confidence tokens (the UGR RL stage trains them);
//! - the **hybrid score** `h = exp(score) + beta * raw`, `raw` being `c` when available,
//!   else the posterior (the UGR paper's reranking score uses `c` and `beta = 0.5`);
//! - the calibrated **confidence**: a monotone [`Calibration`] map applied to `raw`,
//!   fitted on a validation split so that it reads as a probability of a hit; without
//!   a map, `raw` itself. An abstention threshold compares against this value.
//!
//! ```
//! use ugr_core::Calibration;
//! let iso = Calibration::isotonic(vec![0.1, 0.5, 0.9], vec![0.0, 0.2, 0.8])?;
//! assert_eq!(iso.apply(0.05), 0.0);
//! assert!((iso.apply(0.7) - 0.5).abs() < 1e-6); // linear between knots
//! let platt = Calibration::platt(2.0, -1.0)?;
//! assert!(platt.apply(0.3) < platt.apply(0.6));
//! assert!(Calibration::platt(-1.0, 0.0).is_err()); // would not be monotone
//! # Ok::<(), ugr_core::Error>(())
//! ```

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::math::{ln, sigmoid};

/// A monotone non-decreasing map from a raw confidence in `[0, 1]` to a calibrated probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Calibration {
    /// Platt scaling on the logit of the raw value: `sigmoid(a * logit(x) + b)`, `a >= 0`.
    Platt {
        /// Slope (non-negative).
        a: f32,
        /// Intercept.
        b: f32,
    },
    /// Isotonic regression as knots, linearly interpolated, constant outside.
    Isotonic {
        /// Knot positions, strictly increasing, finite.
        x: Vec<f32>,
        /// Knot values in `[0, 1]`, non-decreasing.
        y: Vec<f32>,
    },
}

impl Calibration {
    /// Platt scaling; fails unless `a >= 0` and both are finite.
    pub fn platt(a: f32, b: f32) -> Result<Self> {
        let c = Calibration::Platt { a, b };
        c.validate()?;
        Ok(c)
    }

    /// An isotonic map from knots; fails unless `x` strictly increases, `y` is non-decreasing
    /// in `[0, 1]`, and both have the same non-zero length.
    pub fn isotonic(x: Vec<f32>, y: Vec<f32>) -> Result<Self> {
        let c = Calibration::Isotonic { x, y };
        c.validate()?;
        Ok(c)
    }

    /// Checks monotonicity and ranges (a deserialized map is checked before use).
    pub fn validate(&self) -> Result<()> {
        let bad = Err(Error::InvalidOption {
            name: "calibration",
            reason: "not a finite, monotone map into [0, 1]",
        });
        match self {
            Calibration::Platt { a, b } => {
                if !(a.is_finite() && b.is_finite() && *a >= 0.0) {
                    return bad;
                }
            }
            Calibration::Isotonic { x, y } => {
                if x.is_empty()
                    || x.len() != y.len()
                    || x.iter().any(|v| !v.is_finite())
                    || y.iter().any(|v| !(0.0..=1.0).contains(v))
                    || x.windows(2).any(|w| w[0] >= w[1])
                    || y.windows(2).any(|w| w[0] > w[1])
                {
                    return bad;
                }
            }
        }
        Ok(())
    }

    /// The calibrated value of `raw` (clamped to `[0, 1]` first).
    pub fn apply(&self, raw: f32) -> f32 {
        let raw = if raw.is_nan() { 0.0 } else { raw.clamp(0.0, 1.0) };
        match self {
            Calibration::Platt { a, b } => {
                let p = raw.clamp(1e-6, 1.0 - 1e-6);
                sigmoid(a * (ln(p) - ln(1.0 - p)) + b)
            }
            Calibration::Isotonic { x, y } => {
                if x.is_empty() || x.len() != y.len() {
                    return raw; // not a valid map (validate() rejects it); identity
                }
                let i = x.partition_point(|&k| k <= raw);
                if i == 0 {
                    return y[0];
                }
                if i == x.len() {
                    return y[x.len() - 1];
                }
                let t = (raw - x[i - 1]) / (x[i] - x[i - 1]);
                y[i - 1] + t * (y[i] - y[i - 1])
            }
        }
    }
}
