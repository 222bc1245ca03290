//! TTT-Linear's inner loop fused on the CPU for inference. Each head's scan over its
//! mini-batches is one task of plain loops over rows of `hd` values, compiled for AVX-512 or
//! AVX2 where the CPU has them, the heads in parallel; the composition of Candle ops in
//! [`crate::inner`] runs some eighty small ops per mini-batch instead, at a few microseconds of
//! overhead each, which at GPT-2 small cost more than the layer's arithmetic.
//!
//! The definition is the composition's: the dual form for UPDATE_1, the kernel form of
//! `docs/design/update-k.md` for UPDATE_k (token `i`'s weights `W − Kᵀ A_i`, `c − 1ᵀ A_i`), the
//! same clipping (including the padded keys in each norm) and the same statistics. Sums run in
//! another order, so values agree to rounding (the tests compare both with a per-token loop).
//! There is no backward pass: where autograd tracks an input, off the CPU, in a dtype other
//! than f32 and f64, or for TTT-MLP, [`crate::inner::inner_loop`] runs the composition.

use candle::{Result, Tensor};
use ponder_nn::cpu::{self, Float};
use rayon::prelude::*;

use super::outputs::{dual_form, kernel_form, Buffers, Rates};
use super::rows::{affine, affine_rows, axpy, Fit};
use super::{gather, slices, DTypes};
use crate::inner::{FastModel, InnerInputs, InnerOptions, InnerOutputs, TttStats};

/// Every input tensor of the inner loop.
fn tensors<'a>(inp: &InnerInputs<'a>) -> Vec<&'a Tensor> {
    let mut all = vec![inp.k, inp.target, inp.eta_update, inp.gamma, inp.beta];
    all.extend(inp.q.iter().copied().chain(inp.eta_out.iter().copied()));
    all.extend(inp.init.w.iter().chain(&inp.init.b));
    all
}

/// Whether the kernel serves these inputs: a linear fast model, every tensor on the CPU in one
/// float dtype (f32 or f64), none tracked by autograd.
pub(crate) fn serves(inp: &InnerInputs<'_>) -> bool {
    inp.init.w.len() == 1 && DTypes::of(&tensors(inp)).is_some()
}

/// The inner loop of a linear fast model, fused; [`serves`] must hold.
///
/// # Shapes
/// See [`InnerInputs`] and [`InnerOutputs`]: `(n, m, b, hd)` inputs, weights `(n, hd, hd)`.
pub(crate) fn inner_loop(inp: &InnerInputs<'_>, opt: &InnerOptions) -> Result<InnerOutputs> {
    let (n, m, b, hd) = inp.k.dims4()?;
    let expect = |name: &str, t: &Tensor, dims: &[usize]| -> Result<()> {
        if t.dims() != dims {
            candle::bail!("ttt: {name} has shape {:?}, expected {dims:?}", t.dims());
        }
        Ok(())
    };
    expect("target", inp.target, &[n, m, b, hd])?;
    expect("eta_update", inp.eta_update, &[n, m, b])?;
    expect("w", &inp.init.w[0], &[n, hd, hd])?;
    for (name, t) in [
        ("c", &inp.init.b[0]),
        ("gamma", inp.gamma),
        ("beta", inp.beta),
    ] {
        expect(name, t, &[n, 1, hd])?;
    }
    if let Some(q) = inp.q {
        expect("q", q, &[n, m, b, hd])?;
    }
    if let Some(eta_out) = inp.eta_out {
        expect("eta_out", eta_out, &[n, m, b, b])?;
    }
    let shape = Scan { m, b, hd, n };
    match DTypes::of(&tensors(inp)) {
        Some(DTypes::F32) => run::<f32>(inp, opt, shape),
        Some(DTypes::F64) => run::<f64>(inp, opt, shape),
        None => candle::bail!("ttt: the fused inner loop runs f32 or f64 on the CPU"),
    }
}

/// The sizes of a scan: `n` heads of `m` mini-batches of `b` tokens of width `hd`.
#[derive(Clone, Copy)]
struct Scan {
    n: usize,
    m: usize,
    b: usize,
    hd: usize,
}

