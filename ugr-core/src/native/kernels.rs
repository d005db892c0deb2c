//! The native backend's matrix kernel: `y = x . W^T + b` against weights packed once at load.
//!
//! This module and `mapped.rs` (the memory map of an artifact file) are the only ones of
//! ugr-core with `unsafe` code; here, the SIMD micro-kernels' intrinsics (loads and stores
//! through pointers). Every other path is safe Rust:
//!
//! - [`PackedLinear::new`] re-lays `W` (`[n, k]`, row-major, as checkpoints store a linear
//!   layer) into panels of [`NR`] output columns, `k`-major, zero-padded: the micro-kernel
//!   then reads each panel row with two contiguous 8-lane loads;
//!   [`PackedLinear::from_le_bytes`] does the same from the artifact's bytes and keeps f16
//!   weights as f16: with AVX2, FMA and F16C the micro-kernel loads the halves and widens
//!   them in registers (`avx2::micro_f16`); elsewhere [`PackedLinear::apply`] widens one
//!   panel at a time (`k * NR` values) into a buffer and runs the f32 micro-kernel on it;
//! - [`PackedLinear::apply`] walks every panel and, for each, `x` in blocks of up to [`MR`]
//!   rows of near-equal size, one micro-kernel call each, accumulating `rows x NR` outputs
//!   in registers (initialised with the bias), and stores only the real columns.
//!
//! Every micro-kernel computes the same sums in the same order per output (k ascending, one
//! multiply-add each), so they agree to rounding (`micro` picks one):
//!
//! - `portable`: plain Rust over fixed-size arrays; the reference of the tests, and what
//!   runs where no other kernel does;
//! - `avx2`: x86-64 with AVX2 and FMA, detected at run time with `std`, or enabled at compile
//!   time without it or under Miri;
//! - `neon`: aarch64 (NEON is part of the base architecture), four 4-lane fused multiply-adds;
//! - `simd128`: wasm32 built with the `simd128` target feature (the repository's
//!   `.cargo/config.toml` enables it for `wasm32-unknown-unknown`): multiply then add, as the
//!   portable kernel rounds.
//!
//! CI runs the kernel tests under Miri on the portable path, with AVX2 and FMA enabled, and
//! on aarch64 (NEON); not the F16C kernel, whose conversion intrinsics Miri does not
//! implement (its pointer arithmetic is the AVX2 kernel's, over halves; it is tested
//! natively against the widening path, to the bit); natively on aarch64 under qemu; the wasm kernel runs in Chromium against
//! the native engine (tests/web). The fused kernels differ from the portable one by rounding
//! only (tests compare with a tolerance).

use alloc::vec;
use alloc::vec::Vec;

use super::weights::WeightType;

/// Output columns per panel (two 8-lane AVX registers).
pub const NR: usize = 16;
/// Rows per micro-kernel call.
pub const MR: usize = 6;

/// A linear layer's weights packed for the micro-kernel, with its bias.
#[derive(Clone, Debug)]
pub struct PackedLinear {
    /// Input width.
    k: usize,
    /// Output width.
    n: usize,
    /// `ceil(n / NR)` panels of `k * NR` values, in the stored type.
    panels: Panels,
    /// `ceil(n / NR) * NR` floats (zeros when the layer has no bias, and past `n`).
    bias: Vec<f32>,
}

