//! The TTT inner loop: per (sequence, head), mini-batch by mini-batch along time, gradient steps
//! on the reconstruction loss `½‖LN_h(k W + c) − (v − k)‖²`, whose effect on every token's output
//! is computed in closed form (the dual form, upstream-spec §2.5), plus the reconstruction
//! statistics (§2.7).
//!
//! Sequences and heads are batched into one leading dimension `n`; the mini-batch index runs
//! along dimension 1 and is the only sequential loop. UPDATE_k for k > 1 is defined in
//! `docs/design/update-k.md`: token `i` reads the weights after k gradient steps on the keys it
//! may see, and the state carried to the next mini-batch takes k full-mini-batch steps.

use candle::{DType, Result, Tensor, D};

/// Reconstruction statistics per mini-batch, averaged over sequences and heads
/// (upstream-spec §2.7), each of length `ceil(t / mini_batch_size)`. In a ragged last
/// mini-batch they use its last valid token.
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
    /// Queries `(n, m, b, hd)` (RoPE applied); `None` when only the statistics are wanted.
    pub q: Option<&'a Tensor>,
    /// Keys `(n, m, b, hd)` (RoPE applied).
    pub k: &'a Tensor,
    /// Reconstruction targets `v − k`, `(n, m, b, hd)`.
    pub target: &'a Tensor,
    /// Learning rates for the outputs `(n, m, b, b)`: row `i`, column `j` weighs key `j`'s
    /// gradient in token `i`'s weights (before the causal mask); `None` with `q`.
    pub eta_out: Option<&'a Tensor>,
    /// Learning rates of the end-of-mini-batch update `(n, m, b)`, one per key.
    pub eta_update: &'a Tensor,
    /// Fast weights entering the chunk `(n, hd, hd)`.
    pub w0: &'a Tensor,
    /// Fast biases entering the chunk `(n, 1, hd)`.
    pub c0: &'a Tensor,
    /// `ttt_norm` scale `(n, 1, hd)`.
    pub gamma: &'a Tensor,
    /// `ttt_norm` bias `(n, 1, hd)`.
    pub beta: &'a Tensor,
}

/// Options of the inner loop that are not tensors.
#[derive(Debug, Clone, Copy)]
pub struct InnerOptions {
    /// Gradient steps per mini-batch (UPDATE_k), at least 1.
    pub steps: usize,
    /// Token `i` sees keys `j <= i + causal_k`.
    pub causal_k: i64,
    /// LayerNorm epsilon of `ttt_norm`.
    pub eps: f64,
    /// Clip each mini-batch's gradient matrix to this Frobenius norm (per sequence and head).
    pub max_grad_norm: Option<f64>,
    /// Number of valid tokens in the last mini-batch (the rest is padding with η = 0).
    pub last_valid: usize,
}

/// What the inner loop produces.
pub struct InnerOutputs {
    /// `q + LN_h(q W_i + c_i)` for every token, `(n, m, b, hd)`, when queries were given.
    pub out: Option<Tensor>,
    /// The statistics per mini-batch.
    pub stats: TttStats,
    /// Fast weights after the last mini-batch, `(n, hd, hd)`.
    pub w: Tensor,
    /// Fast biases after the last mini-batch, `(n, 1, hd)`.
    pub c: Tensor,
}

