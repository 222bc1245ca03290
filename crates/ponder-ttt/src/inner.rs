//! The TTT inner loop: per (sequence, head), mini-batch by mini-batch along time, gradient steps
//! on the reconstruction loss `½‖LN_h(f(k)) − (v − k)‖²` of a small fast model `f`, whose effect
//! on every token's output is computed in closed form (the dual form, `docs/original.md` §3.7),
//! plus the reconstruction statistics (`docs/original.md` §3.9).
//!
//! The fast model is a list of layers `(W_l, b_l)`: one for TTT-Linear (`f(x) = x W + b`), two
//! for TTT-MLP (`f(x) = gelu(x W₁ + b₁) W₂ + b₂`, `docs/original.md` §4.1). Sequences and heads
//! are batched into one leading dimension `n`; the mini-batch index runs along dimension 1 and is
//! the only sequential loop. UPDATE_k for k > 1 is defined in `docs/design/update-k.md`: token
//! `i` reads the weights after k gradient steps on the keys it may see, and the state carried to
//! the next mini-batch takes k full-mini-batch steps.

use candle::{DType, Result, Tensor, D};

/// Reconstruction statistics per mini-batch, averaged over sequences and heads
/// (`docs/original.md` §3.9), each of length `ceil(t / mini_batch_size)`, or `(ceil(t /
/// mini_batch_size), bs)` with one column per sequence where asked for
/// ([`InnerOptions::per_sequence`]). In a ragged last mini-batch they use its last valid token.
#[derive(Debug, Clone)]
pub struct TttStats {
    /// Loss of the last token of each mini-batch under the chunk's initial fast weights.
    pub init: Tensor,
    /// The same under the weights entering the mini-batch.
    pub step_0: Tensor,
    /// The same under the weights after the mini-batch's update.
    pub step_1: Tensor,
    /// Mean squared distance of each mini-batch's last pre-RoPE target `v − k` from the chunk's
    /// mean target (per sequence and head), as the original reports it; `None` where the fast
    /// layer has no reconstruction target (LoRA) or the inner loop ran on its own.
    pub ssl_target_variance: Option<Tensor>,
}

impl TttStats {
    /// Chunk means `(init, step_0, step_1)`; the original's gating signal is the `step_0` mean
    /// and its "TTT improvement" is `step_0 − step_1`.
    pub fn chunk_means(&self) -> Result<(f64, f64, f64)> {
        let mean =
            |t: &Tensor| -> Result<f64> { ponder_nn::to_f64(t)?.mean_all()?.to_scalar::<f64>() };
        Ok((mean(&self.init)?, mean(&self.step_0)?, mean(&self.step_1)?))
    }
}

/// The fast model: weights `(.., in, out)` and biases `(.., 1, out)` per layer, with any
/// leading batch dims (`(n)` for a mini-batch, `(n, b)` for per-token weights).
#[derive(Debug, Clone)]
pub struct FastModel {
    /// Weights per layer.
    pub w: Vec<Tensor>,
    /// Biases per layer.
    pub b: Vec<Tensor>,
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
    /// The fast model entering the chunk, with leading dim `n`.
    pub init: &'a FastModel,
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
    /// `None`: the statistics pool every sequence and head (the original's statistics, one
    /// value per mini-batch). `Some(bs)`: the leading axis `n` holds `bs` sequences, and the
    /// statistics have one value per mini-batch and sequence (what per-stream gates read).
    pub per_sequence: Option<usize>,
}

impl InnerOptions {
    /// The last valid token of mini-batch `mi` of `m` mini-batches of `b` tokens: the one the
    /// statistics read.
    pub fn last_token(&self, mi: usize, m: usize, b: usize) -> usize {
        if mi + 1 == m {
            self.last_valid - 1
        } else {
            b - 1
        }
    }
}

/// What the inner loop produces.
pub struct InnerOutputs {
    /// `q + LN_h(f_i(q))` for every token, `(n, m, b, hd)`, when queries were given.
    pub out: Option<Tensor>,
    /// The statistics per mini-batch.
    pub stats: TttStats,
    /// The fast model after the last mini-batch.
    pub state: FastModel,
}

/// Per-layer inputs `x_l` and output gradients `g_l` of the reconstruction loss.
struct Grads {
    inputs: Vec<Tensor>,
    grads: Vec<Tensor>,
}

