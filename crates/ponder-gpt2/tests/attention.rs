//! The last block's attention weights, returned on request, against a direct computation from
//! the weights: `softmax(q kᵀ / √hd)` over the keys at or before each query.

use candle::{Device, Result, Tensor};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};

fn config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 50,
        n_positions: 16,
        n_layer: 1,
        initializer_range: 0.3,
        ..Gpt2Config::tiny()
    }
}

/// Rows of a `(rows, cols)` tensor as f64 vectors.
fn rows(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    t.to_dtype(candle::DType::F64)?.to_vec2()
}

#[test]
#[allow(clippy::needless_range_loop)] // the reference indexes as the formula does
fn the_last_weights_equal_a_direct_softmax_of_the_scores() -> Result<()> {
    let c = config();
    let model = random(c.clone(), 7, &LoadOptions::cpu_f32())?;
    let (b, t) = (2, 9);
    let ids: Vec<u32> = (0..b * t).map(|i| (i as u32 * 11 + 5) % 50).collect();
    let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu)?;
    let (hidden, probs) = model.forward_with_attention(&ids)?;
    assert_eq!(probs.dims(), [b, c.n_head, t, t]);
    assert_eq!(
        hidden.to_vec3::<f32>()?,
        model.forward(&ids)?.to_vec3::<f32>()?
    );

    let w = model.weights()?;
    let get = |k: &str| rows(&w[k]);
    let vec1 = |k: &str| -> Result<Vec<f64>> { w[k].to_dtype(candle::DType::F64)?.to_vec1() };
    let (wte, wpe) = (get("wte.weight")?, get("wpe.weight")?);
    let (g, beta) = (vec1("h.0.ln_1.weight")?, vec1("h.0.ln_1.bias")?);
    let (wa, ba) = (
        get("h.0.attn.c_attn.weight")?,
        vec1("h.0.attn.c_attn.bias")?,
    );
    let (d, nh) = (c.n_embd, c.n_head);
    let hd = d / nh;
    let ids = ids.to_vec2::<u32>()?;
    let probs: Vec<Vec<Vec<Vec<f64>>>> = (0..b)
        .map(|s| {
            (0..nh)
                .map(|h| rows(&probs.get(s)?.get(h)?))
                .collect::<Result<_>>()
        })
        .collect::<Result<_>>()?;
    for s in 0..b {
        // ln_1 of the embeddings, then q and k.
        let x: Vec<Vec<f64>> = (0..t)
            .map(|i| {
                let e: Vec<f64> = (0..d)
                    .map(|j| wte[ids[s][i] as usize][j] + wpe[i][j])
                    .collect();
                let mu = e.iter().sum::<f64>() / d as f64;
                let var = e.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / d as f64;
                let r = (var + c.layer_norm_epsilon).sqrt();
                (0..d).map(|j| (e[j] - mu) / r * g[j] + beta[j]).collect()
            })
            .collect();
        let proj = |i: usize, col: usize| -> f64 {
            (0..d).map(|j| x[i][j] * wa[j][col]).sum::<f64>() + ba[col]
        };
        for h in 0..nh {
            for i in 0..t {
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..hd)
                            .map(|e| proj(i, h * hd + e) * proj(j, d + h * hd + e))
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|v| (v - max).exp()).sum();
                for j in 0..t {
                    let want = if j <= i {
                        (scores[j] - max).exp() / z
                    } else {
                        0.0
                    };
                    let got = probs[s][h][i][j];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "seq {s} head {h} ({i}, {j}): {got} vs {want}"
                    );
                }
            }
        }
    }
    Ok(())
}
