//! GPT-2 weights by Hugging Face name: the expected names and shapes, loading from HF
//! `model.safetensors` files (with or without the `transformer.` prefix, Conv1D weights stored
//! `[in, out]`), GPT-2's random initialization, and saving in the same format.

use std::collections::BTreeMap;
use std::path::Path;

use candle::{DType, Device, Result, Tensor};

use crate::config::Gpt2Config;

/// Parameters by HF name without prefix (`wte.weight`, `h.0.attn.c_attn.weight`, …).
pub type Weights = BTreeMap<String, Tensor>;

/// Every parameter GPT-2 needs, with its shape, in checkpoint order.
pub fn expected_shapes(config: &Gpt2Config) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (config.n_embd, config.inner_dim());
    let mut out = vec![
        ("wte.weight".to_string(), vec![config.vocab_size, d]),
        ("wpe.weight".to_string(), vec![config.n_positions, d]),
    ];
    for i in 0..config.n_layer {
        let p = |s: &str| format!("h.{i}.{s}");
        out.extend([
            (p("ln_1.weight"), vec![d]),
            (p("ln_1.bias"), vec![d]),
            (p("attn.c_attn.weight"), vec![d, 3 * d]),
            (p("attn.c_attn.bias"), vec![3 * d]),
            (p("attn.c_proj.weight"), vec![d, d]),
            (p("attn.c_proj.bias"), vec![d]),
            (p("ln_2.weight"), vec![d]),
            (p("ln_2.bias"), vec![d]),
            (p("mlp.c_fc.weight"), vec![d, f]),
            (p("mlp.c_fc.bias"), vec![f]),
            (p("mlp.c_proj.weight"), vec![f, d]),
            (p("mlp.c_proj.bias"), vec![d]),
        ]);
    }
    out.push(("ln_f.weight".to_string(), vec![d]));
    out.push(("ln_f.bias".to_string(), vec![d]));
    out
}

/// GPT-2's random initialization (transformers' `_init_weights`): embeddings and weight
/// matrices normal(0, `initializer_range`), residual projections (`c_proj`) normal with the
/// standard deviation scaled by `1/sqrt(2·n_layer)`, biases 0, LayerNorm scales 1.
/// Each parameter draws from its own stream derived from `seed` and its name.
pub fn random(config: &Gpt2Config, seed: u64, dtype: DType, device: &Device) -> Result<Weights> {
    config.validate()?;
    let std = config.initializer_range;
    let resid_std = std / (2.0 * config.n_layer as f64).sqrt();
    expected_shapes(config)
        .into_iter()
        .map(|(name, shape)| {
            let t = if name.contains(".ln_") || name.starts_with("ln_f") {
                if name.ends_with(".weight") {
                    Tensor::ones(shape, dtype, device)?
                } else {
                    Tensor::zeros(shape, dtype, device)?
                }
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape, dtype, device)?
            } else {
                let s = if name.ends_with("c_proj.weight") {
                    resid_std
                } else {
                    std
                };
                let mut rng = ponder_nn::init::rng_for(seed, &name);
                ponder_nn::init::normal(shape, s, &mut rng, dtype, device)?
            };
            Ok((name, t))
        })
        .collect()
}

/// Reads the GPT-2 weights from an HF safetensors file, checking every name and shape.
///
/// Keys may carry the `transformer.` prefix; `lm_head.weight` (tied) and the `attn.bias` /
/// `attn.masked_bias` mask buffers are ignored. A missing tensor, a wrong shape, an unknown key
/// or a corrupt file is an error naming the file and the tensor.
pub fn load_safetensors(
    path: &Path,
    config: &Gpt2Config,
    dtype: DType,
    device: &Device,
) -> Result<Weights> {
    let ctx = |msg: String| candle::Error::Msg(format!("{}: {msg}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| ctx(format!("cannot read: {e}")))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| ctx(format!("not a valid safetensors file ({e})")))?;
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for key in file.names() {
        let short = key.strip_prefix("transformer.").unwrap_or(key);
        if short == "lm_head.weight"
            || short.ends_with(".attn.bias")
            || short.ends_with(".attn.masked_bias")
        {
            continue;
        }
        if by_name.insert(short.to_string(), key.to_string()).is_some() {
            return Err(ctx(format!(
                "tensor `{short}` appears both with and without the `transformer.` prefix"
            )));
        }
    }
    let mut weights = Weights::new();
    for (name, shape) in expected_shapes(config) {
        let Some(key) = by_name.remove(&name) else {
            return Err(ctx(format!(
                "missing tensor `{name}` (expected shape {shape:?})"
            )));
        };
        let view = file
            .tensor(&key)
            .map_err(|e| ctx(format!("tensor `{key}`: {e}")))?;
        if view.shape() != shape.as_slice() {
            return Err(ctx(format!(
                "tensor `{key}` has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        let t = candle::safetensors::Load::load(&view, device)
            .map_err(|e| ctx(format!("tensor `{key}`: {e}")))?
            .to_dtype(dtype)?;
        weights.insert(name, t);
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(ctx(format!(
            "unexpected tensor `{extra}` for a {}-layer GPT-2",
            config.n_layer
        )));
    }
    Ok(weights)
}
