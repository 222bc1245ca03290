//! Turning command-line choices into library values: the device, the dtype, the model and its
//! tokenizer.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle::{DType, Device};
use ponder_data::Tokenizer;
use ponder_gpt2::{Gpt2, Gpt2Config, LoadOptions, ModelSource};
use ponder_hub::{Hub, HubOptions};

use crate::args::{DeviceArg, DtypeArg, Global};

/// The model spec that gives a seeded random tiny GPT-2, for offline smoke runs.
pub const TINY_RANDOM: &str = "tiny-random";

/// The device named by `--device`.
pub fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::new_cuda(0).context(
            "--device cuda: no usable CUDA device (build with `cargo build --release --features cuda` on a machine with a GPU)",
        ),
        DeviceArg::Metal => Device::new_metal(0).context(
            "--device metal: no usable Metal device (build with `cargo build --release --features metal` on macOS)",
        ),
    }
}

/// The dtype named by `--dtype`.
pub fn dtype(arg: DtypeArg) -> DType {
    match arg {
        DtypeArg::F32 => DType::F32,
        DtypeArg::Bf16 => DType::BF16,
        DtypeArg::F16 => DType::F16,
    }
}

/// The Hub client: the environment's settings, with `--offline` forcing offline mode.
pub fn hub(global: &Global) -> Hub {
    let mut options = HubOptions::from_env();
    options.offline |= global.offline;
    Hub::new(options)
}

/// A model and a description of where it came from.
pub struct LoadedModel {
    /// The backbone.
    pub model: Gpt2,
    /// Where it came from, for display.
    pub source: String,
}

/// Loads `spec`: `tiny-random` (= `random:tiny`), `random:PRESET` (a seeded GPT-2-style random
/// initialization of a named preset), a local path, or a Hub id.
pub fn model(global: &Global, spec: &str, seed: u64) -> Result<LoadedModel> {
    let options = LoadOptions {
        dtype: dtype(global.dtype),
        device: device(global.device)?,
        pad_token: None,
    };
    let preset = if spec == TINY_RANDOM {
        Some("tiny")
    } else {
        spec.strip_prefix("random:")
    };
    if let Some(name) = preset {
        let config = Gpt2Config::preset(name).with_context(|| {
            format!("unknown preset {name:?} in --model {spec} (tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl)")
        })?;
        let model = ponder_gpt2::random(config, seed, &options)?;
        return Ok(LoadedModel {
            model,
            source: format!("random {name} (seed {seed})"),
        });
    }
    let source = ModelSource::parse(spec);
    let hub = hub(global);
    let model = ponder_gpt2::load(&source, &hub, &options).with_context(|| match &source {
        ModelSource::Hub(id) if looks_like_a_path(id) => format!(
            "loading model {spec}: there is no model folder at {spec}; a trained backbone is made by `ponder train backbone --config C` (the embedded default's is runs/tiny/model)"
        ),
        ModelSource::Hub(id) => format!(
            "loading model {spec}: the Hub model {} is not in the Hugging Face cache ({}) and could not be fetched; on a machine with network, `ponder info --model {spec}` downloads it into the cache (copy the cache's `models--…` folder to use it offline)",
            ponder_hub::canonical_repo(id),
            hub.options().cache_dir.display()
        ),
        ModelSource::Local(_) => format!("loading model {spec}"),
    })?;
    let source = match source {
        ModelSource::Local(p) => format!("local {}", p.display()),
        ModelSource::Hub(id) => format!("hub {}", ponder_hub::canonical_repo(&id)),
    };
    Ok(LoadedModel { model, source })
}

/// Whether a model spec that names no existing file is meant as a path rather than a Hub id
/// (`org/name` or `name`): it has more than one `/`, starts with `.`, `/` or `~`, or names a
/// `.safetensors` file.
fn looks_like_a_path(spec: &str) -> bool {
    spec.matches('/').count() > 1
        || spec.starts_with(['.', '/', '~'])
        || spec.ends_with(".safetensors")
}

