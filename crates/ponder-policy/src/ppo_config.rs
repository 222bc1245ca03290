//! PPO's settings ([`PpoConfig`]) and their two presets: CleanRL's reference PPO
//! ([`PpoConfig::cleanrl`]) and the original PonderTTT's last settings ([`PpoConfig::original`],
//! `docs/original.md` §10.4), with the two choices in which they differ beyond numbers: how a
//! rollout is cut into minibatches ([`Minibatch`]) and which approximate KL the early stop reads
//! ([`KlEstimator`]).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How each pass cuts the (shuffled) rollout into minibatches.
///
/// In TOML: `minibatch = { count = 4 }` or `minibatch = { size = 32 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Minibatch {
    /// Minibatches of `⌈steps / count⌉` entries, the last one shorter where it does not divide
    /// (so at most `count` of them), as CleanRL's `num_minibatches`.
    Count(usize),
    /// Minibatches of `size` entries, the last one shorter where it does not divide, as the
    /// original's minibatch size: 100 steps in sizes of 32 make 32, 32, 32 and 4.
    Size(usize),
}

impl Minibatch {
    /// The index ranges of the minibatches of one pass over `steps` entries, in order.
    pub(crate) fn ranges(self, steps: usize) -> Vec<Range<usize>> {
        let size = match self {
            Self::Count(count) => steps.div_ceil(count.max(1)),
            Self::Size(size) => size,
        }
        .max(1);
        (0..steps)
            .step_by(size)
            .map(|start| start..(start + size).min(steps))
            .collect()
    }
}

/// Which approximate KL divergence between the rollout's policy and the updated one an update
/// reports ([`crate::UpdateStats::approx_kl`]) and compares with [`PpoConfig::target_kl`].
///
/// With `log r = log π_new(a) − log π_old(a)` per sampled action, both are unbiased estimates
/// of `KL(π_old ‖ π_new)` over actions drawn from `π_old`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// `mean((r − 1) − log r)`, CleanRL's: never negative, of low variance.
    K3,
    /// `mean(log π_old − log π_new) = mean(−log r)`, the original's: of high variance, and
    /// zero or negative for some samples where the policies differ.
    LogRatio,
}

impl KlEstimator {
    /// The estimate from per-sample log-ratios `log π_new(a) − log π_old(a)`; 0 for none.
    pub fn estimate(self, log_ratio: &[f64]) -> f64 {
        let n = log_ratio.len().max(1) as f64;
        match self {
            Self::K3 => log_ratio.iter().map(|&l| l.exp() - 1.0 - l).sum::<f64>() / n,
            Self::LogRatio => -log_ratio.iter().sum::<f64>() / n,
        }
    }
}

/// PPO's settings; every field moves a number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoConfig {
    /// Discount γ.
    pub gamma: f64,
    /// GAE λ.
    pub gae_lambda: f64,
    /// Passes over each rollout.
    pub epochs: usize,
    /// How each pass cuts the rollout into minibatches.
    pub minibatch: Minibatch,
    /// Ratio clip ε (also the value clip where `clip_value`).
    pub clip: f64,
    /// Clip the value loss around the rollout's values.
    pub clip_value: bool,
    /// Weight of the value loss `0.5 · mean(max((V − R)², (V_clip − R)²))`; the factor 0.5 is
    /// CleanRL's, so a loss written without it takes twice its weight here.
    pub value_coef: f64,
    /// Weight of the entropy bonus.
    pub entropy_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Adam's learning rate.
    pub lr: f64,
    /// Anneal the learning rate linearly to 0 over training.
    pub anneal_lr: bool,
    /// Adam's ε.
    pub adam_eps: f64,
    /// Normalize advantages per minibatch.
    pub normalize_advantages: bool,
    /// Stop an update's passes once the approximate KL of a pass's last minibatch exceeds this.
    pub target_kl: Option<f64>,
    /// The approximate KL that is reported and compared with `target_kl`.
    pub kl_estimator: KlEstimator,
}

impl PpoConfig {
    /// CleanRL's reference settings (γ 0.99, λ 0.95, 4 passes of 4 minibatches, ε 0.2, value
    /// 0.5, entropy 0.01, clip 0.5, lr 2.5e-4 annealed, Adam ε 1e-5, normalized advantages, no
    /// KL stop; its reported KL is `k3`).
    pub fn cleanrl() -> Self {
        Self {
            gamma: 0.99,
            gae_lambda: 0.95,
            epochs: 4,
            minibatch: Minibatch::Count(4),
            clip: 0.2,
            clip_value: true,
            value_coef: 0.5,
            entropy_coef: 0.01,
            max_grad_norm: 0.5,
            lr: 2.5e-4,
            anneal_lr: true,
            adam_eps: 1e-5,
            normalize_advantages: true,
            target_kl: None,
            kl_estimator: KlEstimator::K3,
        }
    }

    /// The original PonderTTT's last settings (`docs/original.md` §10.4): γ 0.99, λ 0.95,
    /// 4 passes of minibatches of 32, ε 0.2 clipping the ratio and the value, value weight 0.2
    /// (the original's `0.1 · mean(max(...))`, written without the factor 0.5 of this crate's
    /// loss), entropy 0.05, gradient clip 1.0, Adam at a constant 5e-5 with optax's ε 1e-8, no
    /// advantage normalization, and the passes stopped once `mean(log π_old − log π_new)`
    /// exceeds 0.05. The original bootstrapped with 0: its rollouts set
    /// [`crate::Rollout::last_values`] to zeros. Its network is [`crate::NetConfig::original`],
    /// whose dropout makes the update's ratio differ from 1 before any step
    /// (`docs/design/policy.md`).
    pub fn original() -> Self {
        Self {
            gamma: 0.99,
            gae_lambda: 0.95,
            epochs: 4,
            minibatch: Minibatch::Size(32),
            clip: 0.2,
            clip_value: true,
            value_coef: 0.2,
            entropy_coef: 0.05,
            max_grad_norm: 1.0,
            lr: 5e-5,
            anneal_lr: false,
            adam_eps: 1e-8,
            normalize_advantages: false,
            target_kl: Some(0.05),
            kl_estimator: KlEstimator::LogRatio,
        }
    }

