//! Reconstruction Gating, the original's controller ("Ours"), exactly as `docs/original.md` §8.6.
//!
//! The signal is the fast layer's reconstruction loss before its update (`mean(ttt_loss_step_0)`).
//! The first `n_cal` chunks always UPDATE while their signals are collected; when the last of them
//! arrives the threshold starts at the (1 − ρ) empirical quantile of the collected signals,
//! `τ = sorted(buf)[min(⌊(1 − ρ)·len⌋, len − 1)]`, and the rate estimate at `r̂ = ρ`.
//! From then on a chunk is UPDATEd iff `s > τ`, and after every decision `d ∈ {0, 1}`:
//!
//! ```text
//! r̂ = (1 − α)·r̂ + α·d
//! τ = max(0.01, τ + (r̂ − ρ)·β·max(0.1, |τ|))
//! ```
//!
//! The original ties the step gain β to the EMA rate (β = α = 0.1); here both are parameters,
//! whose defaults are the original's.
//!
//! The update uses the new r̂, and the last calibration chunk's observation (d = 1) already moves
//! r̂ and τ, because calibration completes inside `decide`.
//! Both floors (0.1 on the step scale, 0.01 on τ) are the original code's; the paper's formula
//! has neither.
//! The arithmetic is done in the original's order, so the f64 results are the same as Python's.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::order::upper_quantile;
use crate::{Decision, Gate, Signals};

/// The original's EMA rate α (`ema_alpha=0.1`).
pub const ORIGINAL_ALPHA: f64 = 0.1;

/// The original's calibration window: `calibration_batches = 2` times 8 chunks = 16 chunks.
pub const ORIGINAL_CALIBRATION: usize = 16;

/// The lower bound on τ after each adaptation step (the original's `max(0.01, …)`).
pub const THRESHOLD_FLOOR: f64 = 0.01;

/// The lower bound on the step scale `max(0.1, |τ|)` of each adaptation step.
pub const STEP_SCALE_FLOOR: f64 = 0.1;

/// The reconstruction-loss threshold gate with the original's adaptive threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconGate {
    budget: Budget,
    alpha: f64,
    step: f64,
    calibration: usize,
    steps: u32,
    /// Signals seen during calibration (emptied when calibration ends).
    buf: Vec<f64>,
    /// `(τ, r̂)` once calibrated.
    state: Option<(f64, f64)>,
}

impl ReconGate {
    /// A gate with target rate ρ = `budget.rho()`, EMA rate `alpha` ∈ (0, 1], threshold step
    /// gain `step` ∈ (0, 1] and a calibration window of `calibration` ≥ 1 chunks; UPDATE means
    /// one inner step.
    pub fn new(budget: Budget, alpha: f64, step: f64, calibration: usize) -> Result<Self> {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(Error::Config(format!(
                "recon gate: alpha = {alpha}, expected a number in (0, 1]"
            )));
        }
        if !(step > 0.0 && step <= 1.0) {
            return Err(Error::Config(format!(
                "recon gate: step = {step}, expected a number in (0, 1]"
            )));
        }
        if calibration == 0 {
            return Err(Error::Config(
                "recon gate: calibration = 0 chunks, expected at least 1".to_string(),
            ));
        }
        Ok(Self {
            budget,
            alpha,
            step,
            calibration,
            steps: 1,
            buf: Vec::with_capacity(calibration),
            state: None,
        })
    }

    /// The original's gate: α = β = [`ORIGINAL_ALPHA`], [`ORIGINAL_CALIBRATION`] chunks.
    pub fn original(budget: Budget) -> Self {
        Self {
            budget,
            alpha: ORIGINAL_ALPHA,
            step: ORIGINAL_ALPHA,
            calibration: ORIGINAL_CALIBRATION,
            steps: 1,
            buf: Vec::with_capacity(ORIGINAL_CALIBRATION),
            state: None,
        }
    }

    /// The same gate, updating with `steps` inner steps when it fires; an error if `steps` = 0.
    pub fn with_steps(mut self, steps: u32) -> Result<Self> {
        if steps == 0 {
            return Err(Error::Config(
                "recon gate: steps = 0, expected at least 1".to_string(),
            ));
        }
        self.steps = steps;
        Ok(self)
    }

    /// The target rate ρ.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The EMA rate α of the rate estimate.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The gain β of the threshold step.
    pub fn step_gain(&self) -> f64 {
        self.step
    }

    /// The number of calibration chunks.
    pub fn calibration(&self) -> usize {
        self.calibration
    }

    /// Whether calibration has ended (it ends inside the last calibration chunk's `decide`).
    pub fn is_calibrated(&self) -> bool {
        self.state.is_some()
    }

    /// The current threshold τ; `None` before calibration ends.
    pub fn threshold(&self) -> Option<f64> {
        self.state.map(|(tau, _)| tau)
    }

    /// The EMA r̂ of the update rate; `None` before calibration ends.
    pub fn rate(&self) -> Option<f64> {
        self.state.map(|(_, rate)| rate)
    }
}

