//! One gradient step of many LayerNorm regressions at once, fused on the CPU for inference:
//! `acc + w ⊙ ∇_x ½‖γ ⊙ LN(x) + β − y‖²` for rows `x = base − r`. This is the inner step of
//! TTT's UPDATE_k in its kernel form (`ponder-ttt`), where a group of rows shares `base`, `y`,
//! `γ` and `β` and each row has its own rate `w`; unfused it is some twenty element-wise ops over
//! the largest tensors of the inner loop.
//!
//! The kernel has no backward pass: where any input is tracked by autograd, or the kernel
//! cannot serve the tensors (not on the CPU, not f32 or f64), the reference composition of
//! primitive ops runs instead ([`reference::layer_norm_fit_step`]).

use std::ops::Range;

use candle::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{self, Float};
use crate::reference;

/// `acc + w ⊙ ∇_x ½‖γ ⊙ LN(x) + β − y‖²` with `x = base − r`, row by row: row `(g, s)` reads
/// `base[g]`, `y[g]`, `γ[g]`, `β[g]` and the rate `w[g, s]`. The LayerNorm is over the last
/// dimension with biased variance and `eps`.
///
/// # Shapes
/// - `acc`, `r`: `(g, s, d)`; `base`, `target`, `gamma`, `beta`: `(g, d)`; `rates`: `(g, s)`;
///   returns `(g, s, d)`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_fit_step(
    acc: &Tensor,
    r: &Tensor,
    base: &Tensor,
    target: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    rates: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let (g, s, d) = r.dims3()?;
    let expect = |name: &str, t: &Tensor, dims: &[usize]| -> Result<()> {
        if t.dims() != dims {
            candle::bail!(
                "layer_norm_fit_step: {name} has shape {:?}, expected {dims:?}",
                t.dims()
            );
        }
        Ok(())
    };
    expect("acc", acc, &[g, s, d])?;
    for (name, t) in [
        ("base", base),
        ("target", target),
        ("gamma", gamma),
        ("beta", beta),
    ] {
        expect(name, t, &[g, d])?;
    }
    expect("rates", rates, &[g, s])?;
    let inputs = [acc, r, base, target, gamma, beta, rates];
    let fused = inputs
        .iter()
        .all(|t| cpu::fused_ok(t) && t.dtype() == r.dtype() && !t.track_op());
    if !fused {
        return reference::layer_norm_fit_step(acc, r, base, target, gamma, beta, rates, eps);
    }
    // The per-group values in one buffer: base, target, gamma, beta, then the rates.
    let params = Tensor::cat(&[base, target, gamma, beta, rates], D::Minus1)?; // (g, 4d + s)
    acc.contiguous()?
        .apply_op3_no_bwd(&r.contiguous()?, &params, &FitStep { eps, d, s })
}

/// The kernel's shape: rows of `d` values, `s` rows per group.
struct FitStep {
    eps: f64,
    d: usize,
    s: usize,
}

impl cpu::SliceOp<3> for FitStep {
    fn run<T: Float>(&self, [acc, r, params]: [&[T]; 3]) -> Vec<T> {
        let (d, s) = (self.d, self.s);
        let group = s * d;
        let eps = T::from(self.eps).expect("eps fits the float type");
        let mut out = vec![T::zero(); acc.len()];
        let groups = cpu::rows_per_task(group); // per task
        out.par_chunks_mut(group * groups)
            .zip(acc.par_chunks(group * groups))
            .zip(r.par_chunks(group * groups))
            .zip(params.par_chunks((4 * d + s) * groups))
            .for_each(|(((out, acc), r), params)| {
                cpu::dispatch(Groups {
                    out,
                    acc,
                    r,
                    params,
                    d,
                    s,
                    eps,
                })
            });
        out
    }
}

/// A block of whole groups.
struct Groups<'a, T> {
    out: &'a mut [T],
    acc: &'a [T],
    r: &'a [T],
    params: &'a [T],
    d: usize,
    s: usize,
    eps: T,
}

