//! GPT-2's GELU (tanh approximation), fused on the CPU and differentiable.

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
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
        let name = self.name();
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(forward(cpu::contiguous::<f32>(s, l, name)?)),
            CpuStorage::F64(_) => CpuStorage::F64(forward(cpu::contiguous::<f64>(s, l, name)?)),
            other => candle::bail!("{name}: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // d/dx = 0.5 (1 + t) + 0.5 x (1 − t²) c (1 + 3 a x²), with t = tanh(c (x + a x³)).
        let x2 = x.sqr()?;
        let t = ((x * (x2.affine(COEF, 1.0))?)? * SQRT_2_OVER_PI)?.tanh()?;
        let dinner = (x2.affine(3.0 * COEF, 1.0)? * SQRT_2_OVER_PI)?;
        let left = (t.affine(0.5, 0.5))?;
        let right = ((x * 0.5)? * (t.sqr()?.affine(-1.0, 1.0)? * dinner)?)?;
        Ok(Some(grad.mul(&(left + right)?)?))
    }
}
