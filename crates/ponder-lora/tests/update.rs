//! UPDATE_k of the LoRA fast layer against a naive reference, in f64: the reference reads every
//! position with its own prefix readout under the factors the earlier blocks left, and takes each
//! inner step with a gradient from central finite differences, so it shares neither the blocked
//! readout nor autograd with the implementation. The outer gradient (first-order: the inner
//! offsets held fixed, `docs/design/lora-update.md`) is checked against finite differences too.

use std::collections::BTreeMap;

use candle::{DType, Device, Result, Tensor, Var};
use ponder_lora::{update_sequence, Init, LoraFastConfig, LoraFastLayer, LoraUpdate};
use ponder_nn::assert_close;

const D: usize = 4;
const T: usize = 7;
const VOCAB: usize = 5;

type Factors = BTreeMap<String, Tensor>;

fn randn(shape: &[usize], seed: u64, std: f64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "lora-update-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

/// A small problem: the layer's config, its factors (nonzero B), the normalized input, the
/// backbone states, a head and the targets.
struct Problem {
    config: LoraFastConfig,
    factors: Factors,
    normed: Tensor,
    h: Tensor,
    head: Tensor,
    targets: Tensor,
}

fn problem(k_lr: f64, max_grad_norm: Option<f64>) -> Result<Problem> {
    let config = LoraFastConfig {
        hidden_dim: D,
        r: 2,
        lora_alpha: 2.0,
        lora_dropout: 0.0,
        update: LoraUpdate {
            lr: k_lr,
            block_size: 3,
            max_grad_norm,
        },
    };
    let layer = LoraFastLayer::new(config.clone(), Init::ORIGINAL, 3, DType::F64, &Device::Cpu)?;
    let factors = layer
        .trainable()
        .into_iter()
        .enumerate()
        .map(|(i, (k, t))| Ok((k, (&t + randn(t.dims(), 10 + i as u64, 0.4)?)?)))
        .collect::<Result<Factors>>()?;
    let ids: Vec<u32> = (0..T as u32).map(|i| (i * 3 + 1) % VOCAB as u32).collect();
    Ok(Problem {
        config,
        factors,
        normed: randn(&[1, T, D], 1, 1.0)?,
        h: randn(&[1, T, D], 2, 1.0)?,
        head: randn(&[VOCAB, D], 4, 0.8)?,
        targets: Tensor::new(ids, &Device::Cpu)?,
    })
}

impl Problem {
    /// The next-token loss of positions `start..start + n` given the fast layer's output there.
    fn block_loss(&self, y: &Tensor, start: usize, n: usize) -> Result<Tensor> {
        let features = (self.h.narrow(1, start, n)? + y)?.squeeze(0)?; // (n, d)
        let logits = features.matmul(&self.head.t()?)?; // (n, V)
        ponder_nn::cross_entropy(&logits, &self.targets.narrow(0, start + 1, n)?)?.mean_all()
    }

    fn readout(&self, factors: &Factors, len: usize) -> Result<Tensor> {
        LoraFastLayer::from_trainable(self.config.clone(), factors)?
            .forward(&self.normed.narrow(1, 0, len)?) // (1, len, d)
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_scalar::<f64>()
}

/// Central differences of `f` at every element of every factor.
fn fd_grad(factors: &Factors, f: &dyn Fn(&Factors) -> Result<f64>) -> Result<Factors> {
    let eps = 1e-6;
    let mut out = Factors::new();
    for (name, t) in factors {
        let values = t.flatten_all()?.to_vec1::<f64>()?;
        let mut grad = Vec::with_capacity(values.len());
        for i in 0..values.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = values.clone();
                v[i] += delta;
                let mut moved = factors.clone();
                moved.insert(name.clone(), Tensor::from_vec(v, t.dims(), &Device::Cpu)?);
                f(&moved)
            };
            grad.push((at(eps)? - at(-eps)?) / (2.0 * eps));
        }
        out.insert(
            name.clone(),
            Tensor::from_vec(grad, t.dims(), &Device::Cpu)?,
        );
    }
    Ok(out)
}

/// What the naive reference gives: every position's output, the final factors, the
/// `step_0`/`step_1` losses per block, and the factors each block read with.
struct Naive {
    y: Tensor,
    factors: Factors,
    stats: Vec<[f64; 2]>,
    per_block: Vec<Factors>,
}

