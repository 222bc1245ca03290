//! The fused tied head and its cross-entropy (and probe) against the naive forms: every logit
//! materialized in f64, then the loss, entropy and top probabilities per row.

use candle::{DType, Device, Tensor, Var};
use ponder_nn::linear_cross_entropy;
use ponder_nn::linear_loss::{linear_probe, PROBE_WIDTH};

/// Seeded inputs (Candle's CPU `randn` cannot be seeded), so every run checks the same case.
fn inputs(n: usize, d: usize, v: usize, dtype: DType) -> (Tensor, Tensor, Tensor) {
    let dev = Device::Cpu;
    let mut rng = ponder_nn::init::rng_for(n as u64, "linear-loss-test");
    let x = ponder_nn::init::normal((n, d), 2.0, &mut rng, dtype, &dev).unwrap();
    let w = ponder_nn::init::normal((v, d), 0.5, &mut rng, dtype, &dev).unwrap();
    let ids: Vec<u32> = (0..n).map(|i| ((i * 7919) % v) as u32).collect();
    (x, w, Tensor::new(ids, &dev).unwrap())
}

/// Every row of logits materialized (as an f64 matmul) with the mask written, beside its
/// target and the row's log-sum-exp.
fn materialized(
    x: &Tensor,
    w: &Tensor,
    t: &Tensor,
    masked: Option<(usize, f64)>,
) -> Vec<(Vec<f64>, usize, f64)> {
    let x = x.to_dtype(DType::F64).unwrap();
    let w = w.to_dtype(DType::F64).unwrap();
    let logits = x.matmul(&w.t().unwrap()).unwrap().to_vec2::<f64>().unwrap();
    let t = t.to_vec1::<u32>().unwrap();
    logits
        .into_iter()
        .zip(t)
        .map(|(mut row, t)| {
            if let Some((c, value)) = masked {
                row[c] = value;
            }
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            (row, t as usize, lse)
        })
        .collect()
}

/// The naive form of the loss: `log Σ exp − z_target` in f64 per row.
fn naive(x: &Tensor, w: &Tensor, t: &Tensor, masked: Option<(usize, f64)>) -> Vec<f64> {
    materialized(x, w, t, masked)
        .into_iter()
        .map(|(row, t, lse)| lse - row[t])
        .collect()
}