impl Gate for ReconGate {
    /// During calibration: records the signal and returns UPDATE (calibration ends inside the
    /// last calibration chunk's call). After: UPDATE iff `signals.recon > τ`.
    ///
    /// Non-finite signals are not rejected here (the replay in `stream` rejects them); during
    /// calibration they are ordered by [`f64::total_cmp`], and a NaN signal never exceeds τ.
    fn decide(&mut self, signals: &Signals) -> Decision {
        match self.state {
            Some((tau, _)) => {
                if signals.recon > tau {
                    Decision::Update(self.steps)
                } else {
                    Decision::Skip
                }
            }
            None => {
                self.buf.push(signals.recon);
                if self.buf.len() >= self.calibration {
                    self.buf.sort_by(f64::total_cmp);
                    let tau = upper_quantile(&self.buf, self.budget.rho());
                    self.state = Some((tau, self.budget.rho()));
                    self.buf = Vec::new();
                }
                Decision::Update(self.steps)
            }
        }
    }

    fn observe(&mut self, _signals: &Signals, decision: Decision) {
        let Some((tau, rate)) = self.state else {
            return;
        };
        let d = if decision.is_update() { 1.0 } else { 0.0 };
        let rate = (1.0 - self.alpha) * rate + self.alpha * d;
        let step = (rate - self.budget.rho()) * self.step * tau.abs().max(STEP_SCALE_FLOOR);
        let tau = (tau + step).max(THRESHOLD_FLOOR);
        self.state = Some((tau, rate));
    }

