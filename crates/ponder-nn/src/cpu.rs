//! Helpers shared by the CPU kernels of the fused ops: the f32/f64 dispatch of `cpu_fwd`
//! (`run_slices`), the vectorizable `exp` and its AVX-512/AVX2 dispatch, per-thread scratch
//! buffers, contiguity checks and 8-lane reductions. The crates above use the public ones
//! ([`Float`], [`Kernel`], [`dispatch`], [`contiguous`], [`sum`], [`dot`]) for kernels of their
//! own (`ponder-ttt`'s fused inner loop).

use std::cell::RefCell;

use candle::{CpuStorage, Layout, Result};

/// The float types the fused CPU kernels run natively.
pub trait Float:
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
    /// `FMA` selects fused multiply-adds, for kernels compiled where the CPU has them.
    fn exp_fast<const FMA: bool>(self) -> Self;
}

impl Float for f32 {
    #[inline(always)]
    fn exp_fast<const FMA: bool>(self) -> Self {
        exp_f32::<FMA>(self)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn exp_fast<const FMA: bool>(self) -> Self {
        self.exp()
    }
}

/// `a · b + c`, fused where `FMA` (one rounding) and plain otherwise, so that the portable build
/// never calls the slow software `fmaf`.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `e^x` for f32 without a libm call, so that loops over it vectorize. Range reduction
/// `x = n·ln 2 + r` with `|r| <= ln 2 / 2`, a degree-7 Taylor polynomial for `e^r` in Horner
/// form, and `2^n` built from the exponent bits. Inputs below −87.3 give 0, inputs above 88.7
/// give +inf and NaN stays NaN, like `f32::exp` up to its subnormal range. Every branch is a
/// select, so the compiler turns the loop into vector code.
#[inline(always)]
pub(crate) fn exp_f32<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LO: f32 = -87.336_54;
    const HI: f32 = 88.722_83;
    const TAYLOR: [f32; 7] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let xc = if x < LO { LO } else { x };
    let xc = if xc > HI { HI } else { xc };
    let shifted = madd::<FMA>(xc, LOG2E, ROUND);
    let n = shifted - ROUND; // round(x · log2 e)
    let r = madd::<FMA>(n, -LN2_LO, madd::<FMA>(n, -LN2_HI, xc));
    let p = TAYLOR
        .iter()
        .fold(1.0 / 5040.0, |p, &c| madd::<FMA>(p, r, c));
    // The low bits of `shifted` hold n; 127 + n in the exponent field gives 2^n.
    let bits = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((bits + 127) << 23) as u32);
    let y = p * scale;
    let y = if x < LO { 0.0 } else { y };
    if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

/// A piece of kernel work generic over [`Float::exp_fast`]'s `FMA`, so that [`dispatch`] can
/// compile it twice: for the CPU it runs on and for any CPU of the target.
pub trait Kernel {
    /// What the work returns.
    type Out;
    /// The work; implementations are `#[inline(always)]` so that they take on the caller's
    /// target features.
    fn run<const FMA: bool>(self) -> Self::Out;
}

