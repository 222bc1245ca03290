//! Training correctness on a fixed batch: AdamW on the backbone drives the loss down step after
//! step (the overfitting check), and clipping bounds the update.

use candle::{DType, Device, Tensor, Var};
use ponder_gpt2::{weights, Gpt2, Gpt2Config};
use ponder_nn::optim::{clip_grad_norm, AdamW, AdamWConfig};

#[test]
fn a_fixed_batch_is_overfit_monotonically() -> candle::Result<()> {
    let config = Gpt2Config {
        vocab_size: 50,
        n_positions: 32,
        n_embd: 32,
        n_head: 2,
        ..Gpt2Config::tiny()
    };
    let init = weights::random(&config, 3, DType::F32, &Device::Cpu)?;
    let vars: Vec<(String, Var)> = init
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<candle::Result<_>>()?;
    let model = Gpt2::from_weights(
        config,
        vars.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect(),
        None,
    )?;
    let ids: Vec<u32> = (0..4 * 17)
        .map(|i| ((i * 11 + i / 5) % 50) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (4, 17), &Device::Cpu)?;
    let cfg = AdamWConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = AdamW::new(vars.clone(), cfg)?;
    let mut losses = Vec::new();
    for _ in 0..40 {
        let loss = model.token_nll(&ids)?.mean_all()?;
        let mut grads = loss.backward()?;
        clip_grad_norm(&mut grads, &vars, 1.0)?;
        opt.step(&grads, 3e-3)?;
        losses.push(loss.to_scalar::<f32>()?);
    }
    for w in losses.windows(2) {
        assert!(w[1] < w[0], "the loss must fall at every step: {losses:?}");
    }
    assert!(losses[39] < 0.5 * losses[0], "{losses:?}");
    Ok(())
}