/// Packed values: f32, or f16 widened one panel at a time inside [`PackedLinear::apply`]
/// (half the memory and memory traffic; the same sums as f32 weights holding the f16 values).
#[derive(Clone, Debug)]
enum Panels {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

/// `[n, k]` row-major values re-laid into panels of `NR` columns, `k`-major, zero-padded.
/// `rows_done(j)` is called with `j` rows packed, every [`PACK_BLOCK_ROWS`] rows and at the end.
fn pack<T: Copy + Default>(
    n: usize,
    k: usize,
    mut value: impl FnMut(usize) -> T,
    mut rows_done: impl FnMut(usize),
) -> Vec<T> {
    let np = n.div_ceil(NR);
    let mut panels = vec![T::default(); np * k * NR];
    for j in 0..n {
        let (p, c) = (j / NR, j % NR);
        let panel = &mut panels[p * k * NR..(p + 1) * k * NR];
        for kk in 0..k {
            panel[kk * NR + c] = value(j * k + kk);
        }
        if (j + 1) % PACK_BLOCK_ROWS == 0 || j + 1 == n {
            rows_done(j + 1);
        }
    }
    panels
}

/// Rows packed between two calls of [`PackedLinear::from_le_bytes_releasing`]'s hint.
const PACK_BLOCK_ROWS: usize = 8192;

impl PackedLinear {
    /// Packs `w` (`[n, k]` row-major) and `bias` (`[n]`, or none).
    ///
    /// # Panics
    /// When the lengths do not match `n` and `k` (callers check shapes first).
    pub fn new(w: &[f32], bias: Option<&[f32]>, n: usize, k: usize) -> PackedLinear {
        assert_eq!(w.len(), n * k, "weight length");
        PackedLinear::with_panels(Panels::F32(pack(n, k, |i| w[i], |_| {})), bias, n, k)
    }

    /// Packs `[n, k]` row-major little-endian values of `dtype` straight from their bytes
    /// (no alignment needed), keeping f16 as f16. `None` when a value is not finite.
    ///
    /// # Panics
    /// When `data` does not hold `n * k` values or `bias` not `n`.
    pub fn from_le_bytes(
        data: &[u8],
        dtype: WeightType,
        bias: Option<&[f32]>,
        n: usize,
        k: usize,
    ) -> Option<PackedLinear> {
        PackedLinear::from_le_bytes_releasing(data, dtype, bias, n, k, &|_| {})
    }

    /// As [`from_le_bytes`](Self::from_le_bytes), reading `data` once, in order; `release`
    /// is told each part of `data` already packed (blocks of rows), so that a memory-mapped
    /// caller can let those pages go while the rest of a large table packs.
    pub fn from_le_bytes_releasing(
        data: &[u8],
        dtype: WeightType,
        bias: Option<&[f32]>,
        n: usize,
        k: usize,
        release: &dyn Fn(&[u8]),
    ) -> Option<PackedLinear> {
        let width = match dtype {
            WeightType::F32 => 4,
            WeightType::F16 => 2,
        };
        assert_eq!(data.len(), n * k * width, "weight length");
        let mut finite = true;
        let mut released = 0;
        let rows_done = |rows: usize| {
            release(&data[released..rows * k * width]);
            released = rows * k * width;
        };
        let panels = match dtype {
            WeightType::F32 => Panels::F32(pack(
                n,
                k,
                |i| {
                    let b = &data[4 * i..4 * i + 4];
                    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    finite &= v.is_finite();
                    v
                },
                rows_done,
            )),
            WeightType::F16 => Panels::F16(pack(
                n,
                k,
                |i| {
                    let v = half::f16::from_le_bytes([data[2 * i], data[2 * i + 1]]);
                    finite &= v.is_finite();
                    v
                },
                rows_done,
            )),
        };
        finite.then(|| PackedLinear::with_panels(panels, bias, n, k))
    }