/// Runs the inner loop over all mini-batches.
///
/// # Shapes
/// See [`InnerInputs`] and [`InnerOutputs`]; the loop runs along dimension 1 (mini-batches).
pub fn inner_loop(inp: &InnerInputs<'_>, opt: &InnerOptions) -> Result<InnerOutputs> {
    let (_, m, mb, _) = inp.k.dims4()?;
    let readout = match (inp.q, inp.eta_out) {
        (Some(q), Some(eta_out)) => Some((q, eta_out)),
        (None, None) => None,
        _ => candle::bail!("ttt: the inner loop needs both queries and output rates, or neither"),
    };
    if opt.steps == 0 {
        candle::bail!("ttt: the inner loop needs at least one step (k = 0 is the SKIP path)");
    }
    if opt.last_valid == 0 || opt.last_valid > mb {
        candle::bail!("ttt: last_valid {} must be in 1..={mb}", opt.last_valid);
    }
    let norm = (inp.gamma, inp.beta);
    let mask = causal_mask(mb, opt.causal_k, inp.k.dtype(), inp.k.device())?; // (b, b)
    let (mut w, mut c) = (inp.w0.clone(), inp.c0.clone());
    let (mut outs, mut init, mut step0, mut step1) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for mi in 0..m {
        let pick = |t: &Tensor| -> Result<Tensor> { t.narrow(1, mi, 1)?.squeeze(1) };
        let (km, ym) = (pick(inp.k)?, pick(inp.target)?); // (n, b, hd)
        let eta_up = pick(inp.eta_update)?; // (n, b)
        let last = if mi + 1 == m {
            opt.last_valid - 1
        } else {
            mb - 1
        };
        let k_last = km.narrow(1, last, 1)?; // (n, 1, hd)
        let y_last = ym.narrow(1, last, 1)?;
        init.push(last_token_loss(&k_last, &y_last, inp.w0, inp.c0, norm, opt.eps)?.mean_all()?);
        step0.push(last_token_loss(&k_last, &y_last, &w, &c, norm, opt.eps)?.mean_all()?);

        let g = grad(&km, &ym, &w, &c, norm, opt)?; // (n, b, hd), at the weights entering
        if let Some((q, eta_out)) = readout {
            let qm = pick(q)?; // (n, b, hd)
            let weights = pick(eta_out)?.broadcast_mul(&mask)?; // (n, b, b)
            outs.push(if opt.steps == 1 {
                dual_form_step(&qm, &km, &g, &weights, &w, &c, norm, opt.eps)?
            } else {
                multi_step_outputs(&qm, &km, &ym, &weights, &w, &c, norm, opt)?
            });
        }
        for step in 0..opt.steps {
            let g = if step == 0 {
                g.clone()
            } else {
                grad(&km, &ym, &w, &c, norm, opt)?
            };
            let eg = g.broadcast_mul(&eta_up.unsqueeze(2)?)?; // (n, b, hd): η_j g_j
            w = (w - km.t()?.matmul(&eg)?)?; // (n, hd, hd)
            c = (c - eg.sum_keepdim(1)?)?; // (n, 1, hd)
        }
        step1.push(last_token_loss(&k_last, &y_last, &w, &c, norm, opt.eps)?.mean_all()?);
    }
    let stats = TttStats {
        init: Tensor::stack(&init, 0)?,
        step_0: Tensor::stack(&step0, 0)?,
        step_1: Tensor::stack(&step1, 0)?,
    };
    check_finite(&stats)?;
    let out = match readout {
        Some(_) => Some(Tensor::stack(&outs, 1)?),
        None => None,
    };
    Ok(InnerOutputs { out, stats, w, c })
}

/// The gradients `g_j` of every key of a mini-batch at `(w, c)`, clipped if asked.
///
/// # Shapes
/// - `km`, `ym`: `(n, b, hd)`; `w`: `(n, hd, hd)`; `c`: `(n, 1, hd)`; returns `(n, b, hd)`.
fn grad(
    km: &Tensor,
    ym: &Tensor,
    w: &Tensor,
    c: &Tensor,
    norm: (&Tensor, &Tensor),
    opt: &InnerOptions,
) -> Result<Tensor> {
    let z = km.matmul(w)?.broadcast_add(c)?; // (n, b, hd)
    let (_, g) = ln_and_grad(&z, ym, norm.0, norm.1, opt.eps)?;
    clip(g, opt.max_grad_norm)
}

/// `G · min(1, max / (‖G‖_F + 1e-6))` over the last two dims.
fn clip(g: Tensor, max_norm: Option<f64>) -> Result<Tensor> {
    let Some(max) = max_norm else { return Ok(g) };
    let rank = g.rank();
    let norm = g
        .sqr()?
        .sum_keepdim(rank - 1)?
        .sum_keepdim(rank - 2)?
        .sqrt()?; // (..., 1, 1)
    let factor = (norm + 1e-6)?.recip()?.affine(max, 0.0)?.clamp(0.0, 1.0)?;
    g.broadcast_mul(&factor)
}