/// `gelu_tanh'(z)` from primitive ops (differentiable again, for outer gradients).
pub(crate) fn gelu_grad(z: &Tensor) -> Result<Tensor> {
    const C: f64 = 0.797_884_560_802_865_4;
    const A: f64 = 0.044_715;
    let z2 = z.sqr()?;
    let t = ((z * z2.affine(A, 1.0)?)? * C)?.tanh()?;
    let left = t.affine(0.5, 0.5)?;
    let right =
        ((z * 0.5)? * (t.sqr()?.affine(-1.0, 1.0)? * z2.affine(3.0 * A, 1.0)?.affine(C, 0.0)?)?)?;
    left + right
}

impl FastModel {
    /// `f(x)` and the per-layer inputs and pre-activations.
    ///
    /// # Shapes
    /// - `x`: `(.., r, in)` with the model's leading dims; returns `(.., r, out)`.
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let (mut inputs, mut pre) = (Vec::new(), Vec::new());
        let mut a = x.clone();
        for (l, (w, b)) in self.w.iter().zip(&self.b).enumerate() {
            inputs.push(a.clone());
            let z = a.matmul(w)?.broadcast_add(b)?;
            pre.push(z.clone());
            a = if l + 1 < self.w.len() {
                ponder_nn::gelu_tanh(&z)?
            } else {
                z
            };
        }
        Ok((a, inputs, pre))
    }

    /// Closed-form gradients of `½‖LN(f(x)) − y‖²` for every row: the last layer's from the
    /// LayerNorm VJP (clipped if asked), earlier ones back through `W_lᵀ` and `gelu'`.
    fn grads(
        &self,
        x: &Tensor,
        y: &Tensor,
        norm: (&Tensor, &Tensor),
        opt: &InnerOptions,
    ) -> Result<Grads> {
        let (z, inputs, pre) = self.forward(x)?;
        let (_, g) = ln_and_grad(&z, y, norm.0, norm.1, opt.eps)?;
        let mut grads = vec![clip(g, opt.max_grad_norm)?];
        for l in (1..self.w.len()).rev() {
            let back = grads[0].matmul(&self.w[l].transpose(D::Minus2, D::Minus1)?)?;
            grads.insert(0, (back * gelu_grad(&pre[l - 1])?)?);
        }
        Ok(Grads { inputs, grads })
    }

    /// One gradient step: `W_l −= x_lᵀ (w ⊙ g_l)`, `b_l −= Σ w ⊙ g_l` over the key axis (the
    /// second to last), with per-key (and per-row) rates `rates` broadcast over the last dim.
    fn step(&self, g: &Grads, rates: &Tensor) -> Result<Self> {
        let mut next = self.clone();
        for l in 0..self.w.len() {
            let eg = g.grads[l].broadcast_mul(rates)?;
            let x_t = g.inputs[l].transpose(D::Minus2, D::Minus1)?;
            next.w[l] = (&self.w[l] - x_t.matmul(&eg)?)?;
            next.b[l] = (&self.b[l] - eg.sum_keepdim(D::Minus2)?)?;
        }
        Ok(next)
    }
}

/// Runs the inner loop over all mini-batches: fused on the CPU for a linear fast model whose
/// inputs autograd does not track ([`crate::fused`]), else [`inner_loop_composed`].
///
/// # Shapes
/// See [`InnerInputs`] and [`InnerOutputs`]; the loop runs along dimension 1 (mini-batches).
pub fn inner_loop(inp: &InnerInputs<'_>, opt: &InnerOptions) -> Result<InnerOutputs> {
    if !crate::fused::scan::serves(inp) {
        return inner_loop_composed(inp, opt);
    }
    check(inp, opt)?;
    let out = crate::fused::scan::inner_loop(inp, opt)?;
    check_finite(&out.stats)?;
    Ok(out)
}

/// The inputs and options every form of the inner loop accepts.
fn check(inp: &InnerInputs<'_>, opt: &InnerOptions) -> Result<()> {
    let mb = inp.k.dim(2)?;
    if inp.q.is_some() != inp.eta_out.is_some() {
        candle::bail!("ttt: the inner loop needs both queries and output rates, or neither");
    }
    if opt.steps == 0 {
        candle::bail!("ttt: the inner loop needs at least one step (k = 0 is the SKIP path)");
    }
    if opt.last_valid == 0 || opt.last_valid > mb {
        candle::bail!("ttt: last_valid {} must be in 1..={mb}", opt.last_valid);
    }
    Ok(())
}

