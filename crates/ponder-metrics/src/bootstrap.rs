//! Percentile bootstrap confidence intervals over chunks.
//!
//! Each resample draws `n` chunk indices uniformly with replacement from a `ChaCha8Rng` seeded
//! with the given seed, so an interval is a pure function of its inputs and the seed.
//! [`bootstrap_ci`] resamples one column of values; [`bootstrap_ci_paired`] hands the statistic
//! the drawn indices instead, so statistics of several aligned columns (Oracle Recovery from the
//! SKIP, method and Oracle loss columns, decision accuracy from two decision columns) resample
//! whole rows together.
//! For the same `n` and seed both draw the same indices.
//! The interval ends are percentiles of the resampled statistics, interpolated linearly between
//! order statistics (the default of `numpy.percentile`, as `scipy.stats.bootstrap`'s
//! `method="percentile"` uses).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::Result;

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the original sample.
    pub point: f64,
    /// The lower end, the `(1 − level)/2` percentile of the resampled statistics.
    pub lo: f64,
    /// The upper end, the `(1 + level)/2` percentile of the resampled statistics.
    pub hi: f64,
}

/// A percentile bootstrap interval of `stat` over `values`, at confidence `level` (for example
/// 0.95) from `resamples` resamples.
///
/// `stat` receives a resample of `values` (same length, drawn with replacement).
/// Errors when `values` is empty, `resamples` is 0, `level` is outside `(0, 1)`, or `stat`
/// returns a non-finite value (on the sample or on a resample).
///
/// ```
/// let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
/// let ci = ponder_metrics::bootstrap_ci(&values, mean, 2000, 0.95, 7).unwrap();
/// assert_eq!(ci.point, 3.5);
/// assert!(ci.lo < 3.5 && 3.5 < ci.hi);
/// ```
pub fn bootstrap_ci(
    values: &[f64],
    stat: impl Fn(&[f64]) -> f64,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<Interval> {
    let mut buf = Vec::with_capacity(values.len());
    run(
        "bootstrap_ci",
        values.len(),
        resamples,
        level,
        seed,
        |indices| {
            buf.clear();
            buf.extend(indices.iter().map(|&i| values[i]));
            stat(&buf)
        },
    )
}

/// A percentile bootstrap interval of a statistic of `n` aligned rows, at confidence `level`
/// from `resamples` resamples.
///
/// `stat` receives the row indices of a resample (`n` of them, drawn with replacement; on the
/// original sample `0..n`) and reads whichever columns it needs.
/// Errors as [`bootstrap_ci`].
///
/// ```
/// // Oracle Recovery of per-chunk losses, resampling chunks as whole rows.
/// let skip = [3.0, 3.2, 2.9, 3.1];
/// let ours = [2.6, 3.0, 2.5, 2.9];
/// let oracle = [2.4, 2.8, 2.3, 2.7];
/// let recovery = |idx: &[usize]| {
///     let total = |col: &[f64]| idx.iter().map(|&i| col[i]).sum::<f64>();
///     (total(&skip) - total(&ours)) / (total(&skip) - total(&oracle))
/// };
/// let ci = ponder_metrics::bootstrap_ci_paired(4, recovery, 500, 0.9, 1).unwrap();
/// assert!((ci.point - 0.6).abs() < 1e-12);
/// assert!(ci.lo <= ci.point && ci.point <= ci.hi);
/// ```
pub fn bootstrap_ci_paired(
    n: usize,
    stat: impl Fn(&[usize]) -> f64,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<Interval> {
    run("bootstrap_ci_paired", n, resamples, level, seed, stat)
}

/// The shared resampling loop; `stat` maps row indices to the statistic.
fn run(
    name: &str,
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> f64,
) -> Result<Interval> {
    if n == 0 {
        return Err(Error::input(
            name,
            "the sample is empty, expected at least one value",
        ));
    }
    if resamples == 0 {
        return Err(Error::input(name, "resamples is 0, expected at least 1"));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::input(
            name,
            format!("level is {level}, expected a value in (0, 1)"),
        ));
    }
    let mut indices: Vec<usize> = (0..n).collect();
    let point = stat(&indices);
    if !point.is_finite() {
        return Err(Error::input(
            name,
            format!("the statistic is {point} on the sample, expected a finite value"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    for resample_idx in 0..resamples {
        for slot in indices.iter_mut() {
            *slot = rng.random_range(0..n);
        }
        let value = stat(&indices);
        if !value.is_finite() {
            return Err(Error::input(
                name,
                format!("the statistic is {value} on resample {resample_idx}, expected finite"),
            ));
        }
        stats.push(value);
    }
    stats.sort_by(f64::total_cmp);
    let tail = 0.5 * (1.0 - level);
    Ok(Interval {
        point,
        lo: percentile(&stats, tail),
        hi: percentile(&stats, 1.0 - tail),
    })
}

/// The `q`-quantile (`0 ≤ q ≤ 1`) of non-empty `sorted` values, interpolated linearly between
/// order statistics at position `q (m − 1)`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let below = pos.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let frac = pos - below as f64;
    sorted[below] + frac * (sorted[above] - sorted[below])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        // numpy.percentile([1, 2, 4, 8], [0, 25, 50, 90, 100]) = [1, 1.75, 3, 6.8, 8].
        let cases = [(0.0, 1.0), (0.25, 1.75), (0.5, 3.0), (0.9, 6.8), (1.0, 8.0)];
        for (q, expected) in cases {
            assert!((percentile(&sorted, q) - expected).abs() < 1e-12, "q = {q}");
        }
        assert_eq!(percentile(&[5.0], 0.3), 5.0);
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let values: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64).collect();
        let a = bootstrap_ci(&values, mean, 300, 0.9, 42).unwrap();
        let b = bootstrap_ci(&values, mean, 300, 0.9, 42).unwrap();
        let c = bootstrap_ci(&values, mean, 300, 0.9, 43).unwrap();
        assert_eq!(a, b);
        assert_ne!((a.lo, a.hi), (c.lo, c.hi));
        assert!(a.lo <= a.point && a.point <= a.hi);
    }

    #[test]
    fn paired_draws_the_same_rows_as_the_column_version() {
        let values: Vec<f64> = (0..40).map(|i| (i as f64).sin()).collect();
        let by_values = bootstrap_ci(&values, mean, 200, 0.8, 9).unwrap();
        let by_rows = bootstrap_ci_paired(
            values.len(),
            |idx| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64,
            200,
            0.8,
            9,
        )
        .unwrap();
        assert_eq!(by_values, by_rows);
    }

    #[test]
    fn constant_data_gives_a_degenerate_interval() {
        let ci = bootstrap_ci(&[2.5; 10], mean, 100, 0.95, 0).unwrap();
        assert_eq!((ci.point, ci.lo, ci.hi), (2.5, 2.5, 2.5));
    }

    #[test]
    fn interval_covers_the_mean_of_a_known_sample() {
        // 0, 1 repeated: the mean is ½ and its standard error √(¼/200) ≈ 0.035.
        let values: Vec<f64> = (0..200).map(|i| (i % 2) as f64).collect();
        let ci = bootstrap_ci(&values, mean, 2000, 0.95, 3).unwrap();
        assert!(ci.lo > 0.38 && ci.lo < 0.46, "{ci:?}");
        assert!(ci.hi > 0.54 && ci.hi < 0.62, "{ci:?}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let cases: [(&[f64], usize, f64, &str); 6] = [
            (&[], 10, 0.9, "empty"),
            (&[1.0], 0, 0.9, "resamples"),
            (&[1.0], 10, 0.0, "level"),
            (&[1.0], 10, 1.0, "level"),
            (&[1.0], 10, f64::NAN, "level"),
            (&[f64::NAN], 10, 0.9, "on the sample"),
        ];
        for (values, resamples, level, needle) in cases {
            let err = bootstrap_ci(values, mean, resamples, level, 0)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("bootstrap_ci") && err.contains(needle),
                "{err}"
            );
        }
        // A statistic that fails on some resample names it.
        let first_is_zero = |v: &[f64]| if v[0] == 0.0 { f64::NAN } else { 1.0 };
        let values: Vec<f64> = (0..5).map(f64::from).rev().collect();
        let err = bootstrap_ci(&values, first_is_zero, 200, 0.9, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("on resample"), "{err}");
        assert!(bootstrap_ci_paired(0, |_| 0.0, 10, 0.9, 0).is_err());
    }
}
