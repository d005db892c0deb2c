//! Numeric kernels of the search: log-sum-exp over a logits row, `exp`, `sigmoid`.
//!
//! `no_std` has no `f32::exp`; `libm`'s is exact but scalar. The search takes one
//! log-sum-exp per beam per level over a whole codebook (20 beams x 256 codes per
//! step), so [`exp`] is a branch-free polynomial (Cephes `expf` coefficients,
//! round-to-nearest range reduction) that the compiler vectorises; its relative
//! error is below 2e-7 on the range the search uses (tested against `libm`).
//!
//! ```
//! use ugr_core::math::log_sum_exp;
//! let lse = log_sum_exp(&[0.0, 0.0]).unwrap();
//! assert!((lse - 2f32.ln()).abs() < 1e-6);
//! assert!(log_sum_exp(&[1.0, f32::NAN]).is_none());
//! assert!(log_sum_exp(&[f32::NEG_INFINITY]).is_none());
//! ```

const LOG2E: f32 = core::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer

/// `e^x`, accurate to about 2e-7 relative for `x` in `[-87, 88]`; 0 below, `+inf`-free above
/// (inputs above 88 are clamped). NaN maps to an unspecified finite value: callers check for NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Plain selects (not `clamp`, whose NaN rule is scalarised) so the loop vectorises.
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    // t's low mantissa bits hold round(x / ln 2); read them as an integer, no float->int cast.
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    y * scale
}

/// Natural logarithm (libm).
#[inline]
pub fn ln(x: f32) -> f32 {
    libm::logf(x)
}

/// The logistic function.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `ln(sum(exp(row)))`, or `None` when the row holds NaN or `+inf`, or no finite value.
///
/// `-inf` entries are allowed (masked tokens).
pub fn log_sum_exp(row: &[f32]) -> Option<f32> {
    const LANES: usize = 8;
    const EXP_MASK: u32 = 0x7f80_0000;
    const NEG_INF: u32 = 0xff80_0000;
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut bad = 0u32;
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let bits = c[i].to_bits();
            bad |= u32::from((bits & EXP_MASK) == EXP_MASK && bits != NEG_INF);
            max[i] = if c[i] > max[i] { c[i] } else { max[i] };
        }
    }
    for &x in tail {
        let bits = x.to_bits();
        bad |= u32::from((bits & EXP_MASK) == EXP_MASK && bits != NEG_INF);
        max[0] = if x > max[0] { x } else { max[0] };
    }
    let m = max
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    if bad != 0 || m == f32::NEG_INFINITY {
        return None;
    }
    let mut sum = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    for c in chunks {
        for i in 0..LANES {
            sum[i] += exp(c[i] - m);
        }
    }
    let mut s: f32 = sum.iter().sum();
    for &x in tail {
        s += exp(x - m);
    }
    Some(m + ln(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        // Under Miri (CI) a coarser sweep: 870 interpreted points instead of 87,000.
        let dx = if cfg!(miri) { 0.1 } else { 0.001 };
        while x <= 0.0 {
            let want = libm::expf(x);
            let rel = ((exp(x) - want) / want).abs();
            worst = worst.max(rel);
            x += dx;
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), exp(-87.0));
        assert!(exp(-87.0) < 2e-38);
    }

    #[test]
    fn log_sum_exp_is_stable() {
        let row: alloc::vec::Vec<f32> = (0..257).map(|i| (i as f32) * 0.37 - 40.0 + 1000.0).collect();
        let m = row.iter().cloned().fold(f32::MIN, f32::max);
        let want = m + libm::logf(row.iter().map(|x| libm::expf(x - m)).sum::<f32>());
        let got = log_sum_exp(&row).unwrap();
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY, 0.0]), Some(0.0));
        assert!(log_sum_exp(&[0.0, f32::INFINITY]).is_none());
        assert!(log_sum_exp(&[]).is_none());
    }
}
