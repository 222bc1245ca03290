//! Softmax over the last dimension, plain and causal (scaled and masked in the same pass),
//! fused on the CPU and differentiable.
//!
//! The causal form is the attention softmax: it computes `softmax(scale · x + mask)` where the
//! mask hides keys after each query, without materializing the mask or the scaled scores.

use candle::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{self, Float};
use crate::reference;

/// Softmax over the last dimension.
///
/// # Shapes
/// - `x`: `(..., n)`; returns `(..., n)`.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if cpu::fused_ok(x) {
        x.contiguous()?.apply_op1(Softmax {
            causal: false,
            scale: 1.0,
        })
    } else {
        reference::softmax_last_dim(x)
    }
}

/// Causal softmax of `scale · x`: query `i` sees keys `j <= i + (t_k − t_q)`; the others get 0.
///
/// # Shapes
/// - `x`: `(..., t_q, t_k)` with `t_k >= t_q`; returns the same shape.
pub fn causal_softmax(x: &Tensor, scale: f64) -> Result<Tensor> {
    let rank = x.rank();
    if rank < 2 {
        candle::bail!(
            "causal_softmax: x must have at least 2 dims, got shape {:?}",
            x.dims()
        );
    }
    let (t_q, t_k) = (x.dims()[rank - 2], x.dims()[rank - 1]);
    if t_k < t_q {
        candle::bail!("causal_softmax: needs t_k >= t_q, got shape {:?}", x.dims());
    }
    if cpu::fused_ok(x) {
        x.contiguous()?.apply_op1(Softmax {
            causal: true,
            scale,
        })
    } else {
        reference::causal_softmax(x, scale)
    }
}

struct Softmax {
    causal: bool,
    scale: f64,
}

impl Softmax {
    fn forward<T: Float>(&self, x: &[T], t_q: usize, t_k: usize) -> Vec<T> {
        let scale = T::from(self.scale).expect("scale fits the float type");
        let mut out = vec![T::zero(); x.len()];
        let rows = cpu::rows_per_task(t_k);
        out.par_chunks_mut(t_k * rows)
            .zip(x.par_chunks(t_k * rows))
            .enumerate()
            .for_each(|(task, (out, x))| {
                for (r, (out, x)) in out.chunks_mut(t_k).zip(x.chunks(t_k)).enumerate() {
                    let row = task * rows + r;
                    let n = if self.causal {
                        (row % t_q) + (t_k - t_q) + 1
                    } else {
                        t_k
                    };
                    cpu::dispatch(RowSoftmax {
                        x: &x[..n],
                        out: &mut out[..n],
                        scale,
                    });
                }
            });
        out
    }
}

impl cpu::SliceOp<1> for (&Softmax, usize, usize) {
    fn run<T: Float>(&self, [x]: [&[T]; 1]) -> Vec<T> {
        self.0.forward(x, self.1, self.2)
    }
}

/// `softmax(scale · x)` of one row's live entries, written into `out`.
struct RowSoftmax<'a, T> {
    x: &'a [T],
    out: &'a mut [T],
    scale: T,
}

impl<T: Float> cpu::Kernel for RowSoftmax<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let max = cpu::max(self.x);
        for (o, &v) in self.out.iter_mut().zip(self.x) {
            *o = ((v - max) * self.scale).exp_fast::<FMA>();
        }
        let inv = cpu::sum(self.out).recip();
        self.out.iter_mut().for_each(|o| *o *= inv);
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        if self.causal {
            "ponder-causal-softmax"
        } else {
            "ponder-softmax"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let dims = l.dims();
        let t_k = dims[dims.len() - 1];
        // Only the causal form reads t_q.
        let t_q = if self.causal {
            dims[dims.len() - 2]
        } else {
            t_k
        };
        let out = cpu::run_slices(&(self, t_q, t_k), name, [(s, l)])?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let scale = if self.causal { self.scale } else { 1.0 };
        Ok(Some(softmax_backward(y, grad, scale)?))
    }
}

/// `scale · y ⊙ (g − Σ_j g_j y_j)` over the last dimension: the gradient that reaches the scores
/// of `y = softmax(scale · x)`; masked entries have `y = 0` and get 0. One fused CPU pass per
/// row; from primitive ops, and so differentiable again, where `grad` is itself tracked or the
/// kernel cannot serve the tensors.
///
/// # Shapes
/// - `y`, `grad`: `(..., n)`; returns `(..., n)`.
fn softmax_backward(y: &Tensor, grad: &Tensor, scale: f64) -> Result<Tensor> {
    if cpu::fused_grad_ok(y, grad) {
        return y
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad { scale });
    }
    let dot = (grad * y)?.sum_keepdim(D::Minus1)?; // (..., 1)
    let dx = (y * grad.broadcast_sub(&dot)?)?;
    if scale == 1.0 {
        Ok(dx)
    } else {
        dx * scale
    }
}

struct SoftmaxGrad {
    scale: f64,
}

impl SoftmaxGrad {
    fn backward<T: Float>(&self, y: &[T], grad: &[T], n: usize) -> Vec<T> {
        let scale = T::from(self.scale).expect("scale fits the float type");
        let mut out = vec![T::zero(); y.len()];
        let rows = cpu::rows_per_task(n);
        out.par_chunks_mut(n * rows)
            .zip(y.par_chunks(n * rows).zip(grad.par_chunks(n * rows)))
            .for_each(|(out, (y, grad))| {
                for ((out, y), grad) in out.chunks_mut(n).zip(y.chunks(n)).zip(grad.chunks(n)) {
                    cpu::dispatch(RowSoftmaxGrad {
                        y,
                        grad,
                        out,
                        scale,
                    });
                }
            });
        out
    }
}

impl cpu::SliceOp<2> for (&SoftmaxGrad, usize) {
    fn run<T: Float>(&self, [y, grad]: [&[T]; 2]) -> Vec<T> {
        self.0.backward(y, grad, self.1)
    }
}

/// The softmax gradient of one row, written into `out`.
struct RowSoftmaxGrad<'a, T> {
    y: &'a [T],
    grad: &'a [T],
    out: &'a mut [T],
    scale: T,
}

impl<T: Float> cpu::Kernel for RowSoftmaxGrad<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let dot = cpu::dot(self.y, self.grad);
        for ((o, &y), &g) in self.out.iter_mut().zip(self.y).zip(self.grad) {
            *o = y * (g - dot) * self.scale;
        }
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "ponder-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let n = l1.dims().last().copied().unwrap_or(1).max(1);
        let out = cpu::run_slices(&(self, n), name, [(s1, l1), (s2, l2)])?;
        Ok((out, l1.shape().clone()))
    }
}
