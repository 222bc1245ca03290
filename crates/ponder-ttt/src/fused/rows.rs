//! Row kernels of the fused inner loop: the LayerNorm regression `½‖γ ⊙ LN(z) + β − y‖²` of
//! one row (its loss, gradient and readout), the clipping factor, and row-times-matrix products
//! written as `axpy` over rows of `hd` values, so that they vectorize.

use ponder_nn::cpu::{self, Float};

/// The LayerNorm regression of the inner loop: `½‖γ ⊙ LN(z) + β − y‖²` per row.
pub(crate) struct Fit<'a, T> {
    pub gamma: &'a [T],
    pub beta: &'a [T],
    pub eps: T,
}

impl<T: Float> Fit<'_, T> {
    /// `x̂ = (z − mean z) / sqrt(var z + eps)` into `xhat`; returns `1 / sqrt(var z + eps)`.
    #[inline(always)]
    pub(crate) fn normalize(&self, z: &[T], xhat: &mut [T]) -> T {
        let n = T::from(z.len()).expect("a row length fits the float type");
        let mean = cpu::sum(z) / n;
        for (x, &v) in xhat.iter_mut().zip(z) {
            *x = v - mean;
        }
        let rstd = (cpu::dot(xhat, xhat) / n + self.eps).sqrt().recip();
        for x in xhat.iter_mut() {
            *x *= rstd;
        }
        rstd
    }

    /// The mean squared error `mean((γ ⊙ x̂ + β − y)²)` of one row.
    #[inline(always)]
    pub(crate) fn loss(&self, z: &[T], y: &[T], xhat: &mut [T]) -> T {
        self.normalize(z, xhat);
        let mut sq = T::zero();
        for ((&x, &y), (&g, &b)) in xhat.iter().zip(y).zip(self.gamma.iter().zip(self.beta)) {
            let d = g * x + b - y;
            sq += d * d;
        }
        sq / T::from(z.len()).expect("a row length fits the float type")
    }

    /// The gradient of the row's loss with respect to `z`: with `u = γ ⊙ (γ ⊙ x̂ + β − y)`,
    /// `(u − mean u − x̂ · mean(u ⊙ x̂)) · rstd`.
    #[inline(always)]
    pub(crate) fn grad(&self, z: &[T], y: &[T], g: &mut [T], xhat: &mut [T]) {
        let n = T::from(z.len()).expect("a row length fits the float type");
        let rstd = self.normalize(z, xhat);
        for ((g, (&x, &y)), (&ga, &be)) in g
            .iter_mut()
            .zip(xhat.iter().zip(y))
            .zip(self.gamma.iter().zip(self.beta))
        {
            *g = ga * (ga * x + be - y);
        }
        let (mean_u, mean_ux) = (cpu::sum(g) / n, cpu::dot(g, xhat) / n);
        for (g, &x) in g.iter_mut().zip(xhat.iter()) {
            *g = (*g - mean_u - x * mean_ux) * rstd;
        }
    }

    /// Every row's gradient, clipped as one matrix to `max_norm` where given.
    #[inline(always)]
    pub(crate) fn grads(&self, z: &[T], y: &[T], g: &mut [T], xhat: &mut [T], max_norm: Option<T>) {
        let hd = self.gamma.len();
        for ((z, y), g) in z.chunks(hd).zip(y.chunks(hd)).zip(g.chunks_mut(hd)) {
            self.grad(z, y, g, xhat);
        }
        if let Some(max) = max_norm {
            let scale = clip_factor(g, max);
            for v in g.iter_mut() {
                *v *= scale;
            }
        }
    }

    /// A token's output `q + γ ⊙ LN(z) + β`.
    #[inline(always)]
    pub(crate) fn read(&self, q: &[T], z: &[T], out: &mut [T], xhat: &mut [T]) {
        self.normalize(z, xhat);
        for ((o, &q), (&x, (&g, &b))) in out
            .iter_mut()
            .zip(q)
            .zip(xhat.iter().zip(self.gamma.iter().zip(self.beta)))
        {
            *o = q + g * x + b;
        }
    }
}

/// `min(1, max / (‖g‖ + 1e-6))`, the inner loop's clipping factor.
#[inline(always)]
pub(crate) fn clip_factor<T: Float>(g: &[T], max: T) -> T {
    let tiny = T::from(1e-6).expect("1e-6 fits the float type");
    let factor = max / (cpu::dot(g, g).sqrt() + tiny);
    if factor >= T::one() {
        T::one()
    } else if factor > T::zero() {
        factor
    } else {
        T::zero()
    }
}

/// `y += a · x`.
#[inline(always)]
pub(crate) fn axpy<T: Float>(y: &mut [T], a: T, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `out = x W + c` for one row `x`, with `W` `(hd, hd)` row-major.
#[inline(always)]
pub(crate) fn affine<T: Float>(x: &[T], w: &[T], c: &[T], out: &mut [T]) {
    let hd = c.len();
    out.copy_from_slice(c);
    for (a, &xa) in x.iter().enumerate() {
        axpy(out, xa, &w[a * hd..][..hd]);
    }
}

/// [`affine`] for every row of `x` `(r, hd)` into `out` `(r, hd)`.
#[inline(always)]
pub(crate) fn affine_rows<T: Float>(x: &[T], w: &[T], c: &[T], out: &mut [T]) {
    let hd = c.len();
    for (x, out) in x.chunks(hd).zip(out.chunks_mut(hd)) {
        affine(x, w, c, out);
    }
}
