//! The fast-weight layer that sits on top of the backbone, its normalization, and its state.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor, Var};
use ponder_lora::{LoraFastConfig, LoraFastLayer, LoraState};
use ponder_ttt::{FastModelKind, TttConfig, TttParams, TttState};
use serde::{Deserialize, Serialize};

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

/// Which fast-weight layer an experiment puts on the backbone (`[fast] layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FastLayerKind {
    /// TTT-Linear: the original's layer.
    TttLinear,
    /// TTT-MLP: a TTT layer whose fast model is a two-layer MLP.
    TttMlp,
    /// The LoRA fast layer: LoRA factors on a causal attention readout.
    Lora,
}

impl FastLayerKind {
    /// The name in configs and folder names (`ttt_linear`, `ttt_mlp`, `lora`).
    pub fn name(self) -> &'static str {
        match self {
            Self::TttLinear => "ttt_linear",
            Self::TttMlp => "ttt_mlp",
            Self::Lora => "lora",
        }
    }

    /// The TTT fast model of a TTT kind; `None` for LoRA.
    pub fn ttt_model(self) -> Option<FastModelKind> {
        match self {
            Self::TttLinear => Some(FastModelKind::Linear),
            Self::TttMlp => Some(FastModelKind::Mlp),
            Self::Lora => None,
        }
    }
}

impl std::fmt::Display for FastLayerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The fast-weight layer.
#[derive(Clone)]
pub enum FastLayer {
    /// A TTT layer: TTT-Linear or TTT-MLP, as its parameters hold ([`TttParams::kind`]).
    Ttt {
        /// Its configuration.
        config: TttConfig,
        /// Its slow weights.
        params: TttParams,
    },
    /// The LoRA fast layer with a causal readout.
    Lora {
        /// The layer with its initial factors and its UPDATE_k settings.
        layer: LoraFastLayer,
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

impl FastState {
    /// The same state with gradients cut, for carrying it without back-propagating into the
    /// chunks that made it.
    pub fn detach(&self) -> Self {
        match self {
            Self::Ttt(s) => Self::Ttt(s.detach()),
            Self::Lora(s) => Self::Lora(LoraState {
                per_seq: s
                    .per_seq
                    .iter()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.detach())).collect())
                    .collect(),
            }),
        }
    }

    /// Sequence `i`'s fast weights alone, a state for one sequence: what a stream carries.
    pub fn row(&self, i: usize) -> Result<Self> {
        match self {
            Self::Ttt(s) => Ok(Self::Ttt(s.row(i)?)),
            Self::Lora(s) => match s.per_seq.get(i) {
                Some(f) => Ok(Self::Lora(LoraState {
                    per_seq: vec![f.clone()],
                })),
                None => candle::bail!(
                    "ponder-model: sequence {i} of a LoRA state for {} sequences",
                    s.per_seq.len()
                ),
            },
        }
    }

    /// States of the same fast layer stacked along the sequence axis, in order: the state of a
    /// batch gathered from the states of its streams.
    pub fn cat(states: &[&Self]) -> Result<Self> {
        match states.first() {
            Some(Self::Ttt(_)) => {
                let parts = states
                    .iter()
                    .map(|s| match s {
                        Self::Ttt(t) => Ok(t),
                        Self::Lora(_) => candle::bail!("ponder-model: TTT and LoRA states mixed"),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Self::Ttt(TttState::cat(&parts)?))
            }
            Some(Self::Lora(_)) => {
                let mut per_seq = Vec::new();
                for s in states {
                    match s {
                        Self::Lora(l) => per_seq.extend(l.per_seq.iter().cloned()),
                        Self::Ttt(_) => candle::bail!("ponder-model: TTT and LoRA states mixed"),
                    }
                }
                Ok(Self::Lora(LoraState { per_seq }))
            }
            None => candle::bail!("ponder-model: no states to stack"),
        }
    }
}

