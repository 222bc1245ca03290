//! The original PonderTTT initialization of a TTT layer (`docs/original.md` §3.2), and
//! parameter names for checkpoints.

use candle::{DType, Device, Result, Tensor};
use ponder_nn::init::{normal, rng_for, truncated_normal};

use crate::config::{FastModelKind, TttConfig};
use crate::inner::FastModel;
use crate::layer::TttParams;

impl TttParams {
    /// Parameters as the original initializes them: `wq`, `wv`, `wg` and the η gates
    /// `lecun_normal` (truncated normal, std `1/sqrt(fan_in)`), `wo` zero (so the layer's output
    /// is 0 and UPDATE equals SKIP until it trains), convolution taps `lecun_normal` with fan-in
    /// `conv_width`, biases and token offsets 0, norms at scale 1 and bias 0, `W₀` normal(0.02),
    /// `c₀` 0. Each tensor draws from its own stream of `seed`. `kind` is the fast model
    /// (TTT-Linear or TTT-MLP).
    pub fn init(
        cfg: &TttConfig,
        kind: FastModelKind,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let (d, f, nh, hd, w) = (
            cfg.hidden_dim,
            cfg.inner_dim(),
            cfg.num_heads,
            cfg.head_dim,
            cfg.conv_width,
        );
        let lecun = |name: &str, shape: &[usize], fan_in: usize| -> Result<Tensor> {
            let mut rng = rng_for(seed, name);
            truncated_normal(shape, 1.0 / (fan_in as f64).sqrt(), &mut rng, dtype, device)
        };
        let zeros = |shape: &[usize]| Tensor::zeros(shape, dtype, device);
        let ones = |shape: &[usize]| Tensor::ones(shape, dtype, device);
        let fast_init = init_fast_model(cfg, kind, seed, dtype, device)?;
        Ok(Self {
            wq: lecun("wq", &[d, f], d)?,
            wv: lecun("wv", &[d, f], d)?,
            wg: lecun("wg", &[d, f], d)?,
            wo: zeros(&[f, d])?,
            conv_q: (lecun("conv_q", &[w, f], w)?, zeros(&[f])?),
            conv_k: (lecun("conv_k", &[w, f], w)?, zeros(&[f])?),
            eta_gate: (lecun("learnable_ttt_lr", &[d, nh], d)?, zeros(&[nh])?),
            token_idx: zeros(&[cfg.mini_batch_size])?,
            ttt_norm: (ones(&[nh, 1, hd])?, zeros(&[nh, 1, hd])?),
            post_norm: (ones(&[f])?, zeros(&[f])?),
            fast_init,
        })
    }

    /// The parameters by name, in a fixed order (the names of the fast-weight checkpoints).
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("wq", &self.wq),
            ("wv", &self.wv),
            ("wg", &self.wg),
            ("wo", &self.wo),
            ("conv_q.weight", &self.conv_q.0),
            ("conv_q.bias", &self.conv_q.1),
            ("conv_k.weight", &self.conv_k.0),
            ("conv_k.bias", &self.conv_k.1),
            ("eta_gate.weight", &self.eta_gate.0),
            ("eta_gate.bias", &self.eta_gate.1),
            ("token_idx", &self.token_idx),
            ("ttt_norm.weight", &self.ttt_norm.0),
            ("ttt_norm.bias", &self.ttt_norm.1),
            ("post_norm.weight", &self.post_norm.0),
            ("post_norm.bias", &self.post_norm.1),
        ]
        .into_iter()
        .chain(
            fast_names(self.fast_init.w.len())
                .into_iter()
                .zip(self.fast_init.w.iter().zip(&self.fast_init.b))
                .flat_map(|((wn, bn), (w, b))| [(wn, w), (bn, b)]),
        )
        .collect()
    }

    /// Rebuilds the parameters of fast model `kind` from tensors in the order of
    /// [`TttParams::named`], checking every shape against `cfg`.
    pub fn from_named(
        cfg: &TttConfig,
        kind: FastModelKind,
        mut get: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        let (d, f, nh, hd, w) = (
            cfg.hidden_dim,
            cfg.inner_dim(),
            cfg.num_heads,
            cfg.head_dim,
            cfg.conv_width,
        );
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = get(name, shape)?;
            if t.dims() != shape {
                candle::bail!(
                    "ttt: parameter `{name}` has shape {:?}, expected {shape:?}",
                    t.dims()
                );
            }
            Ok(t)
        };
        Ok(Self {
            wq: take("wq", &[d, f])?,
            wv: take("wv", &[d, f])?,
            wg: take("wg", &[d, f])?,
            wo: take("wo", &[f, d])?,
            conv_q: (take("conv_q.weight", &[w, f])?, take("conv_q.bias", &[f])?),
            conv_k: (take("conv_k.weight", &[w, f])?, take("conv_k.bias", &[f])?),
            eta_gate: (
                take("eta_gate.weight", &[d, nh])?,
                take("eta_gate.bias", &[nh])?,
            ),
            token_idx: take("token_idx", &[cfg.mini_batch_size])?,
            ttt_norm: (
                take("ttt_norm.weight", &[nh, 1, hd])?,
                take("ttt_norm.bias", &[nh, 1, hd])?,
            ),
            post_norm: (
                take("post_norm.weight", &[f])?,
                take("post_norm.bias", &[f])?,
            ),
            fast_init: {
                let (mut w, mut b) = (Vec::new(), Vec::new());
                for ((wn, bn), (i, o)) in fast_names(cfg.fast_layers(kind).len())
                    .into_iter()
                    .zip(cfg.fast_layers(kind))
                {
                    w.push(take(wn, &[nh, i, o])?);
                    b.push(take(bn, &[nh, 1, o])?);
                }
                FastModel { w, b }
            },
        })
    }
}

/// Checkpoint names of the fast model's layers: `W0`/`b0` for TTT-Linear, `W1`/`b1`, `W2`/`b2`
/// for TTT-MLP (the official names).
fn fast_names(n_layers: usize) -> Vec<(&'static str, &'static str)> {
    if n_layers == 1 {
        vec![("W0", "b0")]
    } else {
        vec![("W1", "b1"), ("W2", "b2")]
    }
}

/// The initial fast model: weights normal(0.02), biases 0 (the official TTT-MLP scales the
/// second layer by `1/sqrt(2)`, as `0.02/sqrt(2·n_layers)` with one fast layer).
fn init_fast_model(
    cfg: &TttConfig,
    kind: FastModelKind,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<FastModel> {
    let nh = cfg.num_heads;
    let layers = cfg.fast_layers(kind);
    let names = fast_names(layers.len());
    let (mut w, mut b) = (Vec::new(), Vec::new());
    for (l, ((i, o), (wn, _))) in layers.into_iter().zip(names).enumerate() {
        // The original draws W₀ from the stream named after its parameter `W1`.
        let stream = if wn == "W0" { "W1" } else { wn };
        let std = if l == 1 { 0.02 / 2f64.sqrt() } else { 0.02 };
        let mut rng = rng_for(seed, stream);
        w.push(normal((nh, i, o), std, &mut rng, dtype, device)?);
        b.push(Tensor::zeros((nh, 1, o), dtype, device)?);
    }
    Ok(FastModel { w, b })
}
