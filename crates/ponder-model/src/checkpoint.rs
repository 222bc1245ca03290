//! Fast-weight checkpoints: the fast layer and `fast_norm` (never the backbone) as
//! `fast_layer.safetensors`, with their configuration in `fast_layer.json`. Loading checks every
//! tensor's name and shape against the configuration, and the configuration against the
//! backbone it is put on.

use std::collections::BTreeMap;
use std::path::Path;

use candle::{Result, Tensor};
use ponder_gpt2::Gpt2;
use ponder_lora::{LoraFastConfig, LoraFastLayer};
use ponder_ttt::{TttConfig, TttParams};
use serde::{Deserialize, Serialize};

use crate::fast::{FastLayer, FastNorm};
use crate::lm::PonderLm;
use crate::lora::LoraUpdate;

/// File name of the weights.
pub const WEIGHTS_FILE: &str = "fast_layer.safetensors";
/// File name of the configuration.
pub const CONFIG_FILE: &str = "fast_layer.json";

/// What `fast_layer.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastCheckpointConfig {
    /// Format version of the checkpoint (1).
    pub format_version: u32,
    /// The fast layer.
    pub layer: FastLayerConfig,
    /// Epsilon of `fast_norm`.
    pub fast_norm_eps: f64,
}

/// The configuration of a fast layer, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FastLayerConfig {
    /// TTT-Linear.
    TttLinear {
        /// Its configuration.
        ttt: TttConfig,
    },
    /// The LoRA fast layer.
    Lora {
        /// Width of the layer.
        hidden_dim: usize,
        /// Rank of both adapters.
        r: usize,
        /// Numerator of the scale `lora_alpha / r`.
        lora_alpha: f64,
        /// Dropout on the rank-`r` hidden in training.
        lora_dropout: f64,
        /// How UPDATE_k adapts the factors.
        update: LoraUpdate,
    },
}

fn err(path: &Path, msg: impl std::fmt::Display) -> candle::Error {
    candle::Error::Msg(format!("{}: {msg}", path.display()))
}

/// Writes the fast layer and `fast_norm` of `lm` into `dir` (created if needed), each file
/// through a temporary file and a rename.
pub fn save(lm: &PonderLm, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
    let layer = match lm.fast_layer() {
        FastLayer::TttLinear { config, .. } => FastLayerConfig::TttLinear {
            ttt: config.clone(),
        },
        FastLayer::Lora { layer, update } => {
            let c = layer.config();
            FastLayerConfig::Lora {
                hidden_dim: c.hidden_dim,
                r: c.r,
                lora_alpha: c.lora_alpha,
                lora_dropout: c.lora_dropout,
                update: *update,
            }
        }
    };
    let meta = FastCheckpointConfig {
        format_version: 1,
        layer,
        fast_norm_eps: lm.fast_norm().eps,
    };
    let mut tensors: BTreeMap<String, Tensor> = lm
        .fast_layer()
        .named()
        .into_iter()
        .map(|(k, t)| (format!("fast_layer.{k}"), t))
        .collect();
    tensors.insert("fast_norm.weight".into(), lm.fast_norm().weight.clone());
    tensors.insert("fast_norm.bias".into(), lm.fast_norm().bias.clone());
    ponder_nn::save_safetensors(&dir.join(WEIGHTS_FILE), &tensors)?;
    let config = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(&meta).expect("config serializes");
    ponder_base::write_atomic(&config, text.as_bytes())
        .map_err(|e| err(&config, format!("cannot write: {e}")))
}

/// Loads a fast-weight checkpoint from `dir` onto `backbone`.
pub fn load(dir: &Path, backbone: &Gpt2) -> Result<PonderLm> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| err(&config_path, format!("cannot read: {e}")))?;
    let meta: FastCheckpointConfig =
        serde_json::from_str(&text).map_err(|e| err(&config_path, e))?;
    if meta.format_version != 1 {
        return Err(err(
            &config_path,
            format!("unsupported format_version {}", meta.format_version),
        ));
    }
    let d = backbone.config().n_embd;
    let width = match &meta.layer {
        FastLayerConfig::TttLinear { ttt } => {
            ttt.validate().map_err(|e| err(&config_path, e))?;
            ttt.hidden_dim
        }
        FastLayerConfig::Lora { hidden_dim, .. } => *hidden_dim,
    };
    if width != d {
        return Err(err(
            &config_path,
            format!("the fast layer is {width} wide but the backbone is {d} wide: it was trained on another backbone"),
        ));
    }
    let weights_path = dir.join(WEIGHTS_FILE);
    let mut tensors = candle::safetensors::load(&weights_path, backbone.device())
        .map_err(|e| err(&weights_path, e))?;
    let mut take = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let t = tensors.remove(name).ok_or_else(|| {
            err(
                &weights_path,
                format!("missing tensor `{name}` (expected shape {shape:?})"),
            )
        })?;
        if t.dims() != shape {
            return Err(err(
                &weights_path,
                format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.dims()
                ),
            ));
        }
        t.to_dtype(backbone.dtype())
    };
    let norm = FastNorm {
        weight: take("fast_norm.weight", &[d])?,
        bias: take("fast_norm.bias", &[d])?,
        eps: meta.fast_norm_eps,
    };
    let fast = match meta.layer {
        FastLayerConfig::TttLinear { ttt } => {
            let params = TttParams::from_named(&ttt, |name, shape| {
                take(&format!("fast_layer.{name}"), shape)
            })?;
            FastLayer::TttLinear {
                config: ttt,
                params,
            }
        }
        FastLayerConfig::Lora {
            hidden_dim,
            r,
            lora_alpha,
            lora_dropout,
            update,
        } => {
            let config = LoraFastConfig {
                hidden_dim,
                r,
                lora_alpha,
                lora_dropout,
            };
            let mut factors = BTreeMap::new();
            for module in ["q_lora", "v_lora"] {
                for (which, shape) in [("lora_A", [r, d]), ("lora_B", [d, r])] {
                    let key = format!("{module}.{which}.weight");
                    factors.insert(key.clone(), take(&format!("fast_layer.{key}"), &shape)?);
                }
            }
            let layer = LoraFastLayer::from_trainable(config, &factors)
                .map_err(|e| err(&weights_path, e))?;
            FastLayer::Lora { layer, update }
        }
    };
    if let Some(extra) = tensors.keys().next() {
        return Err(err(&weights_path, format!("unexpected tensor `{extra}`")));
    }
    PonderLm::new(backbone, norm, fast)
}
