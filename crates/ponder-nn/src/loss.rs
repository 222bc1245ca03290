//! Per-token cross-entropy from logits, fused on the CPU and differentiable in the logits.
//!
//! The kernel computes each row's log-sum-exp once and never materializes log-probabilities,
//! which matters at vocabulary 50,257: a 512-token chunk has 25.7 M logits.

use candle::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{self, Float};
use crate::reference;

/// Negative log-likelihood of each target: `logsumexp(logits[i]) − logits[i, targets[i]]`.
///
/// Returns one value per row, so callers choose the reduction (mean over valid tokens, per
/// sequence, …). A target outside `0..v` is an error.
///
/// # Shapes
/// - `logits`: `(n, v)`; `targets`: `(n)` of dtype u32; returns `(n)` in the dtype of `logits`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if targets.dims() != [n] || targets.dtype() != DType::U32 {
        candle::bail!(
            "cross_entropy: targets must be u32 of shape [{n}], got {:?} {:?}",
            targets.dtype(),
            targets.dims()
        );
    }
    let targets_vec = targets.to_vec1::<u32>()?;
    if let Some(bad) = targets_vec.iter().find(|&&t| t as usize >= v) {
        candle::bail!("cross_entropy: target {bad} is outside the vocabulary of {v} logits");
    }
    if cpu::fused_ok(logits) {
        logits.contiguous()?.apply_op1(CrossEntropy {
            targets: targets_vec,
        })
    } else {
        reference::cross_entropy(logits, targets)
    }
}

struct CrossEntropy {
    targets: Vec<u32>,
}

/// A row's max and `Σ exp(z − max)`. The exponentials go through a small buffer, one block at
/// a time, so that the compiler vectorizes the `exp` loop on its own and then the sum.
#[inline(always)]
pub(crate) fn max_sum_exp<T: Float, const FMA: bool>(row: &[T]) -> (T, T) {
    const BLOCK: usize = 64;
    let max = cpu::max(row);
    let mut buf = [T::zero(); BLOCK];
    let mut sum = T::zero();
    for block in row.chunks(BLOCK) {
        let buf = &mut buf[..block.len()];
        for (b, &v) in buf.iter_mut().zip(block) {
            *b = (v - max).exp_fast::<FMA>();
        }
        sum += cpu::sum(buf);
    }
    (max, sum)
}

/// `log Σ exp(row)`, computed stably.
#[inline(always)]
fn logsumexp<T: Float, const FMA: bool>(row: &[T]) -> T {
    let (max, sum) = max_sum_exp::<T, FMA>(row);
    max + sum.ln()
}

/// One row's loss, `logsumexp(row) − row[target]`.
struct RowLoss<'a, T> {
    row: &'a [T],
    target: usize,
}

impl<T: Float> cpu::Kernel for RowLoss<'_, T> {
    type Out = T;
    #[inline(always)]
    fn run<const FMA: bool>(self) -> T {
        logsumexp::<T, FMA>(self.row) - self.row[self.target]
    }
}

/// One row's gradient, `(softmax(row) − onehot(target)) · g`, written into `out`.
struct RowGrad<'a, T> {
    row: &'a [T],
    out: &'a mut [T],
    target: usize,
    g: T,
}

impl<T: Float> cpu::Kernel for RowGrad<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let lse = logsumexp::<T, FMA>(self.row);
        for (o, &x) in self.out.iter_mut().zip(self.row) {
            *o = (x - lse).exp_fast::<FMA>() * self.g;
        }
        self.out[self.target] -= self.g;
    }
}

impl CrossEntropy {
    fn forward<T: Float>(&self, logits: &[T], v: usize) -> Vec<T> {
        logits
            .par_chunks(v)
            .zip(self.targets.par_iter())
            .map(|(row, &t)| {
                cpu::dispatch(RowLoss {
                    row,
                    target: t as usize,
                })
            })
            .collect()
    }

    /// `(softmax(row) − onehot(t)) · g` for every row.
    fn backward<T: Float>(&self, logits: &[T], grad: &[T], v: usize) -> Vec<T> {
        let mut out = vec![T::zero(); logits.len()];
        out.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .zip(self.targets.par_iter().zip(grad.par_iter()))
            .for_each(|((out, row), (&t, &g))| {
                cpu::dispatch(RowGrad {
                    row,
                    out,
                    target: t as usize,
                    g,
                })
            });
        out
    }
}

impl cpu::SliceOp<1> for (&CrossEntropy, usize) {
    fn run<T: Float>(&self, [logits]: [&[T]; 1]) -> Vec<T> {
        self.0.forward(logits, self.1)
    }
}

impl cpu::SliceOp<2> for (&CrossEntropy, usize) {
    fn run<T: Float>(&self, [logits, grad]: [&[T]; 2]) -> Vec<T> {
        self.0.backward(logits, grad, self.1)
    }
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "ponder-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, v) = l.shape().dims2()?;
        let out = cpu::run_slices(&(self, v), self.name(), [(s, l)])?;
        Ok((out, Shape::from(n)))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // Read in place by a second custom op (no copy of the logits), not differentiable again.
        let dx = logits
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &CrossEntropyGrad(self))?;
        Ok(Some(dx))
    }
}

/// The gradient of [`CrossEntropy`] for its output gradient: `(logits, grad) → dlogits`.
struct CrossEntropyGrad<'a>(&'a CrossEntropy);

impl CustomOp2 for CrossEntropyGrad<'_> {
    fn name(&self) -> &'static str {
        "ponder-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, v) = l1.shape().dims2()?;
        let out = cpu::run_slices(&(self.0, v), self.name(), [(s1, l1), (s2, l2)])?;
        Ok((out, l1.shape().clone()))
    }
}

/// `t` as f64 on a device that has f64: where it is (CPU, CUDA), or copied to the CPU from Metal,
/// which has no f64. For host-side statistics (norms, means) that must not lose precision.
pub fn to_f64(t: &Tensor) -> Result<Tensor> {
    if t.device().is_metal() {
        t.to_device(&candle::Device::Cpu)?.to_dtype(DType::F64)
    } else {
        t.to_dtype(DType::F64)
    }
}
