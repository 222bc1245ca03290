//! TTT-MLP (`docs/original.md` §4.1): the inner loop against a token-by-token reference whose
//! inner gradients come from Candle autograd (independent of the closed-form backprop through the
//! fast MLP), and the layer's causality and outer gradients.

use candle::{DType, Device, IndexOp, Result, Tensor, Var, D};
use ponder_nn::{assert_close, max_abs_diff};
use ponder_ttt::inner::{inner_loop, FastModel, InnerInputs, InnerOptions};
use ponder_ttt::{FastModelKind, TttConfig, TttParams};

fn randn(shape: &[usize], seed: u64, std: f64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "mlp-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

/// `LN(f(x)) ` for one sequence and head, from primitive ops.
fn ln_f(x: &Tensor, p: &[Tensor], gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let h = ponder_nn::reference::gelu_tanh(&x.matmul(&p[0])?.broadcast_add(&p[1])?)?;
    let z = h.matmul(&p[2])?.broadcast_add(&p[3])?;
    ponder_nn::reference::layer_norm(&z, gamma, beta, 1e-5)
}

/// `p − ∇_p Σ_j w_j ½‖LN(f(k_j)) − y_j‖²`, the gradient from Candle autograd.
fn autograd_step(
    p: &[Tensor],
    k: &Tensor,
    y: &Tensor,
    w: &[f64],
    norm: (&Tensor, &Tensor),
) -> Result<Vec<Tensor>> {
    let vars: Vec<Var> = p
        .iter()
        .map(|t| Var::from_tensor(&t.detach()))
        .collect::<Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let per_key = (ln_f(k, &ts, norm.0, norm.1)? - y)?.sqr()?.sum(D::Minus1)?; // (b)
    let weights = Tensor::new(w, &Device::Cpu)?;
    let loss = ((per_key * weights)?.sum_all()? * 0.5)?;
    let grads = loss.backward()?;
    ts.iter()
        .map(|t| t - grads.get(t).expect("gradient"))
        .collect()
}

#[test]
fn mlp_inner_loop_equals_the_autograd_reference() -> Result<()> {
    let (n, m, b, hd) = (2, 2, 4, 4);
    let q = randn(&[n, m, b, hd], 1, 1.0)?;
    let k = randn(&[n, m, b, hd], 2, 1.0)?;
    let target = randn(&[n, m, b, hd], 3, 1.0)?;
    let eta = randn(&[n, m, b], 4, 1.0)?.abs()?.affine(0.1, 0.0)?;
    let eta_out = eta.unsqueeze(2)?.broadcast_as((n, m, b, b))?.contiguous()?;
    let init = FastModel {
        w: vec![
            randn(&[n, hd, 4 * hd], 5, 0.5)?,
            randn(&[n, 4 * hd, hd], 6, 0.5)?,
        ],
        b: vec![randn(&[n, 1, 4 * hd], 7, 0.2)?, randn(&[n, 1, hd], 8, 0.2)?],
    };
    let gamma = randn(&[n, 1, hd], 9, 0.2)?.affine(1.0, 1.0)?;
    let beta = randn(&[n, 1, hd], 10, 0.2)?;
    for causal_k in [0, -1] {
        for steps in [1, 2] {
            let got = inner_loop(
                &InnerInputs {
                    q: Some(&q),
                    k: &k,
                    target: &target,
                    eta_out: Some(&eta_out),
                    eta_update: &eta,
                    init: &init,
                    gamma: &gamma,
                    beta: &beta,
                },
                &InnerOptions {
                    steps,
                    causal_k,
                    eps: 1e-5,
                    max_grad_norm: None,
                    last_valid: b,
                    per_sequence: None,
                },
            )?;
            // Token by token, sequence by sequence.
            let mut want = Vec::new();
            for s in 0..n {
                let norm = (&gamma.i(s)?, &beta.i(s)?);
                let mut p: Vec<Tensor> = vec![
                    init.w[0].i(s)?,
                    init.b[0].i(s)?,
                    init.w[1].i(s)?,
                    init.b[1].i(s)?,
                ];
                for mi in 0..m {
                    let (qm, km, ym) = (q.i((s, mi))?, k.i((s, mi))?, target.i((s, mi))?);
                    let rates = eta.i((s, mi))?.to_vec1::<f64>()?;
                    for i in 0..b {
                        let visible: Vec<f64> = rates
                            .iter()
                            .enumerate()
                            .map(|(j, &r)| {
                                if (j as i64) <= i as i64 + causal_k {
                                    r
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        let mut pi = p.clone();
                        for _ in 0..steps {
                            pi = autograd_step(&pi, &km, &ym, &visible, norm)?;
                        }
                        let qi = qm.i(i..i + 1)?;
                        want.push((&qi + ln_f(&qi, &pi, norm.0, norm.1)?)?);
                    }
                    for _ in 0..steps {
                        p = autograd_step(&p, &km, &ym, &rates, norm)?;
                    }
                }
            }
            let want = Tensor::cat(&want, 0)?.reshape((n, m, b, hd))?;
            assert_close(got.out.as_ref().unwrap(), &want, 1e-9, 1e-9)
                .map_err(|e| candle::Error::Msg(format!("causal_k {causal_k} k {steps}: {e}")))?;
        }
    }
    Ok(())
}

fn mlp_cfg() -> TttConfig {
    TttConfig {
        hidden_dim: 16,
        num_heads: 2,
        head_dim: 8,
        mini_batch_size: 4,
        ..TttConfig::for_gpt2(16, 2)
    }
}

#[test]
fn mlp_layer_is_causal_and_counts_its_parameters() -> Result<()> {
    let cfg = mlp_cfg();
    let mut p = TttParams::init(&cfg, FastModelKind::Mlp, 1, DType::F64, &Device::Cpu)?;
    p.wo = randn(p.wo.dims(), 2, 0.3)?;
    let total: usize = p.named().iter().map(|(_, t)| t.elem_count()).sum();
    assert_eq!(total, cfg.n_params(FastModelKind::Mlp));
    assert_eq!(p.kind(), FastModelKind::Mlp);
    let names: Vec<&str> = p.named().iter().map(|(k, _)| *k).collect();
    assert!(names.ends_with(&["W1", "b1", "W2", "b2"]), "{names:?}");
    let x = randn(&[1, 12, 16], 3, 1.0)?;
    let mut x2 = x.to_vec3::<f64>()?;
    x2[0][9][0] += 1.0;
    let x2 = Tensor::new(x2, &Device::Cpu)?;
    for steps in [1, 2] {
        let a = p.forward(&cfg, &x, &p.initial_state(1)?, steps)?;
        let b = p.forward(&cfg, &x2, &p.initial_state(1)?, steps)?;
        assert_close(&a.y.narrow(1, 0, 9)?, &b.y.narrow(1, 0, 9)?, 0.0, 0.0)?;
        assert!(max_abs_diff(&a.y.narrow(1, 9, 3)?, &b.y.narrow(1, 9, 3)?)? > 1e-9);
        let sig = p.signal(&cfg, &x, &p.initial_state(1)?, steps)?;
        assert_close(&sig.step_1, &a.stats.step_1, 0.0, 0.0)?;
    }
    Ok(())
}

#[test]
fn mlp_outer_gradients_match_finite_differences() -> Result<()> {
    let cfg = mlp_cfg();
    let base = TttParams::init(&cfg, FastModelKind::Mlp, 4, DType::F64, &Device::Cpu)?;
    let named: Vec<(String, Tensor)> = base
        .named()
        .into_iter()
        .enumerate()
        .map(|(i, (k, t))| Ok((k.to_string(), (t + randn(t.dims(), 50 + i as u64, 0.1)?)?)))
        .collect::<Result<_>>()?;
    let x = randn(&[1, 8, 16], 60, 1.0)?;
    let r = randn(&[1, 8, 16], 61, 1.0)?;
    let loss = |w: &[(String, Tensor)]| -> Result<Tensor> {
        let p = TttParams::from_named(&cfg, FastModelKind::Mlp, |name, _| {
            Ok(w.iter().find(|(k, _)| k == name).unwrap().1.clone())
        })?;
        let out = p.forward(&cfg, &x, &p.initial_state(1)?, 1)?;
        (out.y * &r)?.sum_all()? + (out.stats.step_1.mean_all()? * 0.1)?
    };
    let vars: Vec<(String, Var)> = named
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let tracked: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let grads = loss(&tracked)?.backward()?;
    for (idx_param, (name, var)) in vars.iter().enumerate() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .flatten_all()?
            .to_vec1::<f64>()?;
        let flat = named[idx_param].1.flatten_all()?.to_vec1::<f64>()?;
        let idx = flat.len() / 2;
        let eval = |delta: f64| -> Result<f64> {
            let mut v = flat.clone();
            v[idx] += delta;
            let mut w = named.clone();
            w[idx_param].1 = Tensor::from_vec(v, named[idx_param].1.shape(), &Device::Cpu)?;
            loss(&w)?.to_scalar::<f64>()
        };
        let fd = (eval(1e-6)? - eval(-1e-6)?) / 2e-6;
        assert!(
            (fd - g[idx]).abs() <= 1e-6 + 1e-5 * fd.abs(),
            "{name}[{idx}]: fd {fd:e} vs autograd {:e}",
            g[idx]
        );
    }
    Ok(())
}