/// [`inner_loop`] as a composition of Candle ops, differentiable and on any device: what runs
/// where the fused kernel cannot serve (training, TTT-MLP, GPU), and the kernel's reference.
///
/// # Shapes
/// See [`InnerInputs`] and [`InnerOutputs`]; the loop runs along dimension 1 (mini-batches).
pub fn inner_loop_composed(inp: &InnerInputs<'_>, opt: &InnerOptions) -> Result<InnerOutputs> {
    check(inp, opt)?;
    let (_, m, mb, _) = inp.k.dims4()?;
    let readout = inp.q.zip(inp.eta_out);
    let norm = (inp.gamma, inp.beta);
    let mask = causal_mask(mb, opt.causal_k, inp.k.dtype(), inp.k.device())?; // (b, b)
    let mut fast = inp.init.clone();
    let (mut outs, mut init, mut step0, mut step1) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for mi in 0..m {
        let pick = |t: &Tensor| -> Result<Tensor> { t.narrow(1, mi, 1)?.squeeze(1) };
        let (km, ym) = (pick(inp.k)?, pick(inp.target)?); // (n, b, hd)
        let rates = pick(inp.eta_update)?.unsqueeze(2)?; // (n, b, 1)
        let last = opt.last_token(mi, m, mb);
        let (k_last, y_last) = (km.narrow(1, last, 1)?, ym.narrow(1, last, 1)?); // (n, 1, hd)
        init.push(last_token_loss(&k_last, &y_last, inp.init, norm, opt)?);
        step0.push(last_token_loss(&k_last, &y_last, &fast, norm, opt)?);

        let g = fast.grads(&km, &ym, norm, opt)?; // at the weights entering the mini-batch
        if let Some((q, eta_out)) = readout {
            let qm = pick(q)?; // (n, b, hd)
            let weights = pick(eta_out)?.broadcast_mul(&mask)?; // (n, b, b)
            outs.push(if opt.steps == 1 {
                dual_form_step(&qm, &g, &weights, &fast, norm, opt.eps)?
            } else {
                crate::multi_step::multi_step_outputs(&qm, &km, &ym, &weights, &fast, norm, opt)?
            });
        }
        for step in 0..opt.steps {
            fast = if step == 0 {
                fast.step(&g, &rates)?
            } else {
                fast.step(&fast.grads(&km, &ym, norm, opt)?, &rates)?
            };
        }
        step1.push(last_token_loss(&k_last, &y_last, &fast, norm, opt)?);
    }
    let stats = TttStats {
        ssl_target_variance: None,
        init: Tensor::stack(&init, 0)?,
        step_0: Tensor::stack(&step0, 0)?,
        step_1: Tensor::stack(&step1, 0)?,
    };
    check_finite(&stats)?;
    let out = match readout {
        Some(_) => Some(Tensor::stack(&outs, 1)?),
        None => None,
    };
    Ok(InnerOutputs {
        out,
        stats,
        state: fast,
    })
}

/// The inner loop with every learning rate 0, computed directly: the fast model entering the
/// chunk reads every query (`q + LN_h(f(q))`, all mini-batches in one product), no gradient is
/// taken, the state comes back as it entered, and the three statistics are the last-token losses
/// under those weights. Equal to [`inner_loop`] with zero rates (a test checks it), at the cost
/// of one forward of the fast model instead of the update's.
///
/// # Shapes
/// See [`InnerInputs`] (queries required; the learning rates are not read) and
/// [`InnerOutputs`].
pub fn read_loop(inp: &InnerInputs<'_>, opt: &InnerOptions) -> Result<InnerOutputs> {
    let (n, m, mb, hd) = inp.k.dims4()?;
    let Some(q) = inp.q else {
        candle::bail!("ttt: a read needs the queries");
    };
    if opt.last_valid == 0 || opt.last_valid > mb {
        candle::bail!("ttt: last_valid {} must be in 1..={mb}", opt.last_valid);
    }
    let norm = (inp.gamma, inp.beta);
    let flat = q.reshape((n, m * mb, hd))?; // (n, m·b, hd)
    let (z, _, _) = inp.init.forward(&flat)?;
    let (ln, _, _) = ln_parts(&z, norm.0, norm.1, opt.eps)?;
    let out = (flat + ln)?.reshape((n, m, mb, hd))?;
    let losses = (0..m)
        .map(|mi| {
            let last = opt.last_token(mi, m, mb);
            let pick = |t: &Tensor| -> Result<Tensor> {
                t.narrow(1, mi, 1)?.narrow(2, last, 1)?.squeeze(1)
            };
            last_token_loss(&pick(inp.k)?, &pick(inp.target)?, inp.init, norm, opt)
        })
        .collect::<Result<Vec<_>>>()?;
    let loss = Tensor::stack(&losses, 0)?;
    let stats = TttStats {
        ssl_target_variance: None,
        init: loss.clone(),
        step_0: loss.clone(),
        step_1: loss,
    };
    check_finite(&stats)?;
    Ok(InnerOutputs {
        out: Some(out),
        stats,
        state: inp.init.clone(),
    })
}