/// What one head's scan produces.
struct HeadOut<T> {
    /// `(m, b, hd)`, empty without queries.
    out: Vec<T>,
    /// `(hd, hd)` and `(hd)`: the fast model after the last mini-batch.
    w: Vec<T>,
    c: Vec<T>,
    /// `(3, m)`: the last-token losses under the initial, entering and updated weights.
    losses: Vec<T>,
}

fn run<T: Float>(inp: &InnerInputs<'_>, opt: &InnerOptions, s: Scan) -> Result<InnerOutputs> {
    let (m, b, hd) = (s.m, s.b, s.hd);
    let (tok, mat) = (m * b * hd, hd * hd);
    let options = Options::new(opt)?;
    let heads = slices::<T, _>(&tensors(inp), |slices| {
        // In the order of `tensors`: k, target, eta_update, gamma, beta, [q], [eta_out], w, c.
        let (k, y, eta_up, gamma, beta) = (slices[0], slices[1], slices[2], slices[3], slices[4]);
        let mut rest = slices[5..].iter().copied();
        let q = inp.q.and_then(|_| rest.next());
        let eta_out = inp.eta_out.and_then(|_| rest.next());
        let (w0, c0) = (
            rest.next().unwrap_or_default(),
            rest.next().unwrap_or_default(),
        );
        (0..s.n)
            .into_par_iter()
            .map(|h| {
                cpu::dispatch(Head {
                    s,
                    opt: &options,
                    k: &k[h * tok..][..tok],
                    y: &y[h * tok..][..tok],
                    q: q.map(|q| &q[h * tok..][..tok]),
                    eta_out: eta_out.map(|e| &e[h * m * b * b..][..m * b * b]),
                    eta_up: &eta_up[h * m * b..][..m * b],
                    gamma: &gamma[h * hd..][..hd],
                    beta: &beta[h * hd..][..hd],
                    w0: &w0[h * mat..][..mat],
                    c0: &c0[h * hd..][..hd],
                })
            })
            .collect::<Vec<HeadOut<T>>>()
    })?;
    let dev = inp.k.device();
    let out = match inp.q {
        Some(_) => Some(gather(&heads, |o| &o.out, (s.n, m, b, hd), dev)?),
        None => None,
    };
    let state = FastModel {
        w: vec![gather(&heads, |o| &o.w, (s.n, hd, hd), dev)?],
        b: vec![gather(&heads, |o| &o.c, (s.n, 1, hd), dev)?],
    };
    let losses = gather(&heads, |o| &o.losses, (s.n, 3, m), dev)?;
    let stat = |i: usize| -> Result<Tensor> {
        let per_head = losses.narrow(1, i, 1)?.squeeze(1)?; // (n, m)
        match opt.per_sequence {
            None => per_head.mean(0), // (m)
            Some(bs) => {
                if bs == 0 || s.n % bs != 0 {
                    candle::bail!("ttt: {bs} sequences do not divide {} sequence-heads", s.n);
                }
                per_head.reshape((bs, s.n / bs, m))?.mean(1)?.t() // (m, bs)
            }
        }
    };
    Ok(InnerOutputs {
        out,
        stats: TttStats {
            init: stat(0)?,
            step_0: stat(1)?,
            step_1: stat(2)?,
            ssl_target_variance: None,
        },
        state,
    })
}

/// [`InnerOptions`] with its constants in the kernel's float type.
pub(super) struct Options<T> {
    pub(super) inner: InnerOptions,
    eps: T,
    pub(super) max_norm: Option<T>,
}

impl<T: Float> Options<T> {
    fn new(opt: &InnerOptions) -> Result<Self> {
        let float = |v: f64| T::from(v).ok_or_else(|| candle::Error::Msg(format!("ttt: {v}")));
        Ok(Self {
            inner: *opt,
            eps: float(opt.eps)?,
            max_norm: opt.max_grad_norm.map(float).transpose()?,
        })
    }
}

