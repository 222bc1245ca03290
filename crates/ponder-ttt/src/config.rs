//! `TttConfig`: the hyper-parameters of a TTT fast-weight layer, with presets that reproduce the
//! original PonderTTT layer on top of each GPT-2 size.
//!
//! The config reads from TOML or JSON with every field spelled out (unknown keys are errors);
//! only `max_grad_norm` may be left out, meaning no clipping, since TOML has no null.

use serde::{Deserialize, Serialize};

/// Which past inputs the depthwise convolution of the query/key path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvWindow {
    /// The original PonderTTT window `t−4 … t−1`, which excludes the current token (default).
    Shifted,
    /// The official TTT window `t−3 … t`.
    Causal,
}

/// Where the learned per-token learning rate sits in the inner loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtaForm {
    /// The original PonderTTT form: one η_j per key, used for the outputs and the update.
    PerKey,
    /// The official TTT form: η_ij with the token factor on the query row `i` and the learned gate
    /// on the key column `j`; the update uses the last row.
    Matrix,
}

/// The fast model trained in the inner loop: what makes a TTT layer TTT-Linear or TTT-MLP. It is
/// not part of [`TttConfig`]: it is chosen with the layer ([`crate::TttParams::init`]) and read
/// back from the parameters ([`crate::TttParams::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FastModelKind {
    /// TTT-Linear: `f(x) = x W + b` per head (the original's only layer).
    Linear,
    /// TTT-MLP: `f(x) = gelu(x W₁ + b₁) W₂ + b₂` with a hidden width of `4 · head_dim`.
    Mlp,
}

/// Hyper-parameters of a TTT layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TttConfig {
    /// Width of the layer's input and output (`d`, the backbone width).
    pub hidden_dim: usize,
    /// Number of heads; `num_heads · head_dim` is the inner width.
    pub num_heads: usize,
    /// Width of one head's fast model (64 in the original).
    pub head_dim: usize,
    /// Tokens per inner mini-batch (16).
    pub mini_batch_size: usize,
    /// Base learning rate of the inner loop (1.0).
    pub ttt_base_lr: f64,
    /// Decay of the per-token learning rate towards the start of a mini-batch (0 for small,
    /// 0.3 for medium and larger).
    pub eta_decay_rate: f64,
    /// RoPE base (10000).
    pub rope_theta: f64,
    /// Taps of the depthwise convolution (4).
    pub conv_width: usize,
    /// The convolution window.
    pub conv_window: ConvWindow,
    /// Diagonal offset of the in-mini-batch causal mask: 0, or −1 for the strict ablation.
    pub causal_k: i64,
    /// Where η sits (per key in the original).
    pub eta_form: EtaForm,
    /// Epsilon of `ttt_norm` and `post_norm` (1e-5 in the original).
    pub layer_norm_eps: f64,
    /// Optional clip of each mini-batch's inner gradient to this Frobenius norm (off in the
    /// original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
}

impl TttConfig {
    /// The original PonderTTT layer for a GPT-2 of width `hidden_dim` with `num_heads` heads:
    /// head width 64, mini-batches of 16, base learning rate 1, and the η decay of 0.3 for
    /// every size above small.
    pub fn for_gpt2(hidden_dim: usize, num_heads: usize) -> Self {
        Self {
            hidden_dim,
            num_heads,
            head_dim: 64,
            mini_batch_size: 16,
            ttt_base_lr: 1.0,
            eta_decay_rate: if hidden_dim > 768 { 0.3 } else { 0.0 },
            rope_theta: 10_000.0,
            conv_width: 4,
            conv_window: ConvWindow::Shifted,
            causal_k: 0,
            eta_form: EtaForm::PerKey,
            layer_norm_eps: 1e-5,
            max_grad_norm: None,
        }
    }

    /// Checks the invariants the layer relies on.
    pub fn validate(&self) -> candle::Result<()> {
        for (name, v) in [
            ("hidden_dim", self.hidden_dim),
            ("num_heads", self.num_heads),
            ("head_dim", self.head_dim),
            ("mini_batch_size", self.mini_batch_size),
            ("conv_width", self.conv_width),
        ] {
            if v == 0 {
                candle::bail!("ttt config: `{name}` must be positive");
            }
        }
        if self.head_dim % 2 != 0 {
            candle::bail!(
                "ttt config: `head_dim` {} must be even for RoPE",
                self.head_dim
            );
        }
        if !(self.causal_k == 0 || self.causal_k == -1) {
            candle::bail!(
                "ttt config: `causal_k` must be 0 or -1, got {}",
                self.causal_k
            );
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            candle::bail!("ttt config: `layer_norm_eps` must be positive");
        }
        if let Some(max) = self.max_grad_norm {
            if max.is_nan() || max <= 0.0 {
                candle::bail!("ttt config: `max_grad_norm` must be positive, got {max}");
            }
        }
        Ok(())
    }

