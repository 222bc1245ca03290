//! The LoRA fast layer inside the PonderTTT LM: causal UPDATE_k, learning, state, gradients and
//! checkpoints.

use candle::{DType, Device, Result, Tensor};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};
use ponder_model::{
    checkpoint, FastLayer, FastLayerKind, FastNorm, FastState, LoraFastConfig, LoraUpdate, PonderLm,
};
use ponder_nn::{assert_close, max_abs_diff};

fn lm(lr: f64, dtype: DType) -> Result<PonderLm> {
    let gpt2 = Gpt2Config {
        vocab_size: 40,
        n_positions: 32,
        n_embd: 16,
        n_head: 2,
        initializer_range: 0.3,
        ..Gpt2Config::tiny()
    };
    let backbone = random(
        gpt2,
        1,
        &LoadOptions {
            dtype,
            ..LoadOptions::cpu_f32()
        },
    )?;
    let config = LoraFastConfig::original(
        16,
        4,
        LoraUpdate {
            lr,
            block_size: 4,
            max_grad_norm: None,
        },
    );
    let fast = FastLayer::init(
        FastLayerKind::Lora,
        None,
        Some(&config),
        2,
        dtype,
        &Device::Cpu,
    )?;
    PonderLm::new(&backbone, FastNorm::init(16, dtype, &Device::Cpu)?, fast)
}

fn ids(b: usize, t: usize) -> Result<Tensor> {
    let v: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % 40) as u32).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu)
}

fn factors(state: &FastState) -> Vec<Tensor> {
    match state {
        FastState::Lora(s) => s.per_seq.iter().flat_map(|m| m.values().cloned()).collect(),
        FastState::Ttt(_) => panic!("expected a LoRA state"),
    }
}

#[test]
fn lora_update_is_causal() -> Result<()> {
    let lm = lm(0.5, DType::F64)?;
    let a = ids(1, 14)?;
    for changed_at in [5, 8, 13] {
        let mut v = a.to_vec2::<u32>()?;
        v[0][changed_at] = (v[0][changed_at] + 1) % 40;
        let b = Tensor::new(v, &Device::Cpu)?;
        let logits = |x: &Tensor| -> Result<Tensor> {
            let h = lm.backbone(x)?;
            lm.logits(&lm.update(&h, x, &lm.initial_state(1)?, 2)?.features)
        };
        let (la, lb) = (logits(&a)?, logits(&b)?);
        assert_close(
            &la.narrow(1, 0, changed_at)?,
            &lb.narrow(1, 0, changed_at)?,
            0.0,
            0.0,
        )?;
        assert!(max_abs_diff(&la.narrow(1, changed_at, 1)?, &lb.narrow(1, changed_at, 1)?)? > 0.0);
    }
    Ok(())
}

#[test]
fn steps_lower_the_block_loss_and_lr_zero_changes_nothing() -> Result<()> {
    let x = ids(2, 16)?;
    let live = lm(0.5, DType::F64)?;
    let h = live.backbone(&x)?;
    let up = live.update(&h, &x, &live.initial_state(2)?, 3)?;
    let (s0, s1) = (
        up.stats.step_0.mean_all()?.to_scalar::<f64>()?,
        up.stats.step_1.mean_all()?.to_scalar::<f64>()?,
    );
    assert!(
        s1 < s0,
        "three steps should lower the block loss: {s0} -> {s1}"
    );
    let moved = factors(&up.state)
        .iter()
        .zip(factors(&live.initial_state(2)?))
        .map(|(a, b)| max_abs_diff(a, &b))
        .collect::<Result<Vec<_>>>()?;
    assert!(moved.iter().any(|&d| d > 0.0), "the factors should move");
    // The state carries: a second chunk starts from the adapted factors.
    let again = live.update(&h, &x, &up.state, 1)?;
    assert!(max_abs_diff(&again.stats.init, &up.stats.init)? > 0.0);

    let frozen = lm(0.0, DType::F64)?;
    let up = frozen.update(&h, &x, &frozen.initial_state(2)?, 3)?;
    for (a, b) in factors(&up.state)
        .iter()
        .zip(factors(&frozen.initial_state(2)?))
    {
        assert_close(a, &b, 0.0, 0.0)?;
    }
    assert_close(&up.stats.step_1, &up.stats.step_0, 0.0, 0.0)
}

