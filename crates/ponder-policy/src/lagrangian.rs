//! The PID Lagrangian that holds a policy's average cost to a budget (Stooke, Achiam and Abbeel
//! 2020, "Responsive Safety in Reinforcement Learning by PID Lagrangian Methods", Algorithm 2),
//! and the original PonderTTT's incremental variant as a preset.
//!
//! Once per training iteration the controller reads the iteration's average cost per step `J_C`
//! against the budget `d` and returns the multiplier `λ` that the next rollouts' rewards are
//! charged with (`r − λ · cost`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which update rule the controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PidForm {
    /// Stooke et al., Algorithm 2: with `Δ = J_C − d`, `I ← max(0, I + Δ)`,
    /// `∂ = max(0, J_C − J_C,prev)` and `λ = max(0, K_P Δ + K_I I + K_D ∂)`, recomputed from the
    /// terms every iteration.
    Stooke,
    /// The original PonderTTT's: `λ ← clip(λ + K_P e + K_I I + K_D (e − e_prev), 0, λ_max)` with
    /// the integral before this iteration's error is added, then `I ← clip(I + e, −100, 100)`:
    /// λ accumulates its own increments, so every term acts like an integral.
    Original,
}

/// Gains and limits of the controller (every field moves λ, none has a hidden default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PidConfig {
    /// The update rule.
    pub form: PidForm,
    /// Proportional gain `K_P`.
    pub kp: f64,
    /// Integral gain `K_I`.
    pub ki: f64,
    /// Derivative gain `K_D`.
    pub kd: f64,
    /// λ before the first iteration.
    pub lambda_init: f64,
    /// Upper clip of λ (the original's `λ_max`); `None` for none.
    pub lambda_max: Option<f64>,
}

impl PidConfig {
    /// The original PonderTTT's last settings (`docs/original.md`): K_P 0.1, K_I 0.05, K_D 0.01,
    /// λ₀ 0, λ_max 10, incremental form.
    pub fn original() -> Self {
        Self {
            form: PidForm::Original,
            kp: 0.1,
            ki: 0.05,
            kd: 0.01,
            lambda_init: 0.0,
            lambda_max: Some(10.0),
        }
    }

    /// Errors for a negative gain, a negative or non-finite λ₀, or λ_max below λ₀.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("kp", self.kp), ("ki", self.ki), ("kd", self.kd)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!(
                    "pid.{name} must be finite and >= 0, got {v}"
                )));
            }
        }
        if !(self.lambda_init.is_finite() && self.lambda_init >= 0.0) {
            return Err(Error::Config(format!(
                "pid.lambda_init must be finite and >= 0, got {}",
                self.lambda_init
            )));
        }
        if let Some(max) = self.lambda_max {
            if !(max.is_finite() && max >= self.lambda_init) {
                return Err(Error::Config(format!(
                    "pid.lambda_max must be finite and >= lambda_init ({}), got {max}",
                    self.lambda_init
                )));
            }
        }
        Ok(())
    }
}

/// The controller's state, saved with a policy checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PidLagrangian {
    /// Gains and limits.
    pub config: PidConfig,
    /// The budget `d`: the average cost per step allowed.
    pub budget: f64,
    /// The current multiplier.
    pub lambda: f64,
    /// The integral term `I`.
    pub integral: f64,
    /// The previous iteration's cost (Stooke) or error (original); `None` before the first.
    pub previous: Option<f64>,
}

impl PidLagrangian {
    /// A controller at λ₀ for `budget`.
    pub fn new(config: PidConfig, budget: f64) -> Result<Self> {
        config.validate()?;
        if !(budget.is_finite() && budget > 0.0) {
            return Err(Error::Config(format!(
                "the cost budget must be finite and > 0, got {budget}"
            )));
        }
        Ok(Self {
            config,
            budget,
            lambda: config.lambda_init,
            integral: 0.0,
            previous: None,
        })
    }

