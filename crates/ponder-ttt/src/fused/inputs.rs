//! The inner loop's inputs from the layer's projections, fused on the CPU for inference: per
//! sequence and head one pass over time computes the depthwise convolutions of the keys and
//! queries, RoPE, the targets `v − k` and the statistics of the pre-RoPE targets, where the
//! composition in [`crate::layer`] runs some thirty ops over the whole chunk's tensors.

use candle::{Result, Tensor};
use ponder_nn::cpu::{self, Float};
use rayon::prelude::*;

use super::{gather, slices, DTypes};

/// The depthwise convolution of a projection: taps `(w, F)`, bias `(F)` and how far back the
/// window starts (`w` for the shifted window, `w − 1` for the causal one).
pub(crate) struct Conv<'a> {
    pub taps: &'a Tensor,
    pub bias: &'a Tensor,
    pub reach: usize,
}

/// What [`inputs`] reads besides the projections.
pub(crate) struct InputSpec<'a> {
    /// Heads and head width.
    pub nh: usize,
    pub hd: usize,
    /// Tokens per mini-batch (RoPE positions count within mini-batches).
    pub mb: usize,
    /// Valid tokens of the chunk; the rest of the `T` rows is padding.
    pub t: usize,
    pub rope_theta: f64,
    pub conv_k: Conv<'a>,
    /// `None` when only the statistics are wanted.
    pub conv_q: Option<Conv<'a>>,
}

/// The inner loop's inputs: queries, keys and targets `(n, m, b, hd)` (RoPE applied) and, per
/// mini-batch, the mean squared distance of its last valid pre-RoPE target from the chunk's
/// mean target, `(m)`.
pub(crate) struct Inputs {
    pub q: Option<Tensor>,
    pub k: Tensor,
    pub target: Tensor,
    pub target_variance: Tensor,
}

/// Whether [`inputs`] serves these tensors (the projections and the convolutions' weights).
pub(crate) fn serves(tensors: &[&Tensor]) -> bool {
    DTypes::of(tensors).is_some()
}

/// Keys and queries from `u = x W_q` through their convolutions, values `xv = x W_v`, the heads
/// split, RoPE with angle `(pos mod b) · θ^(−2p/hd)` on interleaved pairs, targets `v − k`;
/// [`serves`] must hold.
///
/// # Shapes
/// - `u`, `xv`: `(bs, T, F)` with `T` a multiple of `mb`; returns `(bs · nh, T / mb, mb, hd)`
///   tensors and `(ceil(t / mb))` statistics.
pub(crate) fn inputs(u: &Tensor, xv: &Tensor, spec: &InputSpec<'_>) -> Result<Inputs> {
    match DTypes::of(&[u, xv]) {
        Some(DTypes::F32) => run::<f32>(u, xv, spec),
        Some(DTypes::F64) => run::<f64>(u, xv, spec),
        None => candle::bail!("ttt: the fused inputs run f32 or f64 on the CPU"),
    }
}

fn run<T: Float>(u: &Tensor, xv: &Tensor, spec: &InputSpec<'_>) -> Result<Inputs> {
    let (bs, t_pad, f) = u.dims3()?;
    let (nh, hd, mb) = (spec.nh, spec.hd, spec.mb);
    if f != nh * hd || t_pad % mb != 0 || xv.dims() != u.dims() {
        candle::bail!(
            "ttt: fused inputs need (bs, T, {}) projections with T a multiple of {mb}, got {:?} and {:?}",
            nh * hd,
            u.dims(),
            xv.dims()
        );
    }
    let m = t_pad / mb;
    let to_t = |table: Vec<f64>| -> Vec<T> {
        table
            .into_iter()
            .map(|v| T::from(v).expect("a cosine or sine fits the float type"))
            .collect()
    };
    let (cos, sin) = crate::prepare::rope_table(mb, hd, spec.rope_theta);
    let (cos, sin) = (to_t(cos), to_t(sin));
    let mut tensors = vec![u, xv, spec.conv_k.taps, spec.conv_k.bias];
    if let Some(conv) = &spec.conv_q {
        tensors.extend([conv.taps, conv.bias]);
    }
    let per_head = slices::<T, _>(&tensors, |s| {
        (0..bs * nh)
            .into_par_iter()
            .map(|sh| {
                let (seq, h) = (sh / nh, sh % nh);
                let conv = |i: usize, reach: usize| HeadConv {
                    taps: s[i],
                    bias: &s[i + 1][h * hd..][..hd],
                    reach,
                };
                cpu::dispatch(Head {
                    u: &s[0][seq * t_pad * f..][..t_pad * f],
                    v: &s[1][seq * t_pad * f..][..t_pad * f],
                    col: h * hd,
                    f,
                    hd,
                    mb,
                    t: spec.t,
                    conv_k: conv(2, spec.conv_k.reach),
                    conv_q: spec.conv_q.as_ref().map(|c| conv(4, c.reach)),
                    cos: &cos,
                    sin: &sin,
                })
            })
            .collect::<Vec<HeadInputs<T>>>()
    })?;
    let dev = u.device();
    let shape = (bs * nh, m, mb, hd);
    let q = match spec.conv_q {
        Some(_) => Some(gather(&per_head, |o| &o.q, shape, dev)?),
        None => None,
    };
    let count = T::from(bs * nh * hd).expect("a count fits the float type");
    let variance: Vec<T> = (0..spec.t.div_ceil(mb))
        .map(|mi| {
            per_head
                .iter()
                .map(|o| o.sq[mi])
                .fold(T::zero(), |a, b| a + b)
                / count
        })
        .collect();
    let n_var = variance.len();
    Ok(Inputs {
        q,
        k: gather(&per_head, |o| &o.k, shape, dev)?,
        target: gather(&per_head, |o| &o.target, shape, dev)?,
        target_variance: Tensor::from_vec(variance, n_var, dev)?,
    })
}