impl<T: Float> cpu::Kernel for Groups<'_, T> {
    type Out = ();
    /// With `x̂` the normalized row, `u = γ ⊙ (γ ⊙ x̂ + β − y) = a ⊙ x̂ + c` for the group's
    /// `a = γ²` and `c = γ ⊙ (β − y)`, and the gradient is `(u − mean(u) − x̂ · mean(u ⊙ x̂)) / σ`.
    /// Every pass over a row is element-wise or an 8-lane reduction, so that it vectorizes.
    #[inline(always)]
    fn run<const FMA: bool>(self) {
        let (d, s) = (self.d, self.s);
        let n = T::from(d).expect("row length fits the float type");
        let span = |i: usize, len: usize| -> Range<usize> { i * len..(i + 1) * len };
        // Scratch: a, c, x̂ and a ⊙ x̂.
        let mut scratch = vec![T::zero(); 4 * d];
        let (a, rest) = scratch.split_at_mut(d);
        let (c, rest) = rest.split_at_mut(d);
        let (xhat, ax) = rest.split_at_mut(d);
        for g in 0..self.params.len() / (4 * d + s) {
            let p = &self.params[span(g, 4 * d + s)];
            let (base, target) = (&p[..d], &p[d..2 * d]);
            let (gamma, beta, rates) = (&p[2 * d..3 * d], &p[3 * d..4 * d], &p[4 * d..]);
            for (((a, c), (&g, &b)), &y) in a
                .iter_mut()
                .zip(c.iter_mut())
                .zip(gamma.iter().zip(beta))
                .zip(target)
            {
                *a = g * g;
                *c = g * (b - y);
            }
            let sum_c = cpu::sum(c);
            for (row, &w) in rates.iter().enumerate() {
                let at = span(g * s + row, d);
                let (r, acc, out) = (
                    &self.r[at.clone()],
                    &self.acc[at.clone()],
                    &mut self.out[at],
                );
                if w == T::zero() {
                    // A row that does not learn (a causally masked key, padding).
                    out.copy_from_slice(acc);
                    continue;
                }
                for ((x, &b), &r) in xhat.iter_mut().zip(base).zip(r) {
                    *x = b - r;
                }
                let mean = cpu::sum(xhat) / n;
                for x in xhat.iter_mut() {
                    *x -= mean;
                }
                let std = (cpu::dot(xhat, xhat) / n + self.eps).sqrt();
                let rstd = std.recip();
                for ((x, ax), &a) in xhat.iter_mut().zip(ax.iter_mut()).zip(a.iter()) {
                    *x *= rstd;
                    *ax = a * *x;
                }
                let mean_u = (cpu::sum(ax) + sum_c) / n;
                let mean_ux = (cpu::dot(ax, xhat) + cpu::dot(c, xhat)) / n;
                let scale = w * rstd;
                for ((o, &acc), ((&ax, &c), &x)) in out
                    .iter_mut()
                    .zip(acc)
                    .zip(ax.iter().zip(c.iter()).zip(xhat.iter()))
                {
                    *o = acc + scale * (ax + c - mean_u - x * mean_ux);
                }
            }
        }
    }
}

impl CustomOp3 for FitStep {
    fn name(&self) -> &'static str {
        "ponder-layer-norm-fit-step"
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{assert_close, init};
    use candle::{DType, Device, Var};

    fn inputs(dtype: DType) -> Result<Vec<Tensor>> {
        let mut rng = init::rng_for(7, "layer-norm-fit-test");
        let (g, s, d) = (37, 5, 24);
        [
            vec![g, s, d],
            vec![g, s, d],
            vec![g, d],
            vec![g, d],
            vec![g, d],
            vec![g, d],
            vec![g, s],
        ]
        .iter()
        .map(|shape| init::normal(shape.clone(), 1.0, &mut rng, dtype, &Device::Cpu))
        .collect()
    }

    fn step(t: &[Tensor], fused: bool) -> Result<Tensor> {
        let f = if fused {
            layer_norm_fit_step
        } else {
            reference::layer_norm_fit_step
        };
        f(&t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], 1e-5)
    }

    #[test]
    fn the_kernel_equals_the_reference_in_both_dtypes() -> Result<()> {
        for (dtype, tol) in [(DType::F32, 1e-4), (DType::F64, 1e-10)] {
            let t = inputs(dtype)?;
            assert_close(&step(&t, true)?, &step(&t, false)?, tol, tol)?;
        }
        Ok(())
    }

    #[test]
    fn tracked_inputs_take_the_differentiable_path() -> Result<()> {
        let mut t = inputs(DType::F64)?;
        let base = Var::from_tensor(&t[2])?;
        t[2] = base.as_tensor().clone();
        let grads = step(&t, true)?.sum_all()?.backward()?;
        assert!(grads.get(base.as_tensor()).is_some());
        Ok(())
    }

    #[test]
    fn a_wrong_shape_names_the_tensor() -> Result<()> {
        let mut t = inputs(DType::F32)?;
        t[6] = t[6].narrow(1, 0, 4)?;
        let err = step(&t, true).unwrap_err().to_string();
        assert!(
            err.contains("rates has shape [37, 4], expected [37, 5]"),
            "{err}"
        );
        Ok(())
    }
}
