//! [`ExperimentConfig`]: one TOML file with every section of an experiment, each typed
//! (`[run] [data] [model] [backbone] [fast] [fast.ttt | fast.lora] [eval] [policy]`), every field that
//! moves a number spelled out, unknown keys refused; typed dotted overrides
//! (`--set fast.k=2`) that must name an existing key; and the sections each stage of an
//! experiment is made from ([`Stage`]), which decide when a finished run folder still fits.

use std::path::{Path, PathBuf};

use ponder_data::DataConfig;
use ponder_gpt2::Gpt2Config;
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};
use crate::sections::{BackboneConfig, EvalConfig, FastConfig, PolicyConfig};

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run identity and output.
    pub run: RunConfig,
    /// Where the code comes from and how it is cut.
    pub data: DataConfig,
    /// The backbone's shape (Hugging Face GPT-2 names); `vocab_size` must match the tokenizer.
    pub model: Gpt2Config,
    /// Backbone pretraining, if the experiment trains its own backbone (the embedded default;
    /// the GPT-2 presets load OpenAI's weights instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<BackboneConfig>,
    /// The fast layer and its training (the original's Phase 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<FastConfig>,
    /// The method comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalConfig>,
    /// The learned gate's training (stream mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
}

/// Run identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The root seed; every random source derives its own stream from it.
    pub seed: u64,
    /// The experiment folder (every run folder of the experiment is under it).
    pub out_dir: PathBuf,
    /// Where prepared data (manifests, tokenizers, token shards) is cached.
    pub cache_dir: PathBuf,
}

/// A stage of an experiment, each with its own run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Pretraining the backbone: reads `[run] [data] [model] [backbone]`.
    Backbone,
    /// Training the fast layer: also reads `[fast]`.
    Fast,
    /// Training the learned gate on a trained fast layer: also reads `[policy]`.
    Policy,
    /// Evaluating, comparing or measuring a trained fast layer: reads every section.
    Eval,
}

/// The message of a gate error, as a config error.
pub(crate) fn gate_err(e: ponder_gate::Error) -> Error {
    match e {
        ponder_gate::Error::Config(m) => Error::Config(m),
        other => Error::Config(other.to_string()),
    }
}

impl ExperimentConfig {
    /// Reads `path`, applies `overrides` (`dotted.key=value`, the value parsed as TOML, or as a
    /// string when it is not TOML), and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        Self::from_toml(&text, overrides).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// [`ExperimentConfig::load`] on the text of a config file.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self> {
        let parse_err = |e: toml::de::Error| Error::Config(e.to_string().trim_end().to_string());
        // Resolve first, so that overrides can reach fields filled by defaults too.
        let resolved: Self = toml::from_str(text).map_err(parse_err)?;
        let mut value = toml::Value::try_from(&resolved).expect("config serializes");
        let mut added = Vec::new();
        for o in overrides {
            if crate::overrides::apply(&mut value, o)? {
                added.push(o.split_once('=').map_or(o.as_str(), |(k, _)| k));
            }
        }
        let config: Self = value.try_into().map_err(|e: toml::de::Error| {
            let m = e.to_string().trim_end().to_string();
            Error::Config(match added.is_empty() {
                true => m,
                false => format!(
                    "{m} (--set added {}, which the config did not have)",
                    added.join(", ")
                ),
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The resolved configuration as TOML, as written into every run folder.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    /// The resolved sections `stage` is made from, as TOML: the identity of its run folder, so
    /// that changing `[eval]` never makes a trained fast layer foreign, and changing `[fast]`
    /// never makes a trained backbone foreign.
    pub fn stage_toml(&self, stage: Stage) -> String {
        let view = Self {
            fast: match stage {
                Stage::Backbone => None,
                _ => self.fast.clone(),
            },
            eval: match stage {
                Stage::Eval => self.eval.clone(),
                _ => None,
            },
            policy: match stage {
                Stage::Policy | Stage::Eval => self.policy.clone(),
                _ => None,
            },
            ..self.clone()
        };
        view.to_toml()
    }

    /// The `[fast]` section, or an error naming the command that needs it.
    pub fn fast(&self) -> Result<&FastConfig> {
        self.fast.as_ref().ok_or_else(|| {
            Error::Config(
                "the config has no [fast] section (the fast layer to train or evaluate)".into(),
            )
        })
    }

    /// The `[eval]` section, or an error.
    pub fn eval(&self) -> Result<&EvalConfig> {
        self.eval
            .as_ref()
            .ok_or_else(|| Error::Config("the config has no [eval] section".into()))
    }

    /// The `[policy]` section, or an error naming the command that needs it.
    pub fn policy(&self) -> Result<&PolicyConfig> {
        self.policy.as_ref().ok_or_else(|| {
            Error::Config(
                "the config has no [policy] section (the learned gate to train or compare)".into(),
            )
        })
    }

    /// The `[backbone]` section, or an error.
    pub fn backbone(&self) -> Result<&BackboneConfig> {
        self.backbone.as_ref().ok_or_else(|| {
            Error::Config(
                "the config has no [backbone] section (its fast.backbone is a pretrained model)"
                    .into(),
            )
        })
    }

    /// Checks every section; each error names its key.
    pub fn validate(&self) -> Result<()> {
        self.model
            .validate()
            .map_err(|e| Error::Config(format!("model: {e}")))?;
        self.data
            .validate()
            .map_err(|e| Error::Config(e.to_string().trim_start_matches("config: ").into()))?;
        if self.data.seq_len > self.model.n_positions {
            return Err(Error::Config(format!(
                "data.seq_len = {}, expected at most model.n_positions = {}",
                self.data.seq_len, self.model.n_positions
            )));
        }
        if let Some(b) = &self.backbone {
            b.validate()?;
        }
        if let Some(f) = &self.fast {
            f.validate(&self.model)?;
        }
        if let Some(e) = &self.eval {
            e.validate(&self.model)?;
        }
        if let Some(p) = &self.policy {
            p.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
