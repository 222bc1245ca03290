//! Accounted compute cost of SKIP / UPDATE_k decisions (`docs/original.md` §9.7 and §8.1).
//!
//! The convention used everywhere in the original (`evaluation/metrics.py::compute_flops`, the
//! paper's appendix D): a chunk costs one forward pass when skipped, and `1 + 2k` forward-pass
//! units when updated with `k` inner steps (a forward, then k times a backward and a re-forward),
//! so 1 / 3 / 5 / 9 for k = 0 / 1 / 2 / 4.
//! This is the *accounted* cost; the evaluation harness runs both paths for every chunk anyway.
//! The budget of a run is a mean cost, and `ρ = clip((budget − 1)/2, 0, 1)` turns it into the
//! UPDATE_1 rate that spends it.

use crate::error::{ensure_nonempty, Error};
use crate::Result;

/// The cost of one chunk in forward-pass units: `1 + 2k` for `k` inner steps (`k = 0` is SKIP).
///
/// ```
/// assert_eq!(ponder_metrics::cost_units(0), 1.0);
/// assert_eq!(ponder_metrics::cost_units(1), 3.0);
/// assert_eq!(ponder_metrics::cost_units(4), 9.0);
/// ```
pub fn cost_units(steps: u32) -> f64 {
    1.0 + 2.0 * f64::from(steps)
}

/// The mean cost per chunk of a run, from the number of inner steps taken on each chunk.
///
/// Errors when `steps` is empty.
///
/// ```
/// // Half the chunks updated once: 1 + 2·½ = 2.
/// assert_eq!(ponder_metrics::mean_cost(&[0, 1, 1, 0]).unwrap(), 2.0);
/// ```
pub fn mean_cost(steps: &[u32]) -> Result<f64> {
    ensure_nonempty("mean_cost", "steps", steps)?;
    let total: f64 = steps.iter().map(|&k| cost_units(k)).sum();
    Ok(total / steps.len() as f64)
}

/// The expected cost per chunk of updating a fraction `rate` of chunks with `steps` inner steps
/// each and skipping the rest: `1 + 2·k·ρ`.
///
/// Errors when `rate` is outside `[0, 1]`.
pub fn expected_cost(rate: f64, steps: u32) -> Result<f64> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::input(
            "expected_cost",
            format!("rate is {rate}, expected a value in [0, 1]"),
        ));
    }
    Ok(1.0 + 2.0 * f64::from(steps) * rate)
}

/// The UPDATE_1 rate whose expected cost is `budget`, unclipped: `(budget − 1)/2`, the inverse of
/// [`expected_cost`] at k = 1 (outside `[0, 1]` when the budget is below SKIP's cost or above
/// UPDATE_1's).
pub fn rate_spending(budget: f64) -> f64 {
    (budget - 1.0) / 2.0
}

/// The UPDATE_1 rate that spends a mean-cost `budget`: `ρ = clip((budget − 1)/2, 0, 1)`, as the
/// original's `--budget` flag (budget 2.0 gives ρ = ½).
///
/// Errors when `budget` is not finite.
pub fn rate_for_budget(budget: f64) -> Result<f64> {
    if !budget.is_finite() {
        return Err(Error::input(
            "rate_for_budget",
            format!("budget is {budget}, expected a finite value"),
        ));
    }
    Ok(rate_spending(budget).clamp(0.0, 1.0))
}

/// A run's mean cost relative to always updating once (UPDATE_1, cost 3 per chunk), at least ⅓;
/// useful to report "x% of dense TTT compute".
///
/// Errors when `steps` is empty.
pub fn cost_relative_to_dense(steps: &[u32]) -> Result<f64> {
    ensure_nonempty("cost_relative_to_dense", "steps", steps)?;
    Ok(mean_cost(steps)? / cost_units(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_units_follow_one_plus_two_k() {
        let cases = [
            (0, 1.0),
            (1, 3.0),
            (2, 5.0),
            (4, 9.0),
            (u32::MAX, 1.0 + 2.0 * 4_294_967_295.0),
        ];
        for (steps, expected) in cases {
            assert_eq!(cost_units(steps), expected, "k = {steps}");
        }
    }

    #[test]
    fn mean_cost_cases() {
        let cases: &[(&[u32], f64)] = &[
            (&[0], 1.0),
            (&[1], 3.0),
            (&[0, 1], 2.0),
            (&[0, 0, 0, 1], 1.5),
            (&[0, 2, 4, 0], 4.0),
        ];
        for &(steps, expected) in cases {
            assert_eq!(mean_cost(steps).unwrap(), expected, "{steps:?}");
        }
        let err = mean_cost(&[]).unwrap_err().to_string();
        assert!(err.contains("mean_cost") && err.contains("steps"), "{err}");
    }

    #[test]
    fn expected_cost_cases() {
        let cases = [
            (0.0, 1, 1.0),
            (0.5, 1, 2.0),
            (1.0, 1, 3.0),
            (0.25, 4, 3.0),
            (0.5, 0, 1.0),
        ];
        for (rate, steps, expected) in cases {
            assert_eq!(
                expected_cost(rate, steps).unwrap(),
                expected,
                "rate {rate}, k {steps}"
            );
        }
        for rate in [-0.1, 1.1, f64::NAN] {
            assert!(expected_cost(rate, 1).is_err());
        }
    }

    #[test]
    fn budget_maps_to_rate_and_back() {
        let cases = [
            (1.0, 0.0),
            (2.0, 0.5),
            (3.0, 1.0),
            (0.5, 0.0),
            (5.0, 1.0),
            (1.5, 0.25),
        ];
        for (budget, rate) in cases {
            assert_eq!(rate_for_budget(budget).unwrap(), rate, "budget {budget}");
        }
        // Inside [1, 3] the rate spends the budget exactly.
        for budget in [1.0, 1.4, 2.0, 2.6, 3.0] {
            let rate = rate_for_budget(budget).unwrap();
            assert!((expected_cost(rate, 1).unwrap() - budget).abs() < 1e-15);
        }
        assert!(rate_for_budget(f64::INFINITY).is_err());
        assert!(rate_for_budget(f64::NAN).is_err());
    }

    #[test]
    fn relative_cost_cases() {
        assert_eq!(cost_relative_to_dense(&[1, 1]).unwrap(), 1.0);
        assert_eq!(cost_relative_to_dense(&[0, 0, 0]).unwrap(), 1.0 / 3.0);
        assert_eq!(cost_relative_to_dense(&[0, 1, 0, 1]).unwrap(), 2.0 / 3.0);
        assert!(cost_relative_to_dense(&[]).is_err());
    }
}
