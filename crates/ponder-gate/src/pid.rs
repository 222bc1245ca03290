//! A reconstruction gate whose threshold is set by a PID controller on the realized update rate.
//!
//! The original's controller (`docs/original.md` §8.6, [`crate::recon::ReconGate`]) moves τ in
//! signal units with a proportional step on an EMA of the rate.
//! When the signal drifts, τ must keep moving, which a proportional controller can only do with a
//! standing rate error, and nothing pulls the *count* of updates back to ρ·T afterwards.
//! This gate keeps the same calibration (the first `calibration` chunks UPDATE) and the same rule
//! "UPDATE iff s > τ", but sets τ differently:
//!
//! * **Quantile space.** τ is the `(1 − q)` empirical quantile of the last `window` signals,
//!   `τ = sorted(window)[min(⌊(1 − q)·len⌋, len − 1)]`, the calibration rule on a sliding
//!   window.
//!   The controller's output is the fraction q of chunks to update, so the plant "q ↦ realized
//!   rate" has gain ≈ 1 whatever the signal's scale or distribution; the window follows drift.
//! * **PID on the rate.** Counting only post-calibration decisions, with `T` decisions of which `U`
//!   UPDATEs, r̂ an EMA (rate `rate_ema`) of the decisions, `e = ρ − r̂` and `D = ρ·T − U` (the
//!   update deficit, which is the sum of the per-decision errors `ρ − d`):
//!   `q = ρ + kp·e + ki·dz(D) + kd·(e − e_prev)`, where `dz(D) = sign(D)·max(0, |D| − deadband)`.
//!   The integral term is what holds the rate: it turns any bias (window lag, ties, drift) into a
//!   bounded count error.
//!   The deadband keeps q at exactly ρ while the count is within `deadband` updates of ρ·T, so
//!   the ±1 steps of D do not jitter the threshold (which would update the wrong chunks).
//! * **Saturation.** `q ≥ 1` means τ = −∞ (UPDATE), `q ≤ 0` means τ = +∞ (SKIP).
//!   Since `|kp·e| ≤ kp·max(ρ, 1 − ρ)` and `|kd·Δe| ≤ kd·rate_ema`, once `|D|` exceeds
//!   `deadband + ((1 + kp)·max(ρ, 1 − ρ) + kd·rate_ema)/ki` the next decision is forced back
//!   towards ρ.
//!   So for *any* signal stream `|U − ρ·T|` stays below [`PidParams::count_bound`], and the
//!   realized post-calibration rate is within `count_bound / T` of ρ; no anti-windup is needed.
//!
//! The update rate is counted from the first post-calibration decision: the calibration chunks
//! (all UPDATE) are not part of `T` or `U`. Over a whole stream of `N` chunks the rate is
//! `(n_cal + U)/N`: the calibration adds at most `n_cal·(1 − ρ)/N` to its distance from ρ.
//!
//! See `docs/design/gating.md` for the choice of gains.

use std::collections::VecDeque;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::order::{dead_zone, insert_sorted, saturating_quantile};
use crate::{Decision, Gate, Signals};

/// The parameters of [`PidReconGate`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PidParams {
    /// Chunks that always UPDATE at the start while the window fills (≥ 1).
    pub calibration: usize,
    /// How many of the most recent signals the quantile threshold is taken over (≥ 1).
    pub window: usize,
    /// Proportional gain on `ρ − r̂` (≥ 0).
    pub kp: f64,
    /// Integral gain on the update deficit `ρ·T − U` (> 0: it is what bounds the count error).
    pub ki: f64,
    /// Derivative gain on the change of `ρ − r̂` (≥ 0).
    pub kd: f64,
    /// EMA rate of r̂, in (0, 1].
    pub rate_ema: f64,
    /// How far, in updates, the count may stray from ρ·T before the integral term acts (≥ 0).
    pub deadband: f64,
}

impl PidParams {
    /// The recommended parameters: calibration 16 (as the original), window 128, kp = 0,
    /// ki = 0.1, kd = 0, rate_ema = 0.1, deadband = 4.
    ///
    /// With these, [`PidParams::count_bound`] is at most 16 updates for every ρ and every stream,
    /// under 1% of the 1984 post-calibration decisions of the original protocol.
    /// The proportional and derivative terms are kept at 0: the measured decisions are 0/1
    /// noise, so any gain on their EMA or its change only jitters q, and on synthetic streams
    /// each made the decisions agree less with the ideal quantile rule without holding the
    /// rate any better (`docs/design/gating.md`). `rate_ema` then has no effect.
    pub fn recommended() -> Self {
        Self {
            calibration: 16,
            window: 128,
            kp: 0.0,
            ki: 0.1,
            kd: 0.0,
            rate_ema: 0.1,
            deadband: 4.0,
        }
    }

