//! Fast-weight checkpoints: the fast layer and `fast_norm` (never the backbone) as
//! `fast_layer.safetensors`, with their configuration in `fast_layer.json`. Loading checks every
//! tensor's shape against the configuration and the configuration against the backbone.

use std::collections::HashMap;
use std::path::Path;

use candle::{Device, Result, Tensor};
use ponder_gpt2::Gpt2;
use ponder_ttt::{TttConfig, TttLinearParams};
use serde::{Deserialize, Serialize};

use crate::fast::{FastLayer, FastNorm};
use crate::lm::PonderLm;

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
    /// The layer: `ttt_linear`.
    pub kind: String,
    /// The TTT configuration.
    pub ttt: TttConfig,
    /// Epsilon of `fast_norm`.
    pub fast_norm_eps: f64,
}

fn err(path: &Path, msg: impl std::fmt::Display) -> candle::Error {
    candle::Error::Msg(format!("{}: {msg}", path.display()))
}

/// Writes the fast layer and `fast_norm` of `lm` into `dir` (created if needed), each file
/// through a temporary file and a rename.
pub fn save(lm: &PonderLm, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
    let FastLayer::TttLinear { config, .. } = lm.fast_layer();
    let meta = FastCheckpointConfig {
        format_version: 1,
        kind: "ttt_linear".into(),
        ttt: config.clone(),
        fast_norm_eps: lm.fast_norm().eps,
    };
    let mut tensors: HashMap<String, Tensor> = lm
        .fast_layer()
        .named()
        .into_iter()
        .map(|(k, t)| (format!("fast_layer.{k}"), t))
        .collect();
    tensors.insert("fast_norm.weight".into(), lm.fast_norm().weight.clone());
    tensors.insert("fast_norm.bias".into(), lm.fast_norm().bias.clone());
    let weights = dir.join(WEIGHTS_FILE);
    let tmp = dir.join(format!("{WEIGHTS_FILE}.tmp"));
    candle::safetensors::save(&tensors, &tmp)
        .map_err(|e| err(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, &weights).map_err(|e| err(&weights, format!("cannot rename: {e}")))?;
    let config = dir.join(CONFIG_FILE);
    let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
    let text = serde_json::to_string_pretty(&meta).expect("config serializes");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &config))
        .map_err(|e| err(&config, format!("cannot write: {e}")))
}

/// Loads a fast-weight checkpoint from `dir` onto `backbone`.
pub fn load(dir: &Path, backbone: &Gpt2) -> Result<PonderLm> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| err(&config_path, format!("cannot read: {e}")))?;
    let meta: FastCheckpointConfig =
        serde_json::from_str(&text).map_err(|e| err(&config_path, e))?;
    if meta.format_version != 1 || meta.kind != "ttt_linear" {
        return Err(err(
            &config_path,
            format!(
                "unsupported checkpoint (format {}, kind {:?})",
                meta.format_version, meta.kind
            ),
        ));
    }
    meta.ttt.validate().map_err(|e| err(&config_path, e))?;
    let d = backbone.config().n_embd;
    if meta.ttt.hidden_dim != d {
        return Err(err(
            &config_path,
            format!("the fast layer is {} wide but the backbone is {d} wide: it was trained on another backbone", meta.ttt.hidden_dim),
        ));
    }
    let weights_path = dir.join(WEIGHTS_FILE);
    let device: &Device = backbone.device();
    let tensors =
        candle::safetensors::load(&weights_path, device).map_err(|e| err(&weights_path, e))?;
    let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let t = tensors.get(name).ok_or_else(|| {
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
    let params = TttLinearParams::from_named(&meta.ttt, |name, shape| {
        get(&format!("fast_layer.{name}"), shape)
    })?;
    let norm = FastNorm {
        weight: get("fast_norm.weight", &[d])?,
        bias: get("fast_norm.bias", &[d])?,
        eps: meta.fast_norm_eps,
    };
    let expected = params.named().len() + 2;
    if tensors.len() != expected {
        let known: Vec<String> = params
            .named()
            .iter()
            .map(|(k, _)| format!("fast_layer.{k}"))
            .collect();
        let extra = tensors
            .keys()
            .find(|k| !known.contains(k) && !k.starts_with("fast_norm."))
            .cloned()
            .unwrap_or_default();
        return Err(err(&weights_path, format!("unexpected tensor `{extra}`")));
    }
    PonderLm::new(
        backbone,
        norm,
        FastLayer::TttLinear {
            config: meta.ttt,
            params,
        },
    )
}
