//! A bias added to every row, fused on the CPU and differentiable: the bias of a linear layer,
//! or GPT-2's position embeddings added to every sequence.
//!
//! Candle's `broadcast_add` gets the bias gradient from `sum_keepdim` over the broadcast dims,
//! whose CPU kernel walks the gradient element by element with index arithmetic: a tenth of a
//! tiny backbone training step. Here the gradient is summed over row blocks of a fixed size in
//! parallel and the block sums are merged in block order, so the result does not depend on the
//! number of threads.

use candle::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{self, Float, Scratch};

/// Rows per block of the gradient sum: a fixed count, so that the blocks (and the rounding of
/// their merge) do not depend on the thread count.
const SUM_BLOCK_ELEMS: usize = 1 << 15;

/// `x + bias`, with `bias` broadcast over the leading dims of `x`: its shape must equal the
/// trailing dims of `x`'s. Equals `x.broadcast_add(bias)` bit for bit; the bias gradient is
/// the sum of the incoming gradient over the leading dims.
///
/// # Shapes
/// - `x`: `(.., m..)`; `bias`: `(m..)`; returns the shape of `x`.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (xd, bd) = (x.dims(), bias.dims());
    if bd.len() > xd.len() || xd[xd.len() - bd.len()..] != *bd {
        candle::bail!(
            "add_bias: the bias shape {bd:?} must equal the trailing dims of the input {xd:?}"
        );
    }
    if cpu::fused_ok(x) && bias.device().is_cpu() && bias.dtype() == x.dtype() {
        let m = bias.elem_count();
        x.contiguous()?
            .apply_op2(&bias.contiguous()?, AddBias { m })
    } else {
        x.broadcast_add(bias)
    }
}

/// `x + bias` over rows of `m` elements.
struct AddBias {
    m: usize,
}

impl cpu::SliceOp<2> for AddBias {
    fn run<T: Float + Scratch + 'static>(&self, [x, bias]: [&[T]; 2]) -> Vec<T> {
        let m = self.m.max(1);
        let mut out = vec![T::zero(); x.len()];
        let rows = cpu::rows_per_task(m);
        out.par_chunks_mut(rows * m)
            .zip(x.par_chunks(rows * m))
            .for_each(|(out, x)| {
                for (o, x) in out.chunks_mut(m).zip(x.chunks(m)) {
                    for ((o, &x), &b) in o.iter_mut().zip(x).zip(bias) {
                        *o = x + b;
                    }
                }
            });
        out
    }
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "ponder-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = cpu::run_slices(self, self.name(), [(s1, l1), (s2, l2)])?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), Some(sum_rows(grad, bias.dims())?)))
    }
}

/// The sum of `grad` over its leading dims, shaped `bias_dims` (its trailing dims). Fused on
/// the CPU; from `sum_keepdim`, and so differentiable again, where `grad` is itself tracked or
/// the kernel cannot serve it.
///
/// # Shapes
/// - `grad`: `(.., m..)`; returns `bias_dims` = `(m..)`.
fn sum_rows(grad: &Tensor, bias_dims: &[usize]) -> Result<Tensor> {
    let m: usize = bias_dims.iter().product();
    let n = grad.elem_count() / m.max(1);
    if cpu::fused_ok(grad) && !grad.track_op() && m > 0 {
        return grad
            .contiguous()?
            .apply_op1_no_bwd(&SumRows { n, m })?
            .reshape(bias_dims);
    }
    grad.reshape((n, m))?.sum_keepdim(0)?.reshape(bias_dims)
}

/// Column sums of an `(n, m)` matrix.
struct SumRows {
    n: usize,
    m: usize,
}

