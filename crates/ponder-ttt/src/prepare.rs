//! The inner loop's inputs prepared from a chunk: the projections, the depthwise
//! convolutions of the keys and queries, the heads, RoPE, the targets `v − k`, the learning
//! rates and the per-head parameters. On the CPU at inference the convolutions, RoPE and targets
//! run fused (`crate::fused::inputs`); elsewhere as the composition of Candle ops below.

use candle::{Result, Tensor};

use crate::config::{ConvWindow, EtaForm, TttConfig};
use crate::fused;
use crate::inner::{FastModel, InnerInputs, InnerOptions};
use crate::layer::TttParams;
use crate::state::TttState;

/// RoPE's cosines and sines for the positions `r` of a mini-batch of `b` tokens, each row the
/// `hd / 2` angles `r · θ^(−2p/hd)`: `(b, hd / 2)` row-major, twice.
pub(crate) fn rope_table(mini_batch: usize, hd: usize, theta: f64) -> (Vec<f64>, Vec<f64>) {
    let half = hd / 2;
    (0..mini_batch)
        .flat_map(|r| {
            (0..half).map(move |p| {
                let angle = r as f64 * theta.powf(-2.0 * p as f64 / hd as f64);
                (angle.cos(), angle.sin())
            })
        })
        .unzip()
}

/// RoPE with interleaved pairs `(x[2p], x[2p+1])`, angle `(pos mod b) · θ^(−2p/hd)`
/// ([`rope_table`]).
///
/// # Shapes
/// - `x`: `(bs, nh, t, hd)` with `t` a multiple of `b`; returns the same shape.
fn rope(x: &Tensor, mini_batch: usize, theta: f64) -> Result<Tensor> {
    let (bs, nh, t, hd) = x.dims4()?;
    let half = hd / 2;
    let (cos_b, sin_b) = rope_table(mini_batch, hd, theta);
    let at_pos = |table: &[f64]| -> Vec<f64> {
        (0..t)
            .flat_map(|pos| table[(pos % mini_batch) * half..][..half].iter().copied())
            .collect()
    };
    let (cos, sin) = (at_pos(&cos_b), at_pos(&sin_b));
    let cos = Tensor::from_vec(cos, (t, half, 1), x.device())?.to_dtype(x.dtype())?; // (t, hd/2, 1)
    let sin = Tensor::from_vec(sin, (t, half, 1), x.device())?.to_dtype(x.dtype())?;
    let pairs = x.reshape((bs, nh, t, half, 2))?; // (bs, nh, t, hd/2, 2)
    let (x0, x1) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
    let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
    Tensor::cat(&[&r0, &r1], 4)?.reshape((bs, nh, t, hd))
}

/// Everything the inner loop needs, prepared from a chunk.
pub(crate) struct Prepared {
    pub(crate) bs: usize,
    pub(crate) t: usize,
    pub(crate) t_pad: usize,
    pub(crate) last_valid: usize,
    pub(crate) x2: Tensor,
    pub(crate) q: Option<Tensor>,
    pub(crate) k: Tensor,
    pub(crate) target: Tensor,
    /// The `ssl_target_variance` statistic of the chunk, `(ceil(t / b))`.
    pub(crate) target_variance: Tensor,
    pub(crate) eta_out: Option<Tensor>,
    pub(crate) eta_update: Tensor,
    pub(crate) gamma: Tensor,
    pub(crate) beta: Tensor,
    pub(crate) init: FastModel,
}

impl Prepared {
    pub(crate) fn inputs(&self) -> InnerInputs<'_> {
        InnerInputs {
            q: self.q.as_ref(),
            k: &self.k,
            target: &self.target,
            eta_out: self.eta_out.as_ref(),
            eta_update: &self.eta_update,
            init: &self.init,
            gamma: &self.gamma,
            beta: &self.beta,
        }
    }

    /// The options of UPDATE_`steps`; `per_sequence` gives statistics per sequence.
    pub(crate) fn options(
        &self,
        cfg: &TttConfig,
        steps: usize,
        per_sequence: bool,
    ) -> InnerOptions {
        InnerOptions {
            steps,
            causal_k: cfg.causal_k,
            eps: cfg.layer_norm_eps,
            max_grad_norm: cfg.max_grad_norm,
            last_valid: self.last_valid,
            per_sequence: per_sequence.then_some(self.bs),
        }
    }
}

