//! A tied LM head and its cross-entropy in one pass: the per-row loss of the logits `x · wᵀ`
//! without materializing them.
//!
//! At GPT-2's vocabulary the logits of a 512-token chunk are 25.7 M values (103 MB) that are
//! written, read back once for the log-sum-exp and thrown away. The fused CPU kernel computes
//! them one vocabulary tile at a time into a buffer that stays in cache, reduces each tile to a
//! per-row (max, Σ exp) pair, and merges the pairs in tile order, so the result does not depend
//! on the number of threads. It serves inference; where a gradient is needed (either input
//! tracked by autograd) or off the CPU, the same function takes the unfused path.

use candle::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::cpu::{self, Float, Scratch};

/// Largest logits buffer of one tile, in elements (512 KB of f32): it stays in L2.
const TILE_ELEMS: usize = 1 << 17;

/// Rows per pass over the vocabulary, so that tiles stay wide for any number of rows.
const ROW_BLOCK: usize = 1024;

/// Per-row negative log-likelihood of `targets` under the logits `x · wᵀ`, where column
/// `masked.0` (GPT-2's pad row), if any, has the constant logit `masked.1`. Equals
/// [`crate::cross_entropy`] of the materialized logits up to float rounding.
///
/// The loss is f64 for f64 inputs and f32 otherwise: off the fused path, bf16 or f16 logits are
/// cast to f32 before the loss. A target or masked column outside `0..v` is an error.
///
/// # Shapes
/// - `x`: `(n, d)`; `w`: `(v, d)`; `targets`: `(n)` u32; returns `(n)`.
pub fn linear_cross_entropy(
    x: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    masked: Option<(usize, f64)>,
) -> Result<Tensor> {
    let (n, d) = x.dims2()?;
    let (v, dw) = w.dims2()?;
    if d != dw || targets.dims() != [n] || targets.dtype() != DType::U32 {
        candle::bail!(
            "linear_cross_entropy: need x (n, d), w (v, d) and u32 targets (n), got {:?}, {:?} and {:?} {:?}",
            x.dims(),
            w.dims(),
            targets.dtype(),
            targets.dims()
        );
    }
    if let Some((col, _)) = masked.filter(|&(col, _)| col >= v) {
        candle::bail!("linear_cross_entropy: masked column {col} is outside the {v} logits");
    }
    let fused = x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == w.dtype()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && !x.track_op()
        && !w.track_op();
    if !fused {
        let logits = x.matmul(&w.t()?)?; // (n, v)
        let logits = match logits.dtype() {
            DType::F32 | DType::F64 => logits,
            _ => logits.to_dtype(DType::F32)?,
        };
        let logits = match masked {
            Some((col, value)) => crate::masks::fill_column(&logits, col, value)?,
            None => logits,
        };
        return crate::cross_entropy(&logits, targets);
    }
    let ids = targets.to_vec1::<u32>()?;
    if let Some(bad) = ids.iter().find(|&&t| t as usize >= v) {
        candle::bail!("linear_cross_entropy: target {bad} is outside the vocabulary of {v} logits");
    }
    let head = Head {
        n,
        d,
        v,
        masked,
        ids,
    };
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &head)
}

impl CustomOp2 for Head {
    fn name(&self) -> &'static str {
        "ponder-linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = cpu::run_slices(self, self.name(), [(s1, l1), (s2, l2)])?;
        Ok((out, Shape::from(self.n)))
    }
}

impl cpu::SliceOp<2> for Head {
    fn run<T: Float + Scratch + 'static>(&self, [x, w]: [&[T]; 2]) -> Vec<T> {
        self.forward(x, w)
    }
}

/// The sizes of one head evaluation.
struct Head {
    n: usize,
    d: usize,
    v: usize,
    masked: Option<(usize, f64)>,
    ids: Vec<u32>,
}

/// One tile's contribution: per row, the max and Σ exp(z − max) over the tile's columns, and
/// the target logits of the rows whose target falls in the tile.
struct Partial<T> {
    max: Vec<T>,
    sum: Vec<T>,
    target: Vec<(usize, T)>,
}

impl Head {
    /// Vocabulary columns per tile for `rows` rows: as many as keep the tile buffer within
    /// [`TILE_ELEMS`], a multiple of 16, at least 16.
    fn tile(&self, rows: usize) -> usize {
        ((TILE_ELEMS / rows.max(1)) / 16 * 16).clamp(16, self.v.next_multiple_of(16))
    }