/// `G · min(1, max / (‖G‖_F + 1e-6))` over the last two dims.
pub(crate) fn clip(g: Tensor, max_norm: Option<f64>) -> Result<Tensor> {
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

/// One mini-batch of the dual form, layer by layer: with `x̄₀ = q`,
/// `z̄_l = x̄_l W_l + b_l − ((x̄_l · x_lᵀ + 1) ∘ w) g_l` and `x̄_{l+1} = gelu(z̄_l)`; the output is
/// `q + LN(z̄_last)`. The gradients `g` are taken at the weights entering the mini-batch.
///
/// # Shapes
/// - `qm`: `(n, b, hd)`; `weights`: `(n, b, b)`; returns `(n, b, hd)`.
fn dual_form_step(
    qm: &Tensor,
    g: &Grads,
    weights: &Tensor,
    fast: &FastModel,
    norm: (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let mut a = qm.clone();
    let n_layers = fast.w.len();
    for l in 0..n_layers {
        let attn = a.matmul(&g.inputs[l].t()?)?; // (n, b, b): x̄_i · x_j
        let coef = ((attn + 1.0)? * weights)?; // (n, b, b)
        let z = (a.matmul(&fast.w[l])?.broadcast_add(&fast.b[l])? - coef.matmul(&g.grads[l])?)?;
        a = if l + 1 < n_layers {
            ponder_nn::gelu_tanh(&z)?
        } else {
            z
        };
    }
    let (ln, _, _) = ln_parts(&a, norm.0, norm.1, eps)?;
    qm + ln
}

/// Mean squared reconstruction error of one token per sequence and head, averaged.
///
/// # Shapes
/// - `k_last`, `y_last`: `(n, 1, hd)`; returns a scalar.
fn last_token_loss(
    k_last: &Tensor,
    y_last: &Tensor,
    fast: &FastModel,
    norm: (&Tensor, &Tensor),
    opt: &InnerOptions,
) -> Result<Tensor> {
    let (z, _, _) = fast.forward(k_last)?; // (n, 1, hd)
    let (ln, _, _) = ln_parts(&z, norm.0, norm.1, opt.eps)?;
    let sq = (ln - y_last)?.sqr()?;
    let Some(bs) = opt.per_sequence else {
        return sq.mean_all();
    };
    let n = sq.dim(0)?;
    if bs == 0 || n % bs != 0 {
        candle::bail!("ttt: {bs} sequences do not divide {n} sequence-heads");
    }
    sq.reshape((bs, ()))?.mean(1) // (bs)
}

/// Non-finite statistics are errors naming the statistic and the mini-batch.
fn check_finite(stats: &TttStats) -> Result<()> {
    for (name, t) in [
        ("ttt_loss_init", &stats.init),
        ("ttt_loss_step_0", &stats.step_0),
        ("ttt_loss_step_1", &stats.step_1),
    ] {
        let v = ponder_nn::to_f64(t)?.flatten_all()?.to_vec1::<f64>()?;
        let per_batch = v.len() / t.dim(0)?.max(1);
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            candle::bail!("ttt: {name} is {} at mini-batch {} (the inner loop diverged; lower ttt_base_lr or set max_grad_norm)", v[i], i / per_batch.max(1));
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
/// (`docs/original.md` §3.6): `g = (u − mean(u) − x̂ · mean(u ⊙ x̂)) / s` with
/// `u = γ ⊙ (LN(z) − target)`.
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
