//! McNemar's test for two paired binary outcomes (`docs/original.md` §9.6, our definition: the
//! original reports "p < 10⁻¹⁰" but implements no test).
//!
//! The recommended pairing is over chunks, `a[i] = [Ours agrees with Oracle on chunk i]` and
//! `b[i] = [Random agrees with Oracle on chunk i]`.
//! Only the discordant pairs matter: `n10 = #{a = 1, b = 0}` and `n01 = #{a = 0, b = 1}`.
//! Two p-values are reported: the χ² statistic with Edwards' continuity correction against χ²(1),
//! and the exact two-sided binomial test of `n10` among `n10 + n01` pairs at ½.
//! Both are also given as natural logs, which stay finite where the p-value itself underflows.
//! Like every test here, it assumes the pairs are independent, which chunks of one file are not.

use std::f64::consts::LN_2;

use serde::{Deserialize, Serialize};

use crate::distribution::{binomial_ln_cdf, chi2_ln_sf};
use crate::error::{ensure_nonempty, ensure_same_len};
use crate::Result;

/// The outcome of McNemar's test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Pairs with `a = 1, b = 0`.
    pub n10: u64,
    /// Pairs with `a = 0, b = 1`.
    pub n01: u64,
    /// `(|n10 − n01| − 1)² / (n10 + n01)`, and 0 when `n10 = n01` (see [`mcnemar_from_counts`]).
    pub chi2: f64,
    /// `P[χ²(1) ≥ chi2] = erfc(√(chi2/2))`.
    pub p_chi2: f64,
    /// The exact two-sided binomial p-value `min(1, 2 P[X ≤ min(n10, n01)])`,
    /// `X ~ Bin(n10 + n01, ½)`.
    pub p_exact: f64,
    /// ln of [`McNemar::p_chi2`], finite where it underflows.
    pub ln_p_chi2: f64,
    /// ln of [`McNemar::p_exact`], finite where it underflows.
    pub ln_p_exact: f64,
}

/// McNemar's test of paired outcomes `a` and `b`: does `a` succeed where `b` fails more often
/// than the reverse?
///
/// Errors when the slices differ in length or are empty.
///
/// ```
/// // 12 pairs where only a succeeds, 2 where only b does.
/// let a: Vec<bool> = (0..20).map(|i| i < 15).collect();
/// let b: Vec<bool> = (0..20).map(|i| i < 3 || (15..17).contains(&i)).collect();
/// let test = ponder_metrics::mcnemar(&a, &b).unwrap();
/// assert_eq!((test.n10, test.n01), (12, 2));
/// assert_eq!(test.chi2, 81.0 / 14.0);
/// assert!((test.p_exact - 0.012_939_453_125).abs() < 1e-15);
/// ```
pub fn mcnemar(a: &[bool], b: &[bool]) -> Result<McNemar> {
    const STAT: &str = "mcnemar";
    ensure_same_len(STAT, ("a", a), ("b", b))?;
    ensure_nonempty(STAT, "a", a)?;
    let (mut n10, mut n01) = (0_u64, 0_u64);
    for (&ai, &bi) in a.iter().zip(b) {
        match (ai, bi) {
            (true, false) => n10 += 1,
            (false, true) => n01 += 1,
            _ => {}
        }
    }
    Ok(mcnemar_from_counts(n10, n01))
}

