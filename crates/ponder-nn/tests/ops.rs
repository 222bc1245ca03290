//! The fused ops against their primitive-op references: forward values, gradients from Candle
//! autograd of the reference, and central finite differences in f64.

use candle::{DType, Device, Result, Tensor, Var};
use ponder_nn::{assert_close, init, reference};

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let mut rng = init::rng_for(seed, "ops-test");
    init::normal(shape, 1.0, &mut rng, dtype, &Device::Cpu)
}

/// Gradient of `Σ w ⊙ f(x)` with respect to each input, through Candle autograd.
fn grads_of(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    weight: &Tensor,
) -> Result<Vec<Tensor>> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let loss = (f(&ts)? * weight)?.sum_all()?;
    let grads = loss.backward()?;
    ts.iter()
        .map(|t| {
            grads
                .get(t)
                .cloned()
                .ok_or_else(|| candle::Error::Msg("no gradient".into()))
        })
        .collect()
}

/// Central finite differences of `Σ w ⊙ f(x)` at a few entries of input `which`.
fn check_fd(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    weight: &Tensor,
    which: usize,
    grad: &Tensor,
) -> Result<()> {
    let h = 1e-6;
    let flat = inputs[which].flatten_all()?.to_vec1::<f64>()?;
    let g = grad.flatten_all()?.to_vec1::<f64>()?;
    let n = flat.len();
    for idx in [0, n / 3, n / 2, n - 1] {
        let eval = |delta: f64| -> Result<f64> {
            let mut v = flat.clone();
            v[idx] += delta;
            let mut xs = inputs.to_vec();
            xs[which] = Tensor::from_vec(v, inputs[which].shape(), &Device::Cpu)?;
            (f(&xs)? * weight)?.sum_all()?.to_scalar::<f64>()
        };
        let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
        let tol = 1e-6 * (1.0 + fd.abs());
        assert!(
            (fd - g[idx]).abs() < tol,
            "input {which} [{idx}]: fd {fd} vs autograd {}",
            g[idx]
        );
    }
    Ok(())
}

fn check_op(
    fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    refr: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
) -> Result<()> {
    let out = fused(inputs)?;
    assert_close(&out, &refr(inputs)?, 1e-12, 1e-12)?;
    let weight = randn(out.dims(), 99, DType::F64)?;
    let g_fused = grads_of(fused, inputs, &weight)?;
    let g_ref = grads_of(refr, inputs, &weight)?;
    for (i, (a, b)) in g_fused.iter().zip(&g_ref).enumerate() {
        assert_close(a, b, 1e-10, 1e-10)
            .map_err(|e| candle::Error::Msg(format!("input {i}: {e}")))?;
        check_fd(fused, inputs, &weight, i, a)?;
    }
    // f32 kernels agree with the f64 reference within f32 precision.
    let inputs32: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F32))
        .collect::<Result<_>>()?;
    assert_close(&fused(&inputs32)?, &refr(inputs)?, 1e-5, 1e-5)?;
    // So do the f32 gradients, which run the fused backward kernels where an op has them,
    // within the rounding of f32 sums over up to a few thousand rows (gamma's gradient).
    let g32 = grads_of(fused, &inputs32, &weight.to_dtype(DType::F32)?)?;
    for (i, (a, b)) in g32.iter().zip(&g_ref).enumerate() {
        assert_close(a, b, 1e-4, 1e-4)
            .map_err(|e| candle::Error::Msg(format!("input {i}, f32: {e}")))?;
    }
    Ok(())
}

#[test]
fn layer_norm_matches_reference() -> Result<()> {
    let x = (randn(&[3, 5, 24], 1, DType::F64)? * 3.0)?.affine(1.0, 0.5)?;
    let gamma = randn(&[24], 2, DType::F64)?;
    let beta = randn(&[24], 3, DType::F64)?;
    check_op(
        &|t| ponder_nn::layer_norm(&t[0], &t[1], &t[2], 1e-2),
        &|t| reference::layer_norm(&t[0], &t[1], &t[2], 1e-2),
        &[x, gamma, beta],
    )
}

#[test]
fn layer_norm_matches_reference_over_many_row_blocks() -> Result<()> {
    // 2,000 rows of 16 are two blocks of the kernel's parallel split, whose partial sums for
    // gamma's and beta's gradients are merged.
    let x = randn(&[2000, 16], 11, DType::F64)?;
    let gamma = randn(&[16], 12, DType::F64)?;
    let beta = randn(&[16], 13, DType::F64)?;
    check_op(
        &|t| ponder_nn::layer_norm(&t[0], &t[1], &t[2], 1e-5),
        &|t| reference::layer_norm(&t[0], &t[1], &t[2], 1e-5),
        &[x, gamma, beta],
    )
}

