//! GPT-2's GELU (tanh approximation), fused on the CPU and differentiable.

use candle::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{self, Float};
use crate::reference;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const COEF: f64 = 0.044_715;

/// `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`, the `gelu_new` of Hugging Face transformers.
///
/// # Shapes
/// - `x`: any shape; returns the same shape.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if cpu::fused_ok(x) {
        x.contiguous()?.apply_op1(GeluTanh)
    } else {
        reference::gelu_tanh(x)
    }
}

struct GeluTanh;

impl cpu::SliceOp<1> for GeluTanh {
    fn run<T: Float>(&self, [x]: [&[T]; 1]) -> Vec<T> {
        forward(x)
    }
}

fn forward<T: Float>(x: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(8192)
        .zip(x.par_chunks(8192))
        .for_each(|(out, x)| cpu::dispatch(Block { x, out }));
    out
}

/// GELU of one block of elements, written into `out`.
struct Block<'a, T> {
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: Float> cpu::Kernel for Block<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let two = T::from(2.0).expect("2");
        let c = T::from(SQRT_2_OVER_PI).expect("constant");
        let a = T::from(COEF).expect("constant");
        for (o, &v) in self.out.iter_mut().zip(self.x) {
            // 0.5 (1 + tanh z) = 1 / (1 + e^(−2z)).
            let z2 = two * c * (v + a * v * v * v);
            *o = v / (T::one() + (-z2).exp_fast::<FMA>());
        }
    }
}

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "ponder-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = cpu::run_slices(self, self.name(), [(s, l)])?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(gelu_tanh_backward(x, grad)?))
    }
}

/// `grad ⊙ gelu_tanh'(x)`, the gradient that reaches `x`. Fused on the CPU (one pass, the
/// vectorized `exp`, no temporaries); from primitive ops, and so differentiable again, where
/// `grad` is itself tracked (double backward with `CANDLE_GRAD_DO_NOT_DETACH`) or the kernel
/// cannot serve the tensors.
///
/// # Shapes
/// - `x`, `grad`: the same shape; returns that shape.
pub(crate) fn gelu_tanh_backward(x: &Tensor, grad: &Tensor) -> Result<Tensor> {
    if cpu::fused_grad_ok(x, grad) {
        return x
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &GeluTanhGrad);
    }
    // d/dx = 0.5 (1 + t) + 0.5 x (1 − t²) c (1 + 3 a x²), with t = tanh(c (x + a x³)).
    let x2 = x.sqr()?;
    let t = ((x * (x2.affine(COEF, 1.0))?)? * SQRT_2_OVER_PI)?.tanh()?;
    let dinner = (x2.affine(3.0 * COEF, 1.0)? * SQRT_2_OVER_PI)?;
    let left = (t.affine(0.5, 0.5))?;
    let right = ((x * 0.5)? * (t.sqr()?.affine(-1.0, 1.0)? * dinner)?)?;
    grad.mul(&(left + right)?)
}

struct GeluTanhGrad;

impl cpu::SliceOp<2> for GeluTanhGrad {
    fn run<T: Float>(&self, [x, grad]: [&[T]; 2]) -> Vec<T> {
        backward(x, grad)
    }
}

fn backward<T: Float>(x: &[T], grad: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(8192)
        .zip(x.par_chunks(8192).zip(grad.par_chunks(8192)))
        .for_each(|(out, (x, grad))| cpu::dispatch(GradBlock { x, grad, out }));
    out
}

/// The GELU gradient of one block of elements, written into `out`.
struct GradBlock<'a, T> {
    x: &'a [T],
    grad: &'a [T],
    out: &'a mut [T],
}

impl<T: Float> cpu::Kernel for GradBlock<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let two = T::from(2.0).expect("2");
        let three = T::from(3.0).expect("3");
        let c = T::from(SQRT_2_OVER_PI).expect("constant");
        let a = T::from(COEF).expect("constant");
        for ((o, &v), &g) in self.out.iter_mut().zip(self.x).zip(self.grad) {
            // With s = σ(2z) = 0.5 (1 + tanh z): gelu = x s, and
            // gelu' = s + 2 x s (1 − s) c (1 + 3 a x²), where s (1 − s) = e s² for e = e^(−2z)
            // (no cancellation as s → 1; taken as 0 where e overflows and s is 0).
            let v2 = v * v;
            let e = (-(two * c * (v + a * v2 * v))).exp_fast::<FMA>();
            let s = T::one() / (T::one() + e);
            let ds = if s > T::zero() { e * s * s } else { T::zero() };
            *o = g * (s + two * v * ds * c * (T::one() + three * a * v2));
        }
    }
}

impl CustomOp2 for GeluTanhGrad {
    fn name(&self) -> &'static str {
        "ponder-gelu-tanh-grad"
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Var};

    #[test]
    fn a_tracked_gradient_takes_the_differentiable_path() -> Result<()> {
        let x = Tensor::new(&[-2.0f64, -0.5, 0.3, 1.7], &Device::Cpu)?;
        let v = Var::new(&[1.0f64, 2.0, -1.0, 0.5], &Device::Cpu)?;
        let grad = (v.as_tensor() * 3.0)?; // tracked, as in a double backward
        let dx = gelu_tanh_backward(&x, &grad)?;
        assert!(dx.track_op(), "the primitive-op path keeps the graph");
        let grads = dx.sum_all()?.backward()?;
        let dv = grads.get(v.as_tensor()).expect("a gradient reaches v");
        // d/dv Σ 3 v ⊙ gelu'(x) = 3 gelu'(x), with gelu'(x) from the fused kernel.
        let unit = gelu_tanh_backward(&x, &Tensor::ones_like(&x)?)?;
        assert!(!unit.track_op());
        crate::assert_close(dv, &(unit * 3.0)?, 1e-12, 1e-12)
    }
}