    fn threshold(&self) -> Option<f64> {
        ReconGate::threshold(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `decide` then `observe` on each signal, returning the decisions and `(τ, r̂)` after
    /// each observation.
    fn run(gate: &mut ReconGate, signals: &[f64]) -> Vec<(Decision, Option<f64>, Option<f64>)> {
        signals
            .iter()
            .enumerate()
            .map(|(position, &recon)| {
                let sig = Signals {
                    position,
                    recon,
                    recon_init: recon,
                    skip_loss: None,
                    prev_loss: None,
                    updates_so_far: 0,
                };
                let d = gate.step(&sig);
                (d, gate.threshold(), gate.rate())
            })
            .collect()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-12)
    }

    #[test]
    fn hand_worked_sequence() {
        // n_cal = 4, ρ = 0.5, α = 0.1.
        let mut gate = ReconGate::new(Budget::new(0.5).unwrap(), 0.1, 0.1, 4).unwrap();
        let out = run(&mut gate, &[1.0, 3.0, 2.0, 4.0, 2.5, 3.5, 3.02, 3.025, 3.0]);
        let u = Decision::Update(1);
        let s = Decision::Skip;
        // Chunks 0–2: calibration, UPDATE, nothing adapts yet.
        for row in &out[..3] {
            assert_eq!(*row, (u, None, None));
        }
        // Chunk 3 ends calibration: sorted = [1, 2, 3, 4], idx = min(⌊0.5·4⌋, 3) = 2, τ = 3,
        // r̂ = 0.5; UPDATE. Its observe (d = 1): r̂ = 0.9·0.5 + 0.1 = 0.55,
        // τ = 3 + (0.55 − 0.5)·0.1·max(0.1, 3) = 3 + 0.015 = 3.015.
        let expected = [
            (u, 3.015, 0.55),
            // Chunk 4: 2.5 ≤ 3.015 → SKIP. r̂ = 0.9·0.55 = 0.495,
            // τ = 3.015 + (−0.005)·0.1·3.015 = 3.015 − 0.0015075 = 3.0134925.
            (s, 3.0134925, 0.495),
            // Chunk 5: 3.5 > 3.0134925 → UPDATE. r̂ = 0.9·0.495 + 0.1 = 0.5455,
            // τ = 3.0134925 + 0.0455·0.1·3.0134925 = 3.0134925 + 0.013711390875 = 3.027203890875.
            (u, 3.027203890875, 0.5455),
            // Chunk 6: 3.02 ≤ 3.027203890875 → SKIP. r̂ = 0.9·0.5455 = 0.49095,
            // τ = 3.027203890875 − 0.000905·3.027203890875 = 3.027203890875 − 0.002739619521241875
            //   = 3.024464271353758125.
            (s, 3.024464271353758, 0.49095),
            // Chunk 7: 3.025 > 3.0244642713… → UPDATE (just above τ). r̂ = 0.9·0.49095 + 0.1
            // = 0.541855, τ = 3.0244642713537581 + 0.0041855·3.0244642713537581
            //   = 3.0244642713537581 + 0.0126588952077… = 3.0371231665615…
            (u, 3.037123166561509, 0.541855),
            // Chunk 8: 3.0 ≤ τ → SKIP. r̂ = 0.9·0.541855 = 0.4876695,
            // τ = 3.0371231665615 − 0.00123305·3.0371231665615 = 3.0371231665615 − 0.0037449247…
            //   = 3.0333782418409…
            (s, 3.033378241840981, 0.4876695),
        ];
        for (i, ((d, tau, rate), (ed, etau, erate))) in out[3..].iter().zip(expected).enumerate() {
            let chunk = i + 3;
            assert_eq!(*d, ed, "chunk {chunk}");
            assert!(
                close(*tau, etau),
                "chunk {chunk}: τ = {tau:?}, expected {etau}"
            );
            assert!(
                close(*rate, erate),
                "chunk {chunk}: r̂ = {rate:?}, expected {erate}"
            );
        }
    }

    #[test]
    fn last_calibration_chunk_already_adapts() {
        // The original's parameters; signals 1..=16 shuffled. sorted[⌊0.5·16⌋] = sorted[8] = 9.
        let signals: Vec<f64> = (0..16).map(|i| f64::from((i * 7) % 16 + 1)).collect();
        let mut gate = ReconGate::original(Budget::new(0.5).unwrap());
        let out = run(&mut gate, &signals);
        assert!(out.iter().all(|(d, _, _)| *d == Decision::Update(1)));
        assert!(out[..15].iter().all(|(_, tau, _)| tau.is_none()));
        // After the 16th observe: r̂ = 0.9·0.5 + 0.1 = 0.55, τ = 9 + 0.05·0.1·9 = 9.045.
        assert!(close(out[15].1, 9.045), "{:?}", out[15]);
        assert!(close(out[15].2, 0.55));
    }

    #[test]
    fn calibration_quantile_index() {
        // ρ = 0.2 over 5 chunks: idx = min(⌊0.8·5⌋, 4) = 4 → the maximum, 50.
        // ρ = 0.0 would give idx = 5, clamped to 4.
        for rho in [0.2, 0.0] {
            let mut gate = ReconGate::new(Budget::new(rho).unwrap(), 1.0, 1.0, 5).unwrap();
            for (position, recon) in [30.0, 10.0, 50.0, 20.0, 40.0].into_iter().enumerate() {
                let sig = Signals {
                    position,
                    recon,
                    recon_init: recon,
                    skip_loss: None,
                    prev_loss: None,
                    updates_so_far: 0,
                };
                assert_eq!(gate.decide(&sig), Decision::Update(1));
            }
            assert_eq!(gate.threshold(), Some(50.0));
            assert_eq!(gate.rate(), Some(rho));
        }
    }

    #[test]
    fn floors() {
        // n_cal = 1, ρ = 0.5, α = 1 (so r̂ = d after each step).
        let mut gate = ReconGate::new(Budget::new(0.5).unwrap(), 1.0, 1.0, 1).unwrap();
        let out = run(&mut gate, &[0.05, 0.0, 0.0, 0.0]);
        // Chunk 0: τ = 0.05, UPDATE, r̂ = 1. The step scale is max(0.1, 0.05) = 0.1 (the 0.1
        // floor): τ = 0.05 + 0.5·1·0.1 = 0.1 (without the floor it would be 0.075).
        assert!(close(out[0].1, 0.1), "{:?}", out[0]);
        // Chunk 1: 0 ≤ 0.1 → SKIP, r̂ = 0: τ = 0.1 − 0.5·0.1 = 0.05.
        assert_eq!(out[1].0, Decision::Skip);
        assert!(close(out[1].1, 0.05));
        // Chunk 2: SKIP: τ = 0.05 − 0.5·max(0.1, 0.05) = 0.0 → the 0.01 floor.
        assert!(close(out[2].1, 0.01));
        // Chunk 3: SKIP: τ = 0.01 − 0.05 = −0.04 → 0.01 again.
        assert!(close(out[3].1, 0.01));
        assert!(out.iter().all(|(_, _, r)| r.is_some()));
    }

    #[test]
    fn step_gain_apart_from_alpha() {
        // n_cal = 1, ρ = 0.5, α = 1, β = 0.5. Chunk 0: τ = 1, r̂ = 0.5, then d = 1 gives r̂ = 1 and
        // τ = 1 + (1 − 0.5)·0.5·max(0.1, 1) = 1.25 (β = α = 1 would give 1.5).
        let mut gate = ReconGate::new(Budget::new(0.5).unwrap(), 1.0, 0.5, 1).unwrap();
        let out = run(&mut gate, &[1.0]);
        assert!(close(out[0].1, 1.25), "{:?}", out[0]);
        assert!(close(out[0].2, 1.0));
    }

    #[test]
    fn rejects_bad_parameters() {
        let b = Budget::new(0.5).unwrap();
        for alpha in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = ReconGate::new(b, alpha, 0.1, 16).unwrap_err();
            assert!(
                matches!(err, Error::Config(ref m) if m.contains("alpha")),
                "{err}"
            );
            let err = ReconGate::new(b, 0.1, alpha, 16).unwrap_err();
            assert!(
                matches!(err, Error::Config(ref m) if m.contains("step")),
                "{err}"
            );
        }
        let err = ReconGate::new(b, 0.1, 0.1, 0).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("calibration")),
            "{err}"
        );
        assert!(ReconGate::new(b, 1.0, 1.0, 1).is_ok());
        assert!(ReconGate::original(b).with_steps(0).is_err());
        assert_eq!(ReconGate::original(b).calibration(), 16);
        assert_eq!(ReconGate::original(b).alpha(), 0.1);
        assert_eq!(ReconGate::original(b).step_gain(), 0.1);
    }
}