#[test]
fn softmax_matches_reference() -> Result<()> {
    let x = (randn(&[4, 7, 33], 4, DType::F64)? * 4.0)?;
    check_op(
        &|t| ponder_nn::softmax_last_dim(&t[0]),
        &|t| reference::softmax_last_dim(&t[0]),
        &[x],
    )
}

#[test]
fn causal_softmax_matches_reference() -> Result<()> {
    for (t_q, t_k) in [(9, 9), (5, 12), (1, 4)] {
        let x = (randn(&[2, 3, t_q, t_k], 5, DType::F64)? * 2.0)?;
        check_op(
            &|t| ponder_nn::causal_softmax(&t[0], 0.37),
            &|t| reference::causal_softmax(&t[0], 0.37),
            &[x],
        )?;
    }
    Ok(())
}

#[test]
fn causal_softmax_hides_future_keys() -> Result<()> {
    let x = randn(&[1, 6, 6], 6, DType::F32)?;
    let y = ponder_nn::causal_softmax(&x, 1.0)?
        .squeeze(0)?
        .to_vec2::<f32>()?;
    for (i, row) in y.iter().enumerate() {
        assert!(row[i + 1..].iter().all(|&v| v == 0.0), "row {i}: {row:?}");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    Ok(())
}

#[test]
fn gelu_matches_reference() -> Result<()> {
    let x = (randn(&[4, 50], 7, DType::F64)? * 3.0)?;
    check_op(
        &|t| ponder_nn::gelu_tanh(&t[0]),
        &|t| reference::gelu_tanh(&t[0]),
        &[x],
    )
}

#[test]
fn gelu_gradient_holds_at_extremes() -> Result<()> {
    // Past about |x| = 10 the kernel's e^(−2z) overflows or vanishes in f32.
    let xs = [
        -1e4, -50.0, -10.2, -9.9, -3.0, -1e-3, 0.0, 1e-3, 3.0, 9.9, 10.2, 50.0, 1e4,
    ];
    let x = Tensor::new(&xs, &Device::Cpu)?;
    let ones = Tensor::ones(xs.len(), DType::F64, &Device::Cpu)?;
    let x32 = x.to_dtype(DType::F32)?;
    let want = grads_of(&|t| reference::gelu_tanh(&t[0]), &[x], &ones)?;
    let got = grads_of(
        &|t| ponder_nn::gelu_tanh(&t[0]),
        &[x32],
        &ones.to_dtype(DType::F32)?,
    )?;
    assert_close(&got[0], &want[0], 1e-6, 1e-6)
}

#[test]
fn gelu_tanh_differs_from_erf() -> Result<()> {
    let x = Tensor::new(&[1.0f64, -1.5, 2.0], &Device::Cpu)?;
    let d = ponder_nn::max_abs_diff(&ponder_nn::gelu_tanh(&x)?, &reference::gelu_erf(&x)?)?;
    assert!(d > 1e-4, "tanh and erf GELU should differ visibly, got {d}");
    Ok(())
}

#[test]
fn cross_entropy_matches_reference() -> Result<()> {
    let logits = (randn(&[6, 40], 8, DType::F64)? * 3.0)?;
    let targets = Tensor::new(&[0u32, 39, 5, 17, 17, 2], &Device::Cpu)?;
    let fused = |t: &[Tensor]| ponder_nn::cross_entropy(&t[0], &targets);
    let refr = |t: &[Tensor]| reference::cross_entropy(&t[0], &targets);
    check_op(&fused, &refr, &[logits])
}

#[test]
fn cross_entropy_rejects_out_of_vocab_target() -> Result<()> {
    let logits = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
    let targets = Tensor::new(&[1u32, 4], &Device::Cpu)?;
    let err = ponder_nn::cross_entropy(&logits, &targets)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("target 4 is outside the vocabulary of 4"),
        "{err}"
    );
    // Uniform logits give a loss of log(v) per token.
    let ok = ponder_nn::cross_entropy(&logits, &Tensor::new(&[1u32, 3], &Device::Cpu)?)?;
    assert_close(
        &ok,
        &Tensor::new(&[4f32.ln(), 4f32.ln()], &Device::Cpu)?,
        1e-6,
        0.0,
    )
}

#[test]
fn layer_norm_rejects_mismatched_gamma() -> Result<()> {
    let x = Tensor::zeros((2, 8), DType::F32, &Device::Cpu)?;
    let g = Tensor::ones(7, DType::F32, &Device::Cpu)?;
    let err = ponder_nn::layer_norm(&x, &g, &g, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must both have shape [8]"), "{err}");
    Ok(())
}