/// One head's inputs, `(m, b, hd)` and `(m, b, b)` slices.
struct Head<'a, T> {
    s: Scan,
    opt: &'a Options<T>,
    k: &'a [T],
    y: &'a [T],
    q: Option<&'a [T]>,
    eta_out: Option<&'a [T]>,
    eta_up: &'a [T],
    gamma: &'a [T],
    beta: &'a [T],
    w0: &'a [T],
    c0: &'a [T],
}

impl<T: Float> cpu::Kernel for Head<'_, T> {
    type Out = HeadOut<T>;

    /// Mini-batch by mini-batch: the statistics, the outputs from the weights entering the
    /// mini-batch, then the update carried to the next one.
    #[inline(always)]
    fn run<const FMA: bool>(self) -> HeadOut<T> {
        let Scan { m, b, hd, .. } = self.s;
        let opt = self.opt;
        let fit = Fit {
            gamma: self.gamma,
            beta: self.beta,
            eps: opt.eps,
        };
        let (mut w, mut c) = (self.w0.to_vec(), self.c0.to_vec());
        let mut out = vec![T::zero(); if self.q.is_some() { m * b * hd } else { 0 }];
        let mut losses = vec![T::zero(); 3 * m];
        let mut buf = Buffers::new(b, hd, opt.inner.steps > 1 && self.q.is_some());
        for mi in 0..m {
            let span = mi * b * hd..(mi + 1) * b * hd;
            let (k, y) = (&self.k[span.clone()], &self.y[span.clone()]);
            let last = opt.inner.last_token(mi, m, b);
            let (k_last, y_last) = (&k[last * hd..][..hd], &y[last * hd..][..hd]);
            affine(k_last, self.w0, self.c0, &mut buf.row);
            losses[mi] = fit.loss(&buf.row, y_last, &mut buf.xhat);
            affine_rows(k, &w, &c, &mut buf.z);
            losses[m + mi] = fit.loss(&buf.z[last * hd..][..hd], y_last, &mut buf.xhat);
            fit.grads(&buf.z, y, &mut buf.g, &mut buf.xhat, opt.max_norm);
            if let (Some(q), Some(eta)) = (self.q, self.eta_out) {
                let rates = Rates {
                    eta: &eta[mi * b * b..][..b * b],
                    b,
                    causal_k: opt.inner.causal_k,
                };
                let (q, out) = (&q[span.clone()], &mut out[span]);
                if opt.inner.steps == 1 {
                    dual_form(q, k, &rates, &w, &c, &fit, out, &mut buf);
                } else {
                    kernel_form(q, k, y, &rates, &w, &c, &fit, opt, out, &mut buf);
                }
            }
            let eta_up = &self.eta_up[mi * b..][..b];
            for step in 0..opt.inner.steps {
                if step > 0 {
                    affine_rows(k, &w, &c, &mut buf.z);
                    fit.grads(&buf.z, y, &mut buf.g, &mut buf.xhat, opt.max_norm);
                }
                descend(k, &buf.g, eta_up, &mut w, &mut c);
            }
            affine(k_last, &w, &c, &mut buf.row);
            losses[2 * m + mi] = fit.loss(&buf.row, y_last, &mut buf.xhat);
        }
        HeadOut { out, w, c, losses }
    }
}

/// One full-mini-batch step of the carried state: `W −= Kᵀ (η ⊙ G)`, `c −= Σ_j η_j g_j`.
#[inline(always)]
fn descend<T: Float>(k: &[T], g: &[T], eta: &[T], w: &mut [T], c: &mut [T]) {
    let hd = c.len();
    for (j, &e) in eta.iter().enumerate() {
        if e == T::zero() {
            continue; // padding
        }
        let (kj, gj) = (&k[j * hd..][..hd], &g[j * hd..][..hd]);
        axpy(c, -e, gj);
        for (a, &ka) in kj.iter().enumerate() {
            axpy(&mut w[a * hd..][..hd], -(ka * e), gj);
        }
    }
}
