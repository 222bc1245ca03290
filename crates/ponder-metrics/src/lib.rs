//! Statistics for comparing gating methods, on plain `f64`s (no Candle): average loss and
//! perplexity, Oracle Recovery, update rate, decision accuracy, Pearson and Spearman correlation,
//! McNemar's test, bootstrap confidence intervals, cost, and pass@k.
//!
//! Definitions follow `docs/original.md` §9; `docs/metrics.md` says which are the
//! original's and which are ours.
//! Every statistic validates its input and returns [`Error::Input`] naming itself and what it
//! expected; nothing panics on bad data.
//! The p-values come from special functions written for this crate ([`special`],
//! [`distribution`]) and are checked against scipy in `tests/scipy.rs`.

pub mod baseline;
pub mod bootstrap;
pub mod correlation;
pub mod cost;
pub mod decision;
pub mod distribution;
pub mod error;
pub mod loss;
pub mod mcnemar;
pub mod method;
pub mod pass_at_k;
pub mod special;

pub use baseline::{mean_interval, paired_difference, random_expected_losses, spread, Spread};
pub use bootstrap::{bootstrap_ci, bootstrap_ci_paired, Interval};
pub use correlation::{pearson, spearman, Correlation};
pub use cost::{cost_units, mean_cost, rate_spending};
pub use decision::{above_median, decision_accuracy, positive, top_fraction_set, top_k_count};
pub use error::{Error, Result};
pub use loss::{
    mean, mean_at, method_loss, oracle_recovery, perplexity, update_rate, RECOVERY_MIN_GAP,
};
pub use mcnemar::{mcnemar, McNemar};
pub use method::{method_stats, MethodStats, Resampling};
pub use pass_at_k::{pass_at_k, pass_at_k_over, PassAtK};

/// Helpers shared by the unit tests of the special functions and tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// Asserts that `actual` is within `rtol` of `expected`, relative to `|expected|`.
    pub(crate) fn assert_rel(actual: f64, expected: f64, rtol: f64) {
        let err = (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
        assert!(
            err <= rtol,
            "actual {actual:e}, expected {expected:e}, rel err {err:e}"
        );
    }
}
