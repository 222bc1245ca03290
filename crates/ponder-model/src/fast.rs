//! The fast-weight layer that sits on top of the backbone, its normalization, and its state.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor, Var};
use ponder_lora::{LoraFastConfig, LoraFastLayer};
use ponder_ttt::{TttConfig, TttParams, TttState};

use crate::lora::{LoraState, LoraUpdate};

/// `fast_norm`: LayerNorm over the backbone width in front of the fast layer (eps 1e-5, scale 1
/// and bias 0 at initialization). Trainable with the fast layer.
#[derive(Clone)]
pub struct FastNorm {
    /// Scale `(d)`.
    pub weight: Tensor,
    /// Bias `(d)`.
    pub bias: Tensor,
    /// Epsilon.
    pub eps: f64,
}

impl FastNorm {
    /// Scale 1, bias 0, eps 1e-5, as the original initializes it.
    pub fn init(d: usize, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            weight: Tensor::ones(d, dtype, device)?,
            bias: Tensor::zeros(d, dtype, device)?,
            eps: 1e-5,
        })
    }

    /// # Shapes
    /// - `x`: `(b, t, d)`; returns `(b, t, d)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ponder_nn::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// The fast-weight layer.
#[derive(Clone)]
pub enum FastLayer {
    /// TTT-Linear.
    TttLinear {
        /// Its configuration.
        config: TttConfig,
        /// Its slow weights.
        params: TttParams,
    },
    /// The LoRA fast layer with a causal readout.
    Lora {
        /// The layer with its initial factors.
        layer: LoraFastLayer,
        /// How UPDATE_k adapts the factors.
        update: LoraUpdate,
    },
}

/// The fast weights of a batch of sequences, passed from chunk to chunk by the caller.
#[derive(Debug, Clone)]
pub enum FastState {
    /// TTT fast weights.
    Ttt(TttState),
    /// LoRA factors per sequence.
    Lora(LoraState),
}

impl FastLayer {
    /// A LoRA fast layer with the original's configuration for width `d` and rank `r`
    /// (`lora_alpha = r`, dropout 0.1, A normal(0.02), B 0).
    pub fn lora_original(
        d: usize,
        r: usize,
        update: LoraUpdate,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let layer = LoraFastLayer::new(
            LoraFastConfig::original(d, r),
            ponder_lora::Init::ORIGINAL,
            seed,
            dtype,
            device,
        )?;
        Ok(Self::Lora { layer, update })
    }

    /// Width of the layer's input and output.
    pub fn hidden_dim(&self) -> usize {
        match self {
            Self::TttLinear { config, .. } => config.hidden_dim,
            Self::Lora { layer, .. } => layer.config().hidden_dim,
        }
    }

    /// Floating-point operations of UPDATE_`k` on one sequence of `tokens` tokens: TTT's from
    /// [`TttConfig::update_flops`]; LoRA's from [`crate::lora::update_flops`], whose steps run the
    /// tied head (`head_flops_per_token` each position).
    pub fn update_flops(&self, tokens: usize, k: usize, head_flops_per_token: f64) -> f64 {
        match self {
            Self::TttLinear { config, .. } => config.update_flops(tokens, k),
            Self::Lora { layer, update } => {
                crate::lora::update_flops(layer.config(), update, tokens, k, head_flops_per_token)
            }
        }
    }

    /// The state every chunk starts from unless the caller carries one.
    pub fn initial_state(&self, bs: usize) -> Result<FastState> {
        match self {
            Self::TttLinear { params, .. } => Ok(FastState::Ttt(params.initial_state(bs)?)),
            Self::Lora { layer, .. } => {
                let factors: BTreeMap<String, Tensor> = layer
                    .trainable()
                    .into_iter()
                    .map(|(k, v)| (k, v.detach()))
                    .collect();
                Ok(FastState::Lora(LoraState {
                    per_seq: vec![factors; bs],
                }))
            }
        }
    }

    /// The parameters by checkpoint name (without the `fast_layer.` prefix).
    pub fn named(&self) -> Vec<(String, Tensor)> {
        match self {
            Self::TttLinear { params, .. } => params
                .named()
                .into_iter()
                .map(|(k, t)| (k.to_string(), t.clone()))
                .collect(),
            Self::Lora { layer, .. } => layer.trainable().into_iter().collect(),
        }
    }

    /// The same layer with every parameter turned into a [`Var`], and the vars by name, for an
    /// optimizer.
    pub fn into_trainable(self) -> Result<(Self, Vec<(String, Var)>)> {
        match self {
            Self::TttLinear { config, params } => {
                let named = params.named();
                let vars: Vec<(String, Var)> = named
                    .iter()
                    .map(|(k, t)| Ok((k.to_string(), Var::from_tensor(t)?)))
                    .collect::<Result<_>>()?;
                let params = TttParams::from_named(&config, |name, _| {
                    let (_, v) = vars
                        .iter()
                        .find(|(k, _)| k == name)
                        .expect("every name is present");
                    Ok(v.as_tensor().clone())
                })?;
                Ok((Self::TttLinear { config, params }, vars))
            }
            Self::Lora { layer, update } => {
                let vars: Vec<(String, Var)> = layer
                    .trainable()
                    .into_iter()
                    .map(|(k, t)| Ok((k, Var::from_tensor(&t)?)))
                    .collect::<Result<_>>()?;
                let tracked: BTreeMap<String, Tensor> = vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                    .collect();
                let layer = LoraFastLayer::from_trainable(layer.config().clone(), &tracked)?;
                Ok((Self::Lora { layer, update }, vars))
            }
        }
    }
}

impl FastNorm {
    /// The same norm with trainable scale and bias, and the vars by name.
    pub fn into_trainable(self) -> Result<(Self, Vec<(String, Var)>)> {
        let (w, b) = (
            Var::from_tensor(&self.weight)?,
            Var::from_tensor(&self.bias)?,
        );
        let norm = Self {
            weight: w.as_tensor().clone(),
            bias: b.as_tensor().clone(),
            eps: self.eps,
        };
        Ok((norm, vec![("weight".into(), w), ("bias".into(), b)]))
    }
}
