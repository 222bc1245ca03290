//! Behaviour of the backbone beyond parity: the pad row, position limits, dropout, dtypes.

use candle::{DType, Device, IndexOp, Result, Tensor};
use ponder_gpt2::{random, Gpt2Config, LoadOptions, PAD_LOGIT};
use ponder_nn::{assert_close, Dropout};

fn tiny_config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 100,
        n_positions: 32,
        initializer_range: 0.2,
        ..Gpt2Config::tiny()
    }
}

fn ids(b: usize, t: usize, vocab: u32) -> Result<Tensor> {
    let v: Vec<u32> = (0..b * t).map(|i| (i as u32 * 7 + 3) % vocab).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu)
}

#[test]
fn pad_row_is_masked_and_leaves_other_logits_alone() -> Result<()> {
    let plain = random(tiny_config(), 1, &LoadOptions::cpu_f32())?;
    let padded = random(
        tiny_config(),
        1,
        &LoadOptions {
            pad_token: Some(100),
            ..LoadOptions::cpu_f32()
        },
    )?;
    assert_eq!(padded.n_logits(), 101);
    let x = ids(2, 10, 100)?;
    let a = plain.logits(&plain.forward(&x)?)?;
    let b = padded.logits(&padded.forward(&x)?)?;
    assert_close(&b.narrow(2, 0, 100)?, &a, 0.0, 0.0)?;
    let pad = b.i((.., .., 100))?.flatten_all()?.to_vec1::<f32>()?;
    assert!(pad.iter().all(|&v| v == PAD_LOGIT as f32), "{pad:?}");
    // A pad id that does not follow the vocabulary is refused.
    let err = random(
        tiny_config(),
        1,
        &LoadOptions {
            pad_token: Some(7),
            ..LoadOptions::cpu_f32()
        },
    );
    assert!(err.err().unwrap().to_string().contains("pad row"));
    Ok(())
}

#[test]
fn positions_beyond_n_positions_are_an_error() -> Result<()> {
    let model = random(tiny_config(), 1, &LoadOptions::cpu_f32())?;
    assert!(model.forward(&ids(1, 32, 100)?).is_ok());
    let err = model.forward(&ids(1, 33, 100)?).unwrap_err().to_string();
    assert!(err.contains("n_positions is 32"), "{err}");
    let err = model
        .forward(&Tensor::new(&[[5u32, 100]], &Device::Cpu)?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("token id 100 is outside"), "{err}");
    Ok(())
}

#[test]
fn outputs_are_causal() -> Result<()> {
    let model = random(tiny_config(), 2, &LoadOptions::cpu_f32())?;
    let a = ids(1, 12, 100)?;
    let mut changed = a.to_vec2::<u32>()?;
    changed[0][8] = 99;
    let b = Tensor::new(changed, &Device::Cpu)?;
    let (ha, hb) = (model.forward(&a)?, model.forward(&b)?);
    assert_close(&ha.narrow(1, 0, 8)?, &hb.narrow(1, 0, 8)?, 0.0, 0.0)?;
    assert!(ponder_nn::max_abs_diff(&ha.narrow(1, 8, 1)?, &hb.narrow(1, 8, 1)?)? > 1e-3);
    Ok(())
}

#[test]
fn dropout_is_seeded_and_off_at_inference() -> Result<()> {
    let model = random(tiny_config(), 3, &LoadOptions::cpu_f32())?;
    let x = ids(2, 16, 100)?;
    let run = |seed| -> Result<Tensor> { model.forward_train(&x, &mut Dropout::new(0.1, seed)?) };
    assert_close(&run(5)?, &run(5)?, 0.0, 0.0)?;
    assert!(ponder_nn::max_abs_diff(&run(5)?, &run(6)?)? > 1e-4);
    assert!(ponder_nn::max_abs_diff(&run(5)?, &model.forward(&x)?)? > 1e-4);
    assert_close(&model.forward(&x)?, &model.forward(&x)?, 0.0, 0.0)
}

#[test]
fn half_precision_tracks_f32() -> Result<()> {
    let f32_model = random(tiny_config(), 4, &LoadOptions::cpu_f32())?;
    let x = ids(1, 16, 100)?;
    let reference = f32_model.forward(&x)?;
    for dtype in [DType::BF16, DType::F16] {
        let m = random(
            tiny_config(),
            4,
            &LoadOptions {
                dtype,
                ..LoadOptions::cpu_f32()
            },
        )?;
        let h = m.forward(&x)?.to_dtype(DType::F32)?;
        let diff = ponder_nn::max_abs_diff(&h, &reference)?;
        assert!(diff < 0.1, "{dtype:?}: max diff {diff}");
    }
    Ok(())
}

#[test]
fn token_nll_is_the_mean_cross_entropy_of_next_tokens() -> Result<()> {
    let model = random(tiny_config(), 5, &LoadOptions::cpu_f32())?;
    let x = ids(1, 9, 100)?;
    let nll = model.token_nll(&x)?; // (1, 8)
    let logits = model
        .logits(&model.forward(&x.narrow(1, 0, 8)?)?)?
        .squeeze(0)?; // (8, 100)
    let log_p = candle_nn_log_softmax(&logits)?;
    let targets = x.i((0, 1..))?.to_vec1::<u32>()?;
    let manual: Vec<f32> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| -log_p[i][t as usize])
        .collect();
    assert_close(
        &nll.squeeze(0)?,
        &Tensor::new(manual, &Device::Cpu)?,
        1e-5,
        1e-5,
    )
}

fn candle_nn_log_softmax(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let max = logits.max_keepdim(1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
    shifted.broadcast_sub(&lse)?.to_vec2::<f32>()
}
