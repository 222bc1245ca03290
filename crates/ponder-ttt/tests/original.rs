//! Golden test: TTT-Linear equals the original PonderTTT layer (JAX/Flax, upstream HEAD d77657d)
//! on `tests/fixtures/ttt_linear_original_small.safetensors`, committed in this crate: every
//! parameter random, hidden 128, 2 heads, 64 tokens, with the layer's configuration in the file's
//! safetensors metadata.

use std::collections::HashMap;
use std::path::Path;

use candle::{Device, Result, Tensor};
use ponder_ttt::{TttConfig, TttParams};

fn fixture() -> Result<HashMap<String, Tensor>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ttt_linear_original_small.safetensors");
    candle::safetensors::load(p, &Device::Cpu)
}

fn params(f: &HashMap<String, Tensor>) -> Result<TttParams> {
    let get = |k: &str| -> Result<Tensor> {
        f.get(k)
            .cloned()
            .ok_or_else(|| candle::Error::Msg(format!("fixture lacks {k}")))
    };
    let conv = |name: &str| -> Result<(Tensor, Tensor)> {
        Ok((
            get(&format!("param.{name}.kernel"))?.squeeze(1)?,
            get(&format!("param.{name}.bias"))?,
        ))
    };
    let gate_w = Tensor::cat(
        &[
            get("param.learnable_ttt_lr_layers.0.kernel")?,
            get("param.learnable_ttt_lr_layers.1.kernel")?,
        ],
        1,
    )?; // (d, nh)
    let gate_b = Tensor::cat(
        &[
            get("param.learnable_ttt_lr_layers.0.bias")?,
            get("param.learnable_ttt_lr_layers.1.bias")?,
        ],
        0,
    )?; // (nh)
    Ok(TttParams {
        wq: get("param.wq.kernel")?,
        wv: get("param.wv.kernel")?,
        wg: get("param.wg.kernel")?,
        wo: get("param.wo.kernel")?,
        conv_q: conv("conv_q")?,
        conv_k: conv("conv_k")?,
        eta_gate: (gate_w, gate_b),
        token_idx: get("param.learnable_token_idx")?,
        ttt_norm: (get("param.ttt_norm.scale")?, get("param.ttt_norm.bias")?),
        post_norm: (get("param.post_norm.scale")?, get("param.post_norm.bias")?),
        fast_init: ponder_ttt::FastModel {
            w: vec![get("param.W1")?],
            b: vec![get("param.b1")?],
        },
    })
}

/// `max |a − b| <= tol · max |b|`.
fn assert_rel(name: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<()> {
    let scale = b.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    let diff = ponder_nn::max_abs_diff(a, b)?;
    assert!(
        diff <= tol * scale,
        "{name}: max |diff| {diff:e} > {tol:e} × max |expected| {scale:e}"
    );
    Ok(())
}

#[test]
fn output_and_statistics_match_the_original() -> Result<()> {
    let f = fixture()?;
    let cfg = TttConfig {
        hidden_dim: 128,
        num_heads: 2,
        ..TttConfig::for_gpt2(128, 2)
    };
    assert_eq!(cfg.eta_decay_rate, 0.0);
    let p = params(&f)?;
    let out = p.forward(&cfg, &f["input.hidden_states"], &p.initial_state(2)?, 1)?;
    assert_rel("y", &out.y, &f["output.y"], 1e-5)?;
    assert_rel(
        "ttt_loss_init",
        &out.stats.init,
        &f["output.ttt_loss_init"],
        1e-5,
    )?;
    assert_rel(
        "ttt_loss_step_0",
        &out.stats.step_0,
        &f["output.ttt_loss_step_0"],
        1e-5,
    )?;
    assert_rel(
        "ssl_target_variance",
        out.stats.ssl_target_variance.as_ref().unwrap(),
        &f["output.ssl_target_variance"],
        1e-5,
    )?;
    assert_rel(
        "ttt_loss_step_1",
        &out.stats.step_1,
        &f["output.ttt_loss_step_1"],
        1e-5,
    )
}

#[test]
fn the_fixture_tells_the_conv_windows_apart() -> Result<()> {
    let f = fixture()?;
    let cfg = TttConfig {
        conv_window: ponder_ttt::ConvWindow::Causal,
        ..TttConfig::for_gpt2(128, 2)
    };
    let p = params(&f)?;
    let out = p.forward(&cfg, &f["input.hidden_states"], &p.initial_state(2)?, 1)?;
    let scale = f["output.y"].abs()?.max_all()?.to_scalar::<f32>()? as f64;
    let diff = ponder_nn::max_abs_diff(&out.y, &f["output.y"])?;
    assert!(
        diff > 1e-3 * scale,
        "the official causal window should not match the original: {diff:e}"
    );
    Ok(())
}
