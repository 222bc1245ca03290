//! The TTT inner loop in its dual form: per (sequence, head), mini-batch by mini-batch along
//! time, gradient steps on the reconstruction loss `½‖LN_h(k W + c) − (v − k)‖²` whose effect on
//! every token's output is computed in closed form (upstream-spec §2.5), plus the reconstruction
//! statistics (§2.7).
//!
//! Sequences and heads are batched into one leading dimension `n`; the mini-batch index runs
//! along dimension 1 and is the only sequential loop.

use candle::{DType, Result, Tensor, D};

/// Reconstruction statistics per mini-batch, averaged over sequences and heads
/// (upstream-spec §2.7), each of length `t / mini_batch_size`.
#[derive(Debug, Clone)]
pub struct TttStats {
    /// Loss of the last token of each mini-batch under the chunk's initial fast weights.
    pub init: Tensor,
    /// The same under the weights entering the mini-batch.
    pub step_0: Tensor,
    /// The same under the weights after the mini-batch's update.
    pub step_1: Tensor,
}

/// Inputs of the inner loop, already split into heads and mini-batches.
pub struct InnerInputs<'a> {
    /// Queries `(n, m, b, hd)` (RoPE applied).
    pub q: &'a Tensor,
    /// Keys `(n, m, b, hd)` (RoPE applied).
    pub k: &'a Tensor,
    /// Reconstruction targets `v − k`, `(n, m, b, hd)`.
    pub target: &'a Tensor,
    /// Per-token learning rates `(n, m, b)`: η_j weighs the gradient of key j.
    pub eta: &'a Tensor,
    /// Initial fast weights `(n, hd, hd)`.
    pub w0: &'a Tensor,
    /// Initial fast biases `(n, 1, hd)`.
    pub c0: &'a Tensor,
    /// `ttt_norm` scale `(n, 1, hd)`.
    pub gamma: &'a Tensor,
    /// `ttt_norm` bias `(n, 1, hd)`.
    pub beta: &'a Tensor,
}

/// What the inner loop produces.
pub struct InnerOutputs {
    /// `q + LN_h(q W_i + c_i)` for every token, `(n, m, b, hd)`.
    pub out: Tensor,
    /// The statistics per mini-batch.
    pub stats: TttStats,
    /// Fast weights after the last mini-batch, `(n, hd, hd)`.
    pub w: Tensor,
    /// Fast biases after the last mini-batch, `(n, 1, hd)`.
    pub c: Tensor,
}

/// Runs the dual form. Token `i` of a mini-batch sees the gradients of keys `j <= i + causal_k`
/// (`causal_k` 0 as the original, −1 for the strict ablation); the end-of-mini-batch update
/// sums all keys.
///
/// # Shapes
/// See [`InnerInputs`] and [`InnerOutputs`]; the loop runs along dimension 1 (mini-batches).
pub fn dual_form(inp: &InnerInputs<'_>, causal_k: i64, eps: f64) -> Result<InnerOutputs> {
    let (_, m, mb, _) = inp.q.dims4()?;
    let (gamma, beta) = (inp.gamma, inp.beta);
    let mask = causal_mask(mb, causal_k, inp.q.dtype(), inp.q.device())?; // (b, b)
    let (mut w, mut c) = (inp.w0.clone(), inp.c0.clone());
    let (mut outs, mut init, mut step0, mut step1) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for mi in 0..m {
        let qm = inp.q.narrow(1, mi, 1)?.squeeze(1)?; // (n, b, hd)
        let km = inp.k.narrow(1, mi, 1)?.squeeze(1)?;
        let ym = inp.target.narrow(1, mi, 1)?.squeeze(1)?;
        let em = inp.eta.narrow(1, mi, 1)?.squeeze(1)?; // (n, b)
        let k_last = km.narrow(1, mb - 1, 1)?; // (n, 1, hd)
        let y_last = ym.narrow(1, mb - 1, 1)?;
        let norm = (gamma, beta);
        init.push(last_token_loss(&k_last, &y_last, inp.w0, inp.c0, norm, eps)?.mean_all()?);
        step0.push(last_token_loss(&k_last, &y_last, &w, &c, norm, eps)?.mean_all()?);

        let z = km.matmul(&w)?.broadcast_add(&c)?; // (n, b, hd)
        let (_, g) = ln_and_grad(&z, &ym, gamma, beta, eps)?; // (n, b, hd)
        let eta_cols = em.unsqueeze(1)?; // (n, 1, b): η_j on column j
        let attn = qm.matmul(&km.t()?)?.broadcast_mul(&mask)?; // (n, b, b)
        let weights = attn.broadcast_add(&mask)?.broadcast_mul(&eta_cols)?; // (A + L) ∘ η
        let zbar = (qm.matmul(&w)?.broadcast_add(&c)? - weights.matmul(&g)?)?; // (n, b, hd)
        let (ln_bar, _, _) = ln_parts(&zbar, gamma, beta, eps)?;
        outs.push((&qm + ln_bar)?);

        let eg = g.broadcast_mul(&em.unsqueeze(2)?)?; // (n, b, hd): η_j g_j
        w = (w - km.t()?.matmul(&eg)?)?; // (n, hd, hd)
        c = (c - eg.sum_keepdim(1)?)?; // (n, 1, hd)
        step1.push(last_token_loss(&k_last, &y_last, &w, &c, norm, eps)?.mean_all()?);
    }
    let stats = TttStats {
        init: Tensor::stack(&init, 0)?,
        step_0: Tensor::stack(&step0, 0)?,
        step_1: Tensor::stack(&step1, 0)?,
    };
    Ok(InnerOutputs {
        out: Tensor::stack(&outs, 1)?,
        stats,
        w,
        c,
    })
}

