//! The fixed gates: always SKIP, or always UPDATE_k.
//!
//! These are the original's `FixedGating("SKIP")` and `FixedGating("UPDATE")` baselines
//! (upstream spec §5.2): SKIP is the backbone alone, UPDATE_1 is "dense TTT" at cost 3.
//! UPDATE_k for k > 1 is ours (the original only evaluates k ∈ {0, 1}).

use crate::error::{Error, Result};
use crate::{Decision, Gate, Signals};

/// A gate that returns the same decision for every chunk.
///
/// It ignores its signals and keeps no state, so its decisions do not depend on the order in
/// which chunks arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    decision: Decision,
    name: String,
}

impl Fixed {
    /// The gate that never updates (the original's SKIP baseline).
    pub fn skip() -> Self {
        Self {
            decision: Decision::Skip,
            name: "skip".to_string(),
        }
    }

    /// The gate that always updates with `steps` inner steps (UPDATE_`steps`).
    ///
    /// An error if `steps` is 0: use [`Fixed::skip`] for a gate that never updates.
    pub fn update(steps: u32) -> Result<Self> {
        if steps == 0 {
            return Err(Error::Config(
                "fixed update gate: steps = 0, expected at least 1 (use the skip gate for 0)"
                    .to_string(),
            ));
        }
        Ok(Self {
            decision: Decision::Update(steps),
            name: format!("update_{steps}"),
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
    fn name(&self) -> &str {
        &self.name
    }

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
            skip_loss: None,
            updates_so_far: 0,
        }
    }

    #[test]
    fn skip_always_skips() {
        let mut gate = Fixed::skip();
        assert_eq!(gate.name(), "skip");
        for (i, s) in [0.0, 1.0, 1e9, -3.0, f64::NAN].into_iter().enumerate() {
            let sig = signals(i, s);
            assert_eq!(gate.decide(&sig), Decision::Skip);
            gate.observe(&sig, Decision::Skip);
            assert_eq!(gate.threshold(), None);
        }
    }

    #[test]
    fn update_always_updates_with_its_steps() {
        let mut gate = Fixed::update(3).unwrap();
        assert_eq!(gate.name(), "update_3");
        assert_eq!(gate.decision(), Decision::Update(3));
        for i in 0..10 {
            let sig = signals(i, i as f64);
            assert_eq!(gate.decide(&sig), Decision::Update(3));
            gate.observe(&sig, Decision::Update(3));
        }
        assert_eq!(Fixed::update(1).unwrap().name(), "update_1");
    }

    #[test]
    fn zero_steps_is_an_error() {
        let err = Fixed::update(0).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("steps = 0")),
            "{err}"
        );
        assert!(Fixed::new(Decision::Update(0)).is_err());
        assert_eq!(Fixed::new(Decision::Skip).unwrap(), Fixed::skip());
        assert_eq!(
            Fixed::new(Decision::Update(2)).unwrap(),
            Fixed::update(2).unwrap()
        );
    }
}
