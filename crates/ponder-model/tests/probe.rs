//! The learned gate's model features against direct computations: the hidden states and SKIP
//! losses of the usual paths, and entropy and `−log max p` of the materialized logits.

use candle::{DType, Device, Result, Tensor};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};
use ponder_model::{FastLayer, FastNorm, PonderLm};
use ponder_ttt::{TttConfig, TttParams};

fn lm() -> Result<PonderLm> {
    let gpt2 = Gpt2Config {
        vocab_size: 60,
        n_positions: 32,
        n_embd: 32,
        n_head: 2,
        initializer_range: 0.3,
        ..Gpt2Config::tiny()
    };
    let opts = LoadOptions {
        pad_token: Some(60),
        ..LoadOptions::cpu_f32()
    };
    let ttt = TttConfig {
        head_dim: 16,
        mini_batch_size: 4,
        ..TttConfig::for_gpt2(32, 2)
    };
    let params = TttParams::init(
        &ttt,
        ponder_model::FastModelKind::Linear,
        2,
        DType::F32,
        &Device::Cpu,
    )?;
    PonderLm::new(
        &random(gpt2, 1, &opts)?,
        FastNorm::init(32, DType::F32, &Device::Cpu)?,
        FastLayer::Ttt {
            config: ttt,
            params,
        },
    )
}

#[test]
fn the_probe_agrees_with_the_direct_paths() -> Result<()> {
    let lm = lm()?;
    let (b, t) = (2, 12);
    let ids: Vec<u32> = (0..b * t).map(|i| ((i * 17 + 3) % 60) as u32).collect();
    let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu)?;
    let (hidden, stats, losses) = lm.probe(&ids, &[0.5, 0.25])?;
    assert_eq!(
        hidden.to_vec3::<f32>()?,
        lm.backbone(&ids)?.to_vec3::<f32>()?
    );
    let skip = lm.next_token_loss(&hidden, &ids)?.to_vec1::<f32>()?;
    let logits = lm.logits(&hidden)?.to_dtype(DType::F64)?.to_vec3::<f64>()?;
    for s in 0..b {
        assert!(
            (losses[s] - f64::from(skip[s])).abs() < 1e-5,
            "{} vs {}",
            losses[s],
            skip[s]
        );
        let (mut entropy, mut nlmp) = (Vec::new(), Vec::new());
        for row in &logits[s][..t - 1] {
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            entropy.push(-row.iter().map(|z| (z - lse).exp() * (z - lse)).sum::<f64>());
            nlmp.push(lse - max);
        }
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        let max = |x: &[f64]| x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let st = &stats[s];
        for (got, want) in [
            (st.entropy.0, mean(&entropy)),
            (st.entropy.1, max(&entropy)),
            (st.neg_log_max_p.0, mean(&nlmp)),
            (st.neg_log_max_p.1, max(&nlmp)),
            (
                st.max_p_mean,
                mean(&nlmp.iter().map(|x| (-x).exp()).collect::<Vec<_>>()),
            ),
        ] {
            assert!((got - want).abs() < 1e-4, "sequence {s}: {got} vs {want}");
        }
        assert!(st.attention[0] > 0.0 && st.attention[3] >= 0.0 && st.attention[3] <= 1.0);
        assert_eq!(st.recon, [0.5, 0.25][s]);
    }
    assert!(lm.probe(&ids, &[0.5]).is_err(), "one recon per sequence");
    Ok(())
}
