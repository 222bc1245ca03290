//! The update budget ρ: the fraction of chunks a method may update.

use crate::error::{Error, Result};

/// The fraction ρ ∈ [0, 1] of chunks that may be updated.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
pub struct Budget(f64);

impl Budget {
    /// A budget, or an error if `rho` is not a finite number in [0, 1].
    pub fn new(rho: f64) -> Result<Self> {
        if rho.is_finite() && (0.0..=1.0).contains(&rho) {
            Ok(Self(rho))
        } else {
            Err(Error::Budget(rho))
        }
    }

    /// The budget from a cost multiplier in the original's units (`--budget 2.0` ⇒ ρ = 0.5):
    /// `ρ = (cost − 1) / 2` ([`ponder_metrics::rate_spending`]), an error when that falls
    /// outside [0, 1] (no silent clipping).
    pub fn from_cost(cost: f64) -> Result<Self> {
        Self::new(ponder_metrics::rate_spending(cost))
    }

    /// ρ.
    pub fn rho(self) -> f64 {
        self.0
    }

    /// How many of `n` chunks an offline top-k policy updates ([`ponder_metrics::top_k_count`]):
    /// `max(1, ⌊n·ρ⌋)`, as the original's oracle; 0 when ρ = 0 or `n` = 0.
    pub fn top_k(self, n: usize) -> usize {
        ponder_metrics::top_k_count(n, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range() {
        assert!(Budget::new(-0.1).is_err());
        assert!(Budget::new(1.5).is_err());
        assert!(Budget::new(f64::NAN).is_err());
        assert_eq!(Budget::from_cost(2.0).unwrap().rho(), 0.5);
        assert!(Budget::from_cost(4.0).is_err());
    }

    #[test]
    fn top_k_matches_original() {
        let b = Budget::new(0.5).unwrap();
        assert_eq!(b.top_k(2000), 1000);
        assert_eq!(b.top_k(3), 1);
        assert_eq!(Budget::new(0.1).unwrap().top_k(5), 1);
        assert_eq!(Budget::new(0.0).unwrap().top_k(5), 0);
        assert_eq!(Budget::new(1.0).unwrap().top_k(5), 5);
    }
}