    /// Errors for settings outside their ranges; each names its key.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| -> Result<()> {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Config(format!(
                    "ppo.{name} must be in [0, 1], got {v}"
                )));
            }
            Ok(())
        };
        unit("gamma", self.gamma)?;
        unit("gae_lambda", self.gae_lambda)?;
        let positive = [
            ("clip", self.clip),
            ("max_grad_norm", self.max_grad_norm),
            ("lr", self.lr),
            ("adam_eps", self.adam_eps),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Config(format!("ppo.{name} must be > 0, got {v}")));
            }
        }
        for (name, v) in [
            ("value_coef", self.value_coef),
            ("entropy_coef", self.entropy_coef),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!("ppo.{name} must be >= 0, got {v}")));
            }
        }
        if self.epochs == 0 {
            return Err(Error::Config("ppo.epochs must be at least 1, got 0".into()));
        }
        match self.minibatch {
            Minibatch::Count(0) => {
                return Err(Error::Config(
                    "ppo.minibatch.count must be at least 1, got 0".into(),
                ))
            }
            Minibatch::Size(0) => {
                return Err(Error::Config(
                    "ppo.minibatch.size must be at least 1, got 0".into(),
                ))
            }
            _ => {}
        }
        if let Some(k) = self.target_kl {
            if k.is_nan() {
                return Err(Error::Config("ppo.target_kl must not be NaN".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minibatches_by_size_keep_the_remainder() {
        let r = Minibatch::Size(32).ranges(100);
        assert_eq!(r, [0..32, 32..64, 64..96, 96..100]);
        assert_eq!(Minibatch::Size(32).ranges(64), [0..32, 32..64]);
        let short = Minibatch::Size(32).ranges(5);
        assert_eq!((short.len(), short[0].clone()), (1, 0..5));
        assert!(Minibatch::Size(32).ranges(0).is_empty());
    }

    #[test]
    fn minibatches_by_count_are_of_the_rounded_up_size() {
        // The toy learning test: 64 episodes of 6 steps in 4 minibatches of 96.
        let r = Minibatch::Count(4).ranges(384);
        assert_eq!(r, [0..96, 96..192, 192..288, 288..384]);
        assert_eq!(
            Minibatch::Count(4).ranges(100),
            [0..25, 25..50, 50..75, 75..100]
        );
        // 10 in 4: sizes of 3, the last of 1; 9 in 4: three of 3 (at most `count`).
        assert_eq!(Minibatch::Count(4).ranges(10), [0..3, 3..6, 6..9, 9..10]);
        assert_eq!(Minibatch::Count(4).ranges(9), [0..3, 3..6, 6..9]);
        assert_eq!(Minibatch::Count(4).ranges(2), [0..1, 1..2]);
    }

    #[test]
    fn kl_estimators_by_hand() {
        let ln = f64::ln;
        // Two actions whose probabilities swap, 1/2 ↔ 1/4: the log-ratios ∓ln 2 cancel in the
        // original's estimate; k3 gives ((1/2 − 1 + ln 2) + (2 − 1 − ln 2)) / 2 = 1/4.
        let old = [ln(0.5), ln(0.25)];
        let new = [ln(0.25), ln(0.5)];
        let log_ratio: Vec<f64> = new.iter().zip(&old).map(|(n, o)| n - o).collect();
        assert!(KlEstimator::LogRatio.estimate(&log_ratio).abs() < 1e-15);
        assert!((KlEstimator::K3.estimate(&log_ratio) - 0.25).abs() < 1e-15);
        // One action whose probability rises, 0.5 → 0.8: the original's estimate is −ln 1.6,
        // negative; k3 is 0.6 − ln 1.6.
        let log_ratio = [ln(0.8) - ln(0.5)];
        let lr = KlEstimator::LogRatio.estimate(&log_ratio);
        assert!((lr + ln(1.6)).abs() < 1e-15 && lr < 0.0, "{lr}");
        let k3 = KlEstimator::K3.estimate(&log_ratio);
        assert!((k3 - (0.6 - ln(1.6))).abs() < 1e-15, "{k3}");
        // Equal policies: both 0.
        assert_eq!(KlEstimator::K3.estimate(&[0.0, 0.0]), 0.0);
        assert_eq!(KlEstimator::LogRatio.estimate(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn the_presets_are_valid_and_bad_settings_name_their_key() {
        assert!(PpoConfig::cleanrl().validate().is_ok());
        assert!(PpoConfig::original().validate().is_ok());
        let cases = [
            (
                PpoConfig {
                    minibatch: Minibatch::Size(0),
                    ..PpoConfig::original()
                },
                "ppo.minibatch.size",
            ),
            (
                PpoConfig {
                    minibatch: Minibatch::Count(0),
                    ..PpoConfig::cleanrl()
                },
                "ppo.minibatch.count",
            ),
            (
                PpoConfig {
                    epochs: 0,
                    ..PpoConfig::cleanrl()
                },
                "ppo.epochs",
            ),
            (
                PpoConfig {
                    lr: 0.0,
                    ..PpoConfig::original()
                },
                "ppo.lr",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
