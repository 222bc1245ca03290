//! [`GateConfig`]: every gating policy by name, for TOML configs and the command line.
//!
//! In a TOML file the policy is picked by `kind`, and every number that moves a result is
//! written out (no defaults):
//!
//! ```toml
//! [gate]
//! kind = "recon"
//! alpha = 0.1
//! step = 0.1
//! calibration = 16
//! ```
//!
//! The budget ρ is not part of the config; it is passed separately as a [`Budget`].
//! On the command line, short method names ("skip", "update_1", "random", "oracle", "ours", "pid",
//! "ttt_improvement", …) parse with [`std::str::FromStr`] into the original's settings.

use std::str::FromStr;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::fixed::Fixed;
use crate::paced::{PacedGate, PacedParams};
use crate::pid::{PidParams, PidReconGate};
use crate::quantile::{QuantileGate, QuantileParams};
use crate::random::{RandomGate, ORIGINAL_RANDOM_SEED};
use crate::recon::{ReconGate, ORIGINAL_ALPHA, ORIGINAL_CALIBRATION};
use crate::signal::Signal;
use crate::Gate;

/// Which chunks an oracle ranks against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OracleScope {
    /// Top-k over the whole stream (O2, the paper's Oracle, `docs/original.md` §8.4).
    Global,
    /// Top-k inside each consecutive group of `group` chunks (O1).
    PerBatch,
    /// UPDATE iff the advantage is positive, no budget (O3).
    Unconstrained,
}

/// A gating policy and all of its parameters except the budget.
///
/// Deserialized through a private mirror whose `skip` and `ttt_improvement` are empty structs,
/// because serde lets extra keys through on an internally tagged unit variant: with it,
/// `kind = "skip"` next to any other key is an error like every unknown key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "GateConfigToml"
)]
pub enum GateConfig {
    /// Never update.
    Skip,
    /// Always update with `steps` ∈ {1, 2, 4} inner steps.
    Update {
        /// Inner steps per update.
        steps: u32,
    },
    /// Update each chunk with probability ρ (see [`RandomGate`]).
    Random {
        /// The generator's seed.
        seed: u64,
    },
    /// An oracle that knows every chunk's advantage (offline, see `offline`).
    Oracle {
        /// What the top-k ranks over.
        scope: OracleScope,
        /// Chunks per group: required with `scope = "per_batch"`, rejected otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<usize>,
    },
    /// The original's reconstruction gate (see [`ReconGate`]).
    Recon {
        /// EMA rate α ∈ (0, 1] of the rate estimate.
        alpha: f64,
        /// Gain β ∈ (0, 1] of the threshold step (the original's is α).
        step: f64,
        /// Calibration chunks (≥ 1).
        calibration: usize,
    },
    /// The reconstruction gate with a PID-controlled threshold (see [`PidReconGate`]).
    PidRecon(PidParams),
    /// The long-horizon quantile gate (see [`QuantileGate`]).
    Quantile(QuantileParams),
    /// The quantile gate paced to end a stream of known length on its budget (see
    /// [`PacedGate`]).
    Paced(PacedParams),
    /// Global top-k by reconstruction improvement (offline, not deployable).
    TttImprovement,
    /// Global top-k by a training-free signal, with hindsight (offline, not deployable): the
    /// ceiling of any threshold on that signal.
    SignalTopK {
        /// The signal ranked.
        signal: Signal,
    },
}

/// [`GateConfig`] as read from TOML (see its doc).
#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum GateConfigToml {
    Skip {},
    Update {
        steps: u32,
    },
    Random {
        seed: u64,
    },
    Oracle {
        scope: OracleScope,
        group: Option<usize>,
    },
    Recon {
        alpha: f64,
        step: f64,
        calibration: usize,
    },
    PidRecon(PidParams),
    Quantile(QuantileParams),
    Paced(PacedParams),
    TttImprovement {},
    SignalTopK {
        signal: Signal,
    },
}

