//! Golden test: correlations, McNemar's test and the distribution tails against scipy.
//!
//! The reference values come from `fixtures/gen_scipy.py` (scipy 1.17, numpy 2.4), stored in
//! `fixtures/scipy_reference.json`.
//! Statistics must agree to 1e-9 relative, p-values and tail probabilities to 1e-8 relative or
//! 1e-300 absolute (scipy and this crate both lose relative precision below the normal range).

use std::path::Path;

use ponder_metrics::distribution::{binomial_cdf, chi2_sf, student_t_sf};
use ponder_metrics::special::erfc;
use ponder_metrics::{mcnemar, pearson, spearman};
use serde::Deserialize;

const STAT_RTOL: f64 = 1e-9;
const P_RTOL: f64 = 1e-8;
const P_ATOL: f64 = 1e-300;

#[derive(Deserialize)]
struct Fixture {
    format_version: u32,
    correlation: Vec<CorrelationCase>,
    mcnemar: Vec<McNemarCase>,
    chi2_sf: Vec<Chi2Case>,
    t_sf: Vec<TCase>,
    erfc: Vec<ErfcCase>,
    binom_cdf: Vec<BinomCase>,
}

#[derive(Deserialize)]
struct CorrelationCase {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    pearson_r: f64,
    pearson_p: f64,
    spearman_r: f64,
    spearman_p: f64,
}

#[derive(Deserialize)]
struct McNemarCase {
    n10: u64,
    n01: u64,
    chi2: f64,
    p_chi2: f64,
    p_exact: f64,
}

#[derive(Deserialize)]
struct Chi2Case {
    x: f64,
    dof: f64,
    sf: f64,
}

#[derive(Deserialize)]
struct TCase {
    t: f64,
    dof: f64,
    sf: f64,
}

#[derive(Deserialize)]
struct ErfcCase {
    x: f64,
    value: f64,
}

#[derive(Deserialize)]
struct BinomCase {
    k: u64,
    n: u64,
    p: f64,
    cdf: f64,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scipy_reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let fixture: Fixture = serde_json::from_str(&text).expect("parsing scipy_reference.json");
    assert_eq!(fixture.format_version, 1);
    fixture
}

/// Checks `|actual − expected| ≤ atol + rtol·|expected|`, naming the case on failure.
fn assert_close(what: &str, actual: f64, expected: f64, atol: f64, rtol: f64) {
    let diff = (actual - expected).abs();
    let rel = diff / expected.abs();
    assert!(
        diff <= atol + rtol * expected.abs(),
        "{what}: actual {actual:e}, expected {expected:e}, abs diff {diff:e}, rel diff {rel:e}"
    );
}

#[test]
fn pearson_and_spearman_match_scipy() {
    let fixture = fixture();
    assert!(fixture.correlation.len() >= 10);
    for case in &fixture.correlation {
        let p = pearson(&case.x, &case.y).unwrap();
        let s = spearman(&case.x, &case.y).unwrap();
        let name = &case.name;
        assert_eq!((p.n, s.n), (case.x.len(), case.x.len()));
        assert_close(
            &format!("{name} pearson r"),
            p.r,
            case.pearson_r,
            1e-15,
            STAT_RTOL,
        );
        assert_close(
            &format!("{name} pearson p"),
            p.p,
            case.pearson_p,
            P_ATOL,
            P_RTOL,
        );
        assert_close(
            &format!("{name} spearman r"),
            s.r,
            case.spearman_r,
            1e-15,
            STAT_RTOL,
        );
        assert_close(
            &format!("{name} spearman p"),
            s.p,
            case.spearman_p,
            P_ATOL,
            P_RTOL,
        );
    }
}

#[test]
fn mcnemar_matches_scipy_chi2_and_binomtest() {
    let fixture = fixture();
    for case in &fixture.mcnemar {
        let (n10, n01) = (case.n10, case.n01);
        // Pairs: n10 of (1, 0), n01 of (0, 1), plus concordant pairs that must not matter.
        let mut a = vec![true; n10 as usize];
        let mut b = vec![false; n10 as usize];
        a.extend(std::iter::repeat_n(false, n01 as usize));
        b.extend(std::iter::repeat_n(true, n01 as usize));
        a.extend([true, false, true]);
        b.extend([true, false, true]);
        let test = mcnemar(&a, &b).unwrap();
        let what = format!("mcnemar({n10}, {n01})");
        assert_eq!((test.n10, test.n01), (n10, n01), "{what}");
        assert_close(
            &format!("{what} chi2"),
            test.chi2,
            case.chi2,
            0.0,
            STAT_RTOL,
        );
        assert_close(
            &format!("{what} p_chi2"),
            test.p_chi2,
            case.p_chi2,
            P_ATOL,
            P_RTOL,
        );
        assert_close(
            &format!("{what} p_exact"),
            test.p_exact,
            case.p_exact,
            P_ATOL,
            P_RTOL,
        );
        assert_close(
            &format!("{what} ln_p_exact"),
            test.ln_p_exact.exp(),
            test.p_exact,
            0.0,
            1e-15,
        );
    }
}

#[test]
fn chi2_sf_matches_scipy() {
    for case in &fixture().chi2_sf {
        let what = format!("chi2.sf({}, {})", case.x, case.dof);
        assert_close(&what, chi2_sf(case.x, case.dof), case.sf, P_ATOL, P_RTOL);
    }
}

#[test]
fn t_sf_matches_scipy() {
    for case in &fixture().t_sf {
        let what = format!("t.sf({}, {})", case.t, case.dof);
        assert_close(
            &what,
            student_t_sf(case.t, case.dof),
            case.sf,
            P_ATOL,
            P_RTOL,
        );
    }
}

#[test]
fn erfc_matches_scipy() {
    for case in &fixture().erfc {
        let what = format!("erfc({})", case.x);
        assert_close(&what, erfc(case.x), case.value, P_ATOL, 1e-12);
    }
}

#[test]
fn binomial_cdf_matches_scipy() {
    for case in &fixture().binom_cdf {
        let what = format!("binom.cdf({}, {}, {})", case.k, case.n, case.p);
        assert_close(
            &what,
            binomial_cdf(case.k, case.n, case.p),
            case.cdf,
            P_ATOL,
            P_RTOL,
        );
    }
}
