//! `LoraFastLayer`: the LoRA fast-weight layer of PonderTTT, a causal single-head attention
//! readout over the chunk whose queries and values carry LoRA updates.
//!
//! It sits where the TTT layer sits (after `fast_norm`; the caller adds its output to the
//! residual stream). With `Δ(x) = scale · B dropout(A x)` and identity bases,
//! `q = h + Δq(h)`, `k = h`, `v = h + Δv(h)` and `y = softmax(q kᵀ / √d) v`.
//! The original (`src/ponderttt/models/lora_layer_nnx.py` in deveworld/ponderTTT, described in
//! `docs/original.md` §4.2) had no causal mask, so every position read the future tokens of
//! its chunk; this layer masks them with [`ponder_nn::causal_softmax`].
//! Note that `y` is not zero at initialization (`B = 0` gives `softmax(h hᵀ/√d) h`), unlike the
//! TTT layer's zero-initialized output projection.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor};
use ponder_nn::Dropout;
use serde::{Deserialize, Serialize};

use crate::adapter::LoraAdapter;
use crate::config::{Init, LoraConfig};
use crate::factors::{LoraFactors, ModuleDims};
use crate::update::LoraUpdate;

/// Module name of the query adapter.
pub const Q_LORA: &str = "q_lora";
/// Module name of the value adapter.
pub const V_LORA: &str = "v_lora";

/// Hyper-parameters of [`LoraFastLayer`]: the adapters, with PEFT's names, and how UPDATE_k
/// adapts them. An experiment's `[fast.lora]` section and a checkpoint's `fast_layer.json` both
/// read into it (unknown keys refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraFastConfig {
    /// Width `d` of the layer's input and output (the backbone width).
    pub hidden_dim: usize,
    /// Rank of both adapters.
    pub r: usize,
    /// Numerator of the scale `lora_alpha / r`.
    pub lora_alpha: f64,
    /// Dropout probability on the rank-`r` hidden during training.
    pub lora_dropout: f64,
    /// How UPDATE_k adapts the factors.
    pub update: LoraUpdate,
}

impl LoraFastConfig {
    /// The original layer for width `hidden_dim` and rank `r`: `lora_alpha = r` (scale 1) and
    /// dropout 0.1, adapting with `update` (the original had no UPDATE_k for this layer). The
    /// original suggests r = 64 / 128 / 256 for GPT-2 small / medium / large.
    pub fn original(hidden_dim: usize, r: usize, update: LoraUpdate) -> Self {
        Self {
            hidden_dim,
            r,
            lora_alpha: r as f64,
            lora_dropout: 0.1,
            update,
        }
    }

    /// The layer described by a PEFT-style config, whose `target_modules` must be exactly
    /// `q_lora` and `v_lora` (in any order), adapting with `update`.
    pub fn from_lora(hidden_dim: usize, lora: &LoraConfig, update: LoraUpdate) -> Result<Self> {
        let mut targets: Vec<&str> = lora.target_modules.iter().map(String::as_str).collect();
        targets.sort_unstable();
        if targets != [Q_LORA, V_LORA] {
            candle::bail!(
                "lora fast layer: target_modules is {:?}, expected [\"{Q_LORA}\", \"{V_LORA}\"]",
                lora.target_modules
            );
        }
        let config = Self {
            hidden_dim,
            r: lora.r,
            lora_alpha: lora.lora_alpha,
            lora_dropout: lora.lora_dropout,
            update,
        };
        config.validate()?;
        Ok(config)
    }