    /// Every row's loss, [`ROW_BLOCK`] rows at a time.
    fn forward<T: Float + Scratch + 'static>(&self, x: &[T], w: &[T]) -> Vec<T> {
        let mut out = Vec::with_capacity(self.n);
        for start in (0..self.n).step_by(ROW_BLOCK) {
            let end = (start + ROW_BLOCK).min(self.n);
            let rows = Rows {
                x: &x[start * self.d..end * self.d],
                ids: &self.ids[start..end],
            };
            out.extend(self.block(&rows, w));
        }
        out
    }

    /// The losses of one block of rows: the tiles in parallel, then each row's partials merged
    /// in tile order.
    fn block<T: Float + Scratch + 'static>(&self, rows: &Rows<T>, w: &[T]) -> Vec<T> {
        let n = rows.ids.len();
        let tile = self.tile(n);
        let tiles = self.v.div_ceil(tile);
        let parts: Vec<Partial<T>> = (0..tiles)
            .into_par_iter()
            .map(|t| {
                T::with_scratch(n * tile, |buf| {
                    self.tile_partial(rows, w, t * tile, tile, buf)
                })
            })
            .collect();
        let mut target = vec![T::nan(); n];
        for p in &parts {
            for &(row, z) in &p.target {
                target[row] = z;
            }
        }
        (0..n)
            .map(|row| {
                let max = parts
                    .iter()
                    .map(|p| p.max[row])
                    .fold(T::neg_infinity(), |a, b| if b > a { b } else { a });
                let sum = parts.iter().fold(T::zero(), |s, p| {
                    s + p.sum[row] * (p.max[row] - max).exp_fast::<false>()
                });
                max + sum.ln() - target[row]
            })
            .collect()
    }

    /// The partial of `rows` over columns `start..start + tile` (fewer in the last tile).
    fn tile_partial<T: Float + 'static>(
        &self,
        rows: &Rows<T>,
        w: &[T],
        start: usize,
        tile: usize,
        buf: &mut [T],
    ) -> Partial<T> {
        let (n, d) = (rows.ids.len(), self.d);
        let cols = tile.min(self.v - start);
        let buf = &mut buf[..n * cols];
        let w = &w[start * d..(start + cols) * d];
        logits_tile(rows.x, w, buf, n, d, cols);
        if let Some((col, value)) = self
            .masked
            .filter(|&(c, _)| (start..start + cols).contains(&c))
        {
            let value = T::from(value).expect("the mask value fits the float type");
            buf.chunks_mut(cols)
                .for_each(|row| row[col - start] = value);
        }
        let mut part = Partial {
            max: Vec::with_capacity(n),
            sum: Vec::with_capacity(n),
            target: Vec::new(),
        };
        for (i, (row, &t)) in buf.chunks(cols).zip(rows.ids).enumerate() {
            let (max, sum) = cpu::dispatch(MaxSumExp { row });
            part.max.push(max);
            part.sum.push(sum);
            let t = t as usize;
            if (start..start + cols).contains(&t) {
                part.target.push((i, row[t - start]));
            }
        }
        part
    }
}

/// A block of rows: their inputs `(n, d)` and targets `(n)`.
struct Rows<'a, T> {
    x: &'a [T],
    ids: &'a [u32],
}