    /// Checks every parameter's range, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("pid recon gate: {what}")));
        if self.calibration == 0 {
            return bad("calibration = 0 chunks, expected at least 1".to_string());
        }
        if self.window == 0 {
            return bad("window = 0 signals, expected at least 1".to_string());
        }
        for (name, gain) in [("kp", self.kp), ("kd", self.kd)] {
            if !(gain.is_finite() && gain >= 0.0) {
                return bad(format!("{name} = {gain}, expected a finite gain ≥ 0"));
            }
        }
        if !(self.ki.is_finite() && self.ki > 0.0) {
            return bad(format!("ki = {}, expected a finite gain > 0", self.ki));
        }
        if !(self.rate_ema > 0.0 && self.rate_ema <= 1.0) {
            return bad(format!(
                "rate_ema = {}, expected a number in (0, 1]",
                self.rate_ema
            ));
        }
        if !(self.deadband.is_finite() && self.deadband >= 0.0) {
            return bad(format!(
                "deadband = {}, expected a finite number ≥ 0",
                self.deadband
            ));
        }
        Ok(())
    }

    /// The most `|U − ρ·T|` can reach after `T` post-calibration decisions, for any stream:
    /// `deadband + ((1 + kp)·max(ρ, 1 − ρ) + kd·rate_ema)/ki + 2` (one step of overshoot past
    /// the saturation point, one more for rounding at its edge).
    pub fn count_bound(&self, budget: Budget) -> f64 {
        let rho = budget.rho();
        let m = rho.max(1.0 - rho);
        self.deadband + ((1.0 + self.kp) * m + self.kd * self.rate_ema) / self.ki + 2.0
    }
}

/// The reconstruction gate with a PID-controlled quantile threshold (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct PidReconGate {
    budget: Budget,
    params: PidParams,
    /// The last `window` signals in arrival order, and the same values sorted.
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
    /// Observed chunks, calibration included.
    n_seen: usize,
    /// Post-calibration decisions and updates.
    n_post: usize,
    n_post_updates: usize,
    rate: f64,
    prev_err: f64,
    /// The fraction of chunks to update next (the controller's output, unclamped).
    q: f64,
}

