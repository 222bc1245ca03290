//! Tail probabilities of the distributions behind the tests: Student's t, χ² and the binomial.
//!
//! The t and χ² tails reduce to the regularized incomplete beta and gamma functions of
//! [`crate::special`].
//! The binomial probabilities use the saddle-point form of the probability mass function
//! (C. Loader, "Fast and Accurate Computation of Binomial Probabilities", 2000): ln C(n, k) pᵏ qⁿ⁻ᵏ
//! is written with Stirling corrections and the deviance `x ln(x/m) + m − x`, so it keeps its
//! relative accuracy for n up to 10⁶ and beyond, and a tail is summed outward from its largest
//! term in log space.
//! These functions return NaN for arguments outside their domain instead of an error: they are
//! building blocks, and the statistics that call them validate their own inputs.

use crate::special::{beta_inc_pair, gamma_inc, ln_gamma_q, stirling_correction, LN_SQRT_2PI};

/// Relative size below which further tail terms are dropped.
const TAIL_EPS: f64 = 1e-17;

/// `P[T > t]` for Student's t distribution with `dof > 0` degrees of freedom (like
/// `scipy.stats.t.sf`).
pub fn student_t_sf(t: f64, dof: f64) -> f64 {
    if t.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    // P[|T| > |t|] = I_{ν/(ν+t²)}(ν/2, ½).
    let two_sided = student_t_two_sided(t.abs(), dof);
    if t >= 0.0 {
        0.5 * two_sided
    } else {
        1.0 - 0.5 * two_sided
    }
}

/// `P[T ≤ t]` for Student's t distribution with `dof > 0` degrees of freedom (like
/// `scipy.stats.t.cdf`).
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    student_t_sf(-t, dof)
}

/// The `p` quantile of Student's t distribution with `dof > 0` degrees of freedom (like
/// `scipy.stats.t.ppf`), by bisection on [`student_t_cdf`] to the last bit; NaN outside
/// `0 < p < 1`.
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    let (mut lo, mut hi) = (-1.0, 1.0);
    while student_t_cdf(lo, dof) > p {
        lo *= 2.0;
    }
    while student_t_cdf(hi, dof) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if student_t_cdf(mid, dof) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `P[X > x]` for the χ² distribution with `dof > 0` degrees of freedom (like
/// `scipy.stats.chi2.sf`); 1 for `x ≤ 0`.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_inc(0.5 * dof, 0.5 * x).1
}

/// `ln P[X > x]` for the χ² distribution; finite where [`chi2_sf`] underflows to 0.
pub fn chi2_ln_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    ln_gamma_q(0.5 * dof, 0.5 * x)
}

/// `ln P[X = k]` for `X ~ Binomial(n, p)`, `0 ≤ p ≤ 1` (−∞ for `k > n`).
pub fn binomial_ln_pmf(k: u64, n: u64, p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    let q = 1.0 - p;
    let (kf, nf) = (k as f64, n as f64);
    if k == 0 {
        return if p == 0.0 { 0.0 } else { nf * (-p).ln_1p() };
    }
    if k == n {
        return if p == 1.0 { 0.0 } else { nf * p.ln() };
    }
    if p == 0.0 || p == 1.0 {
        return f64::NEG_INFINITY;
    }
    let rest = nf - kf;
    stirling_error(nf)
        - stirling_error(kf)
        - stirling_error(rest)
        - deviance(kf, nf * p)
        - deviance(rest, nf * q)
        - (LN_SQRT_2PI + 0.5 * (kf.ln() + (-kf / nf).ln_1p()))
}