    /// The PEFT-style config of this layer, with target modules `q_lora` and `v_lora`.
    pub fn lora_config(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            target_modules: vec![Q_LORA.to_string(), V_LORA.to_string()],
        }
    }

    /// Floating-point operations of the layer's readout over a prefix of `tokens` tokens (2 per
    /// multiply-add): both adapters (`2·d·r` each per token) and the causal attention (`QKᵀ` and
    /// `AV`, about `t·d/2` each per token).
    pub fn forward_flops(&self, tokens: usize) -> f64 {
        let (t, d, r) = (tokens as f64, self.hidden_dim as f64, self.r as f64);
        2.0 * (t * 4.0 * d * r + t * t * d)
    }

    /// The scale `lora_alpha / r`.
    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    /// Checks `hidden_dim > 0`, the LoRA fields (see [`LoraConfig::validate`]) and the update's.
    pub fn validate(&self) -> Result<()> {
        if self.hidden_dim == 0 {
            candle::bail!("lora fast layer: hidden_dim must be > 0, got 0");
        }
        let u = &self.update;
        if !(u.lr.is_finite() && u.lr >= 0.0) {
            candle::bail!(
                "lora fast layer: update.lr = {}, expected a finite lr >= 0",
                u.lr
            );
        }
        if u.block_size == 0 {
            candle::bail!("lora fast layer: update.block_size must be > 0, got 0");
        }
        if let Some(m) = u.max_grad_norm {
            if !(m.is_finite() && m > 0.0) {
                candle::bail!(
                    "lora fast layer: update.max_grad_norm = {m}, expected a positive number"
                );
            }
        }
        self.lora_config().validate()
    }

    /// The expected widths of both modules (`d → d`), for [`LoraAdapter::load`].
    pub fn module_dims(&self) -> BTreeMap<String, ModuleDims> {
        let dims = ModuleDims {
            in_dim: self.hidden_dim,
            out_dim: self.hidden_dim,
        };
        [Q_LORA, V_LORA]
            .into_iter()
            .map(|name| (name.to_string(), dims))
            .collect()
    }
}

/// The LoRA fast-weight layer: two `d → d` adapters and a causal attention readout.
#[derive(Debug, Clone)]
pub struct LoraFastLayer {
    config: LoraFastConfig,
    q_lora: LoraFactors,
    v_lora: LoraFactors,
}

impl LoraFastLayer {
    /// A fresh layer: each `A` from `init` with its own stream of `seed` (named after its key,
    /// e.g. `q_lora.lora_A.weight`), each `B` zeros.
    pub fn new(
        config: LoraFastConfig,
        init: Init,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let dims = ModuleDims {
            in_dim: config.hidden_dim,
            out_dim: config.hidden_dim,
        };
        let fresh = |name: &str| {
            let mut rng = ponder_nn::init::rng_for(seed, &format!("{name}.lora_A.weight"));
            LoraFactors::init(
                dims,
                config.r,
                config.scale(),
                init,
                &mut rng,
                dtype,
                device,
            )
        };
        let (q_lora, v_lora) = (fresh(Q_LORA)?, fresh(V_LORA)?);
        Self::from_factors(config, q_lora, v_lora)
    }

    /// A layer from given factors, which must be `d → d` with rank `r` and scale
    /// `lora_alpha / r`.
    pub fn from_factors(
        config: LoraFastConfig,
        q_lora: LoraFactors,
        v_lora: LoraFactors,
    ) -> Result<Self> {
        config.validate()?;
        let mut modules = BTreeMap::new();
        modules.insert(Q_LORA.to_string(), q_lora);
        modules.insert(V_LORA.to_string(), v_lora);
        // The adapter checks rank, scale and names; the widths are checked here.
        let adapter = LoraAdapter::new(config.lora_config(), modules)?;
        let mut modules = adapter.into_modules();
        for (name, factors) in &modules {
            if factors.in_dim() != config.hidden_dim || factors.out_dim() != config.hidden_dim {
                candle::bail!(
                    "lora fast layer: {name} has A {:?} and B {:?}, expected ({}, {d}) and ({d}, {})",
                    factors.a().dims(),
                    factors.b().dims(),
                    config.r,
                    config.r,
                    d = config.hidden_dim
                );
            }
        }
        let (Some(q_lora), Some(v_lora)) = (modules.remove(Q_LORA), modules.remove(V_LORA)) else {
            candle::bail!("lora fast layer: q_lora or v_lora missing");
        };
        Ok(Self {
            config,
            q_lora,
            v_lora,
        })
    }

    /// A layer from tensors named as [`LoraFastLayer::trainable`] names them, e.g. from the
    /// caller's `candle::Var`s; every key must be present, with the right shape, and no other.
    pub fn from_trainable(
        config: LoraFastConfig,
        tensors: &BTreeMap<String, Tensor>,
    ) -> Result<Self> {
        let expected =
            [Q_LORA, V_LORA].map(|m| [format!("{m}.lora_A.weight"), format!("{m}.lora_B.weight")]);
        if let Some(extra) = tensors
            .keys()
            .find(|k| !expected.iter().flatten().any(|e| e == *k))
        {
            candle::bail!("lora fast layer: unexpected trainable tensor `{extra}`");
        }
        let scale = config.scale();
        let factors = |[a, b]: &[String; 2]| -> Result<LoraFactors> {
            let get = |key: &String| {
                tensors.get(key).cloned().ok_or_else(|| {
                    candle::Error::Msg(format!("lora fast layer: missing trainable tensor `{key}`"))
                })
            };
            LoraFactors::new(get(a)?, get(b)?, scale)
        };
        let [q, v] = &expected;
        Self::from_factors(config, factors(q)?, factors(v)?)
    }

