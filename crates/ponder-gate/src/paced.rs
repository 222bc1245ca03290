//! The paced quantile gate: the threshold is a quantile of every signal seen so far, as in
//! [`crate::QuantileGate`], and the fraction it aims to update is the budget still unspent over
//! the chunks still to come, so a stream of known length ends on its budget.
//!
//! The debt of [`crate::QuantileGate`] pulls the count back towards `ρ·t` at every chunk; inside
//! a long stretch of high signals it must stop updating after a few dozen chunks, which is the
//! level it was meant to keep. When the number `N` of decisions is known before the first one
//! (a recorded stream, a comparison's chunks, a benchmark's solutions), the gate can instead let
//! the count run ahead of or behind `ρ·t` and settle only by the end. With `H` the sorted signals
//! seen so far, `t` the decisions so far and `U` the UPDATEs among them, chunk `t` with signal `s`
//! is decided by:
//!
//! ```text
//! q = (ρ·N − U) / (N − t)          the updates still owed over the chunks still to come
//! q ≥ 1: UPDATE       q ≤ 0: SKIP   (whatever the signal, calibration included)
//! otherwise: UPDATE iff s > H[min(⌊(1 − q)·|H|⌋, |H| − 1)]
//! ```
//!
//! The first `calibration` chunks with a value UPDATE while `H` fills (unless `q` forces the
//! decision); a chunk whose signal has no value is decided by the debt: UPDATE iff `ρ·t − U > 0`.
//!
//! **The count.** Write `R = ρ·N − U` and `r = N − t`; at the start `R = ρ·N ≤ r`. An UPDATE
//! moves both down by one; a SKIP moves only `r`, and happens only while `R < r` (`q < 1`), so
//! `R < r + 1` always. Once `R ≥ r` every chunk left is updated, and the end leaves
//! `R ∈ [0, 1)`. On the other side an UPDATE happens only while `R > 0`, so `R > −1`, and once
//! `R ≤ 0` every chunk left is skipped. Over the whole stream, for any signals,
//! `|U − ρ·N| < 1`. Past the horizon (more than `N` decisions) the gate decides as at its last
//! chunk, `r = 1`.
//!
//! **A prior.** `H` may start from signal values seen before the stream (`prior`), so that the
//! first chunks are compared with a quantile estimated elsewhere rather than with a few values
//! of the stream's own start. A selection on validation fills it with the validation split's
//! values (`ponder-eval`'s `selection`); the count's bound above holds whatever `H` holds.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::order::{insert_sorted, Tally};
use crate::signal::Signal;
use crate::{Decision, Gate, Signals};

/// The parameters of [`PacedGate`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacedParams {
    /// The signal compared with the threshold.
    pub signal: Signal,
    /// Chunks that UPDATE at the start while the history fills (≥ 1).
    pub calibration: usize,
    /// Signal values seen before the stream, which the history starts from: `None` (the key
    /// left out) starts from nothing; a selection on validation fills it with the validation
    /// split's values (see the module doc). The calibration counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<Vec<f64>>,
}

impl PacedParams {
    /// Checks every parameter's range, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        if self.calibration == 0 {
            return Err(Error::Config(
                "paced gate: calibration = 0 chunks, expected at least 1".into(),
            ));
        }
        let prior = self.prior.as_deref().unwrap_or_default();
        if let Some(i) = prior.iter().position(|v| !v.is_finite()) {
            return Err(Error::Config(format!(
                "paced gate: prior[{i}] = {}, expected a finite signal value",
                prior[i]
            )));
        }
        Ok(())
    }
}

/// The paced quantile gate (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct PacedGate {
    budget: Budget,
    params: PacedParams,
    /// The number of decisions the stream will ask for.
    horizon: usize,
    tally: Tally,
}

