//! The long-horizon quantile gate: the threshold is a quantile of every signal seen so far, and a
//! budget debt holds the realized update rate to ρ over the whole stream.
//!
//! The original's controller ([`crate::ReconGate`]) moves τ towards the local median of the last
//! few dozen chunks, so inside a long stretch of high (or low) signals it still updates about
//! half of them: it keeps the signal's rank within the stretch and loses its level.
//! This gate keeps the level. With `H` the sorted signals of every chunk decided so far, `t` the
//! number of decisions so far and `U` the UPDATEs among them (calibration included), it decides
//! chunk `t` with signal `s` by:
//!
//! ```text
//! D = ρ·t − U                                 the budget debt (updates still owed)
//! q = ρ + gain·sign(D)·max(0, |D| − deadband)  the fraction of chunks to update
//! τ = H[min(⌊(1 − q)·|H|⌋, |H| − 1)]            the (1 − q) empirical quantile of H
//! UPDATE iff s > τ                             (q ≥ 1: always; q ≤ 0: never)
//! ```
//!
//! The first `calibration` chunks UPDATE while `H` fills, as in the original; they count in `D`,
//! so the debt they leave is repaid by a lower `q` afterwards. A chunk whose signal has no value
//! (`neg_prev_loss` at a stream's first chunk) adds nothing to `H` and is decided by the debt
//! alone: UPDATE iff `D > 0`; that moves `D` towards 0, so the bound below still holds.
//!
//! **The rate bound.** Each decision moves `D` by `ρ − d ∈ [ρ − 1, ρ]`. Once
//! `D > deadband + (1 − ρ)/gain`, `q > 1` and the chunk is UPDATEd; once
//! `D < −deadband − ρ/gain`, `q < 0` and it is skipped. So after the calibration's debt is
//! repaid, `|U − ρ·t| ≤ deadband + max(ρ, 1 − ρ)/gain + 1` ([`QuantileParams::count_bound`])
//! for any signal stream, and the realized rate over a stream of `N` chunks is within
//! `count_bound / N` of ρ.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::order::{dead_zone, Tally};
use crate::signal::Signal;
use crate::{Decision, Gate, Signals};

/// The parameters of [`QuantileGate`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantileParams {
    /// The signal compared with the threshold.
    pub signal: Signal,
    /// Chunks that UPDATE at the start while the history fills (≥ 1).
    pub calibration: usize,
    /// How strongly the budget debt moves the updated fraction q, per update owed (> 0).
    pub gain: f64,
    /// How many updates the debt may reach before it moves q (≥ 0).
    pub deadband: f64,
}

impl QuantileParams {
    /// Checks every parameter's range, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("quantile gate: {m}")));
        if self.calibration == 0 {
            return bad("calibration = 0 chunks, expected at least 1".into());
        }
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return bad(format!(
                "gain = {}, expected a finite number > 0",
                self.gain
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

    /// The bound on `|U − ρ·t|` once the calibration's debt is repaid (see the module doc).
    pub fn count_bound(&self, budget: Budget) -> f64 {
        let rho = budget.rho();
        self.deadband + rho.max(1.0 - rho) / self.gain + 1.0
    }
}

/// The long-horizon quantile gate (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileGate {
    budget: Budget,
    params: QuantileParams,
    tally: Tally,
}

impl QuantileGate {
    /// A gate at budget ρ, or an error naming a parameter out of range.
    pub fn new(budget: Budget, params: QuantileParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            budget,
            params,
            tally: Tally::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &QuantileParams {
        &self.params
    }

    /// The budget debt `ρ·t − U` over the decisions observed so far.
    pub fn debt(&self) -> f64 {
        self.tally.debt(self.budget)
    }

    /// The fraction q of chunks the next decision aims to update.
    pub fn target_fraction(&self) -> f64 {
        self.budget.rho() + self.params.gain * dead_zone(self.debt(), self.params.deadband)
    }

    /// The threshold the next chunk's signal is compared with; `None` during calibration.
    pub fn threshold(&self) -> Option<f64> {
        self.tally
            .threshold(self.params.calibration, self.target_fraction())
    }
}

impl Gate for QuantileGate {
    /// UPDATE during calibration; after, UPDATE iff the signal exceeds [`QuantileGate::threshold`].
    /// A chunk without a signal value: UPDATE iff the debt is positive.
    fn decide(&mut self, signals: &Signals) -> Decision {
        self.tally.decide(
            self.params.signal.of(signals),
            self.params.calibration,
            self.target_fraction(),
            self.budget,
        )
    }

