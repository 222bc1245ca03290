//! One mini-batch's outputs in the fused inner loop, from the weights entering it and their
//! gradients on its keys: the dual form for UPDATE_1 and the kernel form of
//! `docs/design/update-k.md` for UPDATE_k, where token `i`'s weights are `W − Kᵀ A_i`,
//! `c − 1ᵀ A_i` and no per-token copy of the weights is formed.

use ponder_nn::cpu::{self, Float};

use super::rows::{affine, axpy, clip_factor, Fit};
use super::scan::Options;

/// Scratch of one head's scan.
pub(super) struct Buffers<T> {
    /// One row, `hd`.
    pub(super) row: Vec<T>,
    /// The normalized row of a LayerNorm, `hd`.
    pub(super) xhat: Vec<T>,
    /// The keys through the current weights, `(b, hd)`.
    pub(super) z: Vec<T>,
    /// Their gradients, `(b, hd)`.
    pub(super) g: Vec<T>,
    /// The kernel form's `K Kᵀ + 1` `(b, b)`, every token's `A` `(b, b, hd)` and one token's
    /// gradients `(b, hd)`; empty for UPDATE_1.
    pub(super) kern: Vec<T>,
    pub(super) acc: Vec<T>,
    pub(super) token_g: Vec<T>,
}

impl<T: Float> Buffers<T> {
    pub(super) fn new(b: usize, hd: usize, kernel_form: bool) -> Self {
        let zeros = |len: usize| vec![T::zero(); len];
        let k = usize::from(kernel_form);
        Self {
            row: zeros(hd),
            xhat: zeros(hd),
            z: zeros(b * hd),
            g: zeros(b * hd),
            kern: zeros(k * b * b),
            acc: zeros(k * b * b * hd),
            token_g: zeros(k * b * hd),
        }
    }
}

/// The rates of a mini-batch's outputs: token `i` weighs key `j`'s gradient by `eta[i, j]` when
/// `j <= i + causal_k`, else by 0.
pub(super) struct Rates<'a, T> {
    pub(super) eta: &'a [T],
    pub(super) b: usize,
    pub(super) causal_k: i64,
}

impl<T: Float> Rates<'_, T> {
    #[inline(always)]
    fn get(&self, i: usize, j: usize) -> T {
        if j as i64 <= i as i64 + self.causal_k {
            self.eta[i * self.b + j]
        } else {
            T::zero()
        }
    }
}

/// UPDATE_1's outputs: `q_i + LN(q_i W + c − Σ_j (q_i · k_j + 1) η_ij g_j)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn dual_form<T: Float>(
    q: &[T],
    k: &[T],
    rates: &Rates<'_, T>,
    w: &[T],
    c: &[T],
    fit: &Fit<'_, T>,
    out: &mut [T],
    buf: &mut Buffers<T>,
) {
    let hd = c.len();
    let g = &buf.g;
    let terms = |i: usize, j: usize| {
        let e = rates.get(i, j);
        (e != T::zero()).then(|| (e, &g[j * hd..][..hd]))
    };
    read_out(q, k, w, c, fit, out, (&mut buf.row, &mut buf.xhat), terms);
}

/// Every token's output `q_i + LN(q_i W + c − Σ_j (q_i · k_j + 1) · e_ij a_ij)` over the keys
/// `j` for which `terms(i, j)` gives the scale `e_ij` and the row `a_ij` (`None`: key `j` is not
/// seen by token `i`); `scratch` is a row and a LayerNorm's normalized row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn read_out<'a, T: Float + 'a>(
    q: &[T],
    k: &[T],
    w: &[T],
    c: &[T],
    fit: &Fit<'_, T>,
    out: &mut [T],
    (row, xhat): (&mut [T], &mut [T]),
    terms: impl Fn(usize, usize) -> Option<(T, &'a [T])>,
) {
    let hd = c.len();
    let b = q.len() / hd;
    for i in 0..b {
        let qi = &q[i * hd..][..hd];
        affine(qi, w, c, row);
        for j in 0..b {
            if let Some((e, a)) = terms(i, j) {
                let coef = (cpu::dot(qi, &k[j * hd..][..hd]) + T::one()) * e;
                axpy(row, -coef, a);
            }
        }
        fit.read(qi, row, &mut out[i * hd..][..hd], xhat);
    }
}

/// UPDATE_k's outputs for k > 1 in the kernel form: `A_i[j] = η_ij g_j` after the first step
/// (all gradients at the entering weights), then each step adds `η_ij g_j(W − Kᵀ A_i, c − 1ᵀ
/// A_i)`, key `j'` reading `z_j' − Σ_j (k_j' · k_j + 1) A_i[j]`; the readout is
/// `q_i + LN(q_i W + c − Σ_j (q_i · k_j + 1) A_i[j])`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn kernel_form<T: Float>(
    q: &[T],
    k: &[T],
    y: &[T],
    rates: &Rates<'_, T>,
    w: &[T],
    c: &[T],
    fit: &Fit<'_, T>,
    opt: &Options<T>,
    out: &mut [T],
    buf: &mut Buffers<T>,
) {
    let (b, hd) = (rates.b, c.len());
    for j2 in 0..b {
        for j in 0..b {
            buf.kern[j2 * b + j] = cpu::dot(&k[j2 * hd..][..hd], &k[j * hd..][..hd]) + T::one();
        }
    }
    for i in 0..b {
        for j in 0..b {
            let (e, a) = (rates.get(i, j), &mut buf.acc[(i * b + j) * hd..][..hd]);
            for (a, &g) in a.iter_mut().zip(&buf.g[j * hd..][..hd]) {
                *a = e * g;
            }
        }
    }
    for _ in 1..opt.inner.steps {
        for i in 0..b {
            let acc = &buf.acc[i * b * hd..][..b * hd];
            for j2 in 0..b {
                let g = &mut buf.token_g[j2 * hd..][..hd];
                if opt.max_norm.is_none() && rates.get(i, j2) == T::zero() {
                    continue; // a key that token i does not learn from
                }
                buf.row.copy_from_slice(&buf.z[j2 * hd..][..hd]);
                for j in 0..b {
                    if rates.get(i, j) != T::zero() {
                        axpy(&mut buf.row, -buf.kern[j2 * b + j], &acc[j * hd..][..hd]);
                    }
                }
                fit.grad(&buf.row, &y[j2 * hd..][..hd], g, &mut buf.xhat);
            }
            let scale = opt
                .max_norm
                .map_or(T::one(), |max| clip_factor(&buf.token_g, max));
            let acc = &mut buf.acc[i * b * hd..][..b * hd];
            for j2 in 0..b {
                let e = rates.get(i, j2);
                if e != T::zero() {
                    axpy(
                        &mut acc[j2 * hd..][..hd],
                        e * scale,
                        &buf.token_g[j2 * hd..][..hd],
                    );
                }
            }
        }
    }
    let acc = &buf.acc;
    let terms = |i: usize, j: usize| {
        (rates.get(i, j) != T::zero()).then(|| (T::one(), &acc[(i * b + j) * hd..][..hd]))
    };
    read_out(q, k, w, c, fit, out, (&mut buf.row, &mut buf.xhat), terms);
}
