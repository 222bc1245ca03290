//! The TTT-Linear layer's fused CPU kernels against its composition of Candle ops: the same
//! layer on the same chunk, once with untracked inputs (the fused inputs and inner loop run)
//! and once with the input tracked by autograd (the composition runs), over every option that
//! changes the kernels' paths: both convolution windows, both η forms, both causal masks,
//! UPDATE_1, _2 and _4, clipping, ragged chunks, several sequences, both float types.

use candle::{DType, Result, Tensor, Var};
use ponder_nn::assert_close;
use ponder_ttt::{ConvWindow, EtaForm, TttConfig, TttParams, TttStats};

mod common;
use common::{params, randn};

/// [`common::params`] with every other path of the layer nonzero too.
fn layer(cfg: &TttConfig, seed: u64, dtype: DType) -> Result<TttParams> {
    let mut p = params(cfg, seed, dtype)?;
    p.fast_init.b[0] = randn(p.fast_init.b[0].dims(), seed + 102, 0.3, dtype)?;
    p.conv_k.1 = randn(p.conv_k.1.dims(), seed + 103, 0.3, dtype)?;
    p.ttt_norm.0 = randn(p.ttt_norm.0.dims(), seed + 104, 0.2, dtype)?.affine(1.0, 1.0)?;
    p.ttt_norm.1 = randn(p.ttt_norm.1.dims(), seed + 105, 0.2, dtype)?;
    Ok(p)
}

fn stats_close(got: &TttStats, want: &TttStats, tol: f64) -> Result<()> {
    assert_close(&got.init, &want.init, tol, tol)?;
    assert_close(&got.step_0, &want.step_0, tol, tol)?;
    assert_close(&got.step_1, &want.step_1, tol, tol)?;
    match (&got.ssl_target_variance, &want.ssl_target_variance) {
        (Some(g), Some(w)) => assert_close(g, w, tol, tol),
        (None, None) => Ok(()),
        _ => candle::bail!("one side has ssl_target_variance, the other not"),
    }
}

/// Forward, signal and per-sequence signal of `p` on `x`, fused and composed, compared.
fn compare(cfg: &TttConfig, p: &TttParams, x: &Tensor, steps: usize, tol: f64) -> Result<()> {
    let bs = x.dim(0)?;
    let tracked = Var::from_tensor(x)?;
    let tracked = tracked.as_tensor();
    // A carried state, so that `init` and the entering weights differ after the first chunk.
    let state = p.forward(cfg, x, &p.initial_state(bs)?, 1)?.state;
    let fused = p.forward(cfg, x, &state, steps)?;
    let composed = p.forward(cfg, tracked, &state, steps)?;
    assert_close(&fused.y, &composed.y, tol, tol)?;
    assert_close(&fused.state.w[0], &composed.state.w[0], tol, tol)?;
    assert_close(&fused.state.b[0], &composed.state.b[0], tol, tol)?;
    stats_close(&fused.stats, &composed.stats, tol)?;
    stats_close(
        &p.signal(cfg, x, &state, steps)?,
        &p.signal(cfg, tracked, &state, steps)?,
        tol,
    )?;
    stats_close(
        &p.signal_per_sequence(cfg, x, &state, steps)?,
        &p.signal_per_sequence(cfg, tracked, &state, steps)?,
        tol,
    )
}

#[test]
fn the_fused_layer_equals_the_composition() -> Result<()> {
    let mut case = 0;
    for conv_window in [ConvWindow::Shifted, ConvWindow::Causal] {
        for (eta_form, causal_k) in [
            (EtaForm::PerKey, 0),
            (EtaForm::Matrix, 0),
            (EtaForm::PerKey, -1),
        ] {
            for max_grad_norm in [None, Some(0.05)] {
                let cfg = TttConfig {
                    hidden_dim: 16,
                    num_heads: 2,
                    head_dim: 8,
                    mini_batch_size: 4,
                    conv_window,
                    causal_k,
                    eta_form,
                    max_grad_norm,
                    ..TttConfig::for_gpt2(16, 2)
                };
                case += 1;
                let p = layer(&cfg, case, DType::F64)?;
                for (bs, t) in [(2, 11), (1, 8)] {
                    let x = randn(&[bs, t, 16], case + 50, 1.0, DType::F64)?;
                    for steps in [1, 2, 4] {
                        compare(&cfg, &p, &x, steps, 1e-10).map_err(|e| {
                            candle::Error::Msg(format!(
                                "{conv_window:?} {eta_form:?} causal_k {causal_k} clip \
                                 {max_grad_norm:?} bs {bs} t {t} k {steps}: {e}"
                            ))
                        })?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_fused_layer_equals_the_composition_in_f32() -> Result<()> {
    let cfg = TttConfig {
        hidden_dim: 128,
        num_heads: 2,
        mini_batch_size: 16,
        ..TttConfig::for_gpt2(128, 2)
    };
    let p = layer(&cfg, 70, DType::F32)?;
    let x = randn(&[2, 45, 128], 71, 1.0, DType::F32)?;
    for steps in [1, 4] {
        compare(&cfg, &p, &x, steps, 1e-4)?;
    }
    Ok(())
}
