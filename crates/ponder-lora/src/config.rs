//! `LoraConfig`: the hyper-parameters of a LoRA adapter under PEFT's names, and `Init`, the
//! choice of initialization for the `A` factor.
//!
//! The field names are those of PEFT's `LoraConfig` (`r`, `lora_alpha`, `lora_dropout`,
//! `target_modules`), so that a `[lora]` TOML section and PEFT's `adapter_config.json` speak
//! the same language. From "LoRA: Low-Rank Adaptation of Large Language Models"
//! (Hu et al., 2021, <https://arxiv.org/abs/2106.09685>) and PEFT's `tuners/lora/config.py`
//! (<https://github.com/huggingface/peft>).

use candle::Result;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of a LoRA adapter, with PEFT's names.
///
/// There is no `Default`: every field changes the numbers, so every field is written out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update `B·A`.
    pub r: usize,
    /// Numerator of the scale `lora_alpha / r` applied to the update.
    pub lora_alpha: f64,
    /// Dropout probability on the adapter's path during training, in `[0, 1)`.
    pub lora_dropout: f64,
    /// Names of the adapted modules: a module matches a target when its name equals the target
    /// or ends with `.{target}`, as in PEFT.
    pub target_modules: Vec<String>,
}

impl LoraConfig {
    /// The scale `lora_alpha / r` of the update (PEFT's `scaling`, without rsLoRA).
    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    /// Checks that `r > 0`, `lora_alpha` is finite, `lora_dropout` is in `[0, 1)` and there is at
    /// least one target module.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            candle::bail!("lora config: r must be > 0, got 0");
        }
        if !self.lora_alpha.is_finite() {
            candle::bail!(
                "lora config: lora_alpha must be finite, got {}",
                self.lora_alpha
            );
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            candle::bail!(
                "lora config: lora_dropout must be in [0, 1), got {}",
                self.lora_dropout
            );
        }
        if self.target_modules.is_empty() {
            candle::bail!("lora config: target_modules is empty, expected at least one module");
        }
        Ok(())
    }

    /// Whether the module named `module` is adapted: its name equals a target or ends with
    /// `.{target}` (PEFT's rule for a list of targets).
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|target| {
            module == target
                || module
                    .strip_suffix(target.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

/// How to initialize the `A` factor; `B` always starts at zero, so a fresh adapter is a no-op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal(0, std). The original PonderTTT layer uses std 0.02 ([`Init::ORIGINAL`]).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// PEFT's default, `kaiming_uniform_(a = √5)`: uniform in `±1/√in`.
    KaimingUniform,
}

impl Init {
    /// The original PonderTTT initialization of `A`: normal(0, 0.02).
    pub const ORIGINAL: Init = Init::Normal { std: 0.02 };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoraConfig {
        LoraConfig {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.1,
            target_modules: vec!["c_attn".into(), "q_lora".into()],
        }
    }

    #[test]
    fn scale_is_alpha_over_r() {
        assert_eq!(config().scale(), 2.0);
    }

    #[test]
    fn validate_rejects_bad_values() {
        assert!(config().validate().is_ok());
        let bad = [
            LoraConfig { r: 0, ..config() },
            LoraConfig {
                lora_dropout: 1.0,
                ..config()
            },
            LoraConfig {
                lora_dropout: -0.1,
                ..config()
            },
            LoraConfig {
                lora_alpha: f64::NAN,
                ..config()
            },
            LoraConfig {
                target_modules: vec![],
                ..config()
            },
        ];
        for cfg in bad {
            let err = cfg.validate().expect_err("bad config accepted").to_string();
            assert!(err.starts_with("lora config:"), "{err}");
        }
    }

    #[test]
    fn targets_match_whole_name_components() {
        let cfg = config();
        assert!(cfg.targets("c_attn"));
        assert!(cfg.targets("h.0.attn.c_attn"));
        assert!(cfg.targets("q_lora"));
        assert!(!cfg.targets("h.0.attn.xc_attn"));
        assert!(!cfg.targets("h.0.attn.c_attn.extra"));
    }

    #[test]
    fn json_round_trip_and_unknown_key() -> serde_json::Result<()> {
        let text = serde_json::to_string(&config())?;
        assert_eq!(serde_json::from_str::<LoraConfig>(&text)?, config());
        let unknown = r#"{"r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
            "target_modules": ["c_attn"], "use_rslora": false}"#;
        let err = serde_json::from_str::<LoraConfig>(unknown).expect_err("unknown key accepted");
        assert!(
            err.to_string().contains("unknown field `use_rslora`"),
            "{err}"
        );
        let missing = r#"{"r": 8, "lora_alpha": 16, "target_modules": ["c_attn"]}"#;
        let err = serde_json::from_str::<LoraConfig>(missing).expect_err("missing key accepted");
        assert!(err.to_string().contains("lora_dropout"), "{err}");
        Ok(())
    }
}
