//! The fixed gates: always SKIP, or always UPDATE_k.
//!
//! These are the original's `FixedGating("SKIP")` and `FixedGating("UPDATE")` baselines
//! (`docs/original.md` §8.2): SKIP is the backbone alone, UPDATE_1 is "dense TTT" at cost 3.
//! UPDATE_k for k > 1 is ours (the original only evaluates k ∈ {0, 1}).

use crate::error::Result;
use crate::{Decision, Gate, Signals};

/// A gate that returns the same decision for every chunk.
///
/// It ignores its signals and keeps no state, so its decisions do not depend on the order in
/// which chunks arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    decision: Decision,
}

impl Fixed {
    /// The gate that never updates (the original's SKIP baseline).
    pub fn skip() -> Self {
        Self {
            decision: Decision::Skip,
        }
    }

    /// The gate that always updates with `steps` inner steps (UPDATE_`steps`).
    ///
    /// An error unless `steps` is 1, 2 or 4 ([`crate::UPDATE_STEPS`]); use [`Fixed::skip`] for a
    /// gate that never updates.
    pub fn update(steps: u32) -> Result<Self> {
        crate::check_update_steps("fixed update gate: steps", u64::from(steps))?;
        Ok(Self {
            decision: Decision::Update(steps),
        })
    }

    /// The gate that always returns `decision` (SKIP, or UPDATE_k with k ≥ 1).
    ///
    /// An error for `Decision::Update(0)`, which is not a valid decision.
    pub fn new(decision: Decision) -> Result<Self> {
        match decision {
            Decision::Skip => Ok(Self::skip()),
            Decision::Update(steps) => Self::update(steps),
        }
    }

    /// The decision this gate always returns.
    pub fn decision(&self) -> Decision {
        self.decision
    }
}

impl Gate for Fixed {
    fn decide(&mut self, _signals: &Signals) -> Decision {
        self.decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(position: usize, recon: f64) -> Signals {
        Signals {
            position,
            recon,
            recon_init: recon,
            skip_loss: None,
            prev_loss: None,
            updates_so_far: 0,
        }
    }

    #[test]
    fn skip_always_skips() {
        let mut gate = Fixed::skip();
        for (i, s) in [0.0, 1.0, 1e9, -3.0, f64::NAN].into_iter().enumerate() {
            let sig = signals(i, s);
            assert_eq!(gate.decide(&sig), Decision::Skip);
            gate.observe(&sig, Decision::Skip);
            assert_eq!(gate.threshold(), None);
        }
    }

    #[test]
    fn update_always_updates_with_its_steps() {
        let mut gate = Fixed::update(4).unwrap();
        assert_eq!(gate.decision(), Decision::Update(4));
        for i in 0..10 {
            let sig = signals(i, i as f64);
            assert_eq!(gate.decide(&sig), Decision::Update(4));
            gate.observe(&sig, Decision::Update(4));
        }
    }

    #[test]
    fn steps_outside_one_two_four_are_errors() {
        for k in [0, 3, 5, 8] {
            let err = Fixed::update(k).unwrap_err();
            assert!(
                matches!(err, crate::Error::Config(ref m) if m.contains(&format!("steps = {k}, expected 1, 2 or 4"))),
                "{err}"
            );
        }
        assert!(Fixed::new(Decision::Update(0)).is_err());
        assert_eq!(Fixed::new(Decision::Skip).unwrap(), Fixed::skip());
        assert_eq!(
            Fixed::new(Decision::Update(2)).unwrap(),
            Fixed::update(2).unwrap()
        );
    }
}