    /// Adds the signal (where it has a value) to the history and the decision to the debt.
    fn observe(&mut self, signals: &Signals, decision: Decision) {
        self.tally
            .observe(self.params.signal.of(signals), decision.is_update());
    }

    fn threshold(&self) -> Option<f64> {
        QuantileGate::threshold(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(calibration: usize, gain: f64, deadband: f64) -> QuantileParams {
        QuantileParams {
            signal: Signal::Recon,
            calibration,
            gain,
            deadband,
        }
    }

    fn step(gate: &mut QuantileGate, position: usize, recon: f64) -> Decision {
        gate.step(&Signals {
            position,
            recon,
            recon_init: -recon,
            skip_loss: None,
            prev_loss: None,
            updates_so_far: 0,
        })
    }

    #[test]
    fn the_previous_loss_and_its_absence() {
        // ρ = 0.5, calibration 1, gain 0.25, deadband 0, on −prev_loss.
        let p = QuantileParams {
            signal: Signal::NegPrevLoss,
            ..params(1, 0.25, 0.0)
        };
        let mut g = QuantileGate::new(Budget::new(0.5).unwrap(), p).unwrap();
        let mut at = |position: usize, prev_loss: Option<f64>| {
            g.step(&Signals {
                position,
                recon: 9.0,
                recon_init: 9.0,
                skip_loss: None,
                prev_loss,
                updates_so_far: 0,
            })
        };
        // No value and no debt (D = 0): SKIP, and nothing enters H.
        assert_eq!(at(0, None), Decision::Skip);
        // t = 1, D = 0.5 > 0: no value again, so the debt decides: UPDATE.
        assert_eq!(at(1, None), Decision::Update(1));
        // The first value calibrates: UPDATE. H = [−4].
        assert_eq!(at(2, Some(4.0)), Decision::Update(1));
        // t = 3, U = 2, D = −0.5, q = 0.375, τ = H[0] = −4; −3 > −4: a lower loss updates.
        assert_eq!(at(3, Some(3.0)), Decision::Update(1));
        // t = 4, U = 3, D = −1, q = 0.25, H = [−4, −3], τ = H[1] = −3; −5 ≤ −3: SKIP.
        assert_eq!(at(4, Some(5.0)), Decision::Skip);
    }

    #[test]
    fn hand_worked_stream() {
        // ρ = 0.5, calibration 2, gain 0.25, deadband 0.5.
        let mut g = QuantileGate::new(Budget::new(0.5).unwrap(), params(2, 0.25, 0.5)).unwrap();
        let u = Decision::Update(1);
        let s = Decision::Skip;
        // Chunks 0, 1 calibrate: UPDATE. H = [1, 3], t = 2, U = 2, D = 1 − 2 = −1.
        assert_eq!(step(&mut g, 0, 3.0), u);
        assert_eq!(g.threshold(), None);
        assert_eq!(step(&mut g, 1, 1.0), u);
        // q = 0.5 + 0.25·(−(1 − 0.5)) = 0.375; idx = ⌊0.625·2⌋ = 1 → τ = 3.
        assert_eq!(g.target_fraction(), 0.375);
        assert_eq!(g.threshold(), Some(3.0));
        // Chunk 2: 2 ≤ 3 → SKIP. H = [1, 2, 3], t = 3, U = 2, D = −0.5: inside the deadband,
        // q = 0.5; idx = ⌊0.5·3⌋ = 1 → τ = 2.
        assert_eq!(step(&mut g, 2, 2.0), s);
        assert_eq!(g.threshold(), Some(2.0));
        // Chunk 3: 2.5 > 2 → UPDATE. H = [1, 2, 2.5, 3], t = 4, U = 3, D = −1,
        // q = 0.375, idx = ⌊0.625·4⌋ = 2 → τ = 2.5.
        assert_eq!(step(&mut g, 3, 2.5), u);
        assert_eq!(g.threshold(), Some(2.5));
        // Chunk 4: 2.5 is not above 2.5 → SKIP. t = 5, U = 3, D = −0.5, q = 0.5,
        // H = [1, 2, 2.5, 2.5, 3], idx = 2 → τ = 2.5.
        assert_eq!(step(&mut g, 4, 2.5), s);
        assert_eq!(g.threshold(), Some(2.5));
        // Chunk 5: 0.5 → SKIP. t = 6, U = 3, D = 0, q = 0.5, idx = 3 → τ = 2.5.
        assert_eq!(step(&mut g, 5, 0.5), s);
        assert_eq!(g.debt(), 0.0);
        assert_eq!(g.threshold(), Some(2.5));
    }

    #[test]
    fn the_level_is_kept_across_long_stretches() {
        // Stretches of 40 chunks, low, high, low, high, the signals within a stretch in a
        // scrambled order. The original's controller follows each stretch's median (counts
        // 29, 27, 13, 26 per stretch); with the whole history, the second low stretch is mostly
        // skipped and the high stretches take the updates (21, 29, 5, 34).
        let signal = |t: usize| {
            let level = if (t / 40) % 2 == 0 { 1.0 } else { 2.0 };
            level + ((t * 17) % 40) as f64 * 1e-3
        };
        let b = Budget::new(0.5).unwrap();
        let mut g = QuantileGate::new(b, params(1, 0.05, 4.0)).unwrap();
        let ours: Vec<bool> = (0..160)
            .map(|t| step(&mut g, t, signal(t)).is_update())
            .collect();
        let mut original = crate::ReconGate::original(b);
        let theirs: Vec<bool> = (0..160)
            .map(|t| {
                let s = Signals {
                    position: t,
                    recon: signal(t),
                    recon_init: signal(t),
                    skip_loss: None,
                    prev_loss: None,
                    updates_so_far: 0,
                };
                Gate::step(&mut original, &s).is_update()
            })
            .collect();
        let count = |d: &[bool], stretch: usize| {
            d[stretch * 40..(stretch + 1) * 40]
                .iter()
                .filter(|&&u| u)
                .count()
        };
        let (low, high) = (count(&ours, 2), count(&ours, 1) + count(&ours, 3));
        assert!(low <= 8, "{low} updates in the second low stretch");
        assert!(high >= 60, "{high} updates in the high stretches");
        let (low, high) = (count(&theirs, 2), count(&theirs, 1) + count(&theirs, 3));
        assert!(
            low >= 10,
            "the original: {low} updates in the second low stretch"
        );
        assert!(
            high <= 56,
            "the original: {high} updates in the high stretches"
        );
        let total = ours.iter().filter(|&&u| u).count() as f64;
        assert!((total - 80.0).abs() <= params(1, 0.05, 4.0).count_bound(b));
    }

    #[test]
    fn saturation_forces_the_debt_back() {
        // An increasing signal: every chunk is above the history, so without the debt every
        // chunk would UPDATE. The bound holds anyway.
        let b = Budget::new(0.5).unwrap();
        let p = params(1, 0.1, 2.0);
        let mut g = QuantileGate::new(b, p).unwrap();
        for t in 0..500 {
            step(&mut g, t, t as f64);
            assert!(
                g.debt().abs() <= p.count_bound(b),
                "chunk {t}: debt {} beyond {}",
                g.debt(),
                p.count_bound(b)
            );
        }
        // And a decreasing one.
        let mut g = QuantileGate::new(b, p).unwrap();
        for t in 0..500 {
            step(&mut g, t, -(t as f64));
            assert!(g.debt().abs() <= p.count_bound(b), "chunk {t}");
        }
    }

    #[test]
    fn reads_the_configured_signal() {
        let mut p = params(1, 0.1, 0.0);
        p.signal = Signal::ReconInit;
        let mut g = QuantileGate::new(Budget::new(0.5).unwrap(), p).unwrap();
        // recon_init = −recon in `step`: history of recon_init = [−1].
        step(&mut g, 0, 1.0);
        // D = 0.5 − 1 = −0.5, q = 0.5 − 0.1·0.5 = 0.45, τ = H[⌊0.55⌋] = −1, and
        // recon_init = −0.5 > −1: UPDATE (on recon, 0.5 against a history of [1], a SKIP).
        assert_eq!(step(&mut g, 1, 0.5), Decision::Update(1));
        assert_eq!(g.params().signal, Signal::ReconInit);
    }

    #[test]
    fn rejects_bad_parameters() {
        let b = Budget::new(0.5).unwrap();
        for (p, key) in [
            (params(0, 0.1, 0.0), "calibration"),
            (params(1, 0.0, 0.0), "gain"),
            (params(1, f64::NAN, 0.0), "gain"),
            (params(1, 0.1, -1.0), "deadband"),
            (params(1, 0.1, f64::INFINITY), "deadband"),
        ] {
            let err = QuantileGate::new(b, p).unwrap_err();
            assert!(
                matches!(err, Error::Config(ref m) if m.contains(key)),
                "{err}"
            );
        }
    }
}
