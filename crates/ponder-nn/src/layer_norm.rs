//! LayerNorm over the last dimension (biased variance), fused on the CPU and differentiable.
//!
//! The CPU kernels normalize each row in parallel and compute the backward pass in one more
//! pass, so gradients reach `x`, `gamma` and `beta` (Candle's own fused LayerNorm has no
//! backward and silently cuts them); elsewhere the backward pass is written with primitive ops.

use std::ops::Range;

use candle::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{self, Float};
use crate::reference;

/// LayerNorm of `x` over its last dimension: `(x − μ) / sqrt(σ² + eps) · gamma + beta`.
///
/// # Shapes
/// - `x`: `(..., d)`; `gamma`, `beta`: `(d)`; returns `(..., d)`.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    if gamma.dims() != [d] || beta.dims() != [d] {
        candle::bail!(
            "layer_norm: gamma {:?} and beta {:?} must both have shape [{d}] to match x {:?}",
            gamma.dims(),
            beta.dims(),
            x.dims()
        );
    }
    if cpu::fused_ok(x) && gamma.dtype() == x.dtype() && beta.dtype() == x.dtype() {
        let x = x.contiguous()?;
        x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, LayerNorm { eps })
    } else {
        reference::layer_norm(x, gamma, beta, eps)
    }
}

struct LayerNorm {
    eps: f64,
}

impl cpu::SliceOp<3> for LayerNorm {
    fn run<T: Float>(&self, [x, gamma, beta]: [&[T]; 3]) -> Vec<T> {
        forward(x, gamma, beta, self.eps)
    }
}

/// The mean of a row and `1 / sqrt(σ² + eps)` (biased variance), as the forward and backward
/// kernels both compute them.
#[inline(always)]
fn row_stats<T: Float>(x: &[T], eps: T) -> (T, T) {
    let n = T::from(x.len()).expect("row length fits the float type");
    let mean = cpu::sum(x) / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / n;
    (mean, (var + eps).sqrt().recip())
}