/// One head's convolution: every tap's row `(F)`, the head's bias `(hd)`.
struct HeadConv<'a, T> {
    taps: &'a [T],
    bias: &'a [T],
    reach: usize,
}

impl<T: Float> HeadConv<'_, T> {
    /// `out = bias + Σ_j taps[j] ⊙ x[t − reach + j]` over the head's columns, skipping rows
    /// before the chunk (zero history).
    #[inline(always)]
    fn at(&self, x: &[T], t: usize, col: usize, f: usize, out: &mut [T]) {
        let hd = out.len();
        out.copy_from_slice(self.bias);
        for j in 0..self.taps.len() / f {
            let Some(row) = (t + j).checked_sub(self.reach) else {
                continue;
            };
            let (tap, x) = (&self.taps[j * f + col..][..hd], &x[row * f + col..][..hd]);
            for ((o, &w), &x) in out.iter_mut().zip(tap).zip(x) {
                *o += x * w;
            }
        }
    }
}

/// One sequence's projections, seen from one head.
struct Head<'a, T> {
    u: &'a [T],
    v: &'a [T],
    col: usize,
    f: usize,
    hd: usize,
    mb: usize,
    t: usize,
    conv_k: HeadConv<'a, T>,
    conv_q: Option<HeadConv<'a, T>>,
    cos: &'a [T],
    sin: &'a [T],
}

/// One head's share of [`Inputs`]: `(T, hd)` blocks and, per mini-batch, the summed squared
/// distance of its last valid pre-RoPE target from the mean target.
struct HeadInputs<T> {
    q: Vec<T>,
    k: Vec<T>,
    target: Vec<T>,
    sq: Vec<T>,
}

impl<T: Float> Head<'_, T> {
    /// RoPE on interleaved pairs at position `pos` within its mini-batch.
    #[inline(always)]
    fn rope(&self, x: &mut [T], pos: usize) {
        let half = self.hd / 2;
        let (cos, sin) = (
            &self.cos[pos * half..][..half],
            &self.sin[pos * half..][..half],
        );
        for ((pair, &c), &s) in x.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (x0, x1) = (pair[0], pair[1]);
            pair[0] = x0 * c - x1 * s;
            pair[1] = x0 * s + x1 * c;
        }
    }
}

impl<T: Float> cpu::Kernel for Head<'_, T> {
    type Out = HeadInputs<T>;

    #[inline(always)]
    fn run<const FMA: bool>(self) -> HeadInputs<T> {
        let (hd, f, col) = (self.hd, self.f, self.col);
        let t_pad = self.u.len() / f;
        let mut out = HeadInputs {
            q: vec![T::zero(); if self.conv_q.is_some() { t_pad * hd } else { 0 }],
            k: vec![T::zero(); t_pad * hd],
            target: vec![T::zero(); t_pad * hd],
            sq: Vec::new(),
        };
        let m = self.t.div_ceil(self.mb);
        let (mut sum, mut last) = (vec![T::zero(); hd], vec![T::zero(); m * hd]);
        for t in 0..t_pad {
            let row = t * hd..(t + 1) * hd;
            let k = &mut out.k[row.clone()];
            self.conv_k.at(self.u, t, col, f, k);
            let v = &self.v[t * f + col..][..hd];
            if t < self.t {
                // The pre-RoPE target, for the statistics.
                let pre = &mut last[(t / self.mb) * hd..][..hd];
                for ((p, &v), &k) in pre.iter_mut().zip(v).zip(k.iter()) {
                    *p = v - k;
                }
                for (s, &p) in sum.iter_mut().zip(pre.iter()) {
                    *s += p;
                }
            }
            self.rope(k, t % self.mb);
            for ((y, &v), &k) in out.target[row.clone()].iter_mut().zip(v).zip(k.iter()) {
                *y = v - k;
            }
            if let Some(conv) = &self.conv_q {
                let q = &mut out.q[row];
                conv.at(self.u, t, col, f, q);
                self.rope(q, t % self.mb);
            }
        }
        let n = T::from(self.t).expect("a token count fits the float type");
        out.sq = last
            .chunks(hd)
            .map(|pre| {
                pre.iter()
                    .zip(&sum)
                    .map(|(&p, &s)| (p - s / n) * (p - s / n))
                    .fold(T::zero(), |a, b| a + b)
            })
            .collect();
        out
    }
}
