//! Pearson and Spearman correlation with two-sided p-values (`docs/original.md` §9.4: the
//! gating signal against the advantage, over chunks).
//!
//! Both p-values use the t statistic `t = r √((n − 2)/(1 − r²))` with `n − 2` degrees of freedom,
//! as `scipy.stats.pearsonr` and `scipy.stats.spearmanr` do.
//! The two-sided tail is evaluated as `I_{1−r²}((n − 2)/2, ½)`, which is the same number without
//! forming t, so it keeps full relative precision as |r| approaches 1.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::{ensure_finite, ensure_same_len, Error};
use crate::special::beta_inc_pair;
use crate::Result;

/// A correlation coefficient with its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// The coefficient, in `[-1, 1]`.
    pub r: f64,
    /// The two-sided p-value of `r = 0` (no correlation) under the t approximation; 0 when
    /// `|r| = 1`.
    pub p: f64,
    /// The number of pairs.
    pub n: usize,
}

/// Pearson's product-moment correlation of `x` and `y`, with its two-sided p-value (as
/// `scipy.stats.pearsonr`).
///
/// Errors when the lengths differ, there are fewer than 3 pairs, a value is not finite, or
/// either side has zero variance.
///
/// ```
/// let c = ponder_metrics::pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.5]).unwrap();
/// assert!(c.r > 0.99 && c.p < 0.01);
/// ```
pub fn pearson(x: &[f64], y: &[f64]) -> Result<Correlation> {
    const STAT: &str = "pearson";
    check_pairs(STAT, x, y)?;
    pearson_checked(STAT, x, y)
}

/// Spearman's rank correlation of `x` and `y` (Pearson's r of their ranks, tied values sharing
/// their average rank), with its two-sided p-value (as `scipy.stats.spearmanr`).
///
/// Errors when the lengths differ, there are fewer than 3 pairs, a value is not finite, or
/// either side has all values equal.
///
/// ```
/// let c = ponder_metrics::spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 10.0, 100.0, 1000.0]).unwrap();
/// assert_eq!(c.r, 1.0);
/// ```
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Correlation> {
    const STAT: &str = "spearman";
    check_pairs(STAT, x, y)?;
    pearson_checked(STAT, &ranks(x), &ranks(y))
}

/// 1-based ranks of `values`, tied values sharing the average of their ranks (as
/// `scipy.stats.rankdata` with `method="average"`); NaNs rank as equal to everything.
///
/// ```
/// assert_eq!(ponder_metrics::correlation::ranks(&[10.0, 30.0, 20.0, 10.0]), [1.5, 4.0, 3.0, 1.5]);
/// ```
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].partial_cmp(&values[j]).unwrap_or(Ordering::Equal));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start + 1 ..= end; their mean is (start + 1 + end) / 2.
        let shared = (start + 1 + end) as f64 / 2.0;
        for &idx in &order[start..end] {
            ranks[idx] = shared;
        }
        start = end;
    }
    ranks
}

/// Checks lengths, the minimum count and finiteness.
fn check_pairs(stat: &str, x: &[f64], y: &[f64]) -> Result<()> {
    ensure_same_len(stat, ("x", x), ("y", y))?;
    if x.len() < 3 {
        return Err(Error::input(
            stat,
            format!("got {} pairs, expected at least 3", x.len()),
        ));
    }
    ensure_finite(stat, "x", x)?;
    ensure_finite(stat, "y", y)
}

/// Pearson's r and p for validated inputs; `stat` names the caller in errors.
fn pearson_checked(stat: &str, x: &[f64], y: &[f64]) -> Result<Correlation> {
    for (name, values) in [("x", x), ("y", y)] {
        if values.iter().all(|&v| v == values[0]) {
            return Err(Error::input(
                stat,
                format!("{name} has zero variance (all values equal), expected distinct values"),
            ));
        }
    }
    let n = x.len();
    let mean_x = x.iter().sum::<f64>() / n as f64;
    let mean_y = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let (dx, dy) = (xi - mean_x, yi - mean_y);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    // One square root keeps exact cases exact; two avoid overflow or underflow of the product.
    let norm = match (sxx * syy).sqrt() {
        v if v.is_finite() && v > 0.0 => v,
        _ => sxx.sqrt() * syy.sqrt(),
    };
    let r = (sxy / norm).clamp(-1.0, 1.0);
    Ok(Correlation {
        r,
        p: two_sided_p(r, n),
        n,
    })
}