    /// Width of all heads together.
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// The per-position factor of η inside a mini-batch, without the learned gate:
    /// `base · max(0, 1/(j+1) + offset_j) · exp(decay · (j − (b−1))) · (768/d) / head_dim`.
    /// The learned offsets enter separately, so this returns the constant part for offset 0
    /// split as `(1/(j+1), exp(decay·(j−b+1)))`.
    pub fn token_factors(&self) -> (Vec<f64>, Vec<f64>) {
        let b = self.mini_batch_size;
        let inv: Vec<f64> = (0..b).map(|j| 1.0 / (j as f64 + 1.0)).collect();
        let decay: Vec<f64> = (0..b)
            .map(|j| (self.eta_decay_rate * (j as f64 - (b as f64 - 1.0))).exp())
            .collect();
        (inv, decay)
    }

    /// The scale `base · (768 / d) / head_dim` shared by every η.
    pub fn eta_scale(&self) -> f64 {
        self.ttt_base_lr * (768.0 / self.hidden_dim as f64) / self.head_dim as f64
    }

    /// The layer shapes `(in, out)` of the fast model `kind`, per head.
    pub fn fast_layers(&self, kind: FastModelKind) -> Vec<(usize, usize)> {
        let hd = self.head_dim;
        match kind {
            FastModelKind::Linear => vec![(hd, hd)],
            FastModelKind::Mlp => vec![(hd, 4 * hd), (4 * hd, hd)],
        }
    }

    /// Floating-point operations of UPDATE_`k` on one sequence of `tokens` tokens (2 per
    /// multiply-add of the matrix products; element-wise work and norms left out).
    ///
    /// The projections (Q, K, V, gate in, output) cost the same for every k. Per head and token,
    /// UPDATE_1 (the dual form) takes `K·W`, its gradient `Kᵀ·G` and the readout `Q·W` (`hd²`
    /// each, per fast-model layer) and the mini-batch attention of the dual form and its product
    /// with `G` (`b·hd` each). UPDATE_k for k > 1 (`docs/design/update-k.md`) gives every token its
    /// own weights: per step, `b` keys' forward and gradient at each token's weights (`2·b·hd²`),
    /// plus the carried state's step (`2·hd²`), then the readout (`hd²`). TTT-MLP's two layers
    /// of `hd × 4hd` hold 8 times TTT-Linear's weights.
    pub fn update_flops(&self, kind: FastModelKind, tokens: usize, k: usize) -> f64 {
        let (t, d, nh, hd, b) = (
            tokens as f64,
            self.hidden_dim as f64,
            self.num_heads as f64,
            self.head_dim as f64,
            self.mini_batch_size as f64,
        );
        let proj = 2.0 * t * d * (4.0 * nh * hd) + 2.0 * t * nh * hd * d;
        let width = match kind {
            FastModelKind::Linear => 1.0,
            FastModelKind::Mlp => 8.0,
        };
        let macs_per_head_token = if k <= 1 {
            3.0 * hd * hd * width + 2.0 * b * hd
        } else {
            k as f64 * (2.0 * b + 2.0) * hd * hd * width + hd * hd * width
        };
        proj + 2.0 * t * nh * macs_per_head_token
    }

    /// Trainable parameters of the layer: the four projections, both convolutions, the η gates,
    /// the token offsets, `ttt_norm`, `post_norm` and the initial fast model `kind`.
    pub fn n_params(&self, kind: FastModelKind) -> usize {
        let (d, f, nh, hd) = (
            self.hidden_dim,
            self.inner_dim(),
            self.num_heads,
            self.head_dim,
        );
        let fast: usize = self
            .fast_layers(kind)
            .iter()
            .map(|(i, o)| nh * (i * o + o))
            .sum();
        4 * d * f
            + 2 * (self.conv_width * f + f)
            + nh * (d + 1)
            + self.mini_batch_size
            + 2 * nh * hd
            + 2 * f
            + fast
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = TttConfig::for_gpt2(1024, 16);
        let text = toml::to_string(&c).unwrap();
        assert!(
            text.contains("conv_window = \"shifted\"") && text.contains("eta_form = \"per_key\"")
        );
        assert_eq!(toml::from_str::<TttConfig>(&text).unwrap(), c);
        let err = toml::from_str::<TttConfig>(&format!("{text}\nmini_batch = 8\n")).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `mini_batch`"),
            "{err}"
        );
        let missing = text.replace("rope_theta = 10000.0\n", "");
        assert!(toml::from_str::<TttConfig>(&missing).is_err());
        assert!(TttConfig { causal_k: 2, ..c }.validate().is_err());
    }

    #[test]
    fn parameter_counts_match_the_original() {
        // TTT layer + fast_norm (2·d), as counted by instantiating the original module.
        let count = |d: usize, nh: usize| {
            TttConfig::for_gpt2(d, nh).n_params(FastModelKind::Linear) + 2 * d
        };
        assert_eq!(count(768, 12), 2_430_748);
        assert_eq!(count(1024, 16), 4_293_664);
        assert_eq!(count(1280, 20), 6_682_916);
        assert_eq!(count(1600, 25), 10_409_641);
    }
}
