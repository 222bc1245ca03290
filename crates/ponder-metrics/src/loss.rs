//! Average loss, perplexity, Oracle Recovery and the update rate of a gating method
//! (`docs/original.md` §9.1–§9.3).
//!
//! The evaluation unit is a chunk(-batch): for every chunk both paths are run, giving a SKIP loss
//! and an UPDATE loss, and the method's gate picks one.
//! A method's average loss is the mean over chunks of the loss of the path it chose.

use crate::error::{ensure_finite, ensure_finite_scalar, ensure_nonempty, ensure_same_len, Error};
use crate::Result;

/// The arithmetic mean of `values`.
///
/// Errors when `values` is empty or holds a non-finite value.
///
/// ```
/// assert_eq!(ponder_metrics::mean(&[1.0, 2.0, 6.0]).unwrap(), 3.0);
/// ```
pub fn mean(values: &[f64]) -> Result<f64> {
    ensure_nonempty("mean", "values", values)?;
    ensure_finite("mean", "values", values)?;
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}

/// Perplexity `e^loss` of a mean cross-entropy loss in nats.
pub fn perplexity(loss: f64) -> f64 {
    loss.exp()
}

/// The average loss of a method: the mean over chunks of `update[i]` where `updated[i]`,
/// else `skip[i]`.
///
/// Errors when the three slices differ in length, are empty, or a loss is not finite.
///
/// ```
/// let loss = ponder_metrics::method_loss(&[3.0, 2.0], &[1.0, 4.0], &[true, false]).unwrap();
/// assert_eq!(loss, 1.5);
/// ```
pub fn method_loss(skip: &[f64], update: &[f64], updated: &[bool]) -> Result<f64> {
    const STAT: &str = "method_loss";
    ensure_same_len(STAT, ("skip", skip), ("update", update))?;
    ensure_same_len(STAT, ("skip", skip), ("updated", updated))?;
    ensure_nonempty(STAT, "skip", skip)?;
    ensure_finite(STAT, "skip", skip)?;
    ensure_finite(STAT, "update", update)?;
    let total: f64 = skip
        .iter()
        .zip(update)
        .zip(updated)
        .map(|((&s, &u), &d)| if d { u } else { s })
        .sum();
    Ok(total / skip.len() as f64)
}

/// Below this gap between `L_skip` and `L_oracle`, Oracle Recovery is undefined: the oracle
/// gained nothing to recover.
pub const RECOVERY_MIN_GAP: f64 = 1e-12;

/// Oracle Recovery `R = (L_skip − L_method) / (L_skip − L_oracle)` (the paper's Table 1): the
/// fraction of the Oracle's loss reduction over SKIP that the method achieves.
///
/// The older "Oracle Capture" is the same ratio with Random Skip's loss as the baseline, so pass
/// `L_random` as `skip` for it.
/// Errors when an argument is not finite or when `|L_skip − L_oracle|` ≤ [`RECOVERY_MIN_GAP`]
/// (the ratio is undefined).
///
/// ```
/// let r = ponder_metrics::oracle_recovery(3.0, 2.5, 2.0).unwrap();
/// assert_eq!(r, 0.5);
/// ```
pub fn oracle_recovery(skip: f64, method: f64, oracle: f64) -> Result<f64> {
    const STAT: &str = "oracle_recovery";
    ensure_finite_scalar(STAT, "L_skip", skip)?;
    ensure_finite_scalar(STAT, "L_method", method)?;
    ensure_finite_scalar(STAT, "L_oracle", oracle)?;
    let denom = skip - oracle;
    if denom.abs() <= RECOVERY_MIN_GAP {
        return Err(Error::input(
            STAT,
            format!("L_skip ({skip}) equals L_oracle ({oracle}), expected them to differ"),
        ));
    }
    Ok((skip - method) / denom)
}

/// The mean of `values` over the rows `idx` (a bootstrap resample, or every row), summed in the
/// order of `idx`.
///
/// Errors when `idx` is empty or names a row past the end of `values`.
pub fn mean_at(values: &[f64], idx: &[usize]) -> Result<f64> {
    ensure_nonempty("mean_at", "idx", idx)?;
    if let Some(&i) = idx.iter().find(|&&i| i >= values.len()) {
        return Err(Error::input(
            "mean_at",
            format!("row {i} is past the end of {} values", values.len()),
        ));
    }
    Ok(idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64)
}

