//! TTT-Linear: a fast linear model per head, trained while it reads, with the dual-form inner
//! loop and the reconstruction statistics that the gates read.
//!
//! From "Learning to (Learn at Test Time): RNNs with Expressive Hidden States" (Sun et al., 2024),
//! as modified by PonderTTT (docs: `../shared/docs/upstream-spec.md` §2): the per-key η vector,
//! the shifted convolution window and the 768/d scale are the original's defaults.

use candle::{Result, Tensor};

use crate::inner::{dual_form, InnerInputs};

use crate::config::{ConvWindow, TttConfig};
use crate::inner::TttStats;

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

/// The output of a TTT-Linear forward.
pub struct TttOutput {
    /// `(b, t, d)`, to be added to the residual stream.
    pub y: Tensor,
    /// The reconstruction statistics.
    pub stats: TttStats,
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

        let inner = dual_form(
            &InnerInputs {
                q: &q,
                k: &k,
                target: &target,
                eta: &eta,
                w0: &w0,
                c0: &c0,
                gamma: &gamma,
                beta: &beta,
            },
            cfg.causal_k,
            cfg.layer_norm_eps,
        )?;
        let eps = cfg.layer_norm_eps;
        let out = inner.out; // (n, m, b, hd)
        let out = out
            .reshape((bs, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((bs * t, f))?; // (bs·t, F)
        let out = ponder_nn::layer_norm(&out, &self.post_norm.0, &self.post_norm.1, eps)?;
        let gate = ponder_nn::gelu_tanh(&x2.matmul(&self.wg)?)?; // (bs·t, F)
        let y = (gate * out)?.matmul(&self.wo)?.reshape((bs, t, d))?; // (bs, t, d)
        Ok(TttOutput {
            y,
            stats: inner.stats,
        })
    }
}