/// The trained fast layer in `dir` (a `fast_layer/` folder of `ponder train fast`) on
/// `backbone`, an error naming the folder otherwise.
pub fn fast_layer(dir: &Path, backbone: &Gpt2) -> Result<ponder_model::PonderLm> {
    ponder_model::checkpoint::load(dir, backbone).with_context(|| {
        format!(
            "loading the fast layer from {} (train it with `ponder train fast`)",
            dir.display()
        )
    })
}

/// The `tokenizer.json` beside a local model (in its folder, or beside its file), if there is
/// one; never for the seeded random models.
fn tokenizer_beside(model_spec: &str) -> Option<PathBuf> {
    if model_spec == TINY_RANDOM || model_spec.starts_with("random:") {
        return None;
    }
    let local = Path::new(model_spec);
    let beside = if local.is_dir() {
        Some(local.join(ponder_data::tokenizer::TOKENIZER_FILE))
    } else {
        local
            .parent()
            .map(|d| d.join(ponder_data::tokenizer::TOKENIZER_FILE))
    };
    beside.filter(|p| p.is_file())
}

/// The tokenizer for `model_spec`: `--tokenizer` if given, else a `tokenizer.json` beside a
/// local model, else GPT-2's compiled-in BPE when the model has GPT-2's vocabulary.
pub fn tokenizer(
    global: &Global,
    explicit: Option<&str>,
    model_spec: &str,
    model: &Gpt2,
) -> Result<Tokenizer> {
    if let Some(spec) = explicit {
        let path = Path::new(spec);
        return if path.exists() {
            Ok(Tokenizer::from_file(path)?)
        } else {
            Tokenizer::from_hub(&hub(global), spec)
                .with_context(|| format!("loading tokenizer {spec}"))
        };
    }
    if let Some(p) = tokenizer_beside(model_spec) {
        return Ok(Tokenizer::from_file(&p)?);
    }
    let vocab = model.config().vocab_size;
    if vocab == 50_257 {
        return Ok(Tokenizer::gpt2()?);
    }
    bail!("model {model_spec} has a vocabulary of {vocab}, not GPT-2's 50257, and no tokenizer.json beside it: pass --tokenizer")
}

/// Errors when a local model has a `tokenizer.json` beside it that is not `data`, the tokenizer
/// the config's data is encoded with: a backbone trained on another corpus (or a BPE retrained
/// since) would read the token ids as other tokens and every loss would be meaningless.
pub fn check_same_tokenizer(
    model_spec: &str,
    data: &Tokenizer,
    data_path: Option<&Path>,
) -> Result<()> {
    let Some(beside) = tokenizer_beside(model_spec) else {
        return Ok(());
    };
    let model = Tokenizer::from_file(&beside)?;
    if model.fingerprint() != data.fingerprint() {
        bail!(
            "the backbone {model_spec} was trained with the tokenizer {}, but the config's data is encoded with {} ({} ids): they differ (the corpus or the BPE settings changed since the backbone was trained), so the losses would be meaningless; retrain the backbone with this config or point [fast] backbone at one trained with it",
            beside.display(),
            data_path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| data.kind().to_string()),
            data.vocab_size()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bpe(text: &str) -> Tokenizer {
        let texts: Vec<String> = (0..20).map(|i| format!("{text} {i}\n")).collect();
        Tokenizer::train_byte_level_bpe(&texts, 300, 2).unwrap()
    }

    #[test]
    fn a_backbone_with_another_tokenizer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        let spec = model.to_str().unwrap();
        let ours = bpe("def add(a, b): return a + b");
        // No tokenizer.json beside the model: nothing to check.
        check_same_tokenizer(spec, &ours, None).unwrap();
        ours.save(&model.join("tokenizer.json")).unwrap();
        check_same_tokenizer(spec, &ours, None).unwrap();
        let theirs = bpe("function mul(x, y) { return x * y; }");
        let data_path = dir.path().join("data-tokenizer.json");
        let err = check_same_tokenizer(spec, &theirs, Some(&data_path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("model/tokenizer.json"), "{err}");
        assert!(err.contains("data-tokenizer.json"), "{err}");
        assert!(err.contains("they differ"), "{err}");
    }
}
