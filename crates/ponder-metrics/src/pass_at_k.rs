//! pass@k, the unbiased estimator of Chen et al. (2021): from `n` samples of a problem of which
//! `c` pass, the probability that at least one of `k` samples drawn without replacement passes,
//! `1 − C(n−c, k) / C(n, k)`, computed as `1 − ∏_{i=n−c+1}^{n} (1 − k/i)` (no large binomials);
//! and its mean over problems with the standard error of that mean.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// pass@k for one problem with `n` samples of which `correct` passed. `k` must lie in `1..=n`.
pub fn pass_at_k(n: usize, correct: usize, k: usize) -> Result<f64> {
    const STAT: &str = "pass_at_k";
    if k == 0 || k > n {
        return Err(Error::input(STAT, format!("k = {k} outside 1..=n = {n}")));
    }
    if correct > n {
        return Err(Error::input(
            STAT,
            format!("{correct} correct of only {n} samples"),
        ));
    }
    if n - correct < k {
        return Ok(1.0);
    }
    let none_pass: f64 = (n - correct + 1..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    Ok(1.0 - none_pass)
}

/// pass@k over a benchmark: the mean over problems and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    /// The k.
    pub k: usize,
    /// Mean pass@k over problems.
    pub estimate: f64,
    /// Standard error of the mean over problems (sample standard deviation / √problems; 0 for
    /// one problem).
    pub standard_error: f64,
    /// Problems averaged.
    pub problems: usize,
}

/// pass@k over problems, each given as `(samples, correct)`.
pub fn pass_at_k_over(problems: &[(usize, usize)], k: usize) -> Result<PassAtK> {
    if problems.is_empty() {
        return Err(Error::input("pass_at_k_over", "no problems"));
    }
    let values = problems
        .iter()
        .map(|&(n, c)| pass_at_k(n, c, k))
        .collect::<Result<Vec<f64>>>()?;
    let m = values.len() as f64;
    let mean = values.iter().sum::<f64>() / m;
    let standard_error = if values.len() > 1 {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
        (var / m).sqrt()
    } else {
        0.0
    };
    Ok(PassAtK {
        k,
        estimate: mean,
        standard_error,
        problems: values.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C(n, k) exactly.
    fn binomial(n: u128, k: u128) -> u128 {
        if k > n {
            return 0;
        }
        (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
    }

    #[test]
    fn matches_the_binomial_form() {
        for n in 1..=30usize {
            for c in 0..=n {
                for k in 1..=n {
                    let exact = 1.0
                        - binomial((n - c) as u128, k as u128) as f64
                            / binomial(n as u128, k as u128) as f64;
                    let got = pass_at_k(n, c, k).unwrap();
                    assert!(
                        (got - exact).abs() < 1e-12,
                        "n={n} c={c} k={k}: {got} vs {exact}"
                    );
                }
            }
        }
        // pass@1 is the fraction correct.
        assert!((pass_at_k(200, 37, 1).unwrap() - 37.0 / 200.0).abs() < 1e-15);
    }

    #[test]
    fn mean_and_standard_error_over_problems() {
        let r = pass_at_k_over(&[(1, 1), (1, 0), (1, 1), (1, 0)], 1).unwrap();
        assert_eq!(r.estimate, 0.5);
        // sd of [1, 0, 1, 0] is sqrt(1/3); over sqrt(4).
        assert!((r.standard_error - (1.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
        assert_eq!(pass_at_k_over(&[(5, 2)], 2).unwrap().standard_error, 0.0);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(pass_at_k(5, 1, 10)
            .unwrap_err()
            .to_string()
            .contains("k = 10"));
        assert!(pass_at_k(5, 1, 0).is_err());
        assert!(pass_at_k(5, 6, 1)
            .unwrap_err()
            .to_string()
            .contains("6 correct"));
        assert!(pass_at_k_over(&[], 1).is_err());
    }
}