/// `P[|R| ≥ |r|]` under no correlation: `I_{1−r²}((n − 2)/2, ½)`, equal to the two-sided tail of
/// Student's t with `n − 2` degrees of freedom at `t = r √((n − 2)/(1 − r²))`.
fn two_sided_p(r: f64, n: usize) -> f64 {
    let abs_r = r.abs();
    if abs_r >= 1.0 {
        return 0.0;
    }
    let dof = (n - 2) as f64;
    // 1 − r² = (1 − |r|)(1 + |r|), without cancellation near |r| = 1.
    beta_inc_pair(0.5 * dof, 0.5, (1.0 - abs_r) * (1.0 + abs_r), r * r).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::student_t_sf;

    #[test]
    fn rank_cases() {
        let cases: &[(&[f64], &[f64])] = &[
            (&[3.0, 1.0, 2.0], &[3.0, 1.0, 2.0]),
            (&[1.0, 1.0, 1.0], &[2.0, 2.0, 2.0]),
            (&[5.0, 2.0, 5.0, 1.0, 5.0], &[4.0, 2.0, 4.0, 1.0, 4.0]),
            (&[0.0, -0.0, 1.0], &[1.5, 1.5, 3.0]),
            (&[], &[]),
        ];
        for &(values, expected) in cases {
            assert_eq!(ranks(values), expected, "{values:?}");
        }
    }

    #[test]
    fn perfect_and_hand_computed_correlations() {
        let c = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap();
        assert_eq!((c.r, c.p, c.n), (1.0, 0.0, 3));
        let c = pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap();
        assert_eq!((c.r, c.p), (-1.0, 0.0));
        // x = (1, 2, 3, 4), y = (1, 3, 2, 4): sxy = 4, sxx = syy = 5, r = 0.8.
        let c = pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((c.r - 0.8).abs() < 1e-15);
        // t = 0.8 √(2 / 0.36), two-sided p = 2 P[T₂ > t].
        let t = 0.8 * (2.0_f64 / 0.36).sqrt();
        assert!((c.p - 2.0 * student_t_sf(t, 2.0)).abs() < 1e-14);
        // With ν = 2 the tail is closed-form: p = 1 − t/√(2 + t²) = 0.2.
        assert!((c.p - 0.2).abs() < 1e-14, "{}", c.p);
    }

    #[test]
    fn spearman_uses_average_ranks() {
        // Ranks of x: (1.5, 1.5, 3, 4); of y: (1, 2, 3, 4).
        let c = spearman(&[7.0, 7.0, 8.0, 9.0], &[0.1, 0.2, 0.3, 0.4]).unwrap();
        let expected = pearson(&[1.5, 1.5, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(c, expected);
        // Monotone but non-linear is perfect for Spearman.
        let c = spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]).unwrap();
        assert_eq!(c.r, 1.0);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_statistic() {
        let cases: &[(&[f64], &[f64], &str)] = &[
            (&[1.0, 2.0, 3.0], &[1.0, 2.0], "length"),
            (&[1.0, 2.0], &[1.0, 2.0], "at least 3"),
            (&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], "x has zero variance"),
            (&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0], "y has zero variance"),
            (&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0], "x[1]"),
            (&[1.0, 2.0, 3.0], &[1.0, 2.0, f64::INFINITY], "y[2]"),
        ];
        for &(x, y, needle) in cases {
            for (stat, result) in [("pearson", pearson(x, y)), ("spearman", spearman(x, y))] {
                let err = result.unwrap_err().to_string();
                assert!(err.contains(stat) && err.contains(needle), "{err}");
            }
        }
    }
}