/// `ln P[X ≤ k]` for `X ~ Binomial(n, p)`, `0 ≤ p ≤ 1`.
///
/// Below the mode the tail `P[X ≤ k]` is summed downward from its largest term; above it,
/// `P[X > k]` is summed upward and the result is `ln(1 − P[X > k])`.
pub fn binomial_ln_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if k >= n || p == 0.0 {
        return 0.0;
    }
    if p == 1.0 {
        return f64::NEG_INFINITY;
    }
    let q = 1.0 - p;
    let nf = n as f64;
    if (k as f64) < (nf + 1.0) * p {
        // pmf(j − 1)/pmf(j) = j q / ((n − j + 1) p) < 1 for j ≤ k < (n + 1) p.
        let ratio = |j: u64| (j as f64 * q) / ((nf - j as f64 + 1.0) * p);
        binomial_ln_pmf(k, n, p) + sum_decreasing((1..=k).rev().map(ratio)).ln()
    } else {
        // pmf(j + 1)/pmf(j) = (n − j) p / ((j + 1) q) < 1 for j > k ≥ (n + 1) p.
        let ratio = |j: u64| ((nf - j as f64) * p) / ((j as f64 + 1.0) * q);
        let ln_upper = binomial_ln_pmf(k + 1, n, p) + sum_decreasing((k + 1..n).map(ratio)).ln();
        (-ln_upper.exp()).ln_1p()
    }
}

/// `P[X ≤ k]` for `X ~ Binomial(n, p)` (like `scipy.stats.binom.cdf`).
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    binomial_ln_cdf(k, n, p).exp()
}

/// `P[|T| > t]` for `t ≥ 0`.
fn student_t_two_sided(t: f64, dof: f64) -> f64 {
    let t2 = t * t;
    if t2.is_infinite() {
        return 0.0;
    }
    // x = ν/(ν + t²) and 1 − x = t²/(ν + t²), each without cancellation.
    let denom = dof + t2;
    beta_inc_pair(0.5 * dof, 0.5, dof / denom, t2 / denom).0
}

/// 1 + r₁ + r₁r₂ + … for successive term ratios that are all below 1, stopped when a term no
/// longer changes the sum.
fn sum_decreasing(ratios: impl Iterator<Item = f64>) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for ratio in ratios {
        term *= ratio;
        sum += term;
        if term < sum * TAIL_EPS {
            break;
        }
    }
    sum
}

/// ln n! − [(n + ½) ln n − n + ½ ln 2π] for an integer `n ≥ 1`.
fn stirling_error(n: f64) -> f64 {
    if n >= 10.0 {
        return stirling_correction(n);
    }
    // n! is exact in f64 for n < 10.
    let factorial: f64 = (1..=n as u64).map(|i| i as f64).product();
    factorial.ln() - (n + 0.5) * n.ln() + n - LN_SQRT_2PI
}