/// The fraction of UPDATE decisions (the "actual update rate", calibration decisions included).
///
/// Errors when `updated` is empty.
pub fn update_rate(updated: &[bool]) -> Result<f64> {
    ensure_nonempty("update_rate", "updated", updated)?;
    Ok(updated.iter().filter(|&&d| d).count() as f64 / updated.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_cases() {
        let cases: &[(&[f64], f64)] = &[
            (&[5.0], 5.0),
            (&[1.0, 2.0], 1.5),
            (&[-1.0, 1.0, 3.0, 5.0], 2.0),
        ];
        for &(values, expected) in cases {
            assert_eq!(mean(values).unwrap(), expected, "{values:?}");
        }
        assert!(mean(&[]).is_err());
        let err = mean(&[1.0, f64::NAN]).unwrap_err().to_string();
        assert!(err.contains("mean") && err.contains("values[1]"), "{err}");
    }

    #[test]
    fn perplexity_is_exp() {
        assert_eq!(perplexity(0.0), 1.0);
        assert!((perplexity(50257_f64.ln()) - 50257.0).abs() < 1e-8);
    }

    #[test]
    fn method_loss_picks_the_chosen_path() {
        let skip = [3.0, 2.0, 4.0, 1.0];
        let update = [2.0, 2.5, 1.0, 1.0];
        // (decisions, expected mean)
        let cases: &[([bool; 4], f64)] = &[
            ([false; 4], 2.5),
            ([true; 4], 1.625),
            ([true, false, true, false], 1.5),
            ([false, true, false, true], 2.625),
        ];
        for (updated, expected) in cases {
            assert_eq!(
                method_loss(&skip, &update, updated).unwrap(),
                *expected,
                "{updated:?}"
            );
        }
    }

    #[test]
    fn method_loss_rejects_bad_input() {
        assert!(method_loss(&[1.0], &[1.0, 2.0], &[true]).is_err());
        assert!(method_loss(&[1.0, 2.0], &[1.0, 2.0], &[true]).is_err());
        assert!(method_loss(&[], &[], &[]).is_err());
        let err = method_loss(&[1.0, 2.0], &[1.0, f64::INFINITY], &[false, false]).unwrap_err();
        assert!(err.to_string().contains("update[1]"), "{err}");
    }

    #[test]
    fn oracle_recovery_cases() {
        // (L_skip, L_method, L_oracle, R)
        let cases = [
            (3.0, 3.0, 2.0, 0.0),
            (3.0, 2.0, 2.0, 1.0),
            (3.0, 2.5, 2.0, 0.5),
            (3.0, 3.5, 2.0, -0.5),
            (3.0, 1.5, 2.0, 1.5),
            (2.0, 2.25, 3.0, 0.25),
        ];
        for (skip, method, oracle, expected) in cases {
            assert_eq!(oracle_recovery(skip, method, oracle).unwrap(), expected);
        }
    }

    #[test]
    fn oracle_recovery_rejects_a_zero_denominator_and_non_finite_input() {
        let err = oracle_recovery(2.0, 1.0, 2.0).unwrap_err().to_string();
        assert!(
            err.contains("oracle_recovery") && err.contains("L_oracle"),
            "{err}"
        );
        assert!(oracle_recovery(f64::NAN, 1.0, 2.0).is_err());
        assert!(oracle_recovery(3.0, f64::INFINITY, 2.0).is_err());
    }

    #[test]
    fn update_rate_cases() {
        let cases: &[(&[bool], f64)] = &[
            (&[true], 1.0),
            (&[false], 0.0),
            (&[true, false, false, true], 0.5),
            (&[true, false, false, false], 0.25),
        ];
        for &(updated, expected) in cases {
            assert_eq!(update_rate(updated).unwrap(), expected);
        }
        assert!(update_rate(&[]).is_err());
    }
}