#[test]
fn matches_the_naive_form_in_both_dtypes_with_and_without_a_mask() {
    // v not a multiple of the tile, several tiles, several row blocks, a target on the
    // masked column.
    for (n, d, v) in [(3, 8, 37), (600, 24, 1000), (2100, 8, 300)] {
        for dtype in [DType::F32, DType::F64] {
            for masked in [None, Some((v - 1, -1e9)), Some((5, 3.0))] {
                let (x, w, t) = inputs(n, d, v, dtype);
                let got = linear_cross_entropy(&x, &w, &t, masked).unwrap();
                let want = naive(&x, &w, &t, masked);
                assert_eq!(got.dtype(), dtype);
                let got = got.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tol = 2e-6 * w.abs().max(1.0);
                    assert!(
                        (g - w).abs() < tol,
                        "n {n} v {v} {dtype:?} {masked:?} row {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_tile_count_does_not_depend_on_threads_and_the_result_is_reproducible() {
    let (x, w, t) = inputs(300, 16, 2000, DType::F32);
    let a = linear_cross_entropy(&x, &w, &t, None)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = pool.install(|| linear_cross_entropy(&x, &w, &t, None).unwrap());
    assert_eq!(a, b.to_vec1::<f32>().unwrap());
}

#[test]
fn tracked_inputs_take_the_differentiable_path() {
    let (x, w, t) = inputs(5, 4, 11, DType::F32);
    let xv = Var::from_tensor(&x).unwrap();
    let loss = linear_cross_entropy(xv.as_tensor(), &w, &t, None).unwrap();
    let grads = loss.sum_all().unwrap().backward().unwrap();
    let g = grads.get(xv.as_tensor()).expect("a gradient for x");
    assert_eq!(g.dims(), &[5, 4]);
    let fused = linear_cross_entropy(&x, &w, &t, None).unwrap();
    let diff = (loss - fused).unwrap().abs().unwrap().max_all().unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
}

#[test]
fn bad_shapes_and_targets_are_errors() {
    let (x, w, t) = inputs(4, 3, 9, DType::F32);
    let wide = Tensor::zeros((9, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(linear_cross_entropy(&x, &wide, &t, None).is_err());
    let far = Tensor::new(&[0u32, 1, 9, 2], &Device::Cpu).unwrap();
    let err = linear_cross_entropy(&x, &w, &far, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("linear_cross_entropy: target 9"), "{err}");
    let err = linear_cross_entropy(&x, &w, &t, Some((9, 0.0)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("masked column 9"), "{err}");
    // The probe's errors name the probe.
    let err = linear_probe(&x, &w, &far, None).unwrap_err().to_string();
    assert!(err.contains("linear_probe: target 9"), "{err}");
    let err = linear_probe(&x, &wide, &t, None).unwrap_err().to_string();
    assert!(err.contains("linear_probe: need x (n, d)"), "{err}");
}

/// The probe's values from the materialized f64 logits.
fn naive_probe(x: &Tensor, w: &Tensor, t: &Tensor, masked: Option<(usize, f64)>) -> Vec<[f64; 8]> {
    materialized(x, w, t, masked)
        .into_iter()
        .map(|(row, t, lse)| {
            let p: Vec<f64> = row.iter().map(|z| (z - lse).exp()).collect();
            let entropy: f64 = -p
                .iter()
                .map(|q| if *q > 0.0 { q * q.ln() } else { 0.0 })
                .sum::<f64>();
            let mut sorted = p.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            [
                lse - row[t],
                entropy,
                -sorted[0].ln(),
                sorted[0],
                sorted[1],
                sorted[2],
                sorted[3],
                sorted[4],
            ]
        })
        .collect()
}

#[test]
fn the_probe_matches_the_naive_form_fused_and_unfused() {
    // One tile; one; three, and 23 (the later tiles pass over what cannot enter the five).
    for (n, d, v) in [(3, 8, 37), (40, 24, 1000), (1100, 8, 300), (600, 8, 5000)] {
        for dtype in [DType::F32, DType::F64] {
            for masked in [None, Some((v - 1, -1e9))] {
                let (x, w, t) = inputs(n, d, v, dtype);
                let want = naive_probe(&x, &w, &t, masked);
                let xv = Var::from_tensor(&x).unwrap(); // tracked: the unfused path
                for x in [x.clone(), xv.as_tensor().clone()] {
                    let got = linear_probe(&x, &w, &t, masked).unwrap();
                    assert_eq!(got.dims(), [n, PROBE_WIDTH]);
                    assert_eq!(got.dtype(), dtype);
                    let got = got.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        for k in 0..PROBE_WIDTH {
                            let tol = 2e-5 * w[k].abs().max(1.0);
                            assert!(
                                (g[k] - w[k]).abs() < tol,
                                "n {n} v {v} {dtype:?} {masked:?} row {i} value {k}: {} vs {}",
                                g[k],
                                w[k]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn the_probe_loss_is_the_cross_entropy() {
    let (x, w, t) = inputs(50, 16, 500, DType::F32);
    let loss = linear_cross_entropy(&x, &w, &t, None)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let probe = linear_probe(&x, &w, &t, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (l, p) in loss.iter().zip(&probe) {
        assert_eq!(*l, p[0]);
    }
    let err = linear_probe(
        &x,
        &w.narrow(0, 0, 4).unwrap(),
        &(t.clone() * 0.0).unwrap().to_dtype(DType::U32).unwrap(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("at least 5 logits"), "{err}");
}
