//! The training configuration: one TOML file with sections `[run]`, `[data]`, `[model]` and
//! `[backbone]`, every field that moves a number spelled out (unknown keys are errors), and
//! typed dotted overrides (`--set backbone.steps=100`) that must name an existing key.

use std::path::{Path, PathBuf};

use ponder_gpt2::Gpt2Config;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::precision::Precision;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run identity and output.
    pub run: RunConfig,
    /// Where the code comes from and how it is cut.
    pub data: DataConfig,
    /// The backbone's shape (Hugging Face GPT-2 names); `vocab_size` must match the tokenizer.
    pub model: Gpt2Config,
    /// Backbone pretraining, if the config trains its own backbone (the embedded default; the
    /// GPT-2 presets load OpenAI's weights instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<OptimConfig>,
    /// Fast-layer training (the original's Phase 1), if the config has a `[fast]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<FastTrainConfig>,
    /// The `[eval]` section of method comparisons. Training never reads it; `ponder-eval`
    /// parses and checks it (`CompareConfig`), so it is kept here as a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<toml::Table>,
}

/// Fast-layer training: only the TTT layer and `fast_norm` learn, on top of a frozen backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastTrainConfig {
    /// The frozen backbone: a local folder (e.g. the embedded default's `runs/tiny/model`) or a
    /// Hub id.
    pub backbone: String,
    /// Tokens per chunk (512 in the original).
    pub chunk_len: usize,
    /// UPDATE_k: Adam steps per chunk-batch, each with learning rate `lr / k` (1, 2 or 4).
    pub k: usize,
    /// Chunk-batches.
    pub steps: u64,
    /// Chunks per batch.
    pub batch_size: usize,
    /// Adam learning rate before the division by `k` (3e-4 in the original).
    pub lr: f64,
    /// Global gradient-norm clip (1.0).
    pub grad_clip: f64,
    /// Weight of the mean reconstruction loss in the objective (0.1).
    pub ssl_weight: f64,
    /// Validation every this many steps (and at the end).
    pub eval_every: u64,
    /// Validation chunks per evaluation.
    pub eval_chunks: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// The TTT layer.
    pub ttt: ponder_model::TttConfig,
    /// Compute precision: `"f32"`, or `"bf16"` (f32 master weights and Adam state, bf16 forward
    /// and backward, f32 loss; see [`crate::precision`]).
    pub precision: Precision,
    /// Memory budget (MB) for caching the frozen backbone's hidden states of chunks seen before;
    /// chunks beyond it are recomputed. Changes speed, never numbers.
    #[serde(default = "default_hidden_cache_mb")]
    pub hidden_cache_mb: usize,
}

fn default_hidden_cache_mb() -> usize {
    2048
}

/// Run identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The root seed; every random source derives its own stream from it.
    pub seed: u64,
    /// The run folder (config, metrics, checkpoints).
    pub out_dir: PathBuf,
    /// Where prepared data (manifests, tokenizers, token shards) is cached.
    pub cache_dir: PathBuf,
}

/// The data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Named sources (`python-stdlib`, `cargo-registry`, …), folders, Hugging Face dataset
    /// files in JSON Lines or Parquet (`hf:ORG/NAME:path/in/repo.jsonl` or `.parquet`, read with
    /// the `[data.hf]` columns), or The Stack v2's id files (`hf-stack-v2:path.parquet`), all of
    /// one language.
    pub sources: Vec<String>,
    /// Columns of `hf:` dataset sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf: Option<ponder_data::hf::HfColumns>,
    /// Language of folder sources (`python`, `rust`, …); named sources carry their own.
    pub language: String,
    /// Fraction of files held out for validation.
    pub validation: f64,
    /// Fraction of files held out for testing.
    pub test: f64,
    /// Tokens per training window.
    pub seq_len: usize,
    /// The tokenizer.
    pub tokenizer: TokenizerConfig,
}

/// Which tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerConfig {
    /// GPT-2's BPE (50,257 ids).
    Gpt2,
    /// A byte-level BPE trained on the training split.
    Bpe {
        /// Vocabulary size.
        vocab_size: usize,
        /// Minimum pair frequency for a merge.
        min_frequency: u64,
    },
}

/// An optimization run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Windows per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup: u64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Validation every this many steps (and at the end).
    pub eval_every: u64,
    /// Validation windows per evaluation.
    pub eval_windows: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Compute precision: `"f32"`, or `"bf16"` (f32 master weights and AdamW state, bf16
    /// forward and backward, f32 loss; see [`crate::precision`]).
    pub precision: Precision,
}

