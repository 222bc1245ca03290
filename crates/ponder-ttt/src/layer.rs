//! The TTT layer (TTT-Linear or TTT-MLP): a fast model per head, trained while it reads, with the
//! dual-form inner loop and the reconstruction statistics that the gates read.
//!
//! From "Learning to (Learn at Test Time): RNNs with Expressive Hidden States" (Sun et al., 2024,
//! reference code `test-time-training/ttt-lm-jax`), as modified by PonderTTT
//! (`docs/original.md` §3.10): the per-key η vector, the shifted convolution window and the
//! 768/d scale are the original's defaults.

use candle::{Result, Tensor};

use crate::config::{ConvWindow, EtaForm, FastModelKind, TttConfig};
use crate::inner::{inner_loop, read_loop, FastModel, InnerInputs, InnerOptions, TttStats};
use crate::state::TttState;

/// The slow weights of a TTT layer.
#[derive(Clone)]
pub struct TttParams {
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
    /// The learned initial fast model, weights `(nh, in, out)` and biases `(nh, 1, out)` per
    /// layer (`W₀`, `c₀` for TTT-Linear).
    pub fast_init: FastModel,
}

/// The output of a TTT layer's forward.
pub struct TttOutput {
    /// `(b, t, d)`, to be added to the residual stream.
    pub y: Tensor,
    /// The reconstruction statistics.
    pub stats: TttStats,
    /// The fast weights after the chunk, for the next chunk of the same stream.
    pub state: TttState,
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

/// Everything the inner loop needs, prepared from a chunk.
struct Prepared {
    bs: usize,
    t: usize,
    t_pad: usize,
    last_valid: usize,
    x2: Tensor,
    q: Option<Tensor>,
    k: Tensor,
    target: Tensor,
    /// The pre-RoPE targets `v − k` of the valid tokens, `(bs, nh, t, hd)`.
    target_pre: Tensor,
    eta_out: Option<Tensor>,
    eta_update: Tensor,
    gamma: Tensor,
    beta: Tensor,
    init: FastModel,
}

impl Prepared {
    fn inputs(&self) -> InnerInputs<'_> {
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
    fn options(&self, cfg: &TttConfig, steps: usize, per_sequence: bool) -> InnerOptions {
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

/// Whether the tokens of a chunk update the fast weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rates {
    /// The learned inner learning rates (UPDATE_k).
    Learned,
    /// Every rate 0 (a read).
    Zero,
}

impl TttParams {
    /// The fast model these parameters hold: TTT-Linear (one layer) or TTT-MLP (two).
    pub fn kind(&self) -> FastModelKind {
        if self.fast_init.w.len() == 2 {
            FastModelKind::Mlp
        } else {
            FastModelKind::Linear
        }
    }

    /// The learned initial state `(W₀, c₀)` for `bs` sequences: where every chunk starts unless
    /// the caller carries the state of the previous chunk (stream mode).
    pub fn initial_state(&self, bs: usize) -> Result<TttState> {
        let expand = |t: &Tensor| -> Result<Tensor> {
            let dims = [vec![bs], t.dims().to_vec()].concat();
            t.unsqueeze(0)?.broadcast_as(dims)?.contiguous()
        };
        Ok(TttState {
            w: self.fast_init.w.iter().map(expand).collect::<Result<_>>()?,
            b: self.fast_init.b.iter().map(expand).collect::<Result<_>>()?,
        })
    }

    /// UPDATE_k over a chunk: the layer's output, its reconstruction statistics, and the state
    /// after the chunk. `steps` = 1 is the dual form; k > 1 follows `docs/design/update-k.md`.
    ///
    /// The inner loop runs along time in mini-batches of `mini_batch_size`, batched over
    /// sequences and heads. A chunk whose length is not a multiple of the mini-batch size is
    /// padded at the end with tokens whose learning rate is 0, and the padding is cut from the
    /// output: padded tokens never change the state or a real token's output.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)` with `t >= 1`; `state`: for `bs` sequences; `y`: `(bs, t, d)`.
    pub fn forward(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
    ) -> Result<TttOutput> {
        self.run(cfg, x, state, steps, Rates::Learned)
    }

