//! Comparing a method with Random so that no single draw of Random decides it: Random's exact
//! expectation from the records, the spread of a statistic over many seeds, and a paired
//! bootstrap interval of a mean loss difference.
//!
//! Random updates each chunk with probability ρ, independently, so its expected loss on chunk
//! `i` is `ρ·L_update[i] + (1 − ρ)·L_skip[i]` ([`random_expected_losses`]); the mean of that
//! column is the loss Random reaches on average over its seeds.

use serde::{Deserialize, Serialize};

use crate::bootstrap::{bootstrap_ci_paired, Interval};
use crate::error::{ensure_finite, ensure_nonempty, ensure_same_len, Error};
use crate::loss::mean_at;
use crate::method::Resampling;
use crate::Result;

/// Random's expected loss on every chunk at update rate `rho` ∈ [0, 1]:
/// `rho·update[i] + (1 − rho)·skip[i]`.
pub fn random_expected_losses(skip: &[f64], update: &[f64], rho: f64) -> Result<Vec<f64>> {
    const STAT: &str = "random_expected_losses";
    ensure_same_len(STAT, ("skip", skip), ("update", update))?;
    ensure_finite(STAT, "skip", skip)?;
    ensure_finite(STAT, "update", update)?;
    if !(0.0..=1.0).contains(&rho) {
        return Err(Error::input(
            STAT,
            format!("rho is {rho}, expected a value in [0, 1]"),
        ));
    }
    Ok(skip
        .iter()
        .zip(update)
        .map(|(s, u)| rho * u + (1.0 - rho) * s)
        .collect())
}

/// The mean of `a[i] − b[i]` with its paired bootstrap interval (chunks resampled as rows).
pub fn paired_difference(a: &[f64], b: &[f64], resampling: Resampling) -> Result<Interval> {
    const STAT: &str = "paired_difference";
    ensure_same_len(STAT, ("a", a), ("b", b))?;
    ensure_nonempty(STAT, "a", a)?;
    ensure_finite(STAT, "a", a)?;
    ensure_finite(STAT, "b", b)?;
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    bootstrap_ci_paired(
        diff.len(),
        |idx| mean_at(&diff, idx).unwrap_or(f64::NAN),
        resampling.resamples,
        resampling.level,
        resampling.seed,
    )
}

/// Mean, sample standard deviation, minimum and maximum of a statistic over repeated draws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (`n − 1` in the denominator; 0 for one value).
    pub sd: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

/// The [`Spread`] of `values` (finite, at least one).
pub fn spread(values: &[f64]) -> Result<Spread> {
    const STAT: &str = "spread";
    ensure_nonempty(STAT, "values", values)?;
    ensure_finite(STAT, "values", values)?;
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let sd = if values.len() > 1 {
        (ss / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(Spread { mean, sd, min, max })
}

/// The Student-t interval of the mean of `values` (independent draws, finite) at `level`:
/// `mean ± t_{(1+level)/2, n−1} · sd / √n`; `None` for fewer than two values.
pub fn mean_interval(values: &[f64], level: f64) -> Result<Option<[f64; 2]>> {
    const STAT: &str = "mean_interval";
    if !(level > 0.0 && level < 1.0) {
        return Err(crate::Error::input(
            STAT,
            format!("level must lie in (0, 1), got {level}"),
        ));
    }
    let s = spread(values)?;
    if values.len() < 2 {
        return Ok(None);
    }
    let n = values.len() as f64;
    let half =
        crate::distribution::student_t_quantile(0.5 + level / 2.0, n - 1.0) * s.sd / n.sqrt();
    Ok(Some([s.mean - half, s.mean + half]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Resampling = Resampling {
        resamples: 500,
        level: 0.9,
        seed: 1,
    };

    #[test]
    fn mean_interval_matches_scipy() {
        // scipy.stats.t.interval(0.95, 4, loc=3, scale=scipy.stats.sem([1, 2, 3, 4, 5])).
        let [lo, hi] = mean_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95)
            .unwrap()
            .unwrap();
        assert!((lo - 1.0367568385224393).abs() < 1e-9, "{lo}");
        assert!((hi - 4.963243161477561).abs() < 1e-9, "{hi}");
        assert_eq!(mean_interval(&[2.0], 0.95).unwrap(), None);
        assert!(mean_interval(&[1.0, 2.0], 1.0).is_err());
        assert!(mean_interval(&[], 0.95).is_err());
    }

    #[test]
    fn expectation_by_hand() {
        let e = random_expected_losses(&[3.0, 4.0], &[2.0, 5.0], 0.25).unwrap();
        assert_eq!(e, [2.75, 4.25]);
        assert!(random_expected_losses(&[3.0], &[2.0], 1.5).is_err());
        assert!(random_expected_losses(&[3.0], &[2.0, 1.0], 0.5).is_err());
    }

    #[test]
    fn expectation_is_the_mean_over_many_draws() {
        // An independent check: the mean loss of 20,000 coin-flip draws at ρ = 0.3.
        use rand::{Rng, SeedableRng};
        let skip = [3.0, 2.5, 4.0, 3.5];
        let update = [2.0, 2.6, 3.0, 3.4];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let draws = 20_000;
        let mut total = 0.0;
        for _ in 0..draws {
            for (s, u) in skip.iter().zip(&update) {
                total += if rng.random::<f64>() < 0.3 { *u } else { *s };
            }
        }
        let simulated = total / (draws * skip.len()) as f64;
        let e = random_expected_losses(&skip, &update, 0.3).unwrap();
        let exact = e.iter().sum::<f64>() / e.len() as f64;
        assert!((simulated - exact).abs() < 0.005, "{simulated} vs {exact}");
    }

    #[test]
    fn paired_difference_by_hand() {
        let d = paired_difference(&[3.0, 2.0, 4.0], &[2.0, 2.0, 2.5], R).unwrap();
        assert!((d.point - 2.5 / 3.0).abs() < 1e-12);
        assert!(d.lo >= 0.0 && d.hi <= 2.0 && d.lo <= d.point && d.point <= d.hi);
        // A constant difference has a degenerate interval.
        let d = paired_difference(&[3.0, 2.0], &[2.0, 1.0], R).unwrap();
        assert_eq!((d.point, d.lo, d.hi), (1.0, 1.0, 1.0));
        assert!(paired_difference(&[], &[], R).is_err());
        assert!(paired_difference(&[1.0, f64::NAN], &[1.0, 1.0], R).is_err());
    }

    #[test]
    fn spread_by_hand() {
        let s = spread(&[1.0, 2.0, 3.0, 6.0]).unwrap();
        assert_eq!((s.mean, s.min, s.max), (3.0, 1.0, 6.0));
        // Σ(v − 3)² = 4 + 1 + 0 + 9 = 14, sd = √(14/3).
        assert!((s.sd - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(spread(&[2.0]).unwrap().sd, 0.0);
        assert!(spread(&[]).is_err());
    }
}