/// `out = x · wᵀ` for `x` `(n, d)` and `w` `(cols, d)`, row-major, on the calling thread.
#[allow(unsafe_code)] // gemm's raw-pointer interface; the lengths are checked first
fn logits_tile<T: 'static + Copy + num_traits::Zero + num_traits::One>(
    x: &[T],
    w: &[T],
    out: &mut [T],
    n: usize,
    d: usize,
    cols: usize,
) {
    assert!(x.len() == n * d && w.len() == cols * d && out.len() == n * cols);
    let (d_, cols_) = (d as isize, cols as isize);
    // SAFETY: the three slices hold exactly the (n, d), (d, cols) and (n, cols) matrices the
    // strides describe (checked above), `out` is exclusive, and `read_dst = false` never
    // reads `out`'s old values.
    unsafe {
        gemm::gemm(
            n,
            cols,
            d,
            out.as_mut_ptr(),
            1,
            cols_,
            false,
            x.as_ptr(),
            1,
            d_,
            w.as_ptr(),
            d_,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// A row's max and Σ exp(z − max) ([`crate::loss::max_sum_exp`]) as a dispatched kernel.
struct MaxSumExp<'a, T> {
    row: &'a [T],
}

impl<T: Float> cpu::Kernel for MaxSumExp<'_, T> {
    type Out = (T, T);
    #[inline(always)]
    fn run<const FMA: bool>(self) -> (T, T) {
        crate::loss::max_sum_exp::<T, FMA>(self.row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Var};

    /// Seeded inputs (Candle's CPU `randn` cannot be seeded), so every run checks the same case.
    fn inputs(n: usize, d: usize, v: usize, dtype: DType) -> (Tensor, Tensor, Tensor) {
        let dev = Device::Cpu;
        let mut rng = crate::init::rng_for(n as u64, "linear-loss-test");
        let x = crate::init::normal((n, d), 2.0, &mut rng, dtype, &dev).unwrap();
        let w = crate::init::normal((v, d), 0.5, &mut rng, dtype, &dev).unwrap();
        let ids: Vec<u32> = (0..n).map(|i| ((i * 7919) % v) as u32).collect();
        (x, w, Tensor::new(ids, &dev).unwrap())
    }

    /// The naive form: every logit materialized (as an f64 matmul), the mask written, then
    /// `log Σ exp − z_target` in f64 per row.
    fn naive(x: &Tensor, w: &Tensor, t: &Tensor, masked: Option<(usize, f64)>) -> Vec<f64> {
        let x = x.to_dtype(DType::F64).unwrap();
        let w = w.to_dtype(DType::F64).unwrap();
        let logits = x.matmul(&w.t().unwrap()).unwrap().to_vec2::<f64>().unwrap();
        let t = t.to_vec1::<u32>().unwrap();
        logits
            .into_iter()
            .zip(t)
            .map(|(mut row, t)| {
                if let Some((c, value)) = masked {
                    row[c] = value;
                }
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
                lse - row[t as usize]
            })
            .collect()
    }

    #[test]
    fn matches_the_naive_form_in_both_dtypes_with_and_without_a_mask() {
        // v not a multiple of the tile, several tiles, several row blocks, a target on the
        // masked column.
        for (n, d, v) in [(3, 8, 37), (600, 24, 1000), (2100, 8, 300)] {
            for dtype in [DType::F32, DType::F64] {
                for masked in [None, Some((v - 1, -1e9)), Some((5, 3.0))] {
                    let (x, w, t) = inputs(n, d, v, dtype);
                    let got = linear_cross_entropy(&x, &w, &t, masked).unwrap();
                    let want = naive(&x, &w, &t, masked);
                    assert_eq!(got.dtype(), dtype);
                    let got = got.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let tol = 2e-6 * w.abs().max(1.0);
                        assert!(
                            (g - w).abs() < tol,
                            "n {n} v {v} {dtype:?} {masked:?} row {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_tile_count_does_not_depend_on_threads_and_the_result_is_reproducible() {
        let (x, w, t) = inputs(300, 16, 2000, DType::F32);
        let a = linear_cross_entropy(&x, &w, &t, None)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| linear_cross_entropy(&x, &w, &t, None).unwrap());
        assert_eq!(a, b.to_vec1::<f32>().unwrap());
    }

    #[test]
    fn tracked_inputs_take_the_differentiable_path() {
        let (x, w, t) = inputs(5, 4, 11, DType::F32);
        let xv = Var::from_tensor(&x).unwrap();
        let loss = linear_cross_entropy(xv.as_tensor(), &w, &t, None).unwrap();
        let grads = loss.sum_all().unwrap().backward().unwrap();
        let g = grads.get(xv.as_tensor()).expect("a gradient for x");
        assert_eq!(g.dims(), &[5, 4]);
        let fused = linear_cross_entropy(&x, &w, &t, None).unwrap();
        let diff = (loss - fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    #[test]
    fn bad_shapes_and_targets_are_errors() {
        let (x, w, t) = inputs(4, 3, 9, DType::F32);
        let wide = Tensor::zeros((9, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(linear_cross_entropy(&x, &wide, &t, None).is_err());
        let far = Tensor::new(&[0u32, 1, 9, 2], &Device::Cpu).unwrap();
        let err = linear_cross_entropy(&x, &w, &far, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("target 9"), "{err}");
        let err = linear_cross_entropy(&x, &w, &t, Some((9, 0.0)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("masked column 9"), "{err}");
    }
}
