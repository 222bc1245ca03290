//! Fast-weight checkpoints: the fast layer and `fast_norm` (never the backbone) as
//! `fast_layer.safetensors`, with their configuration in `fast_layer.json`. Loading checks every
//! tensor's name and shape against the configuration, and the configuration against the
//! backbone it is put on.

use std::collections::BTreeMap;
use std::path::Path;

use candle::{Result, Tensor};
use ponder_gpt2::Gpt2;
use ponder_lora::{LoraFastConfig, LoraFastLayer};
use ponder_ttt::{FastModelKind, TttConfig, TttParams};
use serde::{Deserialize, Serialize};

use crate::fast::{FastLayer, FastNorm};
use crate::lm::PonderLm;

/// File name of the weights.
pub const WEIGHTS_FILE: &str = "fast_layer.safetensors";
/// File name of the configuration.
pub const CONFIG_FILE: &str = "fast_layer.json";

/// The format version this crate writes and reads: 2, where the layer's kind (`ttt_linear`,
/// `ttt_mlp`, `lora`) is the one place that says which fast model a TTT layer has.
pub const FORMAT_VERSION: u32 = 2;

/// What `fast_layer.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastCheckpointConfig {
    /// Format version of the checkpoint ([`FORMAT_VERSION`]).
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
    /// TTT-MLP.
    TttMlp {
        /// Its configuration.
        ttt: TttConfig,
    },
    /// The LoRA fast layer.
    Lora {
        /// Its configuration.
        lora: LoraFastConfig,
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
        FastLayer::Ttt { config, params } => match params.kind() {
            FastModelKind::Linear => FastLayerConfig::TttLinear {
                ttt: config.clone(),
            },
            FastModelKind::Mlp => FastLayerConfig::TttMlp {
                ttt: config.clone(),
            },
        },
        FastLayer::Lora { layer } => FastLayerConfig::Lora {
            lora: layer.config().clone(),
        },
    };
    let meta = FastCheckpointConfig {
        format_version: FORMAT_VERSION,
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
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["format_version"].as_u64());
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(err(
            &config_path,
            format!(
                "format_version {}, expected {FORMAT_VERSION} (train the fast layer again with `ponder train fast`)",
                version.map_or("missing".into(), |v| v.to_string())
            ),
        ));
    }
    let meta: FastCheckpointConfig =
        serde_json::from_str(&text).map_err(|e| err(&config_path, e))?;
    let d = backbone.config().n_embd;
    let width = match &meta.layer {
        FastLayerConfig::TttLinear { ttt } | FastLayerConfig::TttMlp { ttt } => {
            ttt.validate().map_err(|e| err(&config_path, e))?;
            ttt.hidden_dim
        }
        FastLayerConfig::Lora { lora } => {
            lora.validate().map_err(|e| err(&config_path, e))?;
            lora.hidden_dim
        }
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
    let kind = match &meta.layer {
        FastLayerConfig::TttMlp { .. } => FastModelKind::Mlp,
        _ => FastModelKind::Linear,
    };
    let fast = match meta.layer {
        FastLayerConfig::TttLinear { ttt: config } | FastLayerConfig::TttMlp { ttt: config } => {
            let params = TttParams::from_named(&config, kind, |name, shape| {
                take(&format!("fast_layer.{name}"), shape)
            })?;
            FastLayer::Ttt { config, params }
        }
        FastLayerConfig::Lora { lora: config } => {
            let r = config.r;
            let mut factors = BTreeMap::new();
            for module in [
                ponder_lora::fast_layer::Q_LORA,
                ponder_lora::fast_layer::V_LORA,
            ] {
                for (which, shape) in [("lora_A", [r, d]), ("lora_B", [d, r])] {
                    let key = format!("{module}.{which}.weight");
                    factors.insert(key.clone(), take(&format!("fast_layer.{key}"), &shape)?);
                }
            }
            let layer = LoraFastLayer::from_trainable(config, &factors)
                .map_err(|e| err(&weights_path, e))?;
            FastLayer::Lora { layer }
        }
    };
    if let Some(extra) = tensors.keys().next() {
        return Err(err(&weights_path, format!("unexpected tensor `{extra}`")));
    }
    PonderLm::new(backbone, norm, fast)
}
