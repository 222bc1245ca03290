//! A gating method's headline statistics from per-chunk losses: its mean loss with a bootstrap
//! interval, and its Oracle Recovery with a paired interval (rows resampled together), computed
//! once here for every caller.

use serde::{Deserialize, Serialize};

use crate::bootstrap::{bootstrap_ci_paired, Interval};
use crate::error::{ensure_finite, ensure_nonempty, ensure_same_len};
use crate::loss::{mean_at, oracle_recovery};
use crate::Result;

/// How the bootstrap intervals are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resampling {
    /// Resamples per interval.
    pub resamples: usize,
    /// Confidence level, in (0, 1).
    pub level: f64,
    /// Seed of the resampling generator.
    pub seed: u64,
}

/// A method's loss and Oracle Recovery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MethodStats {
    /// Mean loss of the paths the method chose, with its bootstrap interval.
    pub loss: Interval,
    /// Oracle Recovery; `None` when the oracle gains nothing over SKIP.
    pub recovery: Option<f64>,
    /// Its paired bootstrap interval; `None` when some resample has no oracle gain to recover.
    pub recovery_ci: Option<[f64; 2]>,
}

/// The statistics of a method whose chosen path has loss `chosen[i]` on chunk `i`, against the
/// SKIP losses `skip` and the oracle's chosen losses `oracle`.
///
/// Errors when the columns differ in length, are empty or hold a non-finite loss, or when the
/// resampling settings are invalid.
pub fn method_stats(
    skip: &[f64],
    chosen: &[f64],
    oracle: &[f64],
    resampling: Resampling,
) -> Result<MethodStats> {
    const STAT: &str = "method_stats";
    ensure_same_len(STAT, ("skip", skip), ("chosen", chosen))?;
    ensure_same_len(STAT, ("skip", skip), ("oracle", oracle))?;
    ensure_nonempty(STAT, "skip", skip)?;
    for (name, col) in [("skip", skip), ("chosen", chosen), ("oracle", oracle)] {
        ensure_finite(STAT, name, col)?;
    }
    let n = skip.len();
    let Resampling {
        resamples,
        level,
        seed,
    } = resampling;
    let mean = |col: &[f64], idx: &[usize]| mean_at(col, idx).unwrap_or(f64::NAN);
    let loss = bootstrap_ci_paired(n, |idx| mean(chosen, idx), resamples, level, seed)?;
    let all: Vec<usize> = (0..n).collect();
    let recovery = oracle_recovery(mean(skip, &all), loss.point, mean(oracle, &all)).ok();
    // A resample whose oracle gains nothing gives no ratio, and so no interval.
    let ratio = |idx: &[usize]| {
        oracle_recovery(mean(skip, idx), mean(chosen, idx), mean(oracle, idx)).unwrap_or(f64::NAN)
    };
    let recovery_ci = recovery
        .and_then(|_| bootstrap_ci_paired(n, ratio, resamples, level, seed).ok())
        .map(|i| [i.lo, i.hi]);
    Ok(MethodStats {
        loss,
        recovery,
        recovery_ci,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Resampling = Resampling {
        resamples: 200,
        level: 0.9,
        seed: 3,
    };

    #[test]
    fn loss_and_recovery_by_hand() {
        // SKIP 3, 3, 3, 3; oracle 2, 3, 2, 3 (mean 2.5); method 2.5, 3, 3, 3 (mean 2.875).
        let skip = [3.0; 4];
        let oracle = [2.0, 3.0, 2.0, 3.0];
        let chosen = [2.5, 3.0, 3.0, 3.0];
        let s = method_stats(&skip, &chosen, &oracle, R).unwrap();
        assert_eq!(s.loss.point, 2.875);
        assert!(s.loss.lo <= 2.875 && 2.875 <= s.loss.hi);
        // (3 − 2.875) / (3 − 2.5) = 0.25.
        assert_eq!(s.recovery, Some(0.25));
        // Some resample draws only rows 1 and 3, where the oracle gains nothing.
        assert_eq!(s.recovery_ci, None);
    }

    #[test]
    fn recovery_interval_when_every_row_has_a_gain() {
        let skip = [3.0, 3.2, 2.9, 3.1];
        let oracle = [2.4, 2.8, 2.3, 2.7];
        let chosen = [2.6, 3.0, 2.5, 2.9];
        let s = method_stats(&skip, &chosen, &oracle, R).unwrap();
        let r = s.recovery.unwrap();
        assert!((r - 0.6).abs() < 1e-12, "{r}");
        let [lo, hi] = s.recovery_ci.unwrap();
        assert!(lo <= r && r <= hi, "{lo} {r} {hi}");
    }

    #[test]
    fn no_recovery_when_the_oracle_equals_skip() {
        let s = method_stats(&[3.0, 2.0], &[2.5, 2.0], &[3.0, 2.0], R).unwrap();
        assert_eq!((s.recovery, s.recovery_ci), (None, None));
    }

    #[test]
    fn bad_columns_are_errors() {
        let e = method_stats(&[1.0], &[1.0, 2.0], &[1.0], R).unwrap_err();
        assert!(e.to_string().contains("chosen"), "{e}");
        let e = method_stats(&[1.0, f64::NAN], &[1.0, 2.0], &[1.0, 1.0], R).unwrap_err();
        assert!(e.to_string().contains("skip[1]"), "{e}");
        assert!(method_stats(&[], &[], &[], R).is_err());
    }
}
