//! Behaviour of the TTT-Linear layer: identities the maths guarantees, causality, ragged chunks,
//! state handling and bad input.

use candle::{DType, Device, Result, Tensor};
use ponder_nn::{assert_close, max_abs_diff};
use ponder_ttt::{ConvWindow, FastModelKind, TttConfig, TttParams};

mod common;
use common::{params, randn};

fn tiny(conv_window: ConvWindow, causal_k: i64) -> TttConfig {
    TttConfig {
        hidden_dim: 16,
        num_heads: 2,
        head_dim: 8,
        mini_batch_size: 4,
        conv_window,
        causal_k,
        ..TttConfig::for_gpt2(16, 2)
    }
}

#[test]
fn zero_output_projection_gives_zero_output() -> Result<()> {
    let cfg = tiny(ConvWindow::Shifted, 0);
    let p = TttParams::init(&cfg, FastModelKind::Linear, 1, DType::F32, &Device::Cpu)?;
    let x = randn(&[2, 8, 16], 2, 1.0, DType::F32)?;
    let out = p.forward(&cfg, &x, &p.initial_state(2)?, 1)?;
    assert_eq!(out.y.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    Ok(())
}

#[test]
fn learning_rate_zero_leaves_the_state_unchanged() -> Result<()> {
    let cfg = TttConfig {
        ttt_base_lr: 0.0,
        ..tiny(ConvWindow::Shifted, 0)
    };
    let p = params(&cfg, 3, DType::F64)?;
    let x = randn(&[2, 12, 16], 4, 1.0, DType::F64)?;
    let state = p.initial_state(2)?;
    for steps in [1, 3] {
        let out = p.forward(&cfg, &x, &state, steps)?;
        assert_close(&out.state.w[0], &state.w[0], 0.0, 0.0)?;
        assert_close(&out.state.b[0], &state.b[0], 0.0, 0.0)?;
        assert_close(&out.stats.step_1, &out.stats.step_0, 0.0, 0.0)?;
    }
    Ok(())
}

#[test]
fn outputs_are_causal() -> Result<()> {
    for (window, causal_k, steps) in [
        (ConvWindow::Shifted, 0, 1),
        (ConvWindow::Causal, 0, 1),
        (ConvWindow::Shifted, -1, 1),
        (ConvWindow::Causal, 0, 2),
    ] {
        let cfg = tiny(window, causal_k);
        let p = params(&cfg, 5, DType::F64)?;
        let x = randn(&[1, 12, 16], 6, 1.0, DType::F64)?;
        let t = 6;
        let tail = randn(&[1, 12 - t - 1, 16], 7, 1.0, DType::F64)?;
        let x2 = Tensor::cat(&[&x.narrow(1, 0, t + 1)?, &tail], 1)?; // same up to position t
        let y1 = p.forward(&cfg, &x, &p.initial_state(1)?, steps)?.y;
        let y2 = p.forward(&cfg, &x2, &p.initial_state(1)?, steps)?.y;
        assert_close(&y1.narrow(1, 0, t + 1)?, &y2.narrow(1, 0, t + 1)?, 0.0, 0.0)?;
        let later = max_abs_diff(
            &y1.narrow(1, t + 1, 12 - t - 1)?,
            &y2.narrow(1, t + 1, 12 - t - 1)?,
        )?;
        assert!(
            later > 1e-6,
            "{window:?} {causal_k} {steps}: later positions must see the change"
        );
    }
    Ok(())
}

#[test]
fn ragged_chunks_are_padded_without_effect() -> Result<()> {
    let cfg = tiny(ConvWindow::Shifted, 0);
    let p = params(&cfg, 8, DType::F64)?;
    let x = randn(&[2, 8, 16], 9, 1.0, DType::F64)?;
    let full = p.forward(&cfg, &x, &p.initial_state(2)?, 1)?;
    for t in [1, 5, 7] {
        let part = p.forward(&cfg, &x.narrow(1, 0, t)?, &p.initial_state(2)?, 1)?;
        assert_eq!(part.y.dims(), &[2, t, 16]);
        assert_close(&part.y, &full.y.narrow(1, 0, t)?, 0.0, 0.0)?;
        assert_eq!(part.stats.step_0.dims(), &[t.div_ceil(4)]);
    }
    // The state after 5 tokens equals the state after the first mini-batch followed by a chunk
    // of the one remaining token: padding never entered an update.
    let first = p.forward(&cfg, &x.narrow(1, 0, 4)?, &p.initial_state(2)?, 1)?;
    let five = p.forward(&cfg, &x.narrow(1, 0, 5)?, &p.initial_state(2)?, 1)?;
    assert!(max_abs_diff(&five.state.w[0], &first.state.w[0])? > 0.0);
    Ok(())
}

#[test]
fn stream_mode_carries_the_state() -> Result<()> {
    let cfg = tiny(ConvWindow::Shifted, 0);
    let p = params(&cfg, 10, DType::F64)?;
    let x = randn(&[1, 8, 16], 11, 1.0, DType::F64)?;
    let a = p.forward(&cfg, &x, &p.initial_state(1)?, 1)?;
    let b = p.forward(&cfg, &x, &a.state, 1)?;
    // The second chunk starts from the first chunk's weights: its `init` statistic is the loss
    // under those weights, not under the learned initial ones.
    assert!(max_abs_diff(&b.stats.init, &a.stats.init)? > 1e-6);
    assert_close(
        &b.stats.init.narrow(0, 0, 1)?,
        &b.stats.step_0.narrow(0, 0, 1)?,
        0.0,
        0.0,
    )
}

#[test]
fn bad_input_is_an_error() -> Result<()> {
    let cfg = tiny(ConvWindow::Shifted, 0);
    let p = params(&cfg, 12, DType::F32)?;
    let empty = Tensor::zeros((1, 0, 16), DType::F32, &Device::Cpu)?;
    let err = p
        .forward(&cfg, &empty, &p.initial_state(1)?, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty chunk"), "{err}");
    let x = randn(&[2, 4, 16], 13, 1.0, DType::F32)?;
    let err = p
        .forward(&cfg, &x, &p.initial_state(3)?, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("state has weights [[3, 2, 8, 8]]"), "{err}");
    let err = p
        .forward(&cfg, &x, &p.initial_state(2)?, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("k = 0 is the SKIP path"), "{err}");
    // A learning rate so large that the inner loop overflows is detected and named.
    let mut hot = params(&cfg, 12, DType::F32)?;
    hot.token_idx = Tensor::full(f32::MAX, 4, &Device::Cpu)?;
    let err = hot
        .forward(&cfg, &x, &hot.initial_state(2)?, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("ttt_loss_step_1 is") && err.contains("at mini-batch 0"),
        "{err}"
    );
    // Clipping the inner gradient to a tiny norm all but freezes the fast weights.
    let p64 = params(&cfg, 14, DType::F64)?;
    let x64 = randn(&[2, 8, 16], 15, 1.0, DType::F64)?;
    let start = p64.initial_state(2)?;
    let free = p64.forward(&cfg, &x64, &start, 1)?;
    assert!(max_abs_diff(&free.state.w[0], &start.w[0])? > 1e-3);
    let clipped = TttConfig {
        max_grad_norm: Some(1e-12),
        ..cfg.clone()
    };
    let held = p64.forward(&clipped, &x64, &start, 1)?;
    assert!(max_abs_diff(&held.state.w[0], &start.w[0])? < 1e-10);
    Ok(())
}

#[test]
fn signal_equals_the_forward_statistics() -> Result<()> {
    let cfg = tiny(ConvWindow::Shifted, 0);
    let p = params(&cfg, 16, DType::F64)?;
    let x = randn(&[2, 11, 16], 17, 1.0, DType::F64)?;
    for steps in [1, 2] {
        let full = p.forward(&cfg, &x, &p.initial_state(2)?, steps)?.stats;
        let sig = p.signal(&cfg, &x, &p.initial_state(2)?, steps)?;
        assert_close(&sig.init, &full.init, 0.0, 0.0)?;
        assert_close(&sig.step_0, &full.step_0, 0.0, 0.0)?;
        assert_close(&sig.step_1, &full.step_1, 0.0, 0.0)?;
    }
    Ok(())
}
