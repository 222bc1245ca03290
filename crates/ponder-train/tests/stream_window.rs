//! The stream-mode training objective on a tiny f64 model: its gradient, taken through the
//! state carried from chunk to chunk of a window, matches central finite differences of the
//! window's loss, and the path through the carried state matters (cutting it there gives a
//! different gradient).

mod common;

use candle::{DType, Device, Tensor};
use common::t;
use ponder_gpt2::{Gpt2Config, LoadOptions};
use ponder_model::{FastLayer, FastNorm, PonderLm, TttConfig, TttParams};
use ponder_train::fast::objective;

const SSL: f64 = 0.1;

fn randn(shape: &[usize], seed: u64, std: f64) -> candle::Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "stream-window-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

/// A tiny random model in f64 with live output and initial fast weights.
fn lm() -> candle::Result<PonderLm> {
    let config = Gpt2Config {
        vocab_size: 50,
        n_positions: 16,
        n_embd: 16,
        n_head: 2,
        initializer_range: 0.2,
        ..Gpt2Config::tiny()
    };
    let options = LoadOptions {
        dtype: DType::F64,
        device: Device::Cpu,
        pad_token: None,
    };
    let backbone = ponder_gpt2::random(config, 4, &options)?;
    let ttt = TttConfig {
        head_dim: 8,
        mini_batch_size: 4,
        ..TttConfig::for_gpt2(16, 2)
    };
    let mut params = TttParams::init(
        &ttt,
        ponder_model::FastModelKind::Linear,
        5,
        DType::F64,
        &Device::Cpu,
    )?;
    params.wo = randn(params.wo.dims(), 6, 0.3)?;
    let fast = FastLayer::Ttt {
        config: ttt,
        params,
    };
    PonderLm::new(
        &backbone,
        FastNorm::init(16, DType::F64, &Device::Cpu)?,
        fast,
    )
}

/// Two windows of three 8-token chunks: their ids and hidden states, chunk by chunk.
fn window(lm: &PonderLm) -> candle::Result<(Vec<Tensor>, Vec<Tensor>)> {
    let (mut hidden, mut ids) = (Vec::new(), Vec::new());
    for c in 0..3u32 {
        let v: Vec<u32> = (0..16u32).map(|i| (i * 7 + c * 13 + i / 3) % 50).collect();
        let x = Tensor::from_vec(v, (2, 8), &Device::Cpu)?;
        hidden.push(lm.backbone(&x)?);
        ids.push(x);
    }
    Ok((hidden, ids))
}

/// The window's loss with the fast layer's tensor `name` replaced by `value`.
fn loss_with(lm: &PonderLm, name: &str, value: &Tensor) -> candle::Result<f64> {
    let fast = lm.fast_layer().with_tensors(|k| {
        Ok(if k == name {
            value.clone()
        } else {
            lm.fast_layer()
                .named()
                .into_iter()
                .find(|(n, _)| n == k)
                .expect("a known name")
                .1
        })
    })?;
    let lm = PonderLm::new(lm.backbone_model(), lm.fast_norm().clone(), fast)?;
    let (hidden, ids) = window(&lm)?;
    t(objective(&lm, &hidden, &ids, SSL))?
        .loss
        .to_scalar::<f64>()
}

#[test]
fn the_window_gradient_matches_finite_differences() -> candle::Result<()> {
    let base = lm()?;
    let (trainable, vars) = base.clone().into_trainable()?;
    let (hidden, ids) = window(&trainable)?;
    let obj = t(objective(&trainable, &hidden, &ids, SSL))?;
    let grads = obj.loss.backward()?;
    for name in ["fast_layer.wq", "fast_layer.W0", "fast_layer.wo"] {
        let Some((_, var)) = vars.iter().find(|(k, _)| k == name) else {
            let known: Vec<&String> = vars.iter().map(|(k, _)| k).collect();
            panic!("no var {name}; vars: {known:?}");
        };
        let g = grads.get(var.as_tensor()).expect("a gradient");
        let dir = randn(var.dims(), 9, 1.0)?;
        let analytic = (g * &dir)?.sum_all()?.to_scalar::<f64>()?;
        let key = name.trim_start_matches("fast_layer.");
        let value = var.as_tensor();
        // The direction is large beside W0's scale, so the step is small: the central
        // difference's error falls as eps² (3·10⁻⁴ relative at 10⁻⁴ on W0, 3·10⁻⁸ at 10⁻⁶).
        let eps = 1e-6;
        let plus = loss_with(&base, key, &(value + (&dir * eps)?)?)?;
        let minus = loss_with(&base, key, &(value - (&dir * eps)?)?)?;
        let numeric = (plus - minus) / (2.0 * eps);
        let rel = (analytic - numeric).abs() / numeric.abs().max(1e-8);
        assert!(
            rel < 1e-6,
            "{name}: autograd {analytic}, finite differences {numeric} (relative {rel})"
        );
    }
    Ok(())
}

#[test]
fn the_carried_state_carries_gradient() -> candle::Result<()> {
    let (lm, vars) = lm()?.into_trainable()?;
    let (hidden, ids) = window(&lm)?;
    let whole = t(objective(&lm, &hidden, &ids, SSL))?.loss.backward()?;
    // The same window with the state detached between chunks: each chunk's loss alone.
    let mut state = lm.initial_state(2)?;
    let mut total: Option<Tensor> = None;
    for (h, x) in hidden.iter().zip(&ids) {
        let one = t(objective_from(&lm, h, x, &state))?;
        total = Some(match total {
            None => one.0,
            Some(s) => (s + one.0)?,
        });
        state = one.1.detach();
    }
    let cut = (total.expect("three chunks") / 3.0)?.backward()?;
    let w0 = &vars
        .iter()
        .find(|(k, _)| k == "fast_layer.W0")
        .expect("W0")
        .1;
    let diff = (whole.get(w0.as_tensor()).expect("grad") - cut.get(w0.as_tensor()).expect("grad"))?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
    assert!(
        diff > 1e-6,
        "cutting the carried state changed nothing: {diff}"
    );
    Ok(())
}

/// One chunk's objective term from `state`, and the state after it.
fn objective_from(
    lm: &PonderLm,
    hidden: &Tensor,
    ids: &Tensor,
    state: &ponder_model::FastState,
) -> ponder_train::Result<(Tensor, ponder_model::FastState)> {
    let up = lm.update(hidden, ids, state, 1)?;
    let ce = lm.next_token_loss(&up.features, ids)?.mean_all()?;
    let s = &up.stats;
    let aux = (((s.init.mean_all()? + s.step_0.mean_all()?)? + s.step_1.mean_all()?)? / 3.0)?;
    Ok(((ce + (aux * SSL)?)?, up.state))
}