impl From<GateConfigToml> for GateConfig {
    fn from(raw: GateConfigToml) -> Self {
        match raw {
            GateConfigToml::Skip {} => GateConfig::Skip,
            GateConfigToml::Update { steps } => GateConfig::Update { steps },
            GateConfigToml::Random { seed } => GateConfig::Random { seed },
            GateConfigToml::Oracle { scope, group } => GateConfig::Oracle { scope, group },
            GateConfigToml::Recon {
                alpha,
                step,
                calibration,
            } => GateConfig::Recon {
                alpha,
                step,
                calibration,
            },
            GateConfigToml::PidRecon(params) => GateConfig::PidRecon(params),
            GateConfigToml::Quantile(params) => GateConfig::Quantile(params),
            GateConfigToml::Paced(params) => GateConfig::Paced(params),
            GateConfigToml::TttImprovement {} => GateConfig::TttImprovement,
            GateConfigToml::SignalTopK { signal } => GateConfig::SignalTopK { signal },
        }
    }
}

/// The method names `GateConfig::from_str` accepts, for error messages.
const VALID_NAMES: &str = "skip, update_1, update_2, update_4, random, random_seedN, oracle, \
     oracle_per_batch_G (G ≥ 1), oracle_unconstrained, ours, pid, ttt_improvement, signal_topk, \
     signal_topk_S (S: recon_init, neg_recon, neg_recon_init, neg_prev_loss), ours_lh (chosen on validation), \
     none and greedy_oracle (stream mode)";

impl GateConfig {
    /// "Ours": the reconstruction gate with the original's α = 0.1 and 16 calibration chunks.
    pub fn original_recon() -> Self {
        GateConfig::Recon {
            alpha: ORIGINAL_ALPHA,
            step: ORIGINAL_ALPHA,
            calibration: ORIGINAL_CALIBRATION,
        }
    }

    /// The original's Random Skip: seed 42.
    pub fn original_random() -> Self {
        GateConfig::Random {
            seed: ORIGINAL_RANDOM_SEED,
        }
    }

    /// The paper's Oracle: global top-k by advantage.
    pub fn oracle_global() -> Self {
        GateConfig::Oracle {
            scope: OracleScope::Global,
            group: None,
        }
    }

    /// The PID reconstruction gate with [`PidParams::recommended`].
    pub fn pid_recommended() -> Self {
        GateConfig::PidRecon(PidParams::recommended())
    }

