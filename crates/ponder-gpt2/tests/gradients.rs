//! Training-path check: every parameter of the backbone receives a gradient, and the gradients
//! match central finite differences on a tiny config in f64.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor, Var};
use ponder_gpt2::{weights, Gpt2, Gpt2Config};

fn config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 24,
        n_positions: 12,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        initializer_range: 0.3,
        ..Gpt2Config::tiny()
    }
}

fn loss(model: &Gpt2, ids: &Tensor) -> Result<Tensor> {
    model.token_nll(ids)?.mean_all()
}

#[test]
fn every_parameter_gets_the_finite_difference_gradient() -> Result<()> {
    let config = config();
    let mut w = weights::random(&config, 7, DType::F64, &Device::Cpu)?;
    // Move LayerNorm and biases off their trivial initial values so every term shows.
    for (name, t) in w.iter_mut() {
        if name.ends_with("bias") || name.contains("ln_") {
            let mut rng = ponder_nn::init::rng_for(11, name);
            let noise =
                ponder_nn::init::normal(t.shape(), 0.2, &mut rng, DType::F64, &Device::Cpu)?;
            *t = (t.clone() + noise)?;
        }
    }
    let vars: BTreeMap<String, Var> = w
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let as_weights = |vars: &BTreeMap<String, Var>| -> weights::Weights {
        vars.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    };
    let model = Gpt2::from_weights(config.clone(), as_weights(&vars), None)?;
    let ids = Tensor::new(
        &[
            [3u32, 17, 5, 9, 9, 22, 0, 14, 1, 2],
            [8, 8, 1, 23, 6, 4, 12, 19, 7, 5],
        ],
        &Device::Cpu,
    )?;
    let grads = loss(&model, &ids)?.backward()?;

    let h = 1e-5;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("parameter {name} received no gradient"));
        let g = g.flatten_all()?.to_vec1::<f64>()?;
        assert!(
            g.iter().any(|&v| v != 0.0),
            "parameter {name} has an all-zero gradient"
        );
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let n = base.len();
        for idx in [0, n / 2, n - 1] {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[idx] += delta;
                let mut w2 = as_weights(&vars);
                w2.insert(
                    name.clone(),
                    Tensor::from_vec(v, var.as_tensor().shape(), &Device::Cpu)?,
                );
                loss(&Gpt2::from_weights(config.clone(), w2, None)?, &ids)?.to_scalar::<f64>()
            };
            let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
            assert!(
                (fd - g[idx]).abs() < 1e-6 + 1e-4 * fd.abs(),
                "{name}[{idx}]: finite difference {fd:e} vs autograd {:e}",
                g[idx]
            );
        }
    }
    Ok(())
}