/// One mini-batch of the dual form: `q_i + LN(q_i W + c − Σ_j w_ij (q_i·k_j + 1) g_j)`, with the
/// gradients `g` taken at `(w, c)`.
///
/// # Shapes
/// - `qm`, `km`, `g`: `(n, b, hd)`; `weights`: `(n, b, b)`; returns `(n, b, hd)`.
#[allow(clippy::too_many_arguments)]
fn dual_form_step(
    qm: &Tensor,
    km: &Tensor,
    g: &Tensor,
    weights: &Tensor,
    w: &Tensor,
    c: &Tensor,
    norm: (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let attn = qm.matmul(&km.t()?)?; // (n, b, b)
    let coef = ((attn + 1.0)? * weights)?; // (n, b, b): w_ij (q_i·k_j + 1)
    let zbar = (qm.matmul(w)?.broadcast_add(c)? - coef.matmul(g)?)?; // (n, b, hd)
    let (ln_bar, _, _) = ln_parts(&zbar, norm.0, norm.1, eps)?;
    qm + ln_bar
}

/// One mini-batch of UPDATE_k with k > 1: every token `i` carries its own weights `W_i`, takes
/// k gradient steps on the keys it sees (each at its own current weights), then reads out.
///
/// # Shapes
/// - `qm`, `km`, `ym`: `(n, b, hd)`; `weights`: `(n, b, b)`; returns `(n, b, hd)`.
#[allow(clippy::too_many_arguments)]
fn multi_step_outputs(
    qm: &Tensor,
    km: &Tensor,
    ym: &Tensor,
    weights: &Tensor,
    w: &Tensor,
    c: &Tensor,
    norm: (&Tensor, &Tensor),
    opt: &InnerOptions,
) -> Result<Tensor> {
    let (n, b, hd) = qm.dims3()?;
    let mut wi = w.unsqueeze(1)?.broadcast_as((n, b, hd, hd))?.contiguous()?; // (n, b, hd, hd)
    let mut ci = c.unsqueeze(1)?.broadcast_as((n, b, 1, hd))?.contiguous()?; // (n, b, 1, hd)
    let keys = km.unsqueeze(1)?.broadcast_as((n, b, b, hd))?.contiguous()?; // (n, i, j, hd)
    let targets = ym.unsqueeze(1)?.broadcast_as((n, b, b, hd))?.contiguous()?;
    let gamma = norm.0.unsqueeze(1)?; // (n, 1, 1, hd)
    let beta = norm.1.unsqueeze(1)?;
    let wij = weights.unsqueeze(3)?; // (n, i, j, 1)
    for _ in 0..opt.steps {
        let z = keys.matmul(&wi)?.broadcast_add(&ci)?; // (n, i, j, hd): k_j W_i + c_i
        let (_, g) = ln_and_grad(&z, &targets, &gamma, &beta, opt.eps)?; // (n, i, j, hd)
        let g = clip(g, opt.max_grad_norm)?;
        let eg = g.broadcast_mul(&wij)?; // (n, i, j, hd)
        wi = (wi - keys.transpose(2, 3)?.matmul(&eg)?)?; // (n, i, hd, hd)
        ci = (ci - eg.sum_keepdim(2)?)?; // (n, i, 1, hd)
    }
    // q_i W_i as a broadcast product: a batched (1 × hd) matmul trips Candle's stride checks
    // in the backward pass.
    let z = (qm.unsqueeze(3)?.broadcast_mul(&wi)?.sum(2)? + ci.squeeze(2)?)?; // (n, b, hd)
    let (ln, _, _) = ln_parts(&z, norm.0, norm.1, opt.eps)?;
    qm + ln
}

/// Non-finite statistics are errors naming the statistic and the mini-batch.
fn check_finite(stats: &TttStats) -> Result<()> {
    for (name, t) in [
        ("ttt_loss_init", &stats.init),
        ("ttt_loss_step_0", &stats.step_0),
        ("ttt_loss_step_1", &stats.step_1),
    ] {
        let v = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            candle::bail!("ttt: {name} is {} at mini-batch {i} (the inner loop diverged; lower ttt_base_lr or set max_grad_norm)", v[i]);
        }
    }
    Ok(())
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
