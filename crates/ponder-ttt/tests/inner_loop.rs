//! The dual form against the naive sequential form of the inner loop (upstream-spec §2.5), and
//! the closed-form inner gradient against Candle autograd, in f64 on random inputs.

use candle::{DType, Device, IndexOp, Result, Tensor, Var, D};
use ponder_nn::assert_close;
use ponder_ttt::inner::{inner_loop, ln_and_grad, ln_parts, InnerInputs, InnerOptions};

fn randn(shape: &[usize], seed: u64, std: f64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "inner-loop-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

struct Case {
    q: Tensor,
    k: Tensor,
    target: Tensor,
    eta: Tensor,
    w0: Tensor,
    c0: Tensor,
    gamma: Tensor,
    beta: Tensor,
}

fn case(n: usize, m: usize, b: usize, hd: usize, seed: u64) -> Result<Case> {
    Ok(Case {
        q: randn(&[n, m, b, hd], seed, 1.0)?,
        k: randn(&[n, m, b, hd], seed + 1, 1.0)?,
        target: randn(&[n, m, b, hd], seed + 2, 1.0)?,
        eta: randn(&[n, m, b], seed + 3, 1.0)?.abs()?.affine(0.05, 0.0)?,
        w0: randn(&[n, hd, hd], seed + 4, 0.3)?,
        c0: randn(&[n, 1, hd], seed + 5, 0.3)?,
        gamma: randn(&[n, 1, hd], seed + 6, 0.2)?.affine(1.0, 1.0)?,
        beta: randn(&[n, 1, hd], seed + 7, 0.2)?,
    })
}

/// Token by token: every output uses the weights after the gradients of keys `j <= i + causal_k`
/// (all taken at the mini-batch's starting weights); the next mini-batch starts after all keys.
fn naive(cs: &Case, causal_k: i64, eps: f64) -> Result<Tensor> {
    let (n, m, b, _) = cs.q.dims4()?;
    let mut per_seq = Vec::new();
    for s in 0..n {
        let gamma = cs.gamma.i(s)?.unsqueeze(0)?; // (1, 1, hd)
        let beta = cs.beta.i(s)?.unsqueeze(0)?;
        let (mut w, mut c) = (cs.w0.i(s)?, cs.c0.i(s)?); // (hd, hd), (1, hd)
        let mut outs = Vec::new();
        for mi in 0..m {
            let (q, k, y) = (cs.q.i((s, mi))?, cs.k.i((s, mi))?, cs.target.i((s, mi))?); // (b, hd)
            let eta = cs.eta.i((s, mi))?.to_vec1::<f64>()?;
            let z = k.matmul(&w)?.broadcast_add(&c)?.unsqueeze(0)?; // (1, b, hd)
            let (_, g) = ln_and_grad(&z, &y.unsqueeze(0)?, &gamma, &beta, eps)?;
            let g = g.squeeze(0)?; // (b, hd)
            for i in 0..b {
                let (mut wi, mut ci) = (w.clone(), c.clone());
                for (j, &e) in eta.iter().enumerate() {
                    if (j as i64) <= i as i64 + causal_k {
                        let (kj, gj) = (k.i(j..j + 1)?, g.i(j..j + 1)?); // (1, hd)
                        wi = (wi - (kj.t()?.matmul(&gj)? * e)?)?;
                        ci = (ci - (gj * e)?)?;
                    }
                }
                let qi = q.i(i..i + 1)?; // (1, hd)
                let zi = qi.matmul(&wi)?.broadcast_add(&ci)?.unsqueeze(0)?;
                let (ln, _, _) = ln_parts(&zi, &gamma, &beta, eps)?;
                outs.push((qi + ln.squeeze(0)?)?);
            }
            for (j, &e) in eta.iter().enumerate() {
                let (kj, gj) = (k.i(j..j + 1)?, g.i(j..j + 1)?);
                w = (w - (kj.t()?.matmul(&gj)? * e)?)?;
                c = (c - (gj * e)?)?;
            }
        }
        per_seq.push(Tensor::cat(&outs, 0)?.reshape((m, b, ()))?);
    }
    Tensor::stack(&per_seq, 0)
}

#[test]
fn dual_form_equals_the_naive_form() -> Result<()> {
    for (n, m, b, hd, seed) in [(2, 3, 16, 8, 1), (3, 2, 4, 16, 2), (1, 4, 8, 4, 3)] {
        let cs = case(n, m, b, hd, seed)?;
        for causal_k in [0, -1] {
            let eta_out = cs
                .eta
                .unsqueeze(2)?
                .broadcast_as((n, m, b, b))?
                .contiguous()?;
            let dual = inner_loop(
                &InnerInputs {
                    q: &cs.q,
                    k: &cs.k,
                    target: &cs.target,
                    eta_out: &eta_out,
                    eta_update: &cs.eta,
                    w0: &cs.w0,
                    c0: &cs.c0,
                    gamma: &cs.gamma,
                    beta: &cs.beta,
                },
                &InnerOptions {
                    steps: 1,
                    causal_k,
                    eps: 1e-5,
                    max_grad_norm: None,
                    last_valid: b,
                },
            )?;
            assert_close(&dual.out, &naive(&cs, causal_k, 1e-5)?, 1e-10, 1e-10).map_err(|e| {
                candle::Error::Msg(format!(
                    "n {n} m {m} b {b} hd {hd} causal_k {causal_k}: {e}"
                ))
            })?;
        }
    }
    Ok(())
}

#[test]
fn closed_form_inner_gradient_equals_autograd() -> Result<()> {
    let (n, b, hd) = (3, 5, 12);
    let z = Var::from_tensor(&randn(&[n, b, hd], 20, 1.5)?)?;
    let target = randn(&[n, b, hd], 21, 1.0)?;
    let gamma = randn(&[n, 1, hd], 22, 0.3)?.affine(1.0, 1.0)?;
    let beta = randn(&[n, 1, hd], 23, 0.3)?;
    let eps = 1e-5;
    // ½‖LN(z) − target‖² from primitive ops, differentiated by Candle.
    let mu = z.mean_keepdim(D::Minus1)?;
    let centered = z.broadcast_sub(&mu)?;
    let std = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    let ln = centered
        .broadcast_div(&std)?
        .broadcast_mul(&gamma)?
        .broadcast_add(&beta)?;
    let loss = ((ln - &target)?.sqr()?.sum_all()? * 0.5)?;
    let autograd = loss
        .backward()?
        .get(z.as_tensor())
        .cloned()
        .expect("z has a gradient");
    let (_, closed) = ln_and_grad(z.as_tensor(), &target, &gamma, &beta, eps)?;
    assert_close(&closed, &autograd, 1e-12, 1e-10)
}