impl PidReconGate {
    /// A gate with target rate ρ = `budget.rho()`; an error if a parameter is out of range.
    pub fn new(budget: Budget, params: PidParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            budget,
            params,
            recent: VecDeque::with_capacity(params.window),
            sorted: Vec::with_capacity(params.window),
            n_seen: 0,
            n_post: 0,
            n_post_updates: 0,
            rate: budget.rho(),
            prev_err: 0.0,
            q: budget.rho(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &PidParams {
        &self.params
    }

    /// Whether the calibration chunks have all been observed.
    pub fn is_calibrated(&self) -> bool {
        self.n_seen >= self.params.calibration
    }

    /// The current threshold τ: −∞ when q ≥ 1, +∞ when q ≤ 0; `None` during calibration.
    pub fn threshold(&self) -> Option<f64> {
        if !self.is_calibrated() || self.sorted.is_empty() {
            return None;
        }
        Some(saturating_quantile(&self.sorted, self.q))
    }

    /// The controller's output q, the fraction of chunks it aims to update next (may lie
    /// outside [0, 1], where it saturates).
    pub fn target_fraction(&self) -> f64 {
        self.q
    }

    /// The EMA r̂ of post-calibration decisions (ρ until the first one).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The update deficit `ρ·T − U` over the `T` post-calibration decisions so far.
    pub fn deficit(&self) -> f64 {
        self.budget.rho() * self.n_post as f64 - self.n_post_updates as f64
    }

    /// The realized update rate `U / T` over post-calibration decisions; `None` before the first.
    pub fn realized_rate(&self) -> Option<f64> {
        (self.n_post > 0).then(|| self.n_post_updates as f64 / self.n_post as f64)
    }

    fn push_signal(&mut self, s: f64) {
        if self.recent.len() == self.params.window {
            if let Some(old) = self.recent.pop_front() {
                if let Ok(i) = self.sorted.binary_search_by(|x| x.total_cmp(&old)) {
                    self.sorted.remove(i);
                }
            }
        }
        self.recent.push_back(s);
        insert_sorted(&mut self.sorted, s);
    }
}

impl Gate for PidReconGate {
    /// UPDATE during calibration; after, UPDATE iff `signals.recon > τ` (see
    /// [`PidReconGate::threshold`]). A NaN signal never exceeds a finite τ.
    fn decide(&mut self, signals: &Signals) -> Decision {
        match self.threshold() {
            Some(tau) if signals.recon > tau => Decision::Update(1),
            Some(_) => Decision::Skip,
            None => Decision::Update(1),
        }
    }

    fn observe(&mut self, signals: &Signals, decision: Decision) {
        let was_calibrated = self.is_calibrated();
        self.push_signal(signals.recon);
        self.n_seen += 1;
        if !was_calibrated {
            // Calibration decisions are not counted; the controller starts at q = ρ.
            return;
        }
        let rho = self.budget.rho();
        let d = if decision.is_update() { 1.0 } else { 0.0 };
        self.n_post += 1;
        self.n_post_updates += usize::from(decision.is_update());
        let p = &self.params;
        self.rate = (1.0 - p.rate_ema) * self.rate + p.rate_ema * d;
        let err = rho - self.rate;
        let deficit = self.deficit();
        let outside = dead_zone(deficit, p.deadband);
        self.q = rho + p.kp * err + p.ki * outside + p.kd * (err - self.prev_err);
        self.prev_err = err;
    }

    fn threshold(&self) -> Option<f64> {
        PidReconGate::threshold(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(gate: &mut PidReconGate, position: usize, recon: f64) -> Decision {
        let sig = Signals {
            position,
            recon,
            recon_init: recon,
            skip_loss: None,
            prev_loss: None,
            updates_so_far: 0,
        };
        gate.step(&sig)
    }

    #[test]
    fn calibrates_then_thresholds_at_the_window_quantile() {
        let params = PidParams {
            calibration: 4,
            window: 4,
            kp: 0.0,
            ki: 0.1,
            kd: 0.0,
            rate_ema: 0.1,
            deadband: 0.0,
        };
        let mut gate = PidReconGate::new(Budget::new(0.5).unwrap(), params).unwrap();
        for (i, s) in [4.0, 1.0, 3.0, 2.0].into_iter().enumerate() {
            assert_eq!(gate.threshold(), None);
            assert_eq!(step(&mut gate, i, s), Decision::Update(1));
        }
        // Window [1, 2, 3, 4], q = 0.5: τ = sorted[⌊0.5·4⌋] = 3.
        assert_eq!(gate.threshold(), Some(3.0));
        // 3.5 > 3 → UPDATE; then T = 1, U = 1: D = −0.5, r̂ = 0.55, q = 0.5 − 0.05 = 0.45.
        // Window [1, 3, 2, 3.5] sorted [1, 2, 3, 3.5]: τ = sorted[⌊0.55·4⌋ = 2] = 3.
        assert_eq!(step(&mut gate, 4, 3.5), Decision::Update(1));
        assert!((gate.target_fraction() - 0.45).abs() < 1e-12);
        assert_eq!(gate.threshold(), Some(3.0));
        // 3.0 is not > 3 → SKIP; T = 2, U = 1: D = 0, q = 0.5; window [3, 2, 3.5, 3].
        assert_eq!(step(&mut gate, 5, 3.0), Decision::Skip);
        assert_eq!(gate.deficit(), 0.0);
        assert_eq!(gate.threshold(), Some(3.0));
        assert_eq!(gate.realized_rate(), Some(0.5));
    }

    #[test]
    fn constant_signal_still_meets_the_rate() {
        // Every signal ties with the window, so s > τ never holds for a finite τ: only the
        // integral term's saturation makes updates, and it alone holds the count.
        let budget = Budget::new(0.3).unwrap();
        let params = PidParams::recommended();
        let mut gate = PidReconGate::new(budget, params).unwrap();
        for i in 0..2000 {
            step(&mut gate, i, 1.0);
            assert!(gate.deficit().abs() <= params.count_bound(budget));
        }
        let rate = gate.realized_rate().unwrap();
        assert!((rate - 0.3).abs() < 0.01, "{rate}");
    }

    #[test]
    fn rejects_bad_parameters() {
        let b = Budget::new(0.5).unwrap();
        let ok = PidParams::recommended();
        let cases = [
            (
                PidParams {
                    calibration: 0,
                    ..ok
                },
                "calibration",
            ),
            (PidParams { window: 0, ..ok }, "window"),
            (PidParams { kp: -1.0, ..ok }, "kp"),
            (PidParams { kd: f64::NAN, ..ok }, "kd"),
            (PidParams { ki: 0.0, ..ok }, "ki"),
            (
                PidParams {
                    rate_ema: 1.5,
                    ..ok
                },
                "rate_ema",
            ),
            (
                PidParams {
                    deadband: -1.0,
                    ..ok
                },
                "deadband",
            ),
        ];
        for (params, name) in cases {
            let err = PidReconGate::new(b, params).unwrap_err();
            assert!(
                matches!(err, Error::Config(ref m) if m.contains(name)),
                "{err}"
            );
        }
        assert!(PidReconGate::new(b, ok).is_ok());
    }

    #[test]
    fn window_keeps_the_latest_signals_sorted() {
        let params = PidParams {
            calibration: 1,
            window: 3,
            ..PidParams::recommended()
        };
        let mut gate = PidReconGate::new(Budget::new(0.5).unwrap(), params).unwrap();
        for (i, s) in [5.0, 1.0, 5.0, 2.0, 9.0].into_iter().enumerate() {
            step(&mut gate, i, s);
        }
        assert_eq!(gate.recent, [5.0, 2.0, 9.0]);
        assert_eq!(gate.sorted, [2.0, 5.0, 9.0]);
    }
}