/// Per-head LayerNorm over the last dim: returns `(LN(z), x̂, sqrt(σ² + eps))`.
///
/// # Shapes
/// - `z`: `(n, b, hd)`; `gamma`, `beta`: `(n, 1, hd)`; returns `(n, b, hd)`, `(n, b, hd)`, `(n, b, 1)`.
pub fn ln_parts(
    z: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let mu = z.mean_keepdim(D::Minus1)?; // (n, b, 1)
    let centered = z.broadcast_sub(&mu)?; // (n, b, hd)
    let std = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?; // (n, b, 1)
    let xhat = centered.broadcast_div(&std)?; // (n, b, hd)
    let ln = xhat.broadcast_mul(gamma)?.broadcast_add(beta)?;
    Ok((ln, xhat, std))
}

/// Per-head LayerNorm and the closed-form gradient of `½‖LN(z) − target‖²` with respect to `z`
/// (upstream-spec §2.5): `g = (u − mean(u) − x̂ · mean(u ⊙ x̂)) / s` with `u = γ ⊙ (LN(z) − target)`.
///
/// # Shapes
/// - `z`, `target`: `(n, b, hd)`; `gamma`, `beta`: `(n, 1, hd)`; returns two `(n, b, hd)`.
pub fn ln_and_grad(
    z: &Tensor,
    target: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let (ln, xhat, std) = ln_parts(z, gamma, beta, eps)?;
    let u = (&ln - target)?.broadcast_mul(gamma)?; // (n, b, hd)
    let mean_u = u.mean_keepdim(D::Minus1)?; // (n, b, 1)
    let mean_ux = (&u * &xhat)?.mean_keepdim(D::Minus1)?; // (n, b, 1)
    let g = u
        .broadcast_sub(&mean_u)?
        .sub(&xhat.broadcast_mul(&mean_ux)?)?
        .broadcast_div(&std)?;
    Ok((ln, g))
}

/// Mean squared reconstruction error of the last token of a mini-batch under `(w, c)`.
///
/// # Shapes
/// - `k_last`, `y_last`: `(n, 1, hd)`; `w`: `(n, hd, hd)`; `c`: `(n, 1, hd)`; returns `(n)`.
fn last_token_loss(
    k_last: &Tensor,
    y_last: &Tensor,
    w: &Tensor,
    c: &Tensor,
    norm: (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let z = k_last.matmul(w)?.broadcast_add(c)?; // (n, 1, hd)
    let (ln, _, _) = ln_parts(&z, norm.0, norm.1, eps)?;
    (ln - y_last)?.sqr()?.mean(D::Minus1)?.squeeze(1)
}

/// The in-mini-batch causal mask: 1 where key `j <= i + causal_k`, else 0.
///
/// # Shapes
/// - returns `(b, b)`.
pub fn causal_mask(
    b: usize,
    causal_k: i64,
    dtype: DType,
    device: &candle::Device,
) -> Result<Tensor> {
    let v: Vec<f32> = (0..b as i64)
        .flat_map(|i| (0..b as i64).map(move |j| if j <= i + causal_k { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (b, b), device)?.to_dtype(dtype)
}
