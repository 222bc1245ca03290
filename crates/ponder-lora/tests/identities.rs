//! Identities of `LoraLinear` and `LoraFastLayer` that the maths guarantees: `B = 0` equals the
//! base layer bit for bit, merged equals unmerged, and both forwards equal naive element-by-element
//! references written with plain loops over `Vec<f64>`.

use candle::{DType, Device, Result, Tensor};
use candle_nn::{Linear, Module};
use ponder_lora::{Init, LoraConfig, LoraFactors, LoraFastConfig, LoraFastLayer, LoraLinear};
use ponder_nn::{assert_close, max_abs_diff, Dropout};

fn randn(shape: &[usize], seed: u64, std: f64, dtype: DType, dev: &Device) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "identities-test");
    ponder_nn::init::normal(shape, std, &mut rng, dtype, dev)
}

fn config(r: usize, alpha: f64) -> LoraConfig {
    LoraConfig {
        r,
        lora_alpha: alpha,
        lora_dropout: 0.1,
        target_modules: vec!["c_attn".into()],
    }
}

/// A random `in → out` layer with bias and random nonzero factors of rank `r` and scale 1, with
/// standard deviations that keep every output and the update O(1).
fn random_layer(dims: (usize, usize, usize), seed: u64, dev: &Device) -> Result<LoraLinear> {
    let (in_dim, out_dim, r) = dims;
    let dtype = DType::F32;
    let (std_in, std_r) = (1.0 / (in_dim as f64).sqrt(), 1.0 / (r as f64).sqrt());
    let w = randn(&[out_dim, in_dim], seed, std_in, dtype, dev)?;
    let bias = randn(&[out_dim], seed + 1, 0.5, dtype, dev)?;
    let a = randn(&[r, in_dim], seed + 2, std_in, dtype, dev)?;
    let b = randn(&[out_dim, r], seed + 3, std_r, dtype, dev)?;
    let factors = LoraFactors::new(a, b, 1.0)?;
    LoraLinear::new(Linear::new(w, Some(bias)), factors)
}

fn b_zero_is_base_bit_for_bit(dev: &Device) -> Result<()> {
    for (seed, (in_dim, out_dim, r)) in [(5, 7, 3), (64, 48, 8), (33, 17, 1)]
        .into_iter()
        .enumerate()
    {
        let seed = 10 * seed as u64;
        let w = randn(&[out_dim, in_dim], seed, 1.0, DType::F32, dev)?;
        let bias = randn(&[out_dim], seed + 1, 1.0, DType::F32, dev)?;
        let base = Linear::new(w, Some(bias));
        let mut rng = ponder_nn::init::rng_for(seed, "a");
        for init in [Init::ORIGINAL, Init::KaimingUniform] {
            let layer = LoraLinear::init(base.clone(), &config(r, 16.0), init, &mut rng)?;
            let x = randn(&[2, 9, in_dim], seed + 2, 1.0, DType::F32, dev)?;
            let expected = base.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            let actual = layer.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(
                actual, expected,
                "B = 0 changed the output ({in_dim}→{out_dim}, r {r})"
            );
            let merged = layer
                .merge()?
                .forward(&x)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            assert_eq!(merged, expected, "merging B = 0 changed the output");
            let mut dropout = Dropout::new(0.5, seed)?;
            let train = layer.forward_train(&x, &mut dropout)?;
            assert_eq!(train.flatten_all()?.to_vec1::<f32>()?, expected);
        }
    }
    Ok(())
}
ponder_nn::test_device!(
    b_zero_is_base_bit_for_bit,
    b_zero_cpu,
    b_zero_cuda,
    b_zero_metal
);