    fn with_panels(panels: Panels, bias: Option<&[f32]>, n: usize, k: usize) -> PackedLinear {
        let mut b = vec![0f32; n.div_ceil(NR) * NR];
        if let Some(bias) = bias {
            assert_eq!(bias.len(), n, "bias length");
            b[..n].copy_from_slice(bias);
        }
        PackedLinear {
            k,
            n,
            panels,
            bias: b,
        }
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes the packed weights and bias take in memory.
    pub fn bytes(&self) -> usize {
        let panels = match &self.panels {
            Panels::F32(p) => p.len() * 4,
            Panels::F16(p) => p.len() * 2,
        };
        panels + self.bias.len() * 4
    }

    /// `y[m, n] = x[m, k] . W^T + b` for `m = x.len() / k` rows (`y` is overwritten).
    ///
    /// # Panics
    /// When `x.len()` is not a multiple of `k` or `y.len() != m * n`.
    pub fn apply(&self, x: &[f32], y: &mut [f32]) {
        let k = self.k;
        assert!(k > 0 && x.len().is_multiple_of(k), "input length");
        assert_eq!(y.len(), x.len() / k * self.n, "output length");
        // Panels outermost: one panel (k x 16) stays in L1 while every row block passes over it.
        match &self.panels {
            Panels::F32(panels) => {
                let micro = micro();
                for (p, panel) in panels.chunks_exact(k * NR).enumerate() {
                    self.panel(p, x, y, |xs, rows, bias, acc| {
                        micro(xs, rows, k, panel, bias, acc)
                    });
                }
            }
            Panels::F16(panels) => match micro_f16() {
                Some(micro) => {
                    for (p, panel) in panels.chunks_exact(k * NR).enumerate() {
                        self.panel(p, x, y, |xs, rows, bias, acc| {
                            micro(xs, rows, k, panel, bias, acc)
                        });
                    }
                }
                None => {
                    let micro = micro();
                    let mut wide = vec![0f32; k * NR];
                    for (p, panel) in panels.chunks_exact(k * NR).enumerate() {
                        half::slice::HalfFloatSliceExt::convert_to_f32_slice(panel, &mut wide);
                        let wide = &wide;
                        self.panel(p, x, y, |xs, rows, bias, acc| micro(xs, rows, k, wide, bias, acc));
                    }
                }
            },
        }
    }

    /// `y[j - cols.start] = x . W[j] + b[j]` for the output columns `cols` and one input row
    /// `x` (`k` floats): only the panels that hold those columns are read. The values are
    /// exactly those [`apply`](Self::apply) computes for the same columns.
    ///
    /// # Panics
    /// When `x.len() != k` or `cols` is not inside `0..n`.
    pub fn apply_columns(&self, x: &[f32], cols: core::ops::Range<usize>, y: &mut Vec<f32>) {
        let k = self.k;
        assert!(
            x.len() == k && cols.start <= cols.end && cols.end <= self.n,
            "columns"
        );
        y.clear();
        if cols.is_empty() {
            return;
        }
        let (first, last) = (cols.start / NR, (cols.end - 1) / NR);
        for p in first..=last {
            let acc = self.panel_row(x, p);
            let lo = cols.start.max(p * NR) - p * NR;
            let hi = cols.end.min((p + 1) * NR) - p * NR;
            y.extend_from_slice(&acc[lo..hi]);
        }
    }

    /// Output column `j` for one input row `x` (as [`apply_columns`](Self::apply_columns)).
    ///
    /// # Panics
    /// When `x.len() != k` or `j >= n`.
    pub fn column(&self, x: &[f32], j: usize) -> f32 {
        assert!(x.len() == self.k && j < self.n, "column");
        self.panel_row(x, j / NR)[j % NR]
    }

    /// The `NR` outputs of panel `p` for one input row.
    fn panel_row(&self, x: &[f32], p: usize) -> [f32; NR] {
        let k = self.k;
        let mut acc = [[0f32; NR]; MR];
        let bias: &[f32; NR] = self.bias[p * NR..(p + 1) * NR].try_into().expect("NR floats");
        match &self.panels {
            Panels::F32(panels) => micro()(x, 1, k, &panels[p * k * NR..(p + 1) * k * NR], bias, &mut acc),
            Panels::F16(panels) => {
                let panel = &panels[p * k * NR..(p + 1) * k * NR];
                match micro_f16() {
                    Some(m) => m(x, 1, k, panel, bias, &mut acc),
                    None => {
                        let mut wide = vec![0f32; k * NR];
                        half::slice::HalfFloatSliceExt::convert_to_f32_slice(panel, &mut wide);
                        micro()(x, 1, k, &wide, bias, &mut acc);
                    }
                }
            }
        }
        acc[0]
    }

    /// Row `j` of `W` (`k` values, widened to f32) and its bias.
    ///
    /// # Panics
    /// When `j >= n` or `out.len() != k`.
    pub fn row(&self, j: usize, out: &mut [f32]) -> f32 {
        assert!(j < self.n && out.len() == self.k, "row");
        let (p, c, k) = (j / NR, j % NR, self.k);
        match &self.panels {
            Panels::F32(panels) => {
                for (kk, o) in out.iter_mut().enumerate() {
                    *o = panels[p * k * NR + kk * NR + c];
                }
            }
            Panels::F16(panels) => {
                for (kk, o) in out.iter_mut().enumerate() {
                    *o = panels[p * k * NR + kk * NR + c].to_f32();
                }
            }
        }
        self.bias[j]
    }

    /// The output columns of panel `p` for every row of `x`; `micro(xs, rows, bias, acc)`
    /// runs the micro-kernel on one row block against the panel.
    fn panel(
        &self,
        p: usize,
        x: &[f32],
        y: &mut [f32],
        micro: impl Fn(&[f32], usize, &[f32; NR], &mut [[f32; NR]; MR]),
    ) {
        let k = self.k;
        let m = x.len() / k;
        // Row blocks of near-equal size (20 rows: 5 + 5 + 5 + 5, not 6 + 6 + 6 + 2: a block
        // of few rows does few multiply-adds per load).
        let blocks = m.div_ceil(MR).max(1);
        let (base, extra) = (m / blocks, m % blocks);
        let bias: &[f32; NR] = self.bias[p * NR..(p + 1) * NR].try_into().expect("NR floats");
        let c0 = p * NR;
        let cols = (self.n - c0).min(NR);
        let mut r = 0;
        for b in 0..blocks {
            let rows = base + usize::from(b < extra);
            if rows == 0 {
                continue;
            }
            let xs = &x[r * k..(r + rows) * k];
            let mut acc = [[0f32; NR]; MR];
            micro(xs, rows, bias, &mut acc);
            for (i, a) in acc.iter().enumerate().take(rows) {
                y[(r + i) * self.n + c0..][..cols].copy_from_slice(&a[..cols]);
            }
            r += rows;
        }
    }
}

/// Calls `kernel::<R>(args)` with the constant `R` equal to `rows` (`1..=MR`): each row count
/// has its own unrolled kernel. (Unused where no SIMD kernel exists.)
#[allow(unused_macros)]
macro_rules! with_rows {
    ($rows:expr, $kernel:ident($($arg:expr),*)) => {
        match $rows {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            _ => $kernel::<6>($($arg),*),
        }
    };
}

/// The bounds every SIMD micro-kernel relies on: `1 <= rows <= MR`, `rows * k` floats of `xs`,
/// `k * NR` of `panel`. (Unused where no SIMD kernel exists.)
#[allow(dead_code)]
fn check_block(xs: &[f32], rows: usize, k: usize, panel: &[f32]) {
    assert!((1..=MR).contains(&rows), "rows");
    assert!(xs.len() >= rows * k, "x block");
    assert!(panel.len() >= k * NR, "panel");
}

/// A micro-kernel: `acc[i][c] = bias[c] + sum_kk xs[i * k + kk] * panel[kk * NR + c]` for
/// `i < rows` (`1 <= rows <= MR`, `xs` at least `rows * k` floats, `panel` `k * NR`).
type Micro = fn(&[f32], usize, usize, &[f32], &[f32; NR], &mut [[f32; NR]; MR]);

/// A micro-kernel over an f16 panel (widened in registers), same contract otherwise.
type MicroF16 = fn(&[f32], usize, usize, &[half::f16], &[f32; NR], &mut [[f32; NR]; MR]);

/// The f16 micro-kernel this build and CPU have, if any (AVX2 + FMA + F16C); elsewhere
/// [`PackedLinear::apply`] widens each panel into a buffer and runs [`micro`].
#[allow(unreachable_code)]
fn micro_f16() -> Option<MicroF16> {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() && use_f16c() {
        return Some(avx2::micro_f16);
    }
    None
}

/// Whether the CPU converts f16 in hardware (F16C); decided as [`use_avx2`] decides.
#[cfg(target_arch = "x86_64")]
#[inline]
fn use_f16c() -> bool {
    #[cfg(all(not(miri), feature = "std"))]
    {
        std::is_x86_feature_detected!("f16c")
    }
    #[cfg(any(miri, not(feature = "std")))]
    {
        cfg!(target_feature = "f16c")
    }
}

/// The fastest micro-kernel this build and CPU have.
#[allow(unreachable_code)]
fn micro() -> Micro {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        return avx2::micro;
    }
    #[cfg(target_arch = "aarch64")]
    return neon::micro;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::micro;
    portable::micro
}

/// Whether the AVX2/FMA micro-kernel runs here: detected at run time with `std`, else (and
/// under Miri, which cannot run `cpuid`) when the target features are enabled at compile time
/// (`RUSTFLAGS="-C target-feature=+avx2,+fma"`, as CI's second Miri run does).
#[cfg(target_arch = "x86_64")]
#[inline]
fn use_avx2() -> bool {
    #[cfg(all(not(miri), feature = "std"))]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(any(miri, not(feature = "std")))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma"))
    }
}