impl FastLayer {
    /// A fresh fast layer of `kind` with the TTT config `ttt` or the LoRA config `lora` (the one
    /// `kind` needs), initialized as the original initializes it from `seed`: TTT as
    /// [`TttParams::init`], LoRA with `A` normal(0.02) and `B` 0.
    pub fn init(
        kind: FastLayerKind,
        ttt: Option<&TttConfig>,
        lora: Option<&LoraFastConfig>,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        match (kind.ttt_model(), ttt, lora) {
            (Some(model), Some(config), _) => Ok(Self::Ttt {
                params: TttParams::init(config, model, seed, dtype, device)?,
                config: config.clone(),
            }),
            (None, _, Some(config)) => Ok(Self::Lora {
                layer: LoraFastLayer::new(
                    config.clone(),
                    ponder_lora::Init::ORIGINAL,
                    seed,
                    dtype,
                    device,
                )?,
            }),
            _ => candle::bail!("ponder-model: a {kind} fast layer needs its configuration"),
        }
    }

    /// Which layer this is.
    pub fn kind(&self) -> FastLayerKind {
        match self {
            Self::Ttt { params, .. } => match params.kind() {
                FastModelKind::Linear => FastLayerKind::TttLinear,
                FastModelKind::Mlp => FastLayerKind::TttMlp,
            },
            Self::Lora { .. } => FastLayerKind::Lora,
        }
    }

    /// Width of the layer's input and output.
    pub fn hidden_dim(&self) -> usize {
        match self {
            Self::Ttt { config, .. } => config.hidden_dim,
            Self::Lora { layer, .. } => layer.config().hidden_dim,
        }
    }

    /// Floating-point operations of UPDATE_`k` on one sequence of `tokens` tokens: TTT's from
    /// [`TttConfig::update_flops`]; LoRA's from [`crate::lora::update_flops`], whose steps run the
    /// tied head (`head_flops_per_token` each position).
    pub fn update_flops(&self, tokens: usize, k: usize, head_flops_per_token: f64) -> f64 {
        match self {
            Self::Ttt { config, params } => config.update_flops(params.kind(), tokens, k),
            Self::Lora { layer } => {
                ponder_lora::update_flops(layer.config(), tokens, k, head_flops_per_token)
            }
        }
    }

    /// The state every chunk starts from unless the caller carries one.
    pub fn initial_state(&self, bs: usize) -> Result<FastState> {
        match self {
            Self::Ttt { params, .. } => Ok(FastState::Ttt(params.initial_state(bs)?)),
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
            Self::Ttt { params, .. } => params
                .named()
                .into_iter()
                .map(|(k, t)| (k.to_string(), t.clone()))
                .collect(),
            Self::Lora { layer, .. } => layer.trainable().into_iter().collect(),
        }
    }

    /// The same layer with each parameter replaced by `get(name)` (names as [`FastLayer::named`];
    /// shapes are checked): casts for mixed precision, or vars for training.
    pub fn with_tensors(&self, mut get: impl FnMut(&str) -> Result<Tensor>) -> Result<Self> {
        match self {
            Self::Ttt { config, params } => Ok(Self::Ttt {
                params: TttParams::from_named(config, params.kind(), |name, _| get(name))?,
                config: config.clone(),
            }),
            Self::Lora { layer } => {
                let tensors = layer
                    .trainable()
                    .into_keys()
                    .map(|k| Ok((k.clone(), get(&k)?)))
                    .collect::<Result<BTreeMap<String, Tensor>>>()?;
                Ok(Self::Lora {
                    layer: LoraFastLayer::from_trainable(layer.config().clone(), &tensors)?,
                })
            }
        }
    }

    /// The same layer with every parameter turned into a [`Var`], and the vars by name, for an
    /// optimizer.
    pub fn into_trainable(self) -> Result<(Self, Vec<(String, Var)>)> {
        let vars: Vec<(String, Var)> = self
            .named()
            .into_iter()
            .map(|(k, t)| Ok((k, Var::from_tensor(&t)?)))
            .collect::<Result<_>>()?;
        let layer = self.with_tensors(|name| {
            let (_, v) = vars
                .iter()
                .find(|(k, _)| k == name)
                .expect("every name is present");
            Ok(v.as_tensor().clone())
        })?;
        Ok((layer, vars))
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