    /// Checks every parameter's range, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        match self {
            GateConfig::Skip
            | GateConfig::Random { .. }
            | GateConfig::TttImprovement
            | GateConfig::SignalTopK { .. } => Ok(()),
            GateConfig::Update { steps } => Fixed::update(*steps).map(|_| ()),
            GateConfig::Oracle { scope, group } => match (scope, group) {
                (OracleScope::PerBatch, Some(0)) => Err(Error::Config(
                    "oracle: group = 0 chunks, expected at least 1".to_string(),
                )),
                (OracleScope::PerBatch, Some(_)) => Ok(()),
                (OracleScope::PerBatch, None) => Err(Error::Config(
                    "oracle: scope = \"per_batch\" needs `group` (chunks per group)".to_string(),
                )),
                (_, Some(g)) => Err(Error::Config(format!(
                    "oracle: group = {g} is only meaningful with scope = \"per_batch\""
                ))),
                (_, None) => Ok(()),
            },
            GateConfig::Recon {
                alpha,
                step,
                calibration,
            } => ReconGate::new(Budget::new(0.5)?, *alpha, *step, *calibration).map(|_| ()),
            GateConfig::PidRecon(params) => params.validate(),
            GateConfig::Quantile(params) => params.validate(),
            GateConfig::Paced(params) => params.validate(),
        }
    }

    /// The name for reports: the short name `GateConfig::from_str` parses back when there is
    /// one ("ours" for the original reconstruction gate, "pid" for the recommended PID gate),
    /// otherwise a name listing the parameters.
    pub fn name(&self) -> String {
        match self {
            GateConfig::Skip => "skip".to_string(),
            GateConfig::Update { steps } => format!("update_{steps}"),
            GateConfig::Random { seed } if *seed == ORIGINAL_RANDOM_SEED => "random".to_string(),
            GateConfig::Random { seed } => format!("random_seed{seed}"),
            GateConfig::Oracle { scope, group } => match (scope, group) {
                (OracleScope::Global, _) => "oracle".to_string(),
                (OracleScope::PerBatch, Some(g)) => format!("oracle_per_batch_{g}"),
                (OracleScope::PerBatch, None) => "oracle_per_batch".to_string(),
                (OracleScope::Unconstrained, _) => "oracle_unconstrained".to_string(),
            },
            GateConfig::Recon { .. } if *self == Self::original_recon() => "ours".to_string(),
            GateConfig::Recon {
                alpha,
                step,
                calibration,
            } => format!("recon_alpha{alpha}_step{step}_cal{calibration}"),
            GateConfig::PidRecon(p) if *p == PidParams::recommended() => "pid".to_string(),
            GateConfig::PidRecon(p) => format!(
                "pid_cal{}_win{}_kp{}_ki{}_kd{}_ema{}_db{}",
                p.calibration, p.window, p.kp, p.ki, p.kd, p.rate_ema, p.deadband
            ),
            GateConfig::Quantile(p) => format!(
                "quantile_{}_cal{}_gain{}_db{}",
                p.signal, p.calibration, p.gain, p.deadband
            ),
            GateConfig::Paced(p) => format!(
                "paced_{}_cal{}{}",
                p.signal,
                p.calibration,
                if p.prior.is_some() { "_prior" } else { "" }
            ),
            GateConfig::TttImprovement => "ttt_improvement".to_string(),
            GateConfig::SignalTopK {
                signal: Signal::Recon,
            } => "signal_topk".to_string(),
            GateConfig::SignalTopK { signal } => format!("signal_topk_{signal}"),
        }
    }

    /// Whether the policy decides chunk by chunk ([`GateConfig::online_gate`] gives the gate);
    /// `false` for the offline oracles and TTT-improvement top-k.
    pub fn is_online(&self) -> bool {
        !matches!(
            self,
            GateConfig::Oracle { .. } | GateConfig::TttImprovement | GateConfig::SignalTopK { .. }
        )
    }

    /// How many chunks of a stream the calibration window of a threshold gate needs: the
    /// window, less the values a paced gate's prior already puts in its history; `None` for the
    /// other policies.
    pub fn calibration(&self) -> Option<usize> {
        match self {
            GateConfig::Recon { calibration, .. } => Some(*calibration),
            GateConfig::PidRecon(p) => Some(p.calibration),
            GateConfig::Quantile(p) => Some(p.calibration),
            GateConfig::Paced(p) => {
                let prior = p.prior.as_ref().map_or(0, Vec::len);
                Some(p.calibration.saturating_sub(prior))
            }
            _ => None,
        }
    }

    /// The training-free signal the policy reads; `None` for policies that read none.
    pub fn signal(&self) -> Option<Signal> {
        match self {
            GateConfig::Recon { .. } | GateConfig::PidRecon(_) => Some(Signal::Recon),
            GateConfig::Quantile(p) => Some(p.signal),
            GateConfig::Paced(p) => Some(p.signal),
            GateConfig::SignalTopK { signal } => Some(*signal),
            _ => None,
        }
    }

    /// A fresh online gate for this policy at budget ρ; `Ok(None)` for offline policies, an error
    /// if a parameter is out of range. `horizon` is the number of decisions the stream will ask
    /// for, where it is known up front: [`GateConfig::Paced`] needs it (an error without it),
    /// the other policies ignore it.
    pub fn online_gate(
        &self,
        budget: Budget,
        horizon: Option<usize>,
    ) -> Result<Option<Box<dyn Gate + Send>>> {
        self.validate()?;
        Ok(match self {
            GateConfig::Skip => Some(Box::new(Fixed::skip())),
            GateConfig::Update { steps } => Some(Box::new(Fixed::update(*steps)?)),
            GateConfig::Random { seed } => Some(Box::new(RandomGate::new(budget, *seed))),
            GateConfig::Recon {
                alpha,
                step,
                calibration,
            } => Some(Box::new(ReconGate::new(
                budget,
                *alpha,
                *step,
                *calibration,
            )?)),
            GateConfig::PidRecon(params) => Some(Box::new(PidReconGate::new(budget, *params)?)),
            GateConfig::Quantile(params) => Some(Box::new(QuantileGate::new(budget, *params)?)),
            GateConfig::Paced(params) => {
                let horizon = horizon.ok_or_else(|| {
                    Error::Config(format!(
                        "{}: the paced gate needs the number of decisions up front (the length \
                         of a recorded stream, a comparison's chunks, the solutions' chunks, the \
                         most chunks a generation can complete)",
                        self.name()
                    ))
                })?;
                Some(Box::new(PacedGate::new(budget, params.clone(), horizon)?))
            }
            GateConfig::Oracle { .. }
            | GateConfig::TttImprovement
            | GateConfig::SignalTopK { .. } => None,
        })
    }
}

impl FromStr for GateConfig {
    type Err = Error;