/// McNemar's test from the discordant counts.
///
/// With no discordant pair (`n10 + n01 = 0`) there is no evidence either way: `chi2 = 0` and
/// both p-values are 1.
/// When `n10 = n01` the continuity correction is dropped (as R's `mcnemar.test` does), so
/// `chi2 = 0` and `p_chi2 = 1`; the literal formula would give `1/(n10 + n01)`.
/// The exact p-value is computed in log space, so `n10 + n01` up to 10⁶ and beyond is fine.
pub fn mcnemar_from_counts(n10: u64, n01: u64) -> McNemar {
    let total = n10 + n01;
    if total == 0 {
        return McNemar {
            n10,
            n01,
            chi2: 0.0,
            p_chi2: 1.0,
            p_exact: 1.0,
            ln_p_chi2: 0.0,
            ln_p_exact: 0.0,
        };
    }
    let diff = n10.abs_diff(n01) as f64;
    let corrected = (diff - 1.0).max(0.0);
    let chi2 = corrected * corrected / total as f64;
    let ln_p_chi2 = chi2_ln_sf(chi2, 1.0);
    // For Bin(N, ½) the outcomes at least as unlikely as min(n10, n01) are the two mirrored
    // tails, so the two-sided p-value is twice the lower tail (capped at 1).
    let ln_p_exact = (LN_2 + binomial_ln_cdf(n10.min(n01), total, 0.5)).min(0.0);
    McNemar {
        n10,
        n01,
        chi2,
        p_chi2: ln_p_chi2.exp(),
        p_exact: ln_p_exact.exp(),
        ln_p_chi2,
        ln_p_exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::erfc;
    use crate::test_util::assert_rel;

    #[test]
    fn counts_from_pairs() {
        let a = [true, true, false, false, true, false];
        let b = [true, false, true, false, false, true];
        let test = mcnemar(&a, &b).unwrap();
        assert_eq!((test.n10, test.n01), (2, 2));
        assert!(mcnemar(&a, &b[..5]).is_err());
        let err = mcnemar(&[], &[]).unwrap_err().to_string();
        assert!(err.contains("mcnemar"), "{err}");
    }

    #[test]
    fn hand_computed_cases() {
        // (n10, n01, χ², exact p): the exact p is 2 Σ_{k ≤ min} C(N, k) / 2ᴺ.
        let cases = [
            (0, 0, 0.0, 1.0),
            (3, 3, 0.0, 1.0),
            (1, 0, 0.0, 1.0),
            (4, 3, 0.0, 1.0),
            (5, 0, 16.0 / 5.0, 2.0 / 32.0),
            (0, 6, 25.0 / 6.0, 2.0 / 64.0),
            (8, 2, 25.0 / 10.0, 2.0 * 56.0 / 1024.0),
            (1, 9, 49.0 / 10.0, 2.0 * 11.0 / 1024.0),
        ];
        for (n10, n01, chi2, p_exact) in cases {
            let test = mcnemar_from_counts(n10, n01);
            assert_eq!(test.chi2, chi2, "({n10}, {n01})");
            assert_rel(test.p_exact, p_exact, 1e-14);
            assert_rel(test.p_chi2, erfc((chi2 / 2.0).sqrt()), 1e-13);
        }
    }

    #[test]
    fn one_sided_extremes_stay_in_range() {
        // 2 · 2⁻¹⁰⁰⁰ ≈ 1.87e-301 is still a normal f64.
        let test = mcnemar_from_counts(0, 1000);
        assert_rel(test.ln_p_exact, -999.0 * LN_2, 1e-14);
        assert_rel(test.p_exact, (-999.0 * LN_2).exp(), 1e-12);
        // χ² = 999²/1000 ≈ 998: p ≈ 1e-219.
        assert!(
            test.p_chi2 > 1e-220 && test.p_chi2 < 1e-217,
            "{}",
            test.p_chi2
        );
        // Far beyond: the p-values underflow but their logs do not.
        let test = mcnemar_from_counts(1_000_000, 0);
        assert_eq!(test.p_exact, 0.0);
        assert_rel(test.ln_p_exact, -999_999.0 * LN_2, 1e-14);
        assert!(test.ln_p_chi2 < -499_000.0 && test.ln_p_chi2.is_finite());
    }

    #[test]
    fn large_balanced_counts() {
        let test = mcnemar_from_counts(500_000, 500_000);
        assert_eq!((test.chi2, test.p_chi2, test.p_exact), (0.0, 1.0, 1.0));
        let test = mcnemar_from_counts(500_500, 499_500);
        assert!(test.p_exact > 0.3 && test.p_exact < 0.4, "{}", test.p_exact);
        assert!((test.p_exact - test.p_chi2).abs() < 1e-3);
    }
}
