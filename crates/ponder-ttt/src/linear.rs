//! TTT-Linear: a fast linear model per head, trained while it reads, with the dual-form inner
//! loop and the reconstruction statistics that the gates read.
//!
//! From "Learning to (Learn at Test Time): RNNs with Expressive Hidden States" (Sun et al., 2024),
//! as modified by PonderTTT (docs: `../shared/docs/upstream-spec.md` §2): the per-key η vector,
//! the shifted convolution window and the 768/d scale are the original's defaults.

use candle::{DType, Result, Tensor, D};

use crate::config::{ConvWindow, TttConfig};

/// The slow weights of a TTT-Linear layer.
#[derive(Clone)]
pub struct TttLinearParams {
    /// Shared query/key projection `(d, F)`.
    pub wq: Tensor,
    /// Value projection `(d, F)`.
    pub wv: Tensor,
    /// Output gate projection `(d, F)`.
    pub wg: Tensor,
    /// Output projection `(F, d)`.
    pub wo: Tensor,
    /// Query convolution taps `(conv_width, F)` and bias `(F)`.
    pub conv_q: (Tensor, Tensor),
    /// Key convolution taps `(conv_width, F)` and bias `(F)`.
    pub conv_k: (Tensor, Tensor),
    /// η gate weights `(d, nh)`, one column per head, and biases `(nh)`.
    pub eta_gate: (Tensor, Tensor),
    /// Learned offsets of the token factor `1/(j+1)`, `(b)`.
    pub token_idx: Tensor,
    /// Per-head LayerNorm of the inner loop: scale and bias `(nh, 1, hd)`.
    pub ttt_norm: (Tensor, Tensor),
    /// LayerNorm over the concatenated heads: scale and bias `(F)`.
    pub post_norm: (Tensor, Tensor),
    /// Initial fast weights `(nh, hd, hd)`.
    pub w0: Tensor,
    /// Initial fast biases `(nh, 1, hd)`.
    pub b0: Tensor,
}

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

/// The output of a TTT-Linear forward.
pub struct TttOutput {
    /// `(b, t, d)`, to be added to the residual stream.
    pub y: Tensor,
    /// The reconstruction statistics.
    pub stats: TttStats,
}