    /// Parses a short method name into the original's settings; an error listing the valid
    /// names for anything else.
    fn from_str(s: &str) -> Result<Self> {
        let unknown = || {
            Error::Config(format!(
                "unknown method \"{s}\"; valid names: {VALID_NAMES}"
            ))
        };
        let number = |digits: &str| -> Result<u64> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(unknown());
            }
            digits.parse::<u64>().map_err(|_| unknown())
        };
        let config = match s {
            "skip" => GateConfig::Skip,
            "random" => Self::original_random(),
            "oracle" => Self::oracle_global(),
            "oracle_unconstrained" => GateConfig::Oracle {
                scope: OracleScope::Unconstrained,
                group: None,
            },
            "ours" => Self::original_recon(),
            "pid" => Self::pid_recommended(),
            "ttt_improvement" => GateConfig::TttImprovement,
            "signal_topk" => GateConfig::SignalTopK {
                signal: Signal::Recon,
            },
            _ => {
                if let Some(k) = s.strip_prefix("update_") {
                    let steps = u32::try_from(number(k)?).map_err(|_| unknown())?;
                    GateConfig::Update { steps }
                } else if let Some(seed) = s.strip_prefix("random_seed") {
                    GateConfig::Random {
                        seed: number(seed)?,
                    }
                } else if let Some(signal) = s.strip_prefix("signal_topk_") {
                    GateConfig::SignalTopK {
                        signal: Signal::parse(signal)
                            .filter(|s| *s != Signal::Recon)
                            .ok_or_else(unknown)?,
                    }
                } else if let Some(g) = s.strip_prefix("oracle_per_batch_") {
                    let group = usize::try_from(number(g)?).map_err(|_| unknown())?;
                    GateConfig::Oracle {
                        scope: OracleScope::PerBatch,
                        group: Some(group),
                    }
                } else {
                    return Err(unknown());
                }
            }
        };
        config.validate().map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("method \"{s}\": {m}")),
            other => other,
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_round_trip() {
        for name in [
            "skip",
            "update_1",
            "update_2",
            "update_4",
            "random",
            "random_seed7",
            "oracle",
            "oracle_per_batch_2",
            "oracle_unconstrained",
            "ours",
            "pid",
            "ttt_improvement",
            "signal_topk",
            "signal_topk_recon_init",
            "signal_topk_neg_recon",
        ] {
            let config: GateConfig = name.parse().unwrap();
            assert_eq!(config.name(), name);
        }
        assert_eq!(
            "ours".parse::<GateConfig>().unwrap(),
            GateConfig::Recon {
                alpha: 0.1,
                step: 0.1,
                calibration: 16
            }
        );
        assert_eq!(
            "update_4".parse::<GateConfig>().unwrap(),
            GateConfig::Update { steps: 4 }
        );
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        for bad in [
            "",
            "Ours",
            "update",
            "update_",
            "update_x",
            "update_-1",
            "oracle_per_batch_",
        ] {
            let err = bad.parse::<GateConfig>().unwrap_err();
            let Error::Config(msg) = err else {
                panic!("{bad}: {err:?}")
            };
            assert!(msg.contains("valid names: skip, update_1"), "{msg}");
            assert!(msg.contains("ttt_improvement"), "{msg}");
        }
        for k in [0, 3, 8] {
            let err = format!("update_{k}").parse::<GateConfig>().unwrap_err();
            assert!(
                matches!(err, Error::Config(ref m) if m.contains(&format!("method \"update_{k}\"")) && m.contains("expected 1, 2 or 4")),
                "{err}"
            );
        }
        assert!("oracle_per_batch_0".parse::<GateConfig>().is_err());
    }

    #[test]
    fn descriptive_names_for_non_default_parameters() {
        let recon = GateConfig::Recon {
            alpha: 0.2,
            step: 0.05,
            calibration: 8,
        };
        assert_eq!(recon.name(), "recon_alpha0.2_step0.05_cal8");
        let quantile = GateConfig::Quantile(QuantileParams {
            signal: Signal::ReconInit,
            calibration: 16,
            gain: 0.1,
            deadband: 2.0,
        });
        assert_eq!(quantile.name(), "quantile_recon_init_cal16_gain0.1_db2");
        let pid = GateConfig::PidRecon(PidParams {
            kp: 0.5,
            ..PidParams::recommended()
        });
        assert_eq!(pid.name(), "pid_cal16_win128_kp0.5_ki0.1_kd0_ema0.1_db4");
    }
}