fn merged_equals_unmerged(dev: &Device) -> Result<()> {
    for (seed, dims) in [(5, 7, 3), (96, 80, 16), (768, 768, 64)]
        .into_iter()
        .enumerate()
    {
        let layer = random_layer(dims, 100 + seed as u64, dev)?;
        let x = randn(&[3, 11, dims.0], 7 + seed as u64, 1.0, DType::F32, dev)?;
        let unmerged = layer.forward(&x)?;
        let merged = layer.merge()?;
        assert!(max_abs_diff(&unmerged, &layer.base().forward(&x)?)? > 0.5);
        assert_close(&merged.forward(&x)?, &unmerged, 1e-5, 0.0)?;

        let back = LoraLinear::unmerge(&merged, layer.factors().clone())?;
        assert_close(back.base().weight(), layer.base().weight(), 1e-6, 0.0)?;
        assert_close(&back.forward(&x)?, &unmerged, 1e-5, 0.0)?;
    }
    Ok(())
}
ponder_nn::test_device!(merged_equals_unmerged, merge_cpu, merge_cuda, merge_metal);

#[test]
fn forward_train_without_dropout_is_forward() -> Result<()> {
    let layer = random_layer((6, 5, 2), 3, &Device::Cpu)?;
    let x = randn(&[4, 6], 4, 1.0, DType::F32, &Device::Cpu)?;
    let mut dropout = Dropout::new(0.0, 0)?;
    assert_close(
        &layer.forward_train(&x, &mut dropout)?,
        &layer.forward(&x)?,
        0.0,
        0.0,
    )?;
    let mut dropout = Dropout::new(0.5, 0)?;
    assert!(max_abs_diff(&layer.forward_train(&x, &mut dropout)?, &layer.forward(&x)?)? > 1e-3);
    Ok(())
}

/// `y[n][o] = b[o] + Σ_i x[n][i] W[o][i] + s · Σ_k B[o][k] Σ_i A[k][i] x[n][i]`.
#[test]
fn linear_forward_equals_naive_loops() -> Result<()> {
    let dev = Device::Cpu;
    let (n, in_dim, out_dim, r, scale) = (5, 4, 3, 2, 0.75);
    let vec = |t: &Tensor| t.flatten_all()?.to_vec1::<f64>();
    let w = randn(&[out_dim, in_dim], 1, 1.0, DType::F64, &dev)?;
    let bias = randn(&[out_dim], 2, 1.0, DType::F64, &dev)?;
    let a = randn(&[r, in_dim], 3, 1.0, DType::F64, &dev)?;
    let b = randn(&[out_dim, r], 4, 1.0, DType::F64, &dev)?;
    let x = randn(&[n, in_dim], 5, 1.0, DType::F64, &dev)?;
    let (wv, bv, av, bbv, xv) = (vec(&w)?, vec(&bias)?, vec(&a)?, vec(&b)?, vec(&x)?);
    let mut expected = vec![0.0f64; n * out_dim];
    for row in 0..n {
        let xr = &xv[row * in_dim..(row + 1) * in_dim];
        let hidden: Vec<f64> = (0..r)
            .map(|k| (0..in_dim).map(|i| av[k * in_dim + i] * xr[i]).sum())
            .collect();
        for o in 0..out_dim {
            let base: f64 = (0..in_dim).map(|i| xr[i] * wv[o * in_dim + i]).sum();
            let delta: f64 = (0..r).map(|k| bbv[o * r + k] * hidden[k]).sum();
            expected[row * out_dim + o] = bv[o] + base + scale * delta;
        }
    }
    let layer = LoraLinear::new(Linear::new(w, Some(bias)), LoraFactors::new(a, b, scale)?)?;
    let expected = Tensor::from_vec(expected, (n, out_dim), &dev)?;
    assert_close(&layer.forward(&x)?, &expected, 1e-12, 1e-12)?;
    // The same rows as a (b, t, in) batch.
    let batched = layer
        .forward(&x.reshape((1, n, in_dim))?)?
        .reshape((n, out_dim))?;
    assert_close(&batched, &expected, 1e-12, 1e-12)
}