/// Per mini-batch: the mean over sequences, heads and dims of `(target[last] − mean_t target)²`,
/// with `last` the mini-batch's last valid token and the mean over the chunk's valid tokens.
///
/// # Shapes
/// - `target_pre`: `(bs, nh, t, hd)`; returns `(ceil(t / mb))`.
fn target_variance(target_pre: &Tensor, mb: usize) -> Result<Tensor> {
    let t = target_pre.dim(2)?;
    let mean = target_pre.mean_keepdim(2)?; // (bs, nh, 1, hd)
    let per_mb = (0..t.div_ceil(mb))
        .map(|m| {
            let last = ((m + 1) * mb).min(t) - 1;
            target_pre.narrow(2, last, 1)?.sub(&mean)?.sqr()?.mean_all()
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&per_mb, 0)
}

/// How many tokens back a convolution of `width` taps reaches: output `t` reads inputs
/// `t − reach .. t − reach + width` (shifted: `t − w .. t − 1`; causal: `t − w + 1 ..= t`).
pub(crate) fn conv_reach(window: ConvWindow, width: usize) -> usize {
    match window {
        ConvWindow::Shifted => width,
        ConvWindow::Causal => width - 1,
    }
}

/// Depthwise causal convolution over time with zero history.
///
/// # Shapes
/// - `u`: `(bs, t, F)`; `taps`: `(w, F)`; `bias`: `(F)`; returns `(bs, t, F)`.
fn depthwise_conv(u: &Tensor, taps: &Tensor, bias: &Tensor, window: ConvWindow) -> Result<Tensor> {
    let (bs, t, f) = u.dims3()?;
    let width = taps.dim(0)?;
    let pad = conv_reach(window, width);
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

/// Whether the tokens of a chunk update the fast weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rates {
    /// The learned inner learning rates (UPDATE_k).
    Learned,
    /// Every rate 0 (a read).
    Zero,
}

impl TttParams {
    /// Projections, convolution, RoPE, learning rates and per-head parameters for the inner loop.
    pub(crate) fn prepare<'a>(
        &'a self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        with_queries: bool,
        rates: Rates,
    ) -> Result<Prepared> {
        cfg.validate()?;
        let (bs, t, d) = x.dims3()?;
        let (nh, hd, mb) = (cfg.num_heads, cfg.head_dim, cfg.mini_batch_size);
        let f = cfg.inner_dim();
        if d != cfg.hidden_dim {
            candle::bail!(
                "ttt: input has width {d}, expected hidden_dim {}",
                cfg.hidden_dim
            );
        }
        if t == 0 {
            candle::bail!("ttt: empty chunk (length 0, shape {:?})", x.dims());
        }
        state.check(bs, nh, &cfg.fast_layers(self.kind()))?;
        let m = t.div_ceil(mb);
        let t_pad = m * mb;
        let x = if t_pad > t {
            Tensor::cat(
                &[
                    x,
                    &Tensor::zeros((bs, t_pad - t, d), x.dtype(), x.device())?,
                ],
                1,
            )?
        } else {
            x.clone()
        }; // (bs, T, d)
        let n = bs * nh;
        let x2 = x.reshape((bs * t_pad, d))?; // (bs·T, d)
        let u = x2.matmul(&self.wq)?.reshape((bs, t_pad, f))?; // (bs, T, F)
        let xv = x2.matmul(&self.wv)?.reshape((bs, t_pad, f))?; // (bs, T, F)
        let reach =
            |taps: &Tensor| -> Result<usize> { Ok(conv_reach(cfg.conv_window, taps.dim(0)?)) };
        let fused = [
            &u,
            &xv,
            &self.conv_k.0,
            &self.conv_k.1,
            &self.conv_q.0,
            &self.conv_q.1,
        ];
        let (q, k, target, target_variance) = if fused::inputs::serves(&fused) {
            let conv = |taps: &'a Tensor, bias: &'a Tensor| -> Result<fused::inputs::Conv<'a>> {
                Ok(fused::inputs::Conv {
                    reach: reach(taps)?,
                    taps,
                    bias,
                })
            };
            let spec = fused::inputs::InputSpec {
                nh,
                hd,
                mb,
                t,
                rope_theta: cfg.rope_theta,
                conv_k: conv(&self.conv_k.0, &self.conv_k.1)?,
                conv_q: with_queries
                    .then(|| conv(&self.conv_q.0, &self.conv_q.1))
                    .transpose()?,
            };
            let i = fused::inputs::inputs(&u, &xv, &spec)?;
            (i.q, i.k, i.target, i.target_variance)
        } else {
            let heads = |z: &Tensor| -> Result<Tensor> {
                z.reshape((bs, t_pad, nh, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            }; // (bs, nh, T, hd)
            let to_mb = |z: &Tensor| -> Result<Tensor> { z.reshape((n, m, mb, hd)) }; // (n, m, b, hd)
            let xk = depthwise_conv(&u, &self.conv_k.0, &self.conv_k.1, cfg.conv_window)?;
            let k_pre = heads(&xk)?; // (bs, nh, T, hd)
            let v = heads(&xv)?;
            let target_pre = (&v - &k_pre)?.narrow(2, 0, t)?; // (bs, nh, t, hd)
            let k = rope(&k_pre, mb, cfg.rope_theta)?;
            let target = to_mb(&(v - &k)?)?; // (n, m, b, hd)
            let q = if with_queries {
                let xq = depthwise_conv(&u, &self.conv_q.0, &self.conv_q.1, cfg.conv_window)?;
                Some(to_mb(&rope(&heads(&xq)?, mb, cfg.rope_theta)?)?)
            } else {
                None
            };
            (q, to_mb(&k)?, target, target_variance(&target_pre, mb)?)
        };
        let learning = match rates {
            Rates::Learned => t,
            Rates::Zero => 0,
        };
        let (eta_out, eta_update) = self.learning_rates(cfg, &x2, bs, learning, m)?;
        let per_seq = |p: &Tensor| -> Result<Tensor> {
            let dims = p.dims().to_vec();
            let shape = [vec![bs], dims.clone()].concat();
            p.unsqueeze(0)?
                .broadcast_as(shape)?
                .reshape([vec![n], dims[1..].to_vec()].concat())
        };
        Ok(Prepared {
            bs,
            t,
            t_pad,
            last_valid: t - (m - 1) * mb,
            x2,
            q,
            k,
            target,
            target_variance,
            eta_out: with_queries.then_some(eta_out),
            eta_update,
            gamma: per_seq(&self.ttt_norm.0)?, // (n, 1, hd)
            beta: per_seq(&self.ttt_norm.1)?,
            // (bs, nh, in, out) → (n, in, out)
            init: FastModel {
                w: state
                    .w
                    .iter()
                    .map(|t| t.flatten(0, 1))
                    .collect::<Result<_>>()?,
                b: state
                    .b
                    .iter()
                    .map(|t| t.flatten(0, 1))
                    .collect::<Result<_>>()?,
            },
        })
    }

    /// The learning rates of the inner loop: `(eta_out (n, m, b, b), eta_update (n, m, b))` for
    /// the first `t` tokens; the rest (padding, or every token of a read) get 0.
    /// η combines the learned per-head gate `σ(x · a_h + β_h)` of the full input row with the
    /// token factor `max(0, 1/(j+1) + offset_j) · exp(decay (j − b + 1)) · base · (768/d) / hd`;
    /// padded tokens (at or after `t`) get 0.
    fn learning_rates(
        &self,
        cfg: &TttConfig,
        x2: &Tensor,
        bs: usize,
        t: usize,
        m: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (nh, mb) = (cfg.num_heads, cfg.mini_batch_size);
        let (n, t_pad, dev, dtype) = (bs * nh, m * mb, x2.device(), x2.dtype());
        let gate = candle_nn::ops::sigmoid(
            &x2.matmul(&self.eta_gate.0)?
                .broadcast_add(&self.eta_gate.1)?,
        )?; // (bs·T, nh)
        let valid: Vec<f32> = (0..t_pad).map(|i| if i < t { 1.0 } else { 0.0 }).collect();
        let valid = Tensor::from_vec(valid, (1, t_pad, 1), dev)?.to_dtype(dtype)?; // (1, T, 1)
        let gate = gate.reshape((bs, t_pad, nh))?.broadcast_mul(&valid)?; // (bs, T, nh)
        let gate = gate.transpose(1, 2)?.reshape((n, m, mb))?; // (n, m, b): learned gate per key
        let (inv, decay) = cfg.token_factors();
        let inv = Tensor::from_vec(inv, mb, dev)?.to_dtype(dtype)?;
        let decay = Tensor::from_vec(decay, mb, dev)?.to_dtype(dtype)?;
        let token = (inv + &self.token_idx)?
            .relu()?
            .mul(&decay)?
            .affine(cfg.eta_scale(), 0.0)?; // (b)
        match cfg.eta_form {
            EtaForm::PerKey => {
                let eta = gate.broadcast_mul(&token)?; // (n, m, b): η_j
                let eta_out = eta
                    .unsqueeze(2)?
                    .broadcast_as((n, m, mb, mb))?
                    .contiguous()?; // row i, col j: η_j
                Ok((eta_out, eta))
            }
            EtaForm::Matrix => {
                let rows = token.reshape((mb, 1))?; // token factor of query i
                let eta_out = gate.unsqueeze(2)?.broadcast_mul(&rows)?; // (n, m, b, b): τ_i σ_j
                let last = token.narrow(0, mb - 1, 1)?; // (1)
                let eta_update = gate.broadcast_mul(&last)?; // (n, m, b): τ_{b−1} σ_j
                Ok((eta_out, eta_update))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{DType, Device};

    /// An impulse at time 5 through taps `1, 2, 3, 4`: the shifted window puts tap `k` at
    /// `t = 5 + 4 − k` (never at t = 5 itself), the causal window at `t = 5 + 3 − k`.
    #[test]
    fn conv_windows_on_an_impulse() -> Result<()> {
        let mut u = vec![0f32; 12];
        u[5] = 1.0;
        let u = Tensor::from_vec(u, (1, 12, 1), &Device::Cpu)?;
        let taps = Tensor::new(&[[1f32], [2.], [3.], [4.]], &Device::Cpu)?;
        let bias = Tensor::zeros(1, DType::F32, &Device::Cpu)?;
        let run = |w| -> Result<Vec<f32>> {
            depthwise_conv(&u, &taps, &bias, w)?
                .flatten_all()?
                .to_vec1()
        };
        assert_eq!(
            run(ConvWindow::Shifted)?,
            [0., 0., 0., 0., 0., 0., 4., 3., 2., 1., 0., 0.]
        );
        assert_eq!(
            run(ConvWindow::Causal)?,
            [0., 0., 0., 0., 0., 4., 3., 2., 1., 0., 0., 0.]
        );
        Ok(())
    }
}
