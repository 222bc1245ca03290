//! Decision accuracy and the reference decision sets it is measured against
//! (`docs/original.md` §9.5).
//!
//! The paper's decision accuracy ("how often SKIP/UPDATE decisions match Oracle's greedy choices")
//! is not computed by the original code; two reference sets appear in its history:
//! (a) the top-ρ set by advantage, implemented as `advantage > median(advantage)`, which is the
//! greedy Oracle's set at ρ = ½ when the advantages are distinct ([`above_median`], recommended),
//! and (b) `advantage > 0` ([`positive`]).
//! [`top_fraction_set`] is the greedy Oracle's set itself for any ρ.
//! Here `advantage = loss_skip − loss_update`, positive when updating helps.

use std::cmp::Ordering;

use crate::error::{ensure_finite, ensure_nonempty, ensure_same_len, Error};
use crate::Result;

/// The fraction of chunks on which `method` and `reference` make the same decision.
///
/// Errors when the slices differ in length or are empty.
///
/// ```
/// let acc = ponder_metrics::decision_accuracy(&[true, false, true, true], &[true, true, true, false]);
/// assert_eq!(acc.unwrap(), 0.5);
/// ```
pub fn decision_accuracy(method: &[bool], reference: &[bool]) -> Result<f64> {
    const STAT: &str = "decision_accuracy";
    ensure_same_len(STAT, ("method", method), ("reference", reference))?;
    ensure_nonempty(STAT, "method", method)?;
    let agree = method.iter().zip(reference).filter(|(m, r)| m == r).count();
    Ok(agree as f64 / method.len() as f64)
}

/// How many of `n` chunks a top-k policy at budget ρ updates: `max(1, ⌊n·ρ⌋)`, the original
/// oracle's count, except that a budget of 0 (or an empty stream) updates none, where the
/// original's `max(1, ·)` would still update one.
///
/// `⌊n·ρ⌋` is taken of the `f64` product, as the original's `int(N * ρ)`.
///
/// ```
/// use ponder_metrics::top_k_count;
/// assert_eq!(top_k_count(2000, 0.5), 1000);
/// assert_eq!(top_k_count(5, 0.1), 1);
/// assert_eq!(top_k_count(5, 0.0), 0);
/// ```
pub fn top_k_count(n: usize, rho: f64) -> usize {
    if n == 0 || rho <= 0.0 {
        0
    } else {
        ((n as f64 * rho).floor() as usize).clamp(1, n)
    }
}

/// The greedy top-ρ set of `scores` (the Oracle's UPDATE set when the scores are advantages): the
/// [`top_k_count`] chunks with the largest score, ties broken toward the earlier index (as the
/// original's stable sort does; −0.0 ties with 0.0).
///
/// Errors when a score is not finite or `rho` is outside `[0, 1]`.
///
/// ```
/// let set = ponder_metrics::top_fraction_set(&[0.1, 0.5, 0.3, 0.5], 0.5).unwrap();
/// assert_eq!(set, [false, true, false, true]);
/// ```
pub fn top_fraction_set(scores: &[f64], rho: f64) -> Result<Vec<bool>> {
    const STAT: &str = "top_fraction_set";
    if !(0.0..=1.0).contains(&rho) {
        return Err(Error::input(
            STAT,
            format!("rho is {rho}, expected a value in [0, 1]"),
        ));
    }
    ensure_finite(STAT, "scores", scores)?;
    let n_chunks = scores.len();
    let k = top_k_count(n_chunks, rho);
    let mut order: Vec<usize> = (0..n_chunks).collect();
    // A stable sort by descending score keeps equal scores in index order.
    order.sort_by(|&i, &j| scores[j].partial_cmp(&scores[i]).unwrap_or(Ordering::Equal));
    let mut set = vec![false; n_chunks];
    for &chunk_idx in &order[..k] {
        set[chunk_idx] = true;
    }
    Ok(set)
}

/// The median of `values`: the middle value, or the mean of the two middle values for an even
/// count (as `numpy.median`).
///
/// Errors when `values` is empty or not finite.
pub fn median(values: &[f64]) -> Result<f64> {
    ensure_nonempty("median", "values", values)?;
    ensure_finite("median", "values", values)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Ok(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        0.5 * (sorted[mid - 1] + sorted[mid])
    })
}

/// Reference set (a) of `docs/original.md` §9.5: UPDATE where `advantage > median(advantage)`.
///
/// With distinct advantages and an even count this is the top half, the greedy Oracle at ρ = ½;
/// ties at the median are all left out, so the set can be smaller than half.
/// Errors when `advantage` is empty or not finite.
pub fn above_median(advantage: &[f64]) -> Result<Vec<bool>> {
    let m = median(advantage).map_err(|e| rename(e, "median", "above_median"))?;
    Ok(advantage.iter().map(|&a| a > m).collect())
}

/// Reference set (b) of `docs/original.md` §9.5: UPDATE where `advantage > 0`, i.e. where
/// updating lowers the loss, with no budget.
///
/// Errors when an advantage is NaN.
pub fn positive(advantage: &[f64]) -> Result<Vec<bool>> {
    if let Some(idx) = advantage.iter().position(|a| a.is_nan()) {
        return Err(Error::input(
            "positive",
            format!("advantage[{idx}] is NaN, expected a number"),
        ));
    }
    Ok(advantage.iter().map(|&a| a > 0.0).collect())
}