fn naive(p: &Problem, k: usize) -> Result<Naive> {
    let b = p.config.update.block_size;
    let mut theta = p.factors.clone();
    let (mut rows, mut stats, mut per_block) = (Vec::new(), Vec::new(), Vec::new());
    for start in (0..T).step_by(b) {
        let end = (start + b).min(T);
        per_block.push(theta.clone());
        for i in start..end {
            // Position i reads only its own prefix.
            rows.push(p.readout(&theta, i + 1)?.narrow(1, i, 1)?);
        }
        let n = end.min(T - 1).saturating_sub(start);
        if n == 0 {
            continue;
        }
        let loss = |f: &Factors| -> Result<f64> {
            scalar(&p.block_loss(&p.readout(f, end)?.narrow(1, start, n)?, start, n)?)
        };
        let before = loss(&theta)?;
        for _ in 0..k {
            let g = fd_grad(&theta, &loss)?;
            let mut norm = 0.0;
            for t in g.values() {
                norm += t.sqr()?.sum_all()?.to_scalar::<f64>()?;
            }
            let norm = norm.sqrt();
            let lr = match p.config.update.max_grad_norm {
                Some(max) if norm > max => p.config.update.lr * max / norm,
                _ => p.config.update.lr,
            };
            theta = theta
                .iter()
                .map(|(name, t)| Ok((name.clone(), (t - (&g[name] * lr)?)?)))
                .collect::<Result<_>>()?;
        }
        stats.push([before, loss(&theta)?]);
    }
    Ok(Naive {
        y: Tensor::cat(&rows, 1)?,
        factors: theta,
        stats,
        per_block,
    })
}

#[test]
fn update_k_equals_the_naive_per_position_reference() -> Result<()> {
    // The last case clips every step's gradient to a norm it exceeds.
    let mut finals = Vec::new();
    for (k, clip) in [(1, None), (2, None), (2, Some(0.05))] {
        let p = problem(0.3, clip)?;
        let out = update_sequence(
            &p.config,
            &p.factors,
            &p.factors,
            &p.normed,
            k,
            &|y, s, n| p.block_loss(y, s, n),
        )?;
        let reference = naive(&p, k)?;
        assert_close(&out.y, &reference.y, 1e-7, 1e-7)?;
        for (name, t) in &out.factors {
            assert_close(t, &reference.factors[name], 1e-7, 1e-7)?;
        }
        // Two blocks have targets (positions 0..3 and 3..6); the last block (6) has none.
        assert_eq!(out.stats[1].len(), 2);
        for (m, [before, after]) in reference.stats.iter().enumerate() {
            assert!(
                (scalar(&out.stats[1][m])? - before).abs() < 1e-9,
                "k {k}, step_0 {m}"
            );
            assert!(
                (scalar(&out.stats[2][m])? - after).abs() < 1e-7,
                "k {k}, step_1 {m}"
            );
            assert!(after < before, "k {k}: block {m} loss {before} -> {after}");
        }
        finals.push(out.factors["q_lora.lora_B.weight"].clone());
        // The factors move (a planted `lr = 0` would fail the comparison with the reference).
        assert!(
            ponder_nn::max_abs_diff(
                &out.factors["q_lora.lora_B.weight"],
                &p.factors["q_lora.lora_B.weight"]
            )? > 1e-3
        );
    }
    assert!(
        ponder_nn::max_abs_diff(&finals[1], &finals[2])? > 1e-4,
        "the clip changed nothing"
    );
    Ok(())
}

#[test]
fn outer_gradients_are_the_first_order_ones() -> Result<()> {
    let p = problem(0.3, None)?;
    let k = 2;
    let r = randn(&[1, T, D], 7, 1.0)?;
    // Autograd through the implementation, the layer's own factors as the variables.
    let vars: BTreeMap<String, Var> = p
        .factors
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let initial: Factors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let out = update_sequence(&p.config, &initial, &p.factors, &p.normed, k, &|y, s, n| {
        p.block_loss(y, s, n)
    })?;
    let grads = (out.y * &r)?.sum_all()?.backward()?;
    // First order: each block reads with the layer's factors plus the offset the reference's
    // inner steps reached, that offset held fixed.
    let reference = naive(&p, k)?;
    let b = p.config.update.block_size;
    let objective = |theta: &Factors| -> Result<f64> {
        let mut total = 0.0;
        for (m, read_with) in reference.per_block.iter().enumerate() {
            let shifted: Factors = theta
                .iter()
                .map(|(name, t)| Ok((name.clone(), (t + (&read_with[name] - &p.factors[name])?)?)))
                .collect::<Result<_>>()?;
            let (start, end) = (m * b, ((m + 1) * b).min(T));
            let y = p.readout(&shifted, end)?.narrow(1, start, end - start)?;
            total += scalar(&(y * r.narrow(1, start, end - start)?)?.sum_all()?)?;
        }
        Ok(total)
    };
    let fd = fd_grad(&p.factors, &objective)?;
    for (name, var) in &vars {
        let g = grads.get(var.as_tensor()).expect("a gradient");
        assert_close(g, &fd[name], 1e-6, 1e-6)?;
    }
    Ok(())
}