/// The deviance term x ln(x/m) + m − x ≥ 0, by its series in v = (x − m)/(x + m) when x is
/// close to m (where the direct form cancels).
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        // ln(x/m) = 2 atanh(v), so the deviance is (x − m) v + 2x (v³/3 + v⁵/5 + …).
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut sum = (x - m) * v;
        let mut power = 2.0 * x * v;
        for j in 1..1000 {
            power *= v2;
            let next = sum + power / (2 * j + 1) as f64;
            if next == sum {
                break;
            }
            sum = next;
        }
        sum
    } else {
        x * (x / m).ln() + m - x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::assert_rel;

    #[test]
    fn t_with_one_dof_is_cauchy() {
        // P[T > t] = ½ − atan(t)/π for ν = 1.
        for &t in &[-30.0, -1.0, 0.0, 0.3, 2.0, 1e3] {
            let expected = 0.5 - f64::atan(t) / std::f64::consts::PI;
            assert_rel(student_t_sf(t, 1.0), expected, 1e-12);
            assert_rel(student_t_cdf(t, 1.0), 1.0 - expected, 1e-12);
        }
        assert_eq!(student_t_sf(f64::INFINITY, 3.0), 0.0);
        assert_eq!(student_t_sf(f64::NEG_INFINITY, 3.0), 1.0);
        assert!(student_t_sf(1.0, 0.0).is_nan());
    }

    #[test]
    fn t_with_two_dof_has_a_closed_form() {
        // P[T > t] = ½ (1 − t/√(2 + t²)) for ν = 2.
        for &t in &[0.1_f64, 1.5, 40.0] {
            let expected = 0.5 * (1.0 - t / (2.0 + t * t).sqrt());
            assert_rel(student_t_sf(t, 2.0), expected, 1e-11);
        }
    }

    #[test]
    fn t_quantiles_invert_the_closed_forms() {
        // ν = 1 (Cauchy): tan(π(p − ½)); ν = 2: (2p − 1) / √(2p(1 − p)).
        for &p in &[0.001_f64, 0.1, 0.5, 0.9, 0.975, 0.999] {
            let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
            assert!((student_t_quantile(p, 1.0) - cauchy).abs() <= 1e-9 * (1.0 + cauchy.abs()));
            let two = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
            assert!((student_t_quantile(p, 2.0) - two).abs() <= 1e-9 * (1.0 + two.abs()));
        }
        // scipy.stats.t.ppf(0.975, 4) and (0.975, 30).
        assert_rel(student_t_quantile(0.975, 4.0), 2.7764451051977987, 1e-10);
        assert_rel(student_t_quantile(0.975, 30.0), 2.0422724563012373, 1e-10);
        assert!(student_t_quantile(1.0, 3.0).is_nan() && student_t_quantile(0.5, 0.0).is_nan());
    }

    #[test]
    fn chi2_with_two_dof_is_exponential() {
        // P[X > x] = e^(−x/2) for 2 degrees of freedom.
        for &x in &[0.01, 1.0, 5.0, 100.0, 1400.0] {
            assert_rel(chi2_sf(x, 2.0), (-0.5 * x).exp(), 1e-13);
            assert_rel(chi2_ln_sf(x, 2.0), -0.5 * x, 1e-13);
        }
        assert_eq!(chi2_sf(0.0, 1.0), 1.0);
        assert_eq!(chi2_sf(-2.0, 1.0), 1.0);
    }

    #[test]
    fn binomial_pmf_and_cdf_match_direct_sums() {
        // Small n, by Pascal's triangle in f64 (exact here).
        let n = 20_u64;
        let mut row = vec![1.0_f64];
        for _ in 0..n {
            let mut next = vec![1.0; row.len() + 1];
            for i in 1..row.len() {
                next[i] = row[i - 1] + row[i];
            }
            row = next;
        }
        let p = 0.3_f64;
        let pmf: Vec<f64> = (0..=n)
            .map(|k| row[k as usize] * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32))
            .collect();
        let mut cdf = 0.0;
        for k in 0..=n {
            cdf += pmf[k as usize];
            assert_rel(binomial_ln_pmf(k, n, p).exp(), pmf[k as usize], 1e-13);
            assert_rel(binomial_cdf(k, n, p), cdf, 1e-13);
        }
    }

    #[test]
    fn binomial_tails_do_not_underflow_in_log_space() {
        // P[X ≤ 0] = 2⁻ⁿ for p = ½.
        let n = 1_000_000_u64;
        assert_rel(
            binomial_ln_cdf(0, n, 0.5),
            -(n as f64) * std::f64::consts::LN_2,
            1e-14,
        );
        // Bin(n, ½) is symmetric: P[X ≤ n/2] = ½ + ½ P[X = n/2] for even n, ½ at (n − 1)/2 for odd n.
        let half_mass = 0.5 + 0.5 * binomial_ln_pmf(n / 2, n, 0.5).exp();
        assert_rel(binomial_cdf(n / 2, n, 0.5), half_mass, 1e-12);
        assert_rel(binomial_cdf(499_999, 999_999, 0.5), 0.5, 1e-12);
        assert_eq!(binomial_ln_cdf(5, 5, 0.5), 0.0);
        assert_eq!(binomial_ln_pmf(6, 5, 0.5), f64::NEG_INFINITY);
        assert!(binomial_cdf(1, 5, 1.5).is_nan());
    }
}