/// The portable micro-kernel: plain Rust, also the reference of the tests.
mod portable {
    use super::{MR, NR};

    /// `acc[i][c] = bias[c] + sum_kk xs[i * k + kk] * panel[kk * NR + c]` for `i < rows`.
    pub(super) fn micro(
        xs: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        for (i, a) in acc.iter_mut().enumerate().take(rows) {
            *a = *bias;
            let x = &xs[i * k..(i + 1) * k];
            for (kk, b) in panel.chunks_exact(NR).enumerate() {
                let xv = x[kk];
                for c in 0..NR {
                    a[c] += xv * b[c];
                }
            }
        }
    }
}

/// The x86-64 AVX2/FMA micro-kernel (falls back to the portable one elsewhere).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use core::arch::x86_64::{
        __m128i, __m256, _mm_loadu_si128, _mm256_broadcast_ss, _mm256_cvtph_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_storeu_ps,
    };

    use super::{MR, NR};

    /// The body of both AVX2 kernels: `R` rows of `xs` (`k` floats each) against the panel
    /// rows that `load(kk)` returns as two 8-lane registers (an expression, expanded in the
    /// caller so that it runs under the caller's target features), accumulated from `bias`
    /// and stored into `acc`.
    macro_rules! fma_rows {
        ($r:ident, $xs:ident, $k:ident, $bias:ident, $acc:ident, |$kk:ident| $load:expr) => {{
            // SAFETY: `bias` is 16 floats: two 8-lane loads stay inside it.
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_ps($bias.as_ptr()),
                    _mm256_loadu_ps($bias.as_ptr().add(8)),
                )
            };
            let mut c: [[__m256; 2]; $r] = [[b0, b1]; $r];
            for $kk in 0..$k {
                // SAFETY: the caller's, stated where it passes `load`.
                let (w0, w1) = unsafe { $load };
                for (i, ci) in c.iter_mut().enumerate() {
                    // SAFETY: `xs` holds `R * k` floats and `i < R`, `kk < k`.
                    let a = unsafe { _mm256_broadcast_ss(&*$xs.add(i * $k + $kk)) };
                    ci[0] = _mm256_fmadd_ps(a, w0, ci[0]);
                    ci[1] = _mm256_fmadd_ps(a, w1, ci[1]);
                }
            }
            for (ci, out) in c.iter().zip($acc.iter_mut()) {
                // SAFETY: each `out` row is 16 floats: two 8-lane stores stay inside it.
                unsafe {
                    _mm256_storeu_ps(out.as_mut_ptr(), ci[0]);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), ci[1]);
                }
            }
        }};
    }

    /// As [`micro`] over an f16 panel; the caller has checked AVX2, FMA and F16C.
    pub(super) fn micro_f16(
        xs: &[f32],
        rows: usize,
        k: usize,
        panel: &[half::f16],
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        assert!((1..=MR).contains(&rows), "rows");
        assert!(xs.len() >= rows * k, "x block");
        assert!(panel.len() >= k * NR, "panel");
        let (x, p) = (xs.as_ptr(), panel.as_ptr().cast::<u16>());
        // SAFETY: `apply` calls this only when `micro_f16()` saw AVX2, FMA and F16C (or they
        // are enabled at compile time); `kernel_f16::<R>` reads `R * k` floats of `xs` and
        // `k * NR` halves of `panel` (`f16` is a `u16`-sized value), asserted above.
        unsafe { with_rows!(rows, kernel_f16(x, k, p, bias, acc)) }
    }

    /// [`kernel`] with each panel row loaded as 16 halves and widened in registers.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn kernel_f16<const R: usize>(
        xs: *const f32,
        k: usize,
        panel: *const u16,
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        // SAFETY (of the loads): `panel` holds `k * NR` halves (asserted by the caller) and
        // `kk * NR + 16 <= k * NR`: two unaligned 8-half (16-byte) loads.
        fma_rows!(R, xs, k, bias, acc, |kk| {
            let p = panel.add(kk * NR);
            (
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(8).cast::<__m128i>())),
            )
        })
    }

    /// Same contract as `portable::micro`; the caller has checked that AVX2 and FMA exist.
    pub(super) fn micro(
        xs: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        super::check_block(xs, rows, k, panel);
        let (x, p) = (xs.as_ptr(), panel.as_ptr());
        // SAFETY: `apply` calls this only when `use_avx2()` saw AVX2 and FMA on this CPU
        // (or they are enabled at compile time); `kernel::<R>` reads `R * k` floats of `xs`
        // and `k * NR` of `panel`, both checked by `check_block` above, with `R == rows`.
        unsafe { with_rows!(rows, kernel(x, k, p, bias, acc)) }
    }

    /// `R` rows (a constant, so the row loop unrolls into `2 R` accumulators in registers).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel<const R: usize>(
        xs: *const f32,
        k: usize,
        panel: *const f32,
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        // SAFETY (of the loads): `panel` holds `k * NR` floats (asserted by the caller) and
        // `kk * NR + 16 <= k * NR`.
        fma_rows!(R, xs, k, bias, acc, |kk| {
            let p = panel.add(kk * NR);
            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        })
    }
}