/// Runs `k` compiled for AVX-512 or else AVX2, with FMA, where the CPU has them (about 10×
/// faster `exp` loops than the baseline x86-64 build), with FMA on aarch64, and portable
/// elsewhere. The results differ between these builds in the last bits (the vector width
/// changes the order of sums), never between runs on one machine.
#[inline]
#[allow(unsafe_code)] // the calls of `target_feature` functions, after the CPU checks
pub fn dispatch<K: Kernel>(k: K) -> K::Out {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features `run_avx512` is compiled for.
                return unsafe { run_avx512(k) };
            }
            // SAFETY: the CPU has the features `run_avx2_fma` is compiled for.
            return unsafe { run_avx2_fma(k) };
        }
        k.run::<false>()
    }
    #[cfg(target_arch = "aarch64")]
    {
        k.run::<true>()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        k.run::<false>()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2_fma<K: Kernel>(k: K) -> K::Out {
    k.run::<true>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn run_avx512<K: Kernel>(k: K) -> K::Out {
    k.run::<true>()
}

/// A per-thread scratch buffer (a tile of logits, say), kept between calls so that it is
/// neither allocated nor zeroed again.
pub(crate) trait Scratch: Sized {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! scratch {
    ($t:ty) => {
        impl Scratch for $t {
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                std::thread_local! {
                    static BUF: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
                }
                BUF.with_borrow_mut(|buf| {
                    if buf.len() < len {
                        buf.resize(len, 0.0);
                    }
                    f(&mut buf[..len])
                })
            }
        }
    };
}
scratch!(f32);
scratch!(f64);

/// A fused op's CPU work over the contiguous slices of its `N` inputs, in their shared dtype.
pub(crate) trait SliceOp<const N: usize> {
    fn run<T: Float + Scratch + 'static>(&self, inputs: [&[T]; N]) -> Vec<T>;
}

/// Runs `op` on the inputs of a Candle custom op's `cpu_fwd`: f32 or f64, contiguous, one dtype
/// for all (otherwise an error naming `name`).
pub(crate) fn run_slices<const N: usize>(
    op: &impl SliceOp<N>,
    name: &str,
    inputs: [(&CpuStorage, &Layout); N],
) -> Result<CpuStorage> {
    use candle::backend::BackendStorage;
    fn slices<'a, T: candle::WithDType, const N: usize>(
        inputs: [(&'a CpuStorage, &Layout); N],
        name: &str,
    ) -> Result<[&'a [T]; N]> {
        let mut out: [&[T]; N] = [&[]; N];
        for (o, (s, l)) in out.iter_mut().zip(inputs) {
            *o = contiguous::<T>(s, l, name)?;
        }
        Ok(out)
    }
    let dtypes: Vec<candle::DType> = inputs.iter().map(|(s, _)| s.dtype()).collect();
    if dtypes.windows(2).any(|w| w[0] != w[1]) {
        candle::bail!("{name}: the inputs must share one dtype, got {dtypes:?}");
    }
    let Some((first, _)) = inputs.first() else {
        candle::bail!("{name}: no inputs");
    };
    Ok(match first {
        CpuStorage::F32(_) => CpuStorage::F32(op.run(slices::<f32, N>(inputs, name)?)),
        CpuStorage::F64(_) => CpuStorage::F64(op.run(slices::<f64, N>(inputs, name)?)),
        other => candle::bail!("{name}: unsupported dtype {:?}", other.dtype()),
    })
}

/// The contiguous slice that `layout` describes inside `storage`, or an error naming `op`.
pub fn contiguous<'a, T: candle::WithDType>(
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

/// Whether a fused backward kernel can serve the gradient `grad` of an op whose input (or
/// output) was `t`: the CPU kernel serves `t`, `grad` matches it in dtype and shape, and `grad`
/// is not itself tracked (a double backward needs the differentiable primitive-op form).
pub(crate) fn fused_grad_ok(t: &candle::Tensor, grad: &candle::Tensor) -> bool {
    fused_ok(t) && grad.dtype() == t.dtype() && grad.dims() == t.dims() && !grad.track_op()
}

/// Number of rows handled per rayon task, so that small rows are batched.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

/// The largest element (−inf for an empty slice), with 8 independent lanes so that it
/// vectorizes. NaNs are ignored.
#[inline(always)]
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
#[inline(always)]
pub fn sum<T: Float>(xs: &[T]) -> T {
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

/// `Σ a_i b_i`, with 8 independent lanes like [`sum`].
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest = ca.remainder().iter().zip(cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    rest.fold(
        acc.into_iter().fold(T::zero(), |s, v| s + v),
        |s, (&x, &y)| s + x * y,
    )
}

/// Adds each of `partials` into `out` element by element, in the order given: per-task sums
/// (over row blocks whose size does not depend on the thread count) merged the same way on any
/// number of threads.
pub(crate) fn add_in_order<T: Float>(out: &mut [T], partials: &[Vec<T>]) {
    for partial in partials {
        for (o, &p) in out.iter_mut().zip(partial) {
            *o += p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_f32, run_slices, CpuStorage, Float, Layout, Scratch, SliceOp};

    #[test]
    fn run_slices_runs_one_dtype_and_refuses_mixed_ones() {
        struct Add;
        impl SliceOp<2> for Add {
            fn run<T: Float + Scratch + 'static>(&self, [a, b]: [&[T]; 2]) -> Vec<T> {
                a.iter().zip(b).map(|(&x, &y)| x + y).collect()
            }
        }
        let (a, b) = (
            CpuStorage::F32(vec![1.0, 2.0]),
            CpuStorage::F64(vec![3.0, 4.0]),
        );
        let l = Layout::contiguous(2);
        let sum = run_slices(&Add, "add", [(&a, &l), (&a, &l)]).unwrap();
        assert!(matches!(sum, CpuStorage::F32(v) if v == [2.0, 4.0]));
        let err = run_slices(&Add, "add", [(&a, &l), (&b, &l)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("add: the inputs must share one dtype"),
            "{err}"
        );
    }

    #[test]
    fn exp_f32_is_accurate() {
        check::<false>();
        check::<true>();
    }

    fn check<const FMA: bool>() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32::<FMA>(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2e-7, "FMA {FMA}: worst relative error {worst:e}");
        assert_eq!(exp_f32::<FMA>(-1e9), 0.0);
        assert_eq!(exp_f32::<FMA>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32::<FMA>(1e9), f32::INFINITY);
        assert_eq!(exp_f32::<FMA>(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32::<FMA>(0.0), 1.0);
        assert!(exp_f32::<FMA>(f32::NAN).is_nan());
    }
}