#[test]
fn outer_gradients_reach_the_initial_factors_and_fast_norm() -> Result<()> {
    let (lm, vars) = lm(0.5, DType::F64)?.into_trainable()?;
    assert_eq!(vars.len(), 6);
    let x = ids(1, 12)?;
    let r = lm.chunk(&x, &lm.initial_state(1)?, 1)?;
    let grads = r.update_loss.mean_all()?.backward()?;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        // The B factors start at 0, so A's gradient can vanish in the first block only; after
        // a step B is nonzero and every factor gets a gradient.
        assert!(
            g.abs()?.max_all()?.to_scalar::<f64>()? > 0.0,
            "{name}: zero gradient"
        );
    }
    Ok(())
}

#[test]
fn lora_checkpoints_round_trip() -> Result<()> {
    let lm = lm(0.25, DType::F32)?;
    let dir = tempfile::tempdir().map_err(candle::Error::wrap)?;
    checkpoint::save(&lm, dir.path())?;
    let back = checkpoint::load(dir.path(), lm.backbone_model())?;
    let x = ids(1, 10)?;
    let (a, b) = (
        lm.chunk(&x, &lm.initial_state(1)?, 2)?,
        back.chunk(&x, &back.initial_state(1)?, 2)?,
    );
    assert_close(&a.update_loss, &b.update_loss, 0.0, 0.0)?;
    let text = std::fs::read_to_string(dir.path().join(checkpoint::CONFIG_FILE))
        .map_err(candle::Error::wrap)?;
    assert!(
        text.contains("\"kind\": \"lora\"") && text.contains("\"block_size\": 4"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_state_of_the_wrong_kind_is_an_error() -> Result<()> {
    let lm = lm(0.5, DType::F32)?;
    let x = ids(2, 8)?;
    let h = lm.backbone(&x)?;
    let err = lm
        .update(&h, &x, &lm.initial_state(3)?, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("LoRA state for 3 sequences"), "{err}");
    Ok(())
}

/// SKIP on a carried state reads the factors it was given and keeps them: its features equal
/// the update path with a learning rate of 0 (the same layer and backbone), and differ from the
/// backbone alone.
#[test]
fn a_read_uses_the_carried_factors_and_keeps_them() -> Result<()> {
    let frozen = lm(0.0, DType::F64)?;
    let lm = lm(0.5, DType::F64)?;
    let x = ids(2, 16)?;
    let hidden = lm.backbone(&x)?;
    let carried = lm.update(&hidden, &x, &lm.initial_state(2)?, 1)?.state;
    let read = lm.read(&hidden, &x, &carried)?;
    let reference = frozen.update(&hidden, &x, &carried, 1)?;
    assert_close(&read.features, &reference.features, 1e-12, 1e-12)?;
    for (a, b) in factors(&read.state).iter().zip(factors(&carried).iter()) {
        assert_close(a, b, 0.0, 0.0)?;
    }
    assert!(max_abs_diff(&read.features, &hidden)? > 1e-6);
    let update = lm.update(&hidden, &x, &carried, 1)?;
    assert!(max_abs_diff(&read.features, &update.features)? > 1e-6);
    Ok(())
}

/// The per-sequence signals average to the pooled statistics of the batch, under a carried state.
#[test]
fn sequence_signals_average_to_the_pooled_signal() -> Result<()> {
    let lm = lm(0.5, DType::F64)?;
    let x = ids(3, 16)?;
    let hidden = lm.backbone(&x)?;
    let carried = lm.update(&hidden, &x, &lm.initial_state(3)?, 1)?.state;
    let rows = lm.sequence_signals(&hidden, &x, &carried)?;
    let (init, step_0, _) = lm.signal(&hidden, &x, &carried, 1)?.chunk_means()?;
    let mean = |f: fn(&ponder_model::SequenceSignal) -> f64| rows.iter().map(f).sum::<f64>() / 3.0;
    assert!((mean(|s| s.recon) - step_0).abs() < 1e-12);
    assert!((mean(|s| s.recon_init) - init).abs() < 1e-12);
    assert!(rows[0].recon != rows[1].recon);
    Ok(())
}
