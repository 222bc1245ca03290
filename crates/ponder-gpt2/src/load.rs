//! Where a GPT-2 comes from: a local folder or file, a Hugging Face Hub id, or a seeded random
//! initialization; and saving one in the HF layout (`model.safetensors` + `config.json`).

use std::path::{Path, PathBuf};

use candle::{DType, Device, Result};
use ponder_hub::Hub;

use crate::config::Gpt2Config;
use crate::model::Gpt2;
use crate::weights;

/// Where to load a model from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder holding `config.json` and `model.safetensors`, or a `.safetensors` file with a
    /// `config.json` beside it.
    Local(PathBuf),
    /// A Hugging Face Hub model id such as `openai-community/gpt2` or `gpt2-medium`.
    Hub(String),
}

impl ModelSource {
    /// An existing path is local; anything else is a Hub id.
    pub fn parse(spec: &str) -> Self {
        let path = Path::new(spec);
        if path.exists() {
            Self::Local(path.to_path_buf())
        } else {
            Self::Hub(spec.to_string())
        }
    }
}

/// How to materialize the weights.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The dtype of the weights and activations.
    pub dtype: DType,
    /// The device.
    pub device: Device,
    /// Append a masked `<|pad|>` row with this id (it must equal `vocab_size`, 50257 for GPT-2).
    pub pad_token: Option<u32>,
}

impl LoadOptions {
    /// f32 on the CPU, no pad row.
    pub fn cpu_f32() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
            pad_token: None,
        }
    }
}

/// Loads a GPT-2 from `source`.
pub fn load(source: &ModelSource, hub: &Hub, options: &LoadOptions) -> Result<Gpt2> {
    match source {
        ModelSource::Local(path) => load_local(path, options),
        ModelSource::Hub(id) => {
            let fetch = |file: &str| {
                hub.get(id, file)
                    .map_err(|e| candle::Error::Msg(e.to_string()))
            };
            let config_path = fetch("config.json")?;
            let weights_path = fetch("model.safetensors")?;
            load_files(&config_path, &weights_path, options)
        }
    }
}

/// Loads from a local folder, or from a `.safetensors` file with `config.json` beside it.
pub fn load_local(path: &Path, options: &LoadOptions) -> Result<Gpt2> {
    let (config_path, weights_path) = if path.is_dir() {
        (path.join("config.json"), path.join("model.safetensors"))
    } else {
        let dir = path.parent().unwrap_or(Path::new("."));
        (dir.join("config.json"), path.to_path_buf())
    };
    for p in [&config_path, &weights_path] {
        if !p.is_file() {
            candle::bail!(
                "{}: not found (a GPT-2 folder holds config.json and model.safetensors)",
                p.display()
            );
        }
    }
    load_files(&config_path, &weights_path, options)
}

fn load_files(config_path: &Path, weights_path: &Path, options: &LoadOptions) -> Result<Gpt2> {
    let config = Gpt2Config::from_json_file(config_path)?;
    let w = weights::load_safetensors(weights_path, &config, options.dtype, &options.device)?;
    tracing::info!(path = %weights_path.display(), params = config.n_params(), "loaded GPT-2");
    Gpt2::from_weights(config, w, options.pad_token)
}

/// A GPT-2 with GPT-2's random initialization, seeded.
pub fn random(config: Gpt2Config, seed: u64, options: &LoadOptions) -> Result<Gpt2> {
    let w = weights::random(&config, seed, options.dtype, &options.device)?;
    Gpt2::from_weights(config, w, options.pad_token)
}

/// Writes `model.safetensors` and `config.json` into `dir` (created if needed), loadable by
/// [`load`] and by Hugging Face transformers. The pad row is not written: it is a load option.
pub fn save(model: &Gpt2, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| candle::Error::Msg(format!("{}: cannot create: {e}", dir.display())))?;
    // Each file through a temporary file and a rename, so a crash never leaves half a file.
    ponder_nn::save_safetensors(&dir.join("model.safetensors"), &model.weights()?)?;
    let config = dir.join("config.json");
    ponder_base::write_atomic(&config, model.config().to_hf_json().as_bytes())
        .map_err(|e| candle::Error::Msg(format!("{}: cannot write: {e}", config.display())))
}