    /// Reads one iteration's average cost per step and returns the new λ. A non-finite cost is
    /// an error (the controller's state is left as it was).
    pub fn update(&mut self, cost: f64) -> Result<f64> {
        if !cost.is_finite() {
            return Err(Error::Numeric(format!(
                "the PID Lagrangian read a non-finite average cost {cost}"
            )));
        }
        let c = &self.config;
        let error = cost - self.budget;
        match c.form {
            PidForm::Stooke => {
                self.integral = (self.integral + error).max(0.0);
                let rise = self.previous.map_or(0.0, |prev| (cost - prev).max(0.0));
                self.lambda = (c.kp * error + c.ki * self.integral + c.kd * rise).max(0.0);
                self.previous = Some(cost);
            }
            PidForm::Original => {
                let change = error - self.previous.unwrap_or(0.0);
                self.lambda += c.kp * error + c.ki * self.integral + c.kd * change;
                self.lambda = self.lambda.max(0.0);
                self.integral = (self.integral + error).clamp(-100.0, 100.0);
                self.previous = Some(error);
            }
        }
        if let Some(max) = c.lambda_max {
            self.lambda = self.lambda.min(max);
        }
        Ok(self.lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stooke(kp: f64, ki: f64, kd: f64) -> PidConfig {
        PidConfig {
            form: PidForm::Stooke,
            kp,
            ki,
            kd,
            lambda_init: 0.0,
            lambda_max: None,
        }
    }

    #[test]
    fn stooke_terms_by_hand() -> Result<()> {
        let mut pid = PidLagrangian::new(stooke(0.5, 0.25, 1.0), 2.0)?;
        // Δ = 1, I = 1, ∂ = 0 (no previous cost): λ = 0.5 + 0.25.
        assert_eq!(pid.update(3.0)?, 0.75);
        // Δ = 2, I = 3, ∂ = 1: λ = 1 + 0.75 + 1.
        assert_eq!(pid.update(4.0)?, 2.75);
        // Δ = −3, I = max(0, 0) = 0, ∂ = 0: λ = max(0, −1.5) = 0.
        assert_eq!(pid.update(-1.0)?, 0.0);
        assert_eq!(pid.integral, 0.0);
        Ok(())
    }

    #[test]
    fn original_form_by_hand() -> Result<()> {
        let mut pid = PidLagrangian::new(PidConfig::original(), 3.0)?;
        // e = 1, I = 0 before, e_prev = 0: λ = 0.1 + 0 + 0.01; then I = 1.
        let l1 = pid.update(4.0)?;
        assert!((l1 - 0.11).abs() < 1e-12, "{l1}");
        // e = 2: λ += 0.2 + 0.05·1 + 0.01·1.
        let l2 = pid.update(5.0)?;
        assert!((l2 - 0.37).abs() < 1e-12, "{l2}");
        // A large undershoot clips λ at 0.
        assert_eq!(pid.update(-100.0)?, 0.0);
        Ok(())
    }

    #[test]
    fn integral_control_settles_a_linear_plant_on_the_budget() -> Result<()> {
        // A plant whose cost falls linearly with λ: cost = 5 − 2λ. The budget 3 needs λ = 1.
        let mut pid = PidLagrangian::new(stooke(0.2, 0.1, 0.0), 3.0)?;
        let mut cost = 5.0;
        for _ in 0..200 {
            let lambda = pid.update(cost)?;
            cost = 5.0 - 2.0 * lambda;
        }
        assert!((cost - 3.0).abs() < 1e-6, "{cost}");
        Ok(())
    }

    #[test]
    fn bad_settings_and_costs_are_errors() {
        let bad = PidConfig {
            ki: -1.0,
            ..PidConfig::original()
        };
        assert!(PidLagrangian::new(bad, 2.0)
            .unwrap_err()
            .to_string()
            .contains("pid.ki"));
        assert!(PidLagrangian::new(PidConfig::original(), 0.0).is_err());
        let mut pid = PidLagrangian::new(PidConfig::original(), 2.0).unwrap();
        let err = pid.update(f64::NAN).unwrap_err().to_string();
        assert!(err.contains("non-finite average cost"), "{err}");
        assert_eq!(pid.lambda, 0.0);
    }
}