    /// The layer's output under `state` with no update: every token's inner learning rate is
    /// 0, so each query reads the fast model as it entered the chunk, and the state is returned
    /// unchanged; computed directly, without the update's gradients ([`read_loop`]). This is
    /// SKIP on a carried state in stream mode (`docs/design/stream.md`).
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)` with `t >= 1`; `y`: `(bs, t, d)`.
    pub fn read(&self, cfg: &TttConfig, x: &Tensor, state: &TttState) -> Result<TttOutput> {
        let out = self.run(cfg, x, state, 1, Rates::Zero)?;
        Ok(TttOutput {
            state: state.clone(),
            ..out
        })
    }

    /// Where a [`TttParams::read`] of tokens `s..=i` of a chunk must start for token `i`'s
    /// output to equal its output in a read of the whole chunk: the start of a mini-batch (RoPE
    /// positions count within mini-batches) at or before the earliest token the convolution of
    /// token `i` reaches. Decoding reads each new token from there.
    pub fn read_start(&self, cfg: &TttConfig, i: usize) -> Result<usize> {
        let width = self.conv_q.0.dim(0)?;
        let reach = match cfg.conv_window {
            ConvWindow::Shifted => width,
            ConvWindow::Causal => width - 1,
        };
        let mb = cfg.mini_batch_size;
        Ok(i.saturating_sub(reach) / mb * mb)
    }

    /// [`TttParams::forward`] with the learning rates `rates`.
    fn run(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
        rates: Rates,
    ) -> Result<TttOutput> {
        let p = self.prepare(cfg, x, state, true, rates)?;
        let (bs, t, t_pad, d) = (p.bs, p.t, p.t_pad, cfg.hidden_dim);
        let (nh, hd, f) = (cfg.num_heads, cfg.head_dim, cfg.inner_dim());
        let options = p.options(cfg, steps, false);
        let mut inner = match rates {
            Rates::Learned => inner_loop(&p.inputs(), &options)?,
            Rates::Zero => read_loop(&p.inputs(), &options)?,
        };
        inner.stats.ssl_target_variance =
            Some(target_variance(&p.target_pre, cfg.mini_batch_size)?);
        let out = inner.out.expect("queries were given"); // (n, m, b, hd)
        let out = out
            .reshape((bs, nh, t_pad, hd))?
            .transpose(1, 2)?
            .reshape((bs * t_pad, f))?; // (bs·T, F)
        let out = ponder_nn::layer_norm(
            &out,
            &self.post_norm.0,
            &self.post_norm.1,
            cfg.layer_norm_eps,
        )?;
        let gate = ponder_nn::gelu_tanh(&p.x2.matmul(&self.wg)?)?; // (bs·T, F)
        let y = (gate * out)?
            .matmul(&self.wo)?
            .reshape((bs, t_pad, d))?
            .narrow(1, 0, t)?; // (bs, t, d)
                               // (n, in, out) → (bs, nh, in, out)
        let unbatch = |t: &Tensor| -> Result<Tensor> {
            t.reshape([vec![bs, nh], t.dims()[1..].to_vec()].concat())
        };
        let state = TttState {
            w: inner.state.w.iter().map(unbatch).collect::<Result<_>>()?,
            b: inner.state.b.iter().map(unbatch).collect::<Result<_>>()?,
        };
        Ok(TttOutput {
            y,
            stats: inner.stats,
            state,
        })
    }

    /// The reconstruction statistics of UPDATE_k alone, what a gate reads before it decides:
    /// the key/value path and the fast-weight updates, without the query path, the readout,
    /// `post_norm`, the gate `wg` or `wo`. Equal to [`TttParams::forward`]'s statistics.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)`; the statistics have `ceil(t / mini_batch_size)` entries.
    pub fn signal(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
    ) -> Result<TttStats> {
        let p = self.prepare(cfg, x, state, false, Rates::Learned)?;
        let mut stats = inner_loop(&p.inputs(), &p.options(cfg, steps, false))?.stats;
        stats.ssl_target_variance = Some(target_variance(&p.target_pre, cfg.mini_batch_size)?);
        Ok(stats)
    }

    /// [`TttParams::signal`] for each sequence on its own: `init`, `step_0` and `step_1` are
    /// `(ceil(t / mini_batch_size), bs)`, column `i` the means over sequence `i`'s heads, what a
    /// gate deciding per stream reads (`docs/design/stream.md`); no `ssl_target_variance`.
    ///
    /// # Shapes
    /// - `x`: `(bs, t, d)`; the statistics are `(ceil(t / mini_batch_size), bs)`.
    pub fn signal_per_sequence(
        &self,
        cfg: &TttConfig,
        x: &Tensor,
        state: &TttState,
        steps: usize,
    ) -> Result<TttStats> {
        let p = self.prepare(cfg, x, state, false, Rates::Learned)?;
        Ok(inner_loop(&p.inputs(), &p.options(cfg, steps, true))?.stats)
    }

    /// Projections, convolution, RoPE, learning rates and per-head parameters for the inner loop.
    fn prepare(
        &self,
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
            k: to_mb(&k)?,
            target,
            target_pre,
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