    /// The layer from a loaded adapter with modules `q_lora` and `v_lora`, adapting with
    /// `update` (a PEFT adapter does not say how it adapts).
    pub fn from_adapter(
        hidden_dim: usize,
        adapter: &LoraAdapter,
        update: LoraUpdate,
    ) -> Result<Self> {
        let config = LoraFastConfig::from_lora(hidden_dim, adapter.config(), update)?;
        let get = |name: &str| {
            adapter.modules().get(name).cloned().ok_or_else(|| {
                candle::Error::Msg(format!("lora fast layer: adapter has no module `{name}`"))
            })
        };
        Self::from_factors(config, get(Q_LORA)?, get(V_LORA)?)
    }

    /// The layer as a PEFT adapter (modules `q_lora` and `v_lora`), for [`LoraAdapter::save`].
    pub fn to_adapter(&self) -> Result<LoraAdapter> {
        let modules = [(Q_LORA, &self.q_lora), (V_LORA, &self.v_lora)]
            .into_iter()
            .map(|(name, f)| (name.to_string(), f.clone()))
            .collect();
        LoraAdapter::new(self.config.lora_config(), modules)
    }

    /// The four trainable factors by name: `q_lora.lora_A.weight`, `q_lora.lora_B.weight`,
    /// `v_lora.lora_A.weight`, `v_lora.lora_B.weight`.
    pub fn trainable(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (name, f) in [(Q_LORA, &self.q_lora), (V_LORA, &self.v_lora)] {
            out.insert(format!("{name}.lora_A.weight"), f.a().clone());
            out.insert(format!("{name}.lora_B.weight"), f.b().clone());
        }
        out
    }

    /// The config.
    pub fn config(&self) -> &LoraFastConfig {
        &self.config
    }

    /// The query adapter's factors.
    pub fn q_lora(&self) -> &LoraFactors {
        &self.q_lora
    }

    /// The value adapter's factors.
    pub fn v_lora(&self) -> &LoraFactors {
        &self.v_lora
    }

    /// A dropout source with this layer's `lora_dropout`, seeded with `seed`.
    pub fn dropout(&self, seed: u64) -> Result<Dropout> {
        Dropout::new(self.config.lora_dropout, seed)
    }

    /// Inference forward, no dropout: `softmax(q kᵀ/√d + causal mask) v`.
    ///
    /// # Shapes
    /// - `h`: `(b, t, d)`, the normalized hidden states; returns `(b, t, d)`.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        self.check_input(h)?;
        let q = (h + self.q_lora.delta(h)?)?; // (b, t, d)
        let v = (h + self.v_lora.delta(h)?)?; // (b, t, d)
        self.readout(&q, h, &v)
    }

    /// Training forward with the original's dropout on each adapter's rank-`r` hidden; the
    /// query adapter draws its mask first. `dropout` must have this layer's `lora_dropout`.
    ///
    /// # Shapes
    /// - `h`: `(b, t, d)`, the normalized hidden states; returns `(b, t, d)`.
    pub fn forward_train(&self, h: &Tensor, dropout: &mut Dropout) -> Result<Tensor> {
        self.check_input(h)?;
        if dropout.p() != self.config.lora_dropout {
            candle::bail!(
                "lora fast layer: dropout has p = {}, expected lora_dropout = {}",
                dropout.p(),
                self.config.lora_dropout
            );
        }
        let q = (h + self.q_lora.delta_train_hidden(h, dropout)?)?; // (b, t, d)
        let v = (h + self.v_lora.delta_train_hidden(h, dropout)?)?; // (b, t, d)
        self.readout(&q, h, &v)
    }

    /// `causal_softmax(q kᵀ, 1/√d) v`.
    fn readout(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let scale = 1.0 / (self.config.hidden_dim as f64).sqrt();
        let scores = q.matmul(&k.t()?)?; // (b, t, t)
        let probs = ponder_nn::causal_softmax(&scores, scale)?; // (b, t, t)
        probs.matmul(&v.contiguous()?) // (b, t, d)
    }

    fn check_input(&self, h: &Tensor) -> Result<()> {
        let d = self.config.hidden_dim;
        match h.dims() {
            &[_, _, hd] if hd == d => Ok(()),
            dims => candle::bail!("lora fast layer: h has shape {dims:?}, expected (b, t, {d})"),
        }
    }
}
