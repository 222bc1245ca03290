//! Helpers shared by the CPU kernels of the fused ops: dtype dispatch and contiguity checks.

use candle::{CpuStorage, Layout, Result};

/// The float types the fused CPU kernels run natively.
pub(crate) trait Float:
    num_traits::Float
    + candle::WithDType
    + Send
    + Sync
    + std::iter::Sum
    + Copy
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
{
    /// `e^x`: a vectorizable polynomial for f32 (relative error below 2e-7), `std` for f64.
    fn exp_fast(self) -> Self;
}

impl Float for f32 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
}

/// `e^x` for f32 without a libm call, so that loops over it vectorize (SSE2 on the baseline
/// x86-64 target). Range reduction `x = n·ln 2 + r` with `|r| <= ln 2 / 2`, a degree-7 Taylor
/// polynomial for `e^r`, and `2^n` built from the exponent bits. Inputs below −87.3 give 0 and
/// inputs above 88.7 give +inf, like `f32::exp` up to its subnormal range.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.336_54, 88.722_83);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND; // round(x · log2 e)
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // The low bits of `shifted` hold n; 127 + n in the exponent field gives 2^n.
    let bits = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((bits + 127) << 23) as u32);
    let y = p * scale;
    if x < -87.336_54 {
        0.0
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        y
    }
}

/// The contiguous slice that `layout` describes inside `storage`, or an error naming `op`.
pub(crate) fn contiguous<'a, T: candle::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle::bail!(
            "{op}: the input must be contiguous, got strides {:?}",
            layout.stride()
        ),
    }
}

/// Whether the fused CPU kernel can serve a tensor: on the CPU, as f32 or f64.
pub(crate) fn fused_ok(t: &candle::Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), candle::DType::F32 | candle::DType::F64)
}

/// Number of rows handled per rayon task, so that small rows are batched.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

/// The largest element (−inf for an empty slice), with 8 independent lanes so that it
/// vectorizes. NaNs are ignored.
#[inline]
pub(crate) fn max<T: Float>(xs: &[T]) -> T {
    let pick = |a: T, b: T| if b > a { b } else { a };
    let mut acc = [T::neg_infinity(); 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = pick(acc[i], c[i]);
        }
    }
    rest.iter()
        .copied()
        .fold(acc.into_iter().fold(T::neg_infinity(), pick), pick)
}

/// The sum of the elements, with 8 independent lanes so that it vectorizes (a fixed order, so
/// results are deterministic).
#[inline]
pub(crate) fn sum<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    rest.iter()
        .copied()
        .fold(acc.into_iter().fold(T::zero(), |a, b| a + b), |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(-1e9), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(1e9), f32::INFINITY);
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