fn forward<T: Float>(x: &[T], gamma: &[T], beta: &[T], eps: f64) -> Vec<T> {
    let d = gamma.len();
    let mut out = vec![T::zero(); x.len()];
    let eps = T::from(eps).expect("eps fits the float type");
    let rows = cpu::rows_per_task(d);
    out.par_chunks_mut(d * rows)
        .zip(x.par_chunks(d * rows))
        .for_each(|(out, x)| {
            for (out, x) in out.chunks_mut(d).zip(x.chunks(d)) {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..d {
                    out[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
                }
            }
        });
    out
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "ponder-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = cpu::run_slices(self, self.name(), [(s1, l1), (s2, l2), (s3, l3)])?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dgamma, dbeta) = layer_norm_backward(x, gamma, grad, self.eps)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The gradients `(dx, dgamma, dbeta)` of LayerNorm for the output gradient `grad`. One fused
/// CPU pass (its per-task sums for `dgamma` and `dbeta` added in task order, so the result
/// does not depend on the thread count); from primitive ops, and so differentiable again,
/// where `grad` is itself tracked or the kernel cannot serve the tensors.
///
/// # Shapes
/// - `x`, `grad`: `(..., d)`; `gamma`: `(d)`; returns `(..., d)`, `(d)`, `(d)`.
fn layer_norm_backward(
    x: &Tensor,
    gamma: &Tensor,
    grad: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let d = x.dim(D::Minus1)?;
    if cpu::fused_grad_ok(x, grad) && gamma.dtype() == x.dtype() && d > 0 {
        // One buffer of `rows + 2` rows: dx, then dgamma, then dbeta.
        let rows = x.elem_count() / d;
        let out = x.contiguous()?.apply_op3_no_bwd(
            &gamma.contiguous()?,
            &grad.contiguous()?,
            &LayerNormGrad { eps },
        )?; // (rows + 2, d)
        let dx = out.narrow(0, 0, rows)?.reshape(x.shape())?;
        return Ok((dx, out.get(rows)?, out.get(rows + 1)?));
    }
    let mean = x.mean_keepdim(D::Minus1)?; // (..., 1)
    let centered = x.broadcast_sub(&mean)?; // (..., d)
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
    let rstd = (var + eps)?.sqrt()?.recip()?; // (..., 1)
    let xhat = centered.broadcast_mul(&rstd)?; // (..., d)
    let g = grad.broadcast_mul(gamma)?; // (..., d)
    let mean_g = g.mean_keepdim(D::Minus1)?; // (..., 1)
    let mean_gx = (&g * &xhat)?.mean_keepdim(D::Minus1)?; // (..., 1)
    let dx = g
        .broadcast_sub(&mean_g)?
        .sub(&xhat.broadcast_mul(&mean_gx)?)?
        .broadcast_mul(&rstd)?;
    let grad2 = grad.reshape(((), d))?; // (rows, d)
    let dgamma = (grad2.clone() * xhat.reshape(((), d))?)?.sum(0)?; // (d)
    let dbeta = grad2.sum(0)?; // (d)
    Ok((dx, dgamma, dbeta))
}

struct LayerNormGrad {
    eps: f64,
}

impl cpu::SliceOp<3> for LayerNormGrad {
    fn run<T: Float>(&self, [x, gamma, grad]: [&[T]; 3]) -> Vec<T> {
        backward(x, gamma, grad, self.eps)
    }
}

/// `dx` rows, then `dgamma` and `dbeta`: `(rows + 2) · d` values.
fn backward<T: Float>(x: &[T], gamma: &[T], grad: &[T], eps: f64) -> Vec<T> {
    let d = gamma.len();
    let n = x.len();
    let mut out = vec![T::zero(); n + 2 * d];
    let (dx, sums) = out.split_at_mut(n);
    let eps = T::from(eps).expect("eps fits the float type");
    let rows = cpu::rows_per_task(d);
    let partials: Vec<Vec<T>> = dx
        .par_chunks_mut(d * rows)
        .zip(x.par_chunks(d * rows).zip(grad.par_chunks(d * rows)))
        .map(|(dx, (x, grad))| {
            let mut partial = vec![T::zero(); 2 * d];
            cpu::dispatch(RowsGrad {
                x,
                gamma,
                grad,
                dx,
                partial: &mut partial,
                eps,
            });
            partial
        })
        .collect();
    cpu::add_in_order(sums, &partials);
    out
}

/// The LayerNorm gradient of a block of rows: `dx` written, `dgamma` and `dbeta` added into
/// `partial[..d]` and `partial[d..]`.
struct RowsGrad<'a, T> {
    x: &'a [T],
    gamma: &'a [T],
    grad: &'a [T],
    dx: &'a mut [T],
    partial: &'a mut [T],
    eps: T,
}

impl<T: Float> cpu::Kernel for RowsGrad<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let d = self.gamma.len();
        let n = T::from(d).expect("row length fits the float type");
        let (dgamma, dbeta) = self.partial.split_at_mut(d);
        let row = |r: usize| -> Range<usize> { r * d..(r + 1) * d };
        for r in 0..self.x.len() / d {
            let (x, grad, dx) = (&self.x[row(r)], &self.grad[row(r)], &mut self.dx[row(r)]);
            let (mean, rstd) = row_stats(x, self.eps);
            // Σ g and Σ g·xhat with g = grad ⊙ gamma, xhat = (x − mean) · rstd.
            let (mut sum_g, mut sum_gx) = (T::zero(), T::zero());
            for i in 0..d {
                let xhat = (x[i] - mean) * rstd;
                let g = grad[i] * self.gamma[i];
                sum_g += g;
                sum_gx += g * xhat;
                dgamma[i] += grad[i] * xhat;
                dbeta[i] += grad[i];
            }
            let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
            for i in 0..d {
                let xhat = (x[i] - mean) * rstd;
                dx[i] = (grad[i] * self.gamma[i] - mean_g - xhat * mean_gx) * rstd;
            }
        }
    }
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "ponder-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = l2.dims()[0];
        let rows = l1.shape().elem_count() / d;
        let out = cpu::run_slices(self, self.name(), [(s1, l1), (s2, l2), (s3, l3)])?;
        Ok((out, Shape::from((rows + 2, d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init;
    use candle::{DType, Device};

    #[test]
    fn the_gradients_do_not_depend_on_the_thread_count() -> Result<()> {
        let mut rng = init::rng_for(5, "layer-norm-test");
        let normal =
            |shape: &[usize], rng: &mut _| init::normal(shape, 1.0, rng, DType::F32, &Device::Cpu);
        let (x, gamma, grad) = (
            normal(&[3000, 16], &mut rng)?,
            normal(&[16], &mut rng)?,
            normal(&[3000, 16], &mut rng)?,
        );
        let bits = || -> Result<Vec<Vec<f32>>> {
            let (dx, dgamma, dbeta) = layer_norm_backward(&x, &gamma, &grad, 1e-5)?;
            Ok(vec![
                dx.flatten_all()?.to_vec1()?,
                dgamma.to_vec1()?,
                dbeta.to_vec1()?,
            ])
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(candle::Error::wrap)?;
        assert_eq!(bits()?, one.install(bits)?);
        Ok(())
    }
}