impl cpu::SliceOp<1> for SumRows {
    fn run<T: Float + Scratch + 'static>(&self, [g]: [&[T]; 1]) -> Vec<T> {
        let m = self.m;
        let rows = (SUM_BLOCK_ELEMS / m).max(1);
        let partials: Vec<Vec<T>> = g[..self.n * m]
            .par_chunks(rows * m)
            .map(|block| {
                let mut acc = vec![T::zero(); m];
                for row in block.chunks(m) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                acc
            })
            .collect();
        let mut out = vec![T::zero(); m];
        cpu::add_in_order(&mut out, &partials);
        out
    }
}

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "ponder-sum-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = cpu::run_slices(self, self.name(), [(s, l)])?;
        Ok((out, Shape::from(self.m)))
    }
}

#[cfg(test)]
mod tests {
    use candle::{DType, Device, Var};

    use super::*;
    use crate::testing::assert_close;

    fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
        let mut rng = crate::init::rng_for(seed, "bias-test");
        crate::init::normal(shape, 1.0, &mut rng, dtype, &Device::Cpu).unwrap()
    }

    #[test]
    fn forward_is_broadcast_add_bit_for_bit() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let x = randn(&[3, 70, 33], 1, dtype);
            let b = randn(&[33], 2, dtype);
            assert_close(&add_bias(&x, &b)?, &x.broadcast_add(&b)?, 0.0, 0.0)?;
            // A two-dimensional bias: position embeddings over a batch.
            let p = randn(&[70, 33], 3, dtype);
            assert_close(&add_bias(&x, &p)?, &x.broadcast_add(&p)?, 0.0, 0.0)?;
        }
        Ok(())
    }

    /// Gradients of `Σ w ⊙ (x + b)` in f32 against the f64 primitive-op reference, over enough
    /// rows for several sum blocks.
    #[test]
    fn gradients_match_the_f64_reference() -> Result<()> {
        let (n, m) = (3000, 48);
        let w = randn(&[n, m], 5, DType::F64);
        let grads = |dtype: DType, fused: bool| -> Result<(Tensor, Tensor)> {
            let x = Var::from_tensor(&randn(&[n, m], 6, DType::F64).to_dtype(dtype)?)?;
            let b = Var::from_tensor(&randn(&[m], 7, DType::F64).to_dtype(dtype)?)?;
            let y = if fused {
                add_bias(&x, &b)?
            } else {
                x.broadcast_add(&b)?
            };
            let loss = (y * w.to_dtype(dtype)?)?.sum_all()?;
            let g = loss.backward()?;
            let gx = g.get(x.as_tensor()).expect("x grad").to_dtype(DType::F64)?;
            let gb = g.get(b.as_tensor()).expect("b grad").to_dtype(DType::F64)?;
            Ok((gx, gb))
        };
        let (gx_ref, gb_ref) = grads(DType::F64, false)?;
        // The bias gradient is the column sum of w.
        assert_close(&gb_ref, &w.sum(0)?, 1e-12, 1e-12)?;
        let (gx, gb) = grads(DType::F32, true)?;
        assert_close(&gx, &gx_ref, 1e-6, 1e-6)?;
        assert_close(&gb, &gb_ref, 1e-4, 1e-5)?;
        let (gx, gb) = grads(DType::F64, true)?;
        assert_close(&gx, &gx_ref, 0.0, 0.0)?;
        assert_close(&gb, &gb_ref, 1e-10, 1e-12)
    }

    #[test]
    fn the_bias_sum_does_not_depend_on_the_thread_count() -> Result<()> {
        let g = randn(&[5000, 40], 9, DType::F32);
        let sum = |threads: usize| -> Result<Vec<f32>> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| sum_rows(&g, &[40])?.to_vec1::<f32>())
        };
        let one = sum(1)?;
        assert_eq!(one, sum(2)?);
        assert_eq!(one, sum(3)?);
        Ok(())
    }

    #[test]
    fn a_bias_that_does_not_match_the_trailing_dims_is_an_error() {
        let x = Tensor::zeros((4, 6), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap();
        let e = add_bias(&x, &b).unwrap_err().to_string();
        assert!(e.contains("add_bias") && e.contains("[5]"), "{e}");
    }
}