/// The fast layer row by row: `q_i = h_i + s B A h_i`, `v_j = h_j + s B' A' h_j`,
/// `p_ij ∝ exp(q_i · h_j / √d)` over `j ≤ i`, `y_i = Σ_j p_ij v_j`.
#[test]
fn fast_layer_forward_equals_naive_loops() -> Result<()> {
    let dev = Device::Cpu;
    let (bsz, t, d, r) = (2, 6, 5, 3);
    let config = LoraFastConfig {
        hidden_dim: d,
        r,
        lora_alpha: 6.0,
        lora_dropout: 0.1,
        update: ponder_lora::LoraUpdate {
            lr: 0.1,
            block_size: 4,
            max_grad_norm: None,
        },
    };
    let scale = config.scale();
    let vec = |t: &Tensor| t.flatten_all()?.to_vec1::<f64>();
    let factors = |seed: u64| -> Result<LoraFactors> {
        let a = randn(&[r, d], seed, 0.5, DType::F64, &dev)?;
        let b = randn(&[d, r], seed + 1, 0.5, DType::F64, &dev)?;
        LoraFactors::new(a, b, scale)
    };
    let layer = LoraFastLayer::from_factors(config, factors(10)?, factors(20)?)?;
    let h = randn(&[bsz, t, d], 30, 1.0, DType::F64, &dev)?;
    let hv = vec(&h)?;
    let lora = |f: &LoraFactors, x: &[f64]| -> Result<Vec<f64>> {
        let (a, b) = (vec(f.a())?, vec(f.b())?);
        let hidden: Vec<f64> = (0..r)
            .map(|k| (0..d).map(|i| a[k * d + i] * x[i]).sum())
            .collect();
        Ok((0..d)
            .map(|o| x[o] + scale * (0..r).map(|k| b[o * r + k] * hidden[k]).sum::<f64>())
            .collect())
    };
    let mut expected = Vec::with_capacity(bsz * t * d);
    for s in 0..bsz {
        let row = |i: usize| &hv[(s * t + i) * d..(s * t + i + 1) * d];
        for i in 0..t {
            let q = lora(layer.q_lora(), row(i))?;
            let logits: Vec<f64> = (0..=i)
                .map(|j| q.iter().zip(row(j)).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt())
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            let mut y = vec![0.0f64; d];
            for (j, e) in exps.iter().enumerate() {
                let v = lora(layer.v_lora(), row(j))?;
                for (yo, vo) in y.iter_mut().zip(&v) {
                    *yo += e / total * vo;
                }
            }
            expected.extend(y);
        }
    }
    let expected = Tensor::from_vec(expected, (bsz, t, d), &dev)?;
    assert_close(&layer.forward(&h)?, &expected, 1e-12, 1e-12)
}

#[test]
fn fast_layer_train_forward_uses_config_dropout() -> Result<()> {
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
    let layer = LoraFastLayer::new(config, Init::ORIGINAL, 0, DType::F32, &dev)?;
    let h = randn(&[1, 4, 8], 1, 1.0, DType::F32, &dev)?;
    let mut wrong = Dropout::new(0.3, 0)?;
    let err = layer
        .forward_train(&h, &mut wrong)
        .expect_err("mismatched dropout accepted");
    assert!(
        err.to_string().contains("0.3") && err.to_string().contains("0.1"),
        "{err}"
    );
    let mut dropout = layer.dropout(0)?;
    // B = 0 at init, so dropout on the rank-r hidden cannot change the output.
    assert_close(
        &layer.forward_train(&h, &mut dropout)?,
        &layer.forward(&h)?,
        0.0,
        0.0,
    )?;
    let bad = Tensor::zeros((1, 4, 7), DType::F32, &dev)?;
    let err = layer.forward(&bad).expect_err("wrong width accepted");
    assert!(err.to_string().contains("[1, 4, 7]") && err.to_string().contains("(b, t, 8)"));
    Ok(())
}