/// The aarch64 NEON micro-kernel: each panel row is four 4-lane loads, each output row four
/// 4-lane accumulators (`4 R` of the 32 vector registers).
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon {
    use core::arch::aarch64::{float32x4_t, vdupq_n_f32, vfmaq_f32, vld1q_f32, vst1q_f32};

    use super::{MR, NR};

    /// Same contract as `portable::micro`.
    pub(super) fn micro(
        xs: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        super::check_block(xs, rows, k, panel);
        let (x, p) = (xs.as_ptr(), panel.as_ptr());
        // SAFETY: NEON is part of every aarch64 CPU; `kernel::<R>` reads `R * k` floats of
        // `xs` and `k * NR` of `panel`, both checked by `check_block` above, with `R == rows`.
        unsafe { with_rows!(rows, kernel(x, k, p, bias, acc)) }
    }

    /// `R` rows (a constant, so the row loop unrolls into `4 R` accumulators in registers).
    #[target_feature(enable = "neon")]
    unsafe fn kernel<const R: usize>(
        xs: *const f32,
        k: usize,
        panel: *const f32,
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        // SAFETY: `bias` is 16 floats: four 4-lane loads stay inside it.
        let b = unsafe { [0, 4, 8, 12].map(|o| vld1q_f32(bias.as_ptr().add(o))) };
        let mut c: [[float32x4_t; 4]; R] = [b; R];
        for kk in 0..k {
            // SAFETY: `panel` holds `k * NR` floats (asserted by the caller) and
            // `kk * NR + 16 <= k * NR`.
            let w = unsafe { [0, 4, 8, 12].map(|o| vld1q_f32(panel.add(kk * NR + o))) };
            for (i, ci) in c.iter_mut().enumerate() {
                // SAFETY: `xs` holds `R * k` floats and `i < R`, `kk < k`.
                let a = vdupq_n_f32(unsafe { *xs.add(i * k + kk) });
                for (cj, wj) in ci.iter_mut().zip(w) {
                    *cj = vfmaq_f32(*cj, a, wj);
                }
            }
        }
        for (ci, out) in c.iter().zip(acc.iter_mut()) {
            for (j, cj) in ci.iter().enumerate() {
                // SAFETY: each `out` row is 16 floats and `4 j + 4 <= 16`.
                unsafe { vst1q_f32(out.as_mut_ptr().add(4 * j), *cj) };
            }
        }
    }
}

