//! [`ControllerGrid`]: the controllers and settings an experiment tries on its validation split
//! before it names one `ours_lh` (`[eval.select]` in a config).
//!
//! ```toml
//! [eval.select]
//! tolerance = 0.01            # |realized rate − ρ| a candidate must keep on validation
//! recon_alpha = [0.1, 0.01]   # the original's controller: rate EMA α …
//! recon_step = [0.1, 0.01]    # … times threshold step gain β (calibration 16, as the original)
//! signals = ["recon", "recon_init"]   # the quantile controller: signal …
//! quantile_calibration = [16]         # … times calibration …
//! quantile_gain = [0.05, 0.2]         # … times debt gain …
//! quantile_deadband = [0.0, 4.0]      # … times deadband
//! paced_calibration = [1, 16]         # the paced quantile gate: signal times calibration …
//! paced_prior = [false, true]         # … times starting from the validation split's signals
//! ```

use serde::{Deserialize, Serialize};

use crate::config::GateConfig;
use crate::error::{Error, Result};
use crate::paced::PacedParams;
use crate::quantile::QuantileParams;
use crate::recon::ORIGINAL_CALIBRATION;
use crate::signal::Signal;

/// The candidate controllers of a selection on validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerGrid {
    /// How far from ρ a candidate's realized update rate on validation may be, in (0, 1).
    pub tolerance: f64,
    /// Rate EMAs α of the original's controller.
    pub recon_alpha: Vec<f64>,
    /// Threshold step gains β of the original's controller (every pair with `recon_alpha`).
    pub recon_step: Vec<f64>,
    /// Signals of the quantile controller.
    pub signals: Vec<Signal>,
    /// Calibration windows of the quantile controller.
    pub quantile_calibration: Vec<usize>,
    /// Debt gains of the quantile controller.
    pub quantile_gain: Vec<f64>,
    /// Deadbands of the quantile controller.
    pub quantile_deadband: Vec<f64>,
    /// Calibration windows of the paced quantile gate (over `signals`; empty: none tried).
    pub paced_calibration: Vec<usize>,
    /// Whether each paced candidate starts its history from nothing (`false`) or from the
    /// validation split's signal values (`true`; cross-fitted during the selection, see
    /// `ponder-eval`'s `selection`); both may be listed.
    pub paced_prior: Vec<bool>,
}

impl ControllerGrid {
    /// Every candidate, in a fixed order: the original's controller over `recon_alpha` ×
    /// `recon_step`, then the quantile controller over `signals` × `quantile_calibration` ×
    /// `quantile_gain` × `quantile_deadband`, then the paced gate over `signals` ×
    /// `paced_calibration` × `paced_prior` (a prior to be filled: `Some` of no values).
    pub fn candidates(&self) -> Vec<GateConfig> {
        let mut out = Vec::new();
        for &alpha in &self.recon_alpha {
            for &step in &self.recon_step {
                out.push(GateConfig::Recon {
                    alpha,
                    step,
                    calibration: ORIGINAL_CALIBRATION,
                });
            }
        }
        for &signal in &self.signals {
            for &calibration in &self.quantile_calibration {
                for &gain in &self.quantile_gain {
                    for &deadband in &self.quantile_deadband {
                        out.push(GateConfig::Quantile(QuantileParams {
                            signal,
                            calibration,
                            gain,
                            deadband,
                        }));
                    }
                }
            }
        }
        for &signal in &self.signals {
            for &calibration in &self.paced_calibration {
                for &prior in &self.paced_prior {
                    out.push(GateConfig::Paced(PacedParams {
                        signal,
                        calibration,
                        prior: prior.then(Vec::new),
                    }));
                }
            }
        }
        out
    }

    /// Checks the tolerance and every candidate's settings; each error names the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.tolerance > 0.0 && self.tolerance < 1.0) {
            return Err(Error::Config(format!(
                "eval.select.tolerance = {}, expected a number in (0, 1)",
                self.tolerance
            )));
        }
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(Error::Config(
                "eval.select has no candidate: list recon_alpha and recon_step, or signals and \
                 the quantile_* settings or paced_calibration"
                    .into(),
            ));
        }
        for c in &candidates {
            c.validate().map_err(|e| match e {
                Error::Config(m) => Error::Config(format!("eval.select: {m}")),
                other => other,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> ControllerGrid {
        toml::from_str(
            r#"
            tolerance = 0.01
            recon_alpha = [0.1, 0.01]
            recon_step = [0.1]
            signals = ["recon", "recon_init"]
            quantile_calibration = [16]
            quantile_gain = [0.05]
            quantile_deadband = [0.0, 4.0]
            paced_calibration = [1]
            paced_prior = [false, true]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn candidates_in_order() {
        let names: Vec<String> = grid().candidates().iter().map(GateConfig::name).collect();
        assert_eq!(
            names,
            [
                "ours",
                "recon_alpha0.01_step0.1_cal16",
                "quantile_recon_cal16_gain0.05_db0",
                "quantile_recon_cal16_gain0.05_db4",
                "quantile_recon_init_cal16_gain0.05_db0",
                "quantile_recon_init_cal16_gain0.05_db4",
                "paced_recon_cal1",
                "paced_recon_cal1_prior",
                "paced_recon_init_cal1",
                "paced_recon_init_cal1_prior",
            ]
        );
        assert!(grid().validate().is_ok());
    }

    #[test]
    fn out_of_range_settings_are_errors_naming_the_key() {
        let mut g = grid();
        g.recon_alpha.push(1.5);
        let e = g.validate().unwrap_err().to_string();
        assert!(
            e.contains("eval.select") && e.contains("alpha = 1.5"),
            "{e}"
        );
        let mut g = grid();
        g.tolerance = 0.0;
        assert!(g.validate().unwrap_err().to_string().contains("tolerance"));
        let mut g = grid();
        g.quantile_gain = vec![-1.0];
        assert!(g.validate().unwrap_err().to_string().contains("gain = -1"));
        let mut g = grid();
        g.paced_calibration = vec![0];
        let e = g.validate().unwrap_err().to_string();
        assert!(e.contains("eval.select") && e.contains("paced gate"), "{e}");
        let mut g = grid();
        g.recon_step.clear();
        g.signals.clear();
        assert!(g
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no candidate"));
        let extra = toml::from_str::<ControllerGrid>("tolerance = 0.01\nalpha = [0.1]");
        assert!(extra.is_err());
    }
}