/// Rewrites the statistic named at the front of an input error.
fn rename(err: Error, from: &str, to: &str) -> Error {
    match err {
        Error::Input(msg) => Error::Input(msg.replacen(from, to, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: bool = true;
    const F: bool = false;

    #[test]
    fn accuracy_cases() {
        let cases: &[(&[bool], &[bool], f64)] = &[
            (&[T], &[T], 1.0),
            (&[T], &[F], 0.0),
            (&[T, F, T, F], &[T, F, T, F], 1.0),
            (&[T, F, T, F], &[F, T, F, T], 0.0),
            (&[T, T, F, F], &[T, F, F, T], 0.5),
            (&[F, F, F, T, T], &[F, F, T, T, T], 0.8),
        ];
        for &(method, reference, expected) in cases {
            assert_eq!(decision_accuracy(method, reference).unwrap(), expected);
        }
        assert!(decision_accuracy(&[T], &[T, F]).is_err());
        assert!(decision_accuracy(&[], &[]).is_err());
    }

    #[test]
    fn top_fraction_cases() {
        let cases: &[(&[f64], f64, &[bool])] = &[
            // k = ⌊4·½⌋ = 2.
            (&[0.4, -0.1, 0.9, 0.2], 0.5, &[T, F, T, F]),
            // k = max(1, ⌊4·0.1⌋) = 1.
            (&[0.4, -0.1, 0.9, 0.2], 0.1, &[F, F, T, F]),
            // A budget of 0 updates nothing.
            (&[0.4, -0.1, 0.9, 0.2], 0.0, &[F, F, F, F]),
            (&[0.4, -0.1, 0.9, 0.2], 1.0, &[T, T, T, T]),
            // Ties: the earlier index wins.
            (&[0.5, 0.5, 0.5, 0.5], 0.5, &[T, T, F, F]),
            (&[0.1, 0.7, 0.7, 0.7, 0.2], 0.4, &[F, T, T, F, F]),
            // k = ⌊5·0.5⌋ = 2 (floor, not round).
            (&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5, &[F, F, F, T, T]),
            // 0.0 and −0.0 are equal, so the earlier one wins.
            (&[-0.0, 0.0, -1.0], 0.34, &[T, F, F]),
        ];
        for &(advantage, rho, expected) in cases {
            assert_eq!(
                top_fraction_set(advantage, rho).unwrap(),
                expected,
                "{advantage:?}"
            );
        }
    }

    #[test]
    fn top_fraction_rejects_bad_input() {
        for rho in [-0.1, 1.5, f64::NAN] {
            let err = top_fraction_set(&[1.0], rho).unwrap_err().to_string();
            assert!(
                err.contains("top_fraction_set") && err.contains("rho"),
                "{err}"
            );
        }
        assert_eq!(top_fraction_set(&[], 0.5).unwrap(), Vec::<bool>::new());
        assert!(top_fraction_set(&[1.0, f64::NAN], 0.5).is_err());
    }

    #[test]
    fn median_cases() {
        let cases: &[(&[f64], f64)] = &[
            (&[3.0], 3.0),
            (&[3.0, 1.0], 2.0),
            (&[5.0, 1.0, 3.0], 3.0),
            (&[4.0, 1.0, 3.0, 2.0], 2.5),
            (&[1.0, 1.0, 1.0, 2.0], 1.0),
        ];
        for &(values, expected) in cases {
            assert_eq!(median(values).unwrap(), expected, "{values:?}");
        }
        assert!(median(&[]).is_err());
    }

    #[test]
    fn above_median_cases() {
        let cases: &[(&[f64], &[bool])] = &[
            (&[0.4, -0.1, 0.9, 0.2], &[T, F, T, F]),
            (&[3.0, 1.0, 2.0], &[T, F, F]),
            // Ties at the median are all below the strict threshold.
            (&[1.0, 1.0, 1.0, 2.0], &[F, F, F, T]),
            (&[1.0, 1.0, 1.0, 1.0], &[F, F, F, F]),
        ];
        for &(advantage, expected) in cases {
            assert_eq!(above_median(advantage).unwrap(), expected, "{advantage:?}");
        }
        let err = above_median(&[]).unwrap_err().to_string();
        assert!(err.contains("above_median"), "{err}");
    }

    #[test]
    fn above_median_is_the_oracle_set_at_half_for_distinct_values() {
        let advantage = [0.3, -0.2, 0.05, 0.8, -0.4, 0.1, 0.6, 0.0];
        assert_eq!(
            above_median(&advantage).unwrap(),
            top_fraction_set(&advantage, 0.5).unwrap()
        );
    }

    #[test]
    fn positive_cases() {
        assert_eq!(
            positive(&[0.1, 0.0, -0.0, -2.0, 3.0]).unwrap(),
            [T, F, F, F, T]
        );
        assert_eq!(positive(&[]).unwrap(), Vec::<bool>::new());
        assert!(positive(&[1.0, f64::NAN]).is_err());
    }
}
