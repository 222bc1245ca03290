//! The original PonderTTT initialization of a TTT-Linear layer (upstream-spec §2.2).

use candle::{DType, Device, Result, Tensor};
use ponder_nn::init::{normal, rng_for, truncated_normal};

use crate::config::TttConfig;
use crate::linear::TttLinearParams;

impl TttLinearParams {
    /// Parameters as the original initializes them: `wq`, `wv`, `wg` and the η gates
    /// `lecun_normal` (truncated normal, std `1/sqrt(fan_in)`), `wo` zero (so the layer's output
    /// is 0 and UPDATE equals SKIP until it trains), convolution taps `lecun_normal` with fan-in
    /// `conv_width`, biases and token offsets 0, norms at scale 1 and bias 0, `W₀` normal(0.02),
    /// `c₀` 0. Each tensor draws from its own stream of `seed`.
    pub fn init(cfg: &TttConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
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
        let mut w0_rng = rng_for(seed, "W1");
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
            w0: normal((nh, hd, hd), 0.02, &mut w0_rng, dtype, device)?,
            b0: zeros(&[nh, 1, hd])?,
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
            ("W0", &self.w0),
            ("b0", &self.b0),
        ]
    }

    /// Rebuilds the parameters from tensors in the order of [`TttLinearParams::named`], checking
    /// every shape against `cfg`.
    pub fn from_named(
        cfg: &TttConfig,
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
            w0: take("W0", &[nh, hd, hd])?,
            b0: take("b0", &[nh, 1, hd])?,
        })
    }
}
