//! The dual form against the naive sequential form of the inner loop (`docs/original.md` §3.7),
//! and the closed-form inner gradient against Candle autograd, in f64 on random inputs.

use candle::{DType, Device, IndexOp, Result, Tensor, Var, D};
use ponder_nn::assert_close;
use ponder_ttt::inner::{
    inner_loop, inner_loop_composed, ln_and_grad, ln_parts, FastModel, InnerInputs, InnerOptions,
    InnerOutputs,
};

/// The fused inner loop (where it serves these inputs) and the composition of Candle ops.
type Loop = fn(&InnerInputs<'_>, &InnerOptions) -> Result<InnerOutputs>;
const LOOPS: [(&str, Loop); 2] = [("fused", inner_loop), ("composed", inner_loop_composed)];

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

/// Token by token, with plain per-token loops: token `i` starts from the weights entering its
/// mini-batch and takes `steps` gradient steps on the keys `j <= i + causal_k`, each weighted by
/// `eta_out[i][j]`, with every gradient taken at token `i`'s current weights; the next
/// mini-batch starts after `steps` full steps weighted by `eta_update[j]`. With one step this is
/// the naive form of `docs/original.md` §3.7 (all gradients at the mini-batch's starting
/// weights).
fn naive(
    cs: &Case,
    eta_out: &Tensor,
    eta_update: &Tensor,
    causal_k: i64,
    steps: usize,
) -> Result<Tensor> {
    let eps = 1e-5;
    let (n, m, b, _) = cs.q.dims4()?;
    let mut per_seq = Vec::new();
    for s in 0..n {
        let gamma = cs.gamma.i(s)?.unsqueeze(0)?; // (1, 1, hd)
        let beta = cs.beta.i(s)?.unsqueeze(0)?;
        let grads_at = |k: &Tensor, y: &Tensor, w: &Tensor, c: &Tensor| -> Result<Tensor> {
            let z = k.matmul(w)?.broadcast_add(c)?.unsqueeze(0)?; // (1, b, hd)
            ln_and_grad(&z, &y.unsqueeze(0)?, &gamma, &beta, eps)?
                .1
                .squeeze(0) // (b, hd)
        };
        let (mut w, mut c) = (cs.w0.i(s)?, cs.c0.i(s)?); // (hd, hd), (1, hd)
        let mut outs = Vec::new();
        for mi in 0..m {
            let (q, k, y) = (cs.q.i((s, mi))?, cs.k.i((s, mi))?, cs.target.i((s, mi))?); // (b, hd)
            let rates = eta_out.i((s, mi))?.to_vec2::<f64>()?;
            for (i, row) in rates.iter().enumerate() {
                let (mut wi, mut ci) = (w.clone(), c.clone());
                for _ in 0..steps {
                    let g = grads_at(&k, &y, &wi, &ci)?;
                    for (j, &e) in row.iter().enumerate() {
                        if (j as i64) <= i as i64 + causal_k {
                            let (kj, gj) = (k.i(j..j + 1)?, g.i(j..j + 1)?); // (1, hd)
                            wi = (wi - (kj.t()?.matmul(&gj)? * e)?)?;
                            ci = (ci - (gj * e)?)?;
                        }
                    }
                }
                let qi = q.i(i..i + 1)?; // (1, hd)
                let zi = qi.matmul(&wi)?.broadcast_add(&ci)?.unsqueeze(0)?;
                let (ln, _, _) = ln_parts(&zi, &gamma, &beta, eps)?;
                outs.push((qi + ln.squeeze(0)?)?);
            }
            let update = eta_update.i((s, mi))?.to_vec1::<f64>()?;
            for _ in 0..steps {
                let g = grads_at(&k, &y, &w, &c)?;
                for (j, &e) in update.iter().enumerate() {
                    let (kj, gj) = (k.i(j..j + 1)?, g.i(j..j + 1)?);
                    w = (w - (kj.t()?.matmul(&gj)? * e)?)?;
                    c = (c - (gj * e)?)?;
                }
            }
        }
        per_seq.push(Tensor::cat(&outs, 0)?.reshape((m, b, ()))?);
    }
    Tensor::stack(&per_seq, 0)
}

fn run(
    inner: Loop,
    cs: &Case,
    eta_out: &Tensor,
    eta_update: &Tensor,
    causal_k: i64,
    steps: usize,
) -> Result<InnerOutputs> {
    let b = cs.q.dim(2)?;
    inner(
        &InnerInputs {
            q: Some(&cs.q),
            k: &cs.k,
            target: &cs.target,
            eta_out: Some(eta_out),
            eta_update,
            init: &FastModel {
                w: vec![cs.w0.clone()],
                b: vec![cs.c0.clone()],
            },
            gamma: &cs.gamma,
            beta: &cs.beta,
        },
        &InnerOptions {
            steps,
            causal_k,
            eps: 1e-5,
            max_grad_norm: None,
            last_valid: b,
            per_sequence: None,
        },
    )
}

#[test]
fn inner_loop_equals_the_naive_form() -> Result<()> {
    for (n, m, b, hd, seed) in [(2, 3, 16, 8, 1), (3, 2, 4, 16, 2), (1, 4, 8, 4, 3)] {
        let cs = case(n, m, b, hd, seed)?;
        // The original's per-key η, and an official-style matrix η_ij = τ_i σ_j.
        let per_key = cs
            .eta
            .unsqueeze(2)?
            .broadcast_as((n, m, b, b))?
            .contiguous()?;
        let tau = randn(&[b, 1], seed + 9, 1.0)?.abs()?;
        let matrix = cs.eta.unsqueeze(2)?.broadcast_mul(&tau)?;
        let last_row = matrix.i((.., .., b - 1, ..))?;
        for (form, eta_out, eta_update) in [
            ("per-key", &per_key, &cs.eta),
            ("matrix", &matrix, &last_row),
        ] {
            for causal_k in [0, -1] {
                for (steps, (name, inner)) in
                    [1, 2, 3].into_iter().flat_map(|k| LOOPS.map(|l| (k, l)))
                {
                    let got = run(inner, &cs, eta_out, eta_update, causal_k, steps)?;
                    let want = naive(&cs, eta_out, eta_update, causal_k, steps)?;
                    assert_close(got.out.as_ref().unwrap(), &want, 1e-10, 1e-10).map_err(|e| {
                        candle::Error::Msg(format!(
                            "{name} {form} n {n} m {m} b {b} hd {hd} causal_k {causal_k} \
                             k {steps}: {e}"
                        ))
                    })?;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn more_steps_lower_the_reconstruction_loss() -> Result<()> {
    let (n, m, b, hd) = (4, 4, 16, 16);
    let cs = case(n, m, b, hd, 30)?;
    let eta = cs.eta.affine(0.0, 0.02)?; // a moderate, uniform rate
    let eta_out = eta.unsqueeze(2)?.broadcast_as((n, m, b, b))?.contiguous()?;
    let loss = |steps| -> Result<f64> {
        run(inner_loop, &cs, &eta_out, &eta, 0, steps)?
            .stats
            .step_1
            .mean_all()?
            .to_scalar::<f64>()
    };
    let (l1, l2, l4) = (loss(1)?, loss(2)?, loss(4)?);
    assert!(
        l2 < l1 && l4 < l2,
        "step_1 loss should fall with k: k=1 {l1}, k=2 {l2}, k=4 {l4}"
    );
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
