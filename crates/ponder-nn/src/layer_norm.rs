//! LayerNorm over the last dimension (biased variance), fused on the CPU and differentiable.
//!
//! The CPU kernel normalizes each row in parallel; the backward pass is written with primitive
//! tensor ops, so gradients reach `x`, `gamma` and `beta` (Candle's own fused LayerNorm has no
//! backward and silently cuts them).

use candle::backend::BackendStorage;
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

fn forward<T: Float>(x: &[T], gamma: &[T], beta: &[T], eps: f64) -> Vec<T> {
    let d = gamma.len();
    let mut out = vec![T::zero(); x.len()];
    let eps = T::from(eps).expect("eps fits the float type");
    let rows = cpu::rows_per_task(d);
    out.par_chunks_mut(d * rows)
        .zip(x.par_chunks(d * rows))
        .for_each(|(out, x)| {
            for (out, x) in out.chunks_mut(d).zip(x.chunks(d)) {
                let n = T::from(d).expect("row length fits the float type");
                let mean = cpu::sum(x) / n;
                let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / n;
                let rstd = (var + eps).sqrt().recip();
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
        let name = self.name();
        let out = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(forward(
                cpu::contiguous::<f32>(s1, l1, name)?,
                cpu::contiguous::<f32>(s2, l2, name)?,
                cpu::contiguous::<f32>(s3, l3, name)?,
                self.eps,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(forward(
                cpu::contiguous::<f64>(s1, l1, name)?,
                cpu::contiguous::<f64>(s2, l2, name)?,
                cpu::contiguous::<f64>(s3, l3, name)?,
                self.eps,
            )),
            other => candle::bail!("{name}: unsupported dtype {:?}", other.dtype()),
        };
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
        let d = x.dim(D::Minus1)?;
        let mean = x.mean_keepdim(D::Minus1)?; // (..., 1)
        let centered = x.broadcast_sub(&mean)?; // (..., d)
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
        let rstd = (var + self.eps)?.sqrt()?.recip()?; // (..., 1)
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
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}