impl TrainConfig {
    /// Reads `path`, applies `overrides` (`dotted.key=value`, the value parsed as TOML, or as a
    /// string when it is not TOML), and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |e: toml::de::Error| Error::Config(format!("{}: {e}", path.display()));
        // Resolve first, so that overrides can reach fields filled by defaults too.
        let resolved: Self = toml::from_str(&text).map_err(parse_err)?;
        let mut value = toml::Value::try_from(&resolved).expect("config serializes");
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let config: Self = value.try_into().map_err(parse_err)?;
        config.validate()?;
        Ok(config)
    }

    /// The resolved configuration as TOML, as written into every run folder.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.model
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        let d = &self.data;
        if d.sources.is_empty() {
            return Err(Error::Config("data.sources is empty".into()));
        }
        if d.seq_len < 2 || d.seq_len > self.model.n_positions {
            return Err(Error::Config(format!(
                "data.seq_len {} must be in 2..={} (model.n_positions)",
                d.seq_len, self.model.n_positions
            )));
        }
        let Some(b) = &self.backbone else {
            return Ok(());
        };
        if b.batch_size == 0
            || b.steps == 0
            || b.lr.is_nan()
            || b.lr <= 0.0
            || b.min_lr < 0.0
            || b.grad_clip <= 0.0
        {
            return Err(Error::Config(
                "backbone: steps, batch_size, lr and grad_clip must be positive".into(),
            ));
        }
        if b.eval_every == 0 || b.checkpoint_every == 0 || b.eval_windows == 0 {
            return Err(Error::Config(
                "backbone: eval_every, eval_windows and checkpoint_every must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Sets `dotted.key` in `value` to the parsed right-hand side; the key must already exist.
fn apply_override(value: &mut toml::Value, spec: &str) -> Result<()> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("--set {spec}: expected key=value")))?;
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut cursor = value;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = cursor.as_table_mut().ok_or_else(|| {
            Error::Config(format!(
                "--set {key}: `{}` is not a table",
                parts[..i].join(".")
            ))
        })?;
        let slot = table.get_mut(*part).ok_or_else(|| {
            Error::Config(format!(
                "--set {key}: there is no key `{}` in the config",
                parts[..=i].join(".")
            ))
        })?;
        if i + 1 == parts.len() {
            *slot = parsed;
            return Ok(());
        }
        cursor = slot;
    }
    Err(Error::Config(format!("--set {spec}: empty key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpt2_presets_load_and_mirror_the_original() {
        for (name, d, heads, decay) in [
            ("small", 768, 12, 0.0),
            ("medium", 1024, 16, 0.3),
            ("large", 1280, 20, 0.3),
            ("xl", 1600, 25, 0.3),
        ] {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../configs/{name}.toml"));
            let c = TrainConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let f = c.fast.as_ref().unwrap();
            assert_eq!((c.model.n_embd, c.model.n_head), (d, heads), "{name}");
            assert_eq!(f.ttt, ponder_model::TttConfig::for_gpt2(d, heads), "{name}");
            assert_eq!(f.ttt.eta_decay_rate, decay);
            // §4: batch 16 × 512-token chunks, 160,000 sample-chunks = 10,000 steps, lr 3e-4, clip 1, β 0.1.
            assert_eq!(
                (f.batch_size, f.chunk_len, f.steps),
                (16, 512, 10_000),
                "{name}"
            );
            assert_eq!(
                (f.lr, f.grad_clip, f.ssl_weight, f.k),
                (3e-4, 1.0, 0.1, 1),
                "{name}"
            );
            assert!(c.backbone.is_none());
        }
    }

    fn tiny_toml() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.toml")
    }

    #[test]
    fn the_tiny_preset_loads_and_overrides_apply() {
        let c = TrainConfig::load(
            &tiny_toml(),
            &["backbone.steps=7".into(), "run.out_dir=/tmp/x".into()],
        )
        .unwrap();
        assert_eq!(c.backbone.as_ref().unwrap().steps, 7);
        assert_eq!(c.run.out_dir, PathBuf::from("/tmp/x"));
        let again: TrainConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_and_bad_overrides_are_errors() {
        let err = TrainConfig::load(&tiny_toml(), &["backbone.stepz=7".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("there is no key `backbone.stepz`"), "{err}");
        let err = TrainConfig::load(&tiny_toml(), &["backbone.steps".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected key=value"), "{err}");
        let err = TrainConfig::load(&tiny_toml(), &["backbone.steps=\"many\"".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backbone.steps") || err.contains("invalid type"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = std::fs::read_to_string(tiny_toml())
            .unwrap()
            .replace("[backbone]", "[backbone]\nmomentum = 0.9");
        std::fs::write(&path, text).unwrap();
        let err = TrainConfig::load(&path, &[]).unwrap_err().to_string();
        assert!(err.contains("unknown field `momentum`"), "{err}");
    }

    #[test]
    fn precision_is_required_in_both_sections_and_overridable() {
        let text = std::fs::read_to_string(tiny_toml()).unwrap();
        assert_eq!(text.matches("\nprecision = \"f32\"\n").count(), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (section, next) in [("[backbone]", "[fast]"), ("[fast]", "[fast.ttt]")] {
            // Drop the key from one section only.
            let (head, tail) = text.split_once(section).unwrap();
            let (body, rest) = tail.split_once(next).unwrap();
            let body = body.replace("precision = \"f32\"\n", "");
            std::fs::write(&path, format!("{head}{section}{body}{next}{rest}")).unwrap();
            let err = TrainConfig::load(&path, &[]).unwrap_err().to_string();
            assert!(
                err.contains("missing field `precision`"),
                "{section}: {err}"
            );
        }
        let c = TrainConfig::load(
            &tiny_toml(),
            &[
                "backbone.precision=bf16".into(),
                "fast.precision=\"bf16\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.backbone.unwrap().precision, Precision::Bf16);
        assert_eq!(c.fast.unwrap().precision, Precision::Bf16);
        let err = TrainConfig::load(&tiny_toml(), &["fast.precision=f16".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `f16`"), "{err}");
    }
}
