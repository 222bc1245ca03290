//! The fast-weight layer that sits on top of the backbone, its normalization, and its state.

use candle::{DType, Device, Result, Tensor, Var};
use ponder_ttt::{TttConfig, TttLinearParams, TttState};

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
        params: TttLinearParams,
    },
}

/// The fast weights of a batch of sequences, passed from chunk to chunk by the caller.
#[derive(Debug, Clone)]
pub enum FastState {
    /// TTT fast weights.
    Ttt(TttState),
}

impl FastLayer {
    /// Width of the layer's input and output.
    pub fn hidden_dim(&self) -> usize {
        match self {
            Self::TttLinear { config, .. } => config.hidden_dim,
        }
    }

    /// The state every chunk starts from unless the caller carries one.
    pub fn initial_state(&self, bs: usize) -> Result<FastState> {
        match self {
            Self::TttLinear { params, .. } => Ok(FastState::Ttt(params.initial_state(bs)?)),
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
                let params = TttLinearParams::from_named(&config, |name, _| {
                    let (_, v) = vars
                        .iter()
                        .find(|(k, _)| k == name)
                        .expect("every name is present");
                    Ok(v.as_tensor().clone())
                })?;
                Ok((Self::TttLinear { config, params }, vars))
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
