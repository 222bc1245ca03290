//! The outer loss back-propagates through the inner loop: the gradient with respect to every slow
//! weight (and a `fast_norm` in front of the layer) matches central finite differences in f64.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor, Var};
use ponder_ttt::{FastModelKind, TttConfig, TttParams};

fn cfg() -> TttConfig {
    TttConfig {
        hidden_dim: 16,
        num_heads: 2,
        head_dim: 8,
        mini_batch_size: 4,
        ..TttConfig::for_gpt2(16, 2)
    }
}

fn randn(shape: &[usize], seed: u64, std: f64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "gradient-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

/// Every parameter moved away from its initial value, so every term of the layer shows.
fn weights() -> Result<BTreeMap<String, Tensor>> {
    let p = TttParams::init(&cfg(), FastModelKind::Linear, 1, DType::F64, &Device::Cpu)?;
    let mut out = BTreeMap::new();
    for (i, (name, t)) in p.named().into_iter().enumerate() {
        let noise = randn(t.dims(), 100 + i as u64, 0.1)?;
        out.insert(name.to_string(), (t + noise)?);
    }
    out.insert("fast_norm.weight".into(), (randn(&[16], 200, 0.1)? + 1.0)?);
    out.insert("fast_norm.bias".into(), randn(&[16], 201, 0.1)?);
    Ok(out)
}

/// `Σ r ⊙ y + 0.1 · mean(init, step_0, step_1)` over two mini-batches, through `fast_norm`.
fn loss(w: &BTreeMap<String, Tensor>, x: &Tensor, r: &Tensor, steps: usize) -> Result<Tensor> {
    let c = cfg();
    let p = TttParams::from_named(&c, FastModelKind::Linear, |name, _| Ok(w[name].clone()))?;
    let h = ponder_nn::layer_norm(x, &w["fast_norm.weight"], &w["fast_norm.bias"], 1e-5)?;
    let out = p.forward(&c, &h, &p.initial_state(2)?, steps)?;
    let s = &out.stats;
    let aux = ((s.init.mean_all()? + s.step_0.mean_all()?)? + s.step_1.mean_all()?)?;
    (out.y * r)?.sum_all()? + (aux * (0.1 / 3.0))?
}

fn check(steps: usize) -> Result<()> {
    let base = weights()?;
    let x = randn(&[2, 8, 16], 300, 1.0)?;
    let r = randn(&[2, 8, 16], 301, 1.0)?;
    let vars: BTreeMap<String, Var> = base
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let tracked: BTreeMap<String, Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let grads = loss(&tracked, &x, &r, steps)?.backward()?;
    let h = 1e-6;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let g = g.flatten_all()?.to_vec1::<f64>()?;
        assert!(g.iter().any(|&v| v != 0.0), "{name}: all-zero gradient");
        let flat = base[name].flatten_all()?.to_vec1::<f64>()?;
        let n = flat.len();
        for idx in [0, n / 2, n - 1] {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = flat.clone();
                v[idx] += delta;
                let mut w = base.clone();
                w.insert(
                    name.clone(),
                    Tensor::from_vec(v, base[name].shape(), &Device::Cpu)?,
                );
                loss(&w, &x, &r, steps)?.to_scalar::<f64>()
            };
            let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
            assert!(
                (fd - g[idx]).abs() <= 1e-6 + 1e-5 * fd.abs(),
                "k {steps} {name}[{idx}]: finite difference {fd:e} vs autograd {:e}",
                g[idx]
            );
        }
    }
    Ok(())
}

#[test]
fn gradients_through_the_dual_form_match_finite_differences() -> Result<()> {
    check(1)
}

#[test]
fn gradients_through_update_k_match_finite_differences() -> Result<()> {
    check(2)
}