impl PacedGate {
    /// A gate at budget ρ for a stream of `horizon` decisions, or an error naming a parameter out
    /// of range.
    pub fn new(budget: Budget, params: PacedParams, horizon: usize) -> Result<Self> {
        params.validate()?;
        if horizon == 0 {
            return Err(Error::Config(
                "paced gate: horizon = 0 decisions, expected at least 1".into(),
            ));
        }
        let mut tally = Tally::default();
        for &v in params.prior.as_deref().unwrap_or_default() {
            insert_sorted(&mut tally.history, v);
        }
        Ok(Self {
            budget,
            params,
            horizon,
            tally,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &PacedParams {
        &self.params
    }

    /// The fraction q of the chunks still to come that the next decision aims to update.
    pub fn target_fraction(&self) -> f64 {
        let owed = self.budget.rho() * self.horizon as f64 - self.tally.updates as f64;
        let left = self.horizon.saturating_sub(self.tally.decided).max(1);
        owed / left as f64
    }

    /// The threshold the next chunk's signal is compared with; `None` during calibration.
    pub fn threshold(&self) -> Option<f64> {
        self.tally
            .threshold(self.params.calibration, self.target_fraction())
    }
}

impl Gate for PacedGate {
    /// UPDATE when `q ≥ 1`, SKIP when `q ≤ 0`; otherwise UPDATE during calibration and then iff
    /// the signal exceeds [`PacedGate::threshold`]. A chunk without a signal value: UPDATE iff the
    /// debt `ρ·t − U` is positive.
    fn decide(&mut self, signals: &Signals) -> Decision {
        let q = self.target_fraction();
        if q >= 1.0 {
            Decision::Update(1)
        } else if q <= 0.0 {
            Decision::Skip
        } else {
            let value = self.params.signal.of(signals);
            self.tally
                .decide(value, self.params.calibration, q, self.budget)
        }
    }

    /// Adds the signal (where it has a value) to the history and the decision to the count.
    fn observe(&mut self, signals: &Signals, decision: Decision) {
        self.tally
            .observe(self.params.signal.of(signals), decision.is_update());
    }

    fn threshold(&self) -> Option<f64> {
        PacedGate::threshold(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(recon: f64, prev_loss: Option<f64>) -> Signals {
        Signals {
            position: 0,
            recon,
            recon_init: recon,
            skip_loss: None,
            prev_loss,
            updates_so_far: 0,
        }
    }

    fn gate(calibration: usize, horizon: usize) -> PacedGate {
        let p = PacedParams {
            signal: Signal::Recon,
            calibration,
            prior: None,
        };
        PacedGate::new(Budget::new(0.5).unwrap(), p, horizon).unwrap()
    }

    #[test]
    fn hand_worked_stream() {
        // ρ = 0.5, N = 6, calibration 1.
        let mut g = gate(1, 6);
        let (u, s) = (Decision::Update(1), Decision::Skip);
        // t = 0: q = 3/6; the first value calibrates: UPDATE. H = [2].
        assert_eq!(g.threshold(), None);
        assert_eq!(g.step(&signals(2.0, None)), u);
        // t = 1: q = 2/5 = 0.4, τ = H[⌊0.6·1⌋] = 2; 3 > 2: UPDATE. H = [2, 3].
        assert_eq!(g.target_fraction(), 0.4);
        assert_eq!(g.threshold(), Some(2.0));
        assert_eq!(g.step(&signals(3.0, None)), u);
        // t = 2: q = 1/4, τ = H[⌊0.75·2⌋] = H[1] = 3; 2.5 ≤ 3: SKIP. H = [2, 2.5, 3].
        assert_eq!(g.threshold(), Some(3.0));
        assert_eq!(g.step(&signals(2.5, None)), s);
        // t = 3: q = 1/3, τ = H[⌊(2/3)·3⌋] = H[2] = 3; 4 > 3: UPDATE. U = 3 = ρ·N.
        assert_eq!(g.step(&signals(4.0, None)), u);
        // t = 4, 5: q = 0, every chunk left is skipped, however high its signal.
        assert_eq!(g.target_fraction(), 0.0);
        assert_eq!(g.step(&signals(9.0, None)), s);
        assert_eq!(g.step(&signals(9.0, None)), s);
        // Past the horizon it decides as at its last chunk: q = (3 − 3)/1 = 0.
        assert_eq!(g.step(&signals(9.0, None)), s);
    }

    #[test]
    fn a_prior_is_the_start_of_the_history() {
        // ρ = 0.5, N = 4, calibration 1, prior [4, 1, 3, 2]: the history starts sorted.
        let p = PacedParams {
            signal: Signal::Recon,
            calibration: 1,
            prior: Some(vec![4.0, 1.0, 3.0, 2.0]),
        };
        let mut g = PacedGate::new(Budget::new(0.5).unwrap(), p, 4).unwrap();
        let (u, s) = (Decision::Update(1), Decision::Skip);
        // t = 0: q = 2/4, τ = H[⌊0.5·4⌋] = 3 at once; 3.5 > 3: UPDATE. H = [1, 2, 3, 3.5, 4].
        assert_eq!(g.threshold(), Some(3.0));
        assert_eq!(g.step(&signals(3.5, None)), u);
        // t = 1: q = 1/3, τ = H[⌊(2/3)·5⌋] = H[3] = 3.5; 2 ≤ 3.5: SKIP. H = [1, 2, 2, 3, 3.5, 4].
        assert_eq!(g.threshold(), Some(3.5));
        assert_eq!(g.step(&signals(2.0, None)), s);
        // t = 2: q = 1/2, τ = H[⌊0.5·6⌋] = H[3] = 3; 3.2 > 3: UPDATE; t = 3: q = 0: SKIP.
        assert_eq!(g.step(&signals(3.2, None)), u);
        assert_eq!(g.step(&signals(9.0, None)), s);
        // Without the prior the first chunk would calibrate (UPDATE whatever its signal).
        assert_eq!(gate(1, 4).step(&signals(-9.0, None)), u);
    }

    #[test]
    fn the_end_forces_what_is_owed() {
        // A falling signal: after the first chunk nothing exceeds the history, so only the
        // pacing updates: the last ⌈ρ·N⌉ − 1 chunks are updated whatever their signal.
        let mut g = gate(1, 10);
        let d: Vec<bool> = (0..10)
            .map(|t| g.step(&signals(-(t as f64), None)).is_update())
            .collect();
        assert_eq!(
            d,
            [true, false, false, false, false, false, true, true, true, true]
        );
    }

    #[test]
    fn missing_values_are_decided_by_the_debt() {
        let p = PacedParams {
            signal: Signal::NegPrevLoss,
            calibration: 1,
            prior: None,
        };
        let mut g = PacedGate::new(Budget::new(0.5).unwrap(), p, 4).unwrap();
        // t = 0: q = 0.5, no value, debt 0: SKIP. t = 1: q = 2/3, no value, debt 0.5: UPDATE.
        assert_eq!(g.step(&signals(0.0, None)), Decision::Skip);
        assert_eq!(g.step(&signals(0.0, None)), Decision::Update(1));
        // t = 2: q = 1/2, the first value calibrates. t = 3: q = 0 → SKIP.
        assert_eq!(g.step(&signals(0.0, Some(1.0))), Decision::Update(1));
        assert_eq!(g.step(&signals(0.0, Some(0.0))), Decision::Skip);
    }

    #[test]
    fn the_count_ends_within_one_of_the_budget_for_any_signal() {
        // Rising, falling, constant and scrambled signals, missing values, long calibrations,
        // and budgets whose ρ·N is not a whole number.
        let streams: Vec<Box<dyn Fn(usize) -> Option<f64>>> = vec![
            Box::new(|t| Some(t as f64)),
            Box::new(|t| Some(-(t as f64))),
            Box::new(|_| Some(1.0)),
            Box::new(|t| Some(((t * 7919) % 101) as f64)),
            Box::new(|t| (t % 3 != 0).then_some((t % 17) as f64)),
        ];
        for rho in [0.1, 0.35, 0.5, 0.9] {
            for n in [1, 7, 100, 333] {
                for calibration in [1, 16, 500] {
                    for (k, f) in streams.iter().enumerate() {
                        let p = PacedParams {
                            signal: Signal::NegPrevLoss,
                            calibration,
                            prior: None,
                        };
                        let mut g = PacedGate::new(Budget::new(rho).unwrap(), p, n).unwrap();
                        let u = (0..n)
                            .filter(|&t| g.step(&signals(0.0, f(t))).is_update())
                            .count();
                        let err = (u as f64 - rho * n as f64).abs();
                        assert!(
                            err < 1.0,
                            "ρ {rho}, N {n}, cal {calibration}, stream {k}: {u}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let b = Budget::new(0.5).unwrap();
        let p = PacedParams {
            signal: Signal::Recon,
            calibration: 0,
            prior: None,
        };
        let err = PacedGate::new(b, p.clone(), 10).unwrap_err().to_string();
        assert!(err.contains("calibration = 0"), "{err}");
        let p = PacedParams {
            calibration: 1,
            ..p
        };
        let err = PacedGate::new(b, p.clone(), 0).unwrap_err().to_string();
        assert!(err.contains("horizon = 0"), "{err}");
        let p = PacedParams {
            prior: Some(vec![1.0, f64::NAN]),
            ..p
        };
        let err = PacedGate::new(b, p, 10).unwrap_err().to_string();
        assert!(err.contains("prior[1] = NaN"), "{err}");
    }
}
