//! Gradients of the LoRA factors, in f64: Candle autograd against central finite differences for
//! `LoraLinear` and `LoraFastLayer` (whose path runs through the fused causal softmax), every
//! trainable factor receiving a gradient, and one outside optimizer step being seen by the layer.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor, Var};
use candle_nn::{Linear, Optimizer, SGD};
use ponder_lora::{Init, LoraFactors, LoraFastConfig, LoraFastLayer, LoraLinear};
use ponder_nn::assert_close;

fn randn(shape: &[usize], seed: u64, std: f64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "gradients-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

/// Central differences of `loss` at `params[name]`, element by element, with the other entries
/// of `params` fixed.
fn finite_diff(
    params: &BTreeMap<String, Tensor>,
    name: &str,
    loss: &dyn Fn(&BTreeMap<String, Tensor>) -> Result<f64>,
) -> Result<Tensor> {
    let eps = 1e-6;
    let p = &params[name];
    let values = p.flatten_all()?.to_vec1::<f64>()?;
    let mut grad = Vec::with_capacity(values.len());
    for i in 0..values.len() {
        let at = |delta: f64| -> Result<f64> {
            let mut v = values.clone();
            v[i] += delta;
            let mut moved = params.clone();
            moved.insert(name.to_string(), Tensor::from_vec(v, p.dims(), p.device())?);
            loss(&moved)
        };
        grad.push((at(eps)? - at(-eps)?) / (2.0 * eps));
    }
    Tensor::from_vec(grad, p.dims(), p.device())
}

/// Autograd gradients of `loss_tensor` at every entry of `params`, through `Var`s.
fn autograd(
    params: &BTreeMap<String, Tensor>,
    loss_tensor: &dyn Fn(&BTreeMap<String, Tensor>) -> Result<Tensor>,
) -> Result<BTreeMap<String, Tensor>> {
    let vars: BTreeMap<String, Var> = params
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let grads = loss_tensor(&tensors)?.backward()?;
    vars.iter()
        .map(|(k, v)| match grads.get(v) {
            Some(g) => Ok((k.clone(), g.clone())),
            None => candle::bail!("no gradient reached `{k}`"),
        })
        .collect()
}

#[test]
fn lora_linear_gradients_match_finite_differences() -> Result<()> {
    let (in_dim, out_dim, r, scale) = (5, 4, 3, 1.5);
    let w = randn(&[out_dim, in_dim], 1, 1.0)?;
    let bias = randn(&[out_dim], 2, 1.0)?;
    let x = randn(&[2, 3, in_dim], 3, 1.0)?;
    let weights = randn(&[2, 3, out_dim], 4, 1.0)?;
    let params: BTreeMap<String, Tensor> = [
        ("A".to_string(), randn(&[r, in_dim], 5, 0.5)?),
        ("B".to_string(), randn(&[out_dim, r], 6, 0.5)?),
    ]
    .into_iter()
    .collect();
    let loss = |p: &BTreeMap<String, Tensor>| -> Result<Tensor> {
        let factors = LoraFactors::new(p["A"].clone(), p["B"].clone(), scale)?;
        let layer = LoraLinear::new(Linear::new(w.clone(), Some(bias.clone())), factors)?;
        // A non-linear scalar loss, so that the gradient depends on the point.
        (layer.forward(&x)?.tanh()? * &weights)?.sum_all()
    };
    let grads = autograd(&params, &loss)?;
    for name in ["A", "B"] {
        let numeric = finite_diff(&params, name, &|p| loss(p)?.to_scalar::<f64>())?;
        assert_close(&grads[name], &numeric, 1e-8, 1e-6)?;
    }
    Ok(())
}

#[test]
fn fast_layer_gradients_match_finite_differences() -> Result<()> {
    let config = LoraFastConfig {
        hidden_dim: 6,
        r: 2,
        lora_alpha: 4.0,
        lora_dropout: 0.0,
        update: ponder_lora::LoraUpdate {
            lr: 0.1,
            block_size: 4,
            max_grad_norm: None,
        },
    };
    let h = randn(&[2, 5, 6], 1, 1.0)?;
    let weights = randn(&[2, 5, 6], 2, 1.0)?;
    let fresh = LoraFastLayer::new(
        config.clone(),
        Init::Normal { std: 0.5 },
        3,
        DType::F64,
        &Device::Cpu,
    )?;
    // Nonzero B, so that A gets a gradient too.
    let mut params = fresh.trainable();
    for (i, (name, t)) in params.iter_mut().enumerate() {
        if name.ends_with("lora_B.weight") {
            *t = randn(t.dims(), 10 + i as u64, 0.5)?;
        }
    }
    let loss = |p: &BTreeMap<String, Tensor>| -> Result<Tensor> {
        let layer = LoraFastLayer::from_trainable(config.clone(), p)?;
        (layer.forward(&h)? * &weights)?.sum_all()
    };
    let grads = autograd(&params, &loss)?;
    for name in params.keys() {
        let numeric = finite_diff(&params, name, &|p| loss(p)?.to_scalar::<f64>())?;
        assert_close(&grads[name], &numeric, 1e-8, 1e-6)
            .map_err(|e| candle::Error::Msg(format!("{name}: {e}")))?;
        let norm = grads[name].sqr()?.sum_all()?.to_scalar::<f64>()?;
        assert!(norm > 1e-6, "{name} got a zero gradient");
    }
    Ok(())
}

/// At initialization `B = 0`, so only `B` gets a gradient (as in every LoRA); one SGD step on the
/// caller's vars moves the layer's output, since the layer reads the vars' storage.
#[test]
fn outside_optimizer_trains_the_fast_layer() -> Result<()> {
    let dev = Device::Cpu;
    let config = LoraFastConfig::original(
        8,
        4,
        ponder_lora::LoraUpdate {
            lr: 0.1,
            block_size: 4,
            max_grad_norm: None,
        },
    );
    let fresh = LoraFastLayer::new(config.clone(), Init::ORIGINAL, 0, DType::F64, &dev)?;
    let vars: BTreeMap<String, Var> = fresh
        .trainable()
        .into_iter()
        .map(|(k, t)| Ok((k, Var::from_tensor(&t)?)))
        .collect::<Result<_>>()?;
    let tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let layer = LoraFastLayer::from_trainable(config, &tensors)?;
    let h = randn(&[1, 6, 8], 1, 1.0)?;
    let target = randn(&[1, 6, 8], 2, 1.0)?;
    let loss = |layer: &LoraFastLayer| (layer.forward(&h)? - &target)?.sqr()?.mean_all();

    let before = loss(&layer)?;
    let grads = before.backward()?;
    for (name, var) in &vars {
        let norm = grads
            .get(var)
            .map(|g| g.abs()?.sum_all()?.to_scalar::<f64>())
            .transpose()?
            .unwrap_or(0.0);
        let expect_grad = name.ends_with("lora_B.weight");
        assert_eq!(norm > 0.0, expect_grad, "{name}: gradient norm {norm}");
    }
    let mut sgd = SGD::new(vars.values().cloned().collect(), 0.5)?;
    sgd.step(&grads)?;
    let after = loss(&layer)?.to_scalar::<f64>()?;
    assert!(
        after < before.to_scalar::<f64>()?,
        "one SGD step did not lower the loss"
    );
    Ok(())
}