/// Per-head LayerNorm over the last dim: returns `(LN(z), x̂, sqrt(σ² + eps))`.
///
/// # Shapes
/// - `z`: `(n, b, hd)`; `gamma`, `beta`: `(n, 1, hd)`; returns `(n, b, hd)`, `(n, b, hd)`, `(n, b, 1)`.
fn ln_parts(
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
fn ln_and_grad(
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

/// RoPE with interleaved pairs `(x[2p], x[2p+1])`, angle `(pos mod b) · θ^(−2p/hd)`.
///
/// # Shapes
/// - `x`: `(bs, nh, t, hd)` with `t` a multiple of `b`; returns the same shape.
fn rope(x: &Tensor, mini_batch: usize, theta: f64) -> Result<Tensor> {
    let (bs, nh, t, hd) = x.dims4()?;
    let half = hd / 2;
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for pos in 0..t {
        let r = (pos % mini_batch) as f64;
        for p in 0..half {
            let angle = r * theta.powf(-2.0 * p as f64 / hd as f64);
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let cos = Tensor::from_vec(cos, (t, half, 1), x.device())?.to_dtype(x.dtype())?; // (t, hd/2, 1)
    let sin = Tensor::from_vec(sin, (t, half, 1), x.device())?.to_dtype(x.dtype())?;
    let pairs = x.reshape((bs, nh, t, half, 2))?; // (bs, nh, t, hd/2, 2)
    let (x0, x1) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
    let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
    Tensor::cat(&[&r0, &r1], 4)?.reshape((bs, nh, t, hd))
}

/// Depthwise causal convolution over time with zero history.
///
/// # Shapes
/// - `u`: `(bs, t, F)`; `taps`: `(w, F)`; `bias`: `(F)`; returns `(bs, t, F)`.
fn depthwise_conv(u: &Tensor, taps: &Tensor, bias: &Tensor, window: ConvWindow) -> Result<Tensor> {
    let (bs, t, f) = u.dims3()?;
    let width = taps.dim(0)?;
    // Shifted: out[t] = Σ_k taps[k] ⊙ u[t − w + k]; causal: Σ_k taps[k] ⊙ u[t − w + 1 + k].
    let pad = match window {
        ConvWindow::Shifted => width,
        ConvWindow::Causal => width - 1,
    };
    let padded = Tensor::cat(
        &[&Tensor::zeros((bs, pad, f), u.dtype(), u.device())?, u],
        1,
    )?; // (bs, t + pad, F)
    let mut out = bias
        .reshape((1, 1, f))?
        .broadcast_as((bs, t, f))?
        .contiguous()?;
    for k in 0..width {
        let tap = taps.narrow(0, k, 1)?.reshape((1, 1, f))?;
        out = (out + padded.narrow(1, k, t)?.broadcast_mul(&tap)?)?;
    }
    Ok(out)
}

impl TttLinearParams {
    /// The forward pass over a chunk, starting from the learned initial fast weights.
    ///
    /// The inner loop runs along the time axis in mini-batches of `mini_batch_size`; heads and
    /// sequences are batched.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)` with `t` a positive multiple of `mini_batch_size`; `y`: `(bs, t, d)`.
    pub fn forward(&self, cfg: &TttConfig, x: &Tensor) -> Result<TttOutput> {
        let (bs, t, d) = x.dims3()?;
        let (nh, hd, mb) = (cfg.num_heads, cfg.head_dim, cfg.mini_batch_size);
        let f = cfg.inner_dim();
        if d != cfg.hidden_dim {
            candle::bail!(
                "ttt: input has width {d}, expected hidden_dim {}",
                cfg.hidden_dim
            );
        }
        if t == 0 || t % mb != 0 {
            candle::bail!(
                "ttt: chunk length {t} must be a positive multiple of the mini-batch size {mb}"
            );
        }
        let m = t / mb;
        let n = bs * nh;
        let x2 = x.reshape((bs * t, d))?; // (bs·t, d)
        let u = x2.matmul(&self.wq)?.reshape((bs, t, f))?; // (bs, t, F)
        let xv = x2.matmul(&self.wv)?.reshape((bs, t, f))?; // (bs, t, F)
        let xq = depthwise_conv(&u, &self.conv_q.0, &self.conv_q.1, cfg.conv_window)?;
        let xk = depthwise_conv(&u, &self.conv_k.0, &self.conv_k.1, cfg.conv_window)?;
        let heads = |z: &Tensor| -> Result<Tensor> {
            z.reshape((bs, t, nh, hd))?.transpose(1, 2)?.contiguous()
        }; // (bs, nh, t, hd)
        let q = rope(&heads(&xq)?, mb, cfg.rope_theta)?;
        let k = rope(&heads(&xk)?, mb, cfg.rope_theta)?;
        let v = heads(&xv)?;
        let target = (&v - &k)?; // (bs, nh, t, hd)
        let to_mb = |z: &Tensor| -> Result<Tensor> { z.reshape((n, m, mb, hd)) }; // (n, m, b, hd)
        let (q, k, target) = (to_mb(&q)?, to_mb(&k)?, to_mb(&target)?);

        // η: learned per-head gate of the full input row, times the token factor.
        let gate = candle_nn::ops::sigmoid(
            &x2.matmul(&self.eta_gate.0)?
                .broadcast_add(&self.eta_gate.1)?,
        )?; // (bs·t, nh)
        let gate = gate
            .reshape((bs, t, nh))?
            .transpose(1, 2)?
            .reshape((n, m, mb))?; // (n, m, b)
        let (inv, decay) = cfg.token_factors();
        let inv = Tensor::from_vec(inv, mb, x.device())?.to_dtype(x.dtype())?;
        let decay = Tensor::from_vec(decay, mb, x.device())?.to_dtype(x.dtype())?;
        let token = (inv + &self.token_idx)?
            .relu()?
            .mul(&decay)?
            .affine(cfg.eta_scale(), 0.0)?; // (b)
        let eta = gate.broadcast_mul(&token)?; // (n, m, b)

        // Per-(sequence, head) copies of the head parameters.
        let per_seq = |p: &Tensor| -> Result<Tensor> {
            let dims = p.dims().to_vec();
            let mut shape = vec![bs];
            shape.extend(&dims);
            p.unsqueeze(0)?
                .broadcast_as(shape)?
                .reshape([vec![n], dims[1..].to_vec()].concat())
        };
        let gamma = per_seq(&self.ttt_norm.0)?; // (n, 1, hd)
        let beta = per_seq(&self.ttt_norm.1)?;
        let w0 = per_seq(&self.w0)?; // (n, hd, hd)
        let c0 = per_seq(&self.b0)?; // (n, 1, hd)

        let mask = causal_mask(mb, cfg.causal_k, x.dtype(), x.device())?; // (b, b)
        let eps = cfg.layer_norm_eps;
        let (mut w, mut c) = (w0.clone(), c0.clone());
        let (mut outs, mut init, mut step0, mut step1) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for mi in 0..m {
            let qm = q.narrow(1, mi, 1)?.squeeze(1)?; // (n, b, hd)
            let km = k.narrow(1, mi, 1)?.squeeze(1)?;
            let ym = target.narrow(1, mi, 1)?.squeeze(1)?;
            let em = eta.narrow(1, mi, 1)?.squeeze(1)?; // (n, b)
            let k_last = km.narrow(1, mb - 1, 1)?; // (n, 1, hd)
            let y_last = ym.narrow(1, mb - 1, 1)?;
            init.push(
                last_token_loss(&k_last, &y_last, &w0, &c0, (&gamma, &beta), eps)?.mean_all()?,
            );
            step0
                .push(last_token_loss(&k_last, &y_last, &w, &c, (&gamma, &beta), eps)?.mean_all()?);

            let z = km.matmul(&w)?.broadcast_add(&c)?; // (n, b, hd)
            let (_, g) = ln_and_grad(&z, &ym, &gamma, &beta, eps)?; // (n, b, hd)
            let eta_cols = em.unsqueeze(1)?; // (n, 1, b): η_j on column j
            let attn = qm.matmul(&km.t()?)?.broadcast_mul(&mask)?; // (n, b, b)
            let weights = (attn.broadcast_add(&mask)?).broadcast_mul(&eta_cols)?; // (A + L) ∘ η
            let zbar = (qm.matmul(&w)?.broadcast_add(&c)? - weights.matmul(&g)?)?; // (n, b, hd)
            let (ln_bar, _, _) = ln_parts(&zbar, &gamma, &beta, eps)?;
            outs.push((&qm + ln_bar)?);

            let eg = g.broadcast_mul(&em.unsqueeze(2)?)?; // (n, b, hd): η_j g_j
            w = (w - km.t()?.matmul(&eg)?)?; // (n, hd, hd)
            c = (c - eg.sum_keepdim(1)?)?; // (n, 1, hd)
            step1
                .push(last_token_loss(&k_last, &y_last, &w, &c, (&gamma, &beta), eps)?.mean_all()?);
        }
        let out = Tensor::stack(&outs, 1)?; // (n, m, b, hd)
        let out = out
            .reshape((bs, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((bs * t, f))?; // (bs·t, F)
        let out = ponder_nn::layer_norm(&out, &self.post_norm.0, &self.post_norm.1, eps)?;
        let gate = ponder_nn::gelu_tanh(&x2.matmul(&self.wg)?)?; // (bs·t, F)
        let y = (gate * out)?.matmul(&self.wo)?.reshape((bs, t, d))?; // (bs, t, d)
        let stats = TttStats {
            init: Tensor::stack(&init, 0)?,
            step_0: Tensor::stack(&step0, 0)?,
            step_1: Tensor::stack(&step1, 0)?,
        };
        Ok(TttOutput { y, stats })
    }
}

/// The in-mini-batch causal mask: 1 where key `j <= i + causal_k`, else 0.
///
/// # Shapes
/// - returns `(b, b)`.
fn causal_mask(b: usize, causal_k: i64, dtype: DType, device: &candle::Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..b as i64)
        .flat_map(|i| (0..b as i64).map(move |j| if j <= i + causal_k { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (b, b), device)?.to_dtype(dtype)
}