/// The wasm32 `simd128` micro-kernel: the portable kernel's arithmetic (multiply, then add:
/// simd128 has no fused multiply-add) on four 4-lane vectors per row.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[allow(unsafe_code)]
mod simd128 {
    use core::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128, v128_load, v128_store};

    use super::{MR, NR};

    /// Same contract as `portable::micro`.
    pub(super) fn micro(
        xs: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        super::check_block(xs, rows, k, panel);
        with_rows!(rows, kernel(xs, k, panel, bias, acc))
    }

    /// Four lanes of `v` from `at` (wasm loads need no alignment).
    fn load(v: &[f32], at: usize) -> v128 {
        let lanes = &v[at..at + 4];
        // SAFETY: `lanes` is 4 floats, 16 bytes; `v128_load` reads them unaligned.
        unsafe { v128_load(lanes.as_ptr().cast::<v128>()) }
    }

    fn kernel<const R: usize>(
        xs: &[f32],
        k: usize,
        panel: &[f32],
        bias: &[f32; NR],
        acc: &mut [[f32; NR]; MR],
    ) {
        let b = [0, 4, 8, 12].map(|o| load(bias, o));
        let mut c: [[v128; 4]; R] = [b; R];
        for (kk, row) in panel.chunks_exact(NR).take(k).enumerate() {
            let w = [0, 4, 8, 12].map(|o| load(row, o));
            for (i, ci) in c.iter_mut().enumerate() {
                let a = f32x4_splat(xs[i * k + kk]);
                for (cj, wj) in ci.iter_mut().zip(w) {
                    *cj = f32x4_add(*cj, f32x4_mul(a, wj));
                }
            }
        }
        for (ci, out) in c.iter().zip(acc.iter_mut()) {
            for (j, cj) in ci.iter().enumerate() {
                let lanes = &mut out[4 * j..4 * j + 4];
                // SAFETY: `lanes` is 4 floats, 16 bytes; `v128_store` writes them unaligned.
                unsafe { v128_store(lanes.as_mut_ptr().cast::<v128>(), *cj) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &[f32], b: Option<&[f32]>, x: &[f32], n: usize, k: usize) -> Vec<f32> {
        let m = x.len() / k;
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let mut s = b.map_or(0.0, |b| b[j]);
                for kk in 0..k {
                    s += x[r * k + kk] * w[j * k + kk];
                }
                y[r * n + j] = s;
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn packed_linear_matches_the_definition_at_every_edge_size() {
        // Sizes around the panel (16) and row block (6) edges; small enough for Miri.
        for &(m, n, k) in &[(1, 1, 1), (5, 17, 3), (6, 16, 8), (7, 33, 5), (13, 15, 9)] {
            let w = values(n * k, 1);
            let b = values(n, 2);
            let x = values(m * k, 3);
            for bias in [None, Some(b.as_slice())] {
                let lin = PackedLinear::new(&w, bias, n, k);
                let mut y = vec![f32::NAN; m * n];
                lin.apply(&x, &mut y);
                let want = reference(&w, bias, &x, n, k);
                for (a, e) in y.iter().zip(&want) {
                    assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "{m}x{n}x{k}: {a} vs {e}");
                }
            }
        }
    }

    #[test]
    fn f16_panels_compute_what_f32_panels_of_the_same_values_compute() {
        for &(m, n, k) in &[(1, 1, 1), (5, 17, 3), (7, 33, 5)] {
            let w: Vec<f32> = values(n * k, 8)
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect();
            let b = values(n, 9);
            let x = values(m * k, 10);
            let halves: Vec<u8> = w
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            let singles: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let f16 = PackedLinear::from_le_bytes(&halves, WeightType::F16, Some(&b), n, k).unwrap();
            let f32 = PackedLinear::from_le_bytes(&singles, WeightType::F32, Some(&b), n, k).unwrap();
            assert_eq!(
                (f16.bytes() - f16.bias.len() * 4) * 2,
                f32.bytes() - f32.bias.len() * 4
            );
            let (mut y16, mut y32) = (vec![0f32; m * n], vec![0f32; m * n]);
            f16.apply(&x, &mut y16);
            f32.apply(&x, &mut y32);
            assert_eq!(y16, y32, "{m}x{n}x{k}");
            let mut y = vec![0f32; m * n];
            PackedLinear::new(&w, Some(&b), n, k).apply(&x, &mut y);
            assert_eq!(y, y32);
        }
    }

    #[test]
    fn the_f16_micro_kernel_agrees_with_widening_the_panel() {
        let k = 11;
        let halves: Vec<half::f16> = values(k * NR, 11)
            .iter()
            .map(|&v| half::f16::from_f32(v))
            .collect();
        let wide: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
        let xs = values(MR * k, 12);
        let bias: [f32; NR] = values(NR, 13).try_into().unwrap();
        let Some(f16) = micro_f16() else {
            return; // no f16 kernel on this target: `apply` widens (tested above)
        };
        let (mut a, mut b) = ([[0f32; NR]; MR], [[0f32; NR]; MR]);
        for rows in 1..=MR {
            micro()(&xs, rows, k, &wide, &bias, &mut a);
            f16(&xs, rows, k, &halves, &bias, &mut b);
            assert_eq!(a[..rows], b[..rows], "{rows} rows");
        }
    }

    #[test]
    fn columns_and_rows_read_what_apply_computes() {
        let (n, k) = (37, 9);
        let w = values(n * k, 21);
        let b = values(n, 22);
        let x = values(k, 23);
        for lin in [
            PackedLinear::new(&w, Some(&b), n, k),
            PackedLinear::from_le_bytes(
                &w.iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect::<Vec<u8>>(),
                WeightType::F16,
                Some(&b),
                n,
                k,
            )
            .unwrap(),
        ] {
            let mut all = vec![0f32; n];
            lin.apply(&x, &mut all);
            let mut part = Vec::new();
            for (a, z) in [(0, n), (3, 4), (15, 17), (16, 32), (30, 37), (5, 5)] {
                lin.apply_columns(&x, a..z, &mut part);
                assert_eq!(part, all[a..z], "{a}..{z}");
            }
            assert_eq!(lin.column(&x, 20), all[20]);
            let mut row = vec![0f32; k];
            let bias = lin.row(20, &mut row);
            assert_eq!(bias, b[20]);
            for (r, &v) in row.iter().zip(&w[20 * k..21 * k]) {
                assert!((r - v).abs() <= 1e-3 * (1.0 + v.abs()));
            }
        }
    }

    #[test]
    fn packing_releases_every_byte_once_in_order() {
        let (n, k) = (2 * PACK_BLOCK_ROWS + 5, 3);
        let bytes: Vec<u8> = values(n * k, 31).iter().flat_map(|v| v.to_le_bytes()).collect();
        let seen = core::cell::RefCell::new(Vec::new());
        let release = |part: &[u8]| {
            seen.borrow_mut()
                .push((part.as_ptr() as usize - bytes.as_ptr() as usize, part.len()))
        };
        PackedLinear::from_le_bytes_releasing(&bytes, WeightType::F32, None, n, k, &release).unwrap();
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 3);
        let mut at = 0;
        for (start, len) in seen {
            assert_eq!(start, at);
            at += len;
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn packing_from_bytes_refuses_non_finite_values() {
        let mut bytes: Vec<u8> = [1.0f32, 2.0, f32::NAN, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(PackedLinear::from_le_bytes(&bytes, WeightType::F32, None, 2, 2).is_none());
        bytes[8..12].copy_from_slice(&0.5f32.to_le_bytes());
        assert!(PackedLinear::from_le_bytes(&bytes, WeightType::F32, None, 2, 2).is_some());
        let halves: Vec<u8> = [1.0f32, f32::INFINITY]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        assert!(PackedLinear::from_le_bytes(&halves, WeightType::F16, None, 1, 2).is_none());
    }

    #[test]
    fn the_portable_and_dispatched_kernels_agree() {
        let k = 11;
        let panel = values(k * NR, 5);
        let xs = values(MR * k, 6);
        let bias: [f32; NR] = values(NR, 7).try_into().unwrap();
        let (mut a, mut b) = ([[0f32; NR]; MR], [[0f32; NR]; MR]);
        for rows in 1..=MR {
            portable::micro(&xs, rows, k, &panel, &bias, &mut a);
            micro()(&xs, rows, k, &panel, &bias, &mut b);
            for (ra, rb) in a.iter().zip(&b).take(rows) {
                for (x, y) in ra.iter().zip(rb) {
                    assert!((x - y).abs() < 1e-5, "{rows} rows: {x} vs {y}");
                }
            }
        }
    }
}
