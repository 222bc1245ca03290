//! The PonderTTT LM: SKIP and UPDATE paths, the trainable set, checkpoints and bad input.

use candle::{DType, Device, Result, Tensor, Var};
use ponder_gpt2::{random, weights, Gpt2, Gpt2Config, LoadOptions};
use ponder_model::{checkpoint, FastLayer, FastNorm, FastState, PonderLm};
use ponder_nn::{assert_close, max_abs_diff};
use ponder_ttt::{TttConfig, TttParams};

fn gpt2_config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 60,
        n_positions: 32,
        n_embd: 32,
        n_head: 2,
        initializer_range: 0.2,
        ..Gpt2Config::tiny()
    }
}

fn ttt_config() -> TttConfig {
    TttConfig {
        head_dim: 16,
        mini_batch_size: 4,
        ..TttConfig::for_gpt2(32, 2)
    }
}

fn backbone(dtype: DType) -> Result<Gpt2> {
    let opts = LoadOptions {
        dtype,
        pad_token: Some(60),
        ..LoadOptions::cpu_f32()
    };
    random(gpt2_config(), 1, &opts)
}

fn randn(shape: &[usize], seed: u64, std: f64, dtype: DType) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "model-test");
    ponder_nn::init::normal(shape, std, &mut rng, dtype, &Device::Cpu)
}

/// A model whose fast layer has a nonzero output projection (it is zero at initialization).
fn lm(dtype: DType, live: bool) -> Result<PonderLm> {
    let cfg = ttt_config();
    let mut params = TttParams::init(
        &cfg,
        ponder_model::FastModelKind::Linear,
        2,
        dtype,
        &Device::Cpu,
    )?;
    if live {
        params.wo = randn(params.wo.dims(), 3, 0.2, dtype)?;
    }
    let fast = FastLayer::Ttt {
        config: cfg,
        params,
    };
    PonderLm::new(
        &backbone(dtype)?,
        FastNorm::init(32, dtype, &Device::Cpu)?,
        fast,
    )
}

fn ids(b: usize, t: usize) -> Result<Tensor> {
    let v: Vec<u32> = (0..b * t).map(|i| ((i * 13 + 5) % 60) as u32).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu)
}

#[test]
fn at_initialization_update_equals_skip_exactly() -> Result<()> {
    let lm = lm(DType::F32, false)?;
    let x = ids(2, 12)?;
    let hidden = lm.backbone(&x)?;
    let up = lm.update(&hidden, &x, &lm.initial_state(2)?, 1)?;
    assert_close(&lm.logits(&up.features)?, &lm.logits(&hidden)?, 0.0, 0.0)?;
    let r = lm.chunk(&x, &lm.initial_state(2)?, 1)?;
    assert_close(&r.update_loss, &r.skip_loss, 0.0, 0.0)
}

#[test]
fn chunk_losses_match_the_backbone_and_the_signal_matches_the_update() -> Result<()> {
    let lm = lm(DType::F32, true)?;
    let x = ids(2, 12)?;
    let r = lm.chunk(&x, &lm.initial_state(2)?, 1)?;
    let reference = lm.backbone_model().token_nll(&x)?.mean(1)?; // (b)
    assert_close(&r.skip_loss, &reference, 1e-5, 1e-5)?;
    assert!(max_abs_diff(&r.update_loss, &r.skip_loss)? > 1e-4);
    let sig = lm.signal(&r.hidden, &x, &lm.initial_state(2)?, 1)?;
    assert_close(&sig.step_0, &r.stats.step_0, 0.0, 0.0)?;
    // The pad logit stays masked on the UPDATE path.
    let up = lm.update(&r.hidden, &x, &lm.initial_state(2)?, 1)?;
    let pad = lm
        .logits(&up.features)?
        .narrow(2, 60, 1)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert!(pad.iter().all(|&v| v == -1e9));
    Ok(())
}

#[test]
fn the_skip_head_beside_the_fast_layer_gives_the_same_bits() -> Result<()> {
    let lm = lm(DType::F32, true)?;
    let x = ids(3, 16)?;
    let hidden = lm.backbone(&x)?;
    let state = lm.initial_state(3)?;
    let (up, skip) = lm.update_beside_skip_loss(&hidden, &x, &state, 1)?;
    let alone = lm.update(&hidden, &x, &state, 1)?;
    assert_close(&skip, &lm.next_token_loss(&hidden, &x)?, 0.0, 0.0)?;
    assert_close(&up.features, &alone.features, 0.0, 0.0)?;
    assert_close(&up.stats.step_0, &alone.stats.step_0, 0.0, 0.0)?;
    assert_close(&up.stats.step_1, &alone.stats.step_1, 0.0, 0.0)?;
    let r = lm.chunk(&x, &state, 1)?;
    assert_close(&r.skip_loss, &skip, 0.0, 0.0)?;
    assert_close(
        &r.update_loss,
        &lm.next_token_loss(&alone.features, &x)?,
        0.0,
        0.0,
    )
}

#[test]
fn only_the_fast_layer_and_fast_norm_receive_gradients() -> Result<()> {
    // A backbone whose weights are trainable vars, as during backbone pretraining.
    let config = gpt2_config();
    let w = weights::random(&config, 4, DType::F64, &Device::Cpu)?;
    let backbone_vars: Vec<(String, Var)> = w
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let tracked = backbone_vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let backbone = Gpt2::from_weights(config, tracked, Some(60))?;
    let cfg = ttt_config();
    let mut params = TttParams::init(
        &cfg,
        ponder_model::FastModelKind::Linear,
        5,
        DType::F64,
        &Device::Cpu,
    )?;
    params.wo = randn(params.wo.dims(), 6, 0.2, DType::F64)?;
    let fast = FastLayer::Ttt {
        config: cfg,
        params,
    };
    let lm = PonderLm::new(
        &backbone,
        FastNorm::init(32, DType::F64, &Device::Cpu)?,
        fast,
    )?;
    let (lm, fast_vars) = lm.into_trainable()?;
    assert_eq!(fast_vars.len(), 19);
    let x = ids(2, 8)?;
    let r = lm.chunk(&x, &lm.initial_state(2)?, 1)?;
    let aux =
        ((r.stats.init.mean_all()? + r.stats.step_0.mean_all()?)? + r.stats.step_1.mean_all()?)?;
    let loss = (r.update_loss.mean_all()? + (aux * (0.1 / 3.0))?)?;
    let grads = loss.backward()?;
    for (name, var) in &backbone_vars {
        assert!(
            grads.get(var.as_tensor()).is_none(),
            "backbone weight {name} received a gradient"
        );
    }
    for (name, var) in &fast_vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        assert!(
            g.abs()?.max_all()?.to_scalar::<f64>()? > 0.0,
            "{name} has an all-zero gradient"
        );
    }
    Ok(())
}

#[test]
fn outputs_are_causal() -> Result<()> {
    let lm = lm(DType::F64, true)?;
    let a = ids(1, 12)?;
    let mut v = a.to_vec2::<u32>()?;
    v[0][7] = 59;
    let b = Tensor::new(v, &Device::Cpu)?;
    let logits = |x: &Tensor| -> Result<Tensor> {
        let h = lm.backbone(x)?;
        lm.logits(&lm.update(&h, x, &lm.initial_state(1)?, 1)?.features)
    };
    let (la, lb) = (logits(&a)?, logits(&b)?);
    assert_close(&la.narrow(1, 0, 7)?, &lb.narrow(1, 0, 7)?, 0.0, 0.0)?;
    assert!(max_abs_diff(&la.narrow(1, 7, 5)?, &lb.narrow(1, 7, 5)?)? > 1e-6);
    Ok(())
}

#[test]
fn checkpoints_round_trip_and_check_the_backbone() -> Result<()> {
    let lm = lm(DType::F32, true)?;
    let dir = tempfile::tempdir().map_err(candle::Error::wrap)?;
    checkpoint::save(&lm, dir.path())?;
    let back = checkpoint::load(dir.path(), lm.backbone_model())?;
    let x = ids(2, 10)?;
    let (r1, r2) = (
        lm.chunk(&x, &lm.initial_state(2)?, 1)?,
        back.chunk(&x, &back.initial_state(2)?, 1)?,
    );
    assert_close(&r1.update_loss, &r2.update_loss, 0.0, 0.0)?;

    // Another backbone width: refused, naming both widths.
    let wide = random(
        Gpt2Config {
            n_embd: 64,
            ..gpt2_config()
        },
        1,
        &LoadOptions::cpu_f32(),
    )?;
    let err = checkpoint::load(dir.path(), &wide)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("the fast layer is 32 wide but the backbone is 64 wide"),
        "{err}"
    );

    // A tensor of the wrong shape: named with both shapes.
    let path = dir.path().join(checkpoint::WEIGHTS_FILE);
    let mut t = candle::safetensors::load(&path, &Device::Cpu)?;
    t.insert(
        "fast_layer.W0".into(),
        Tensor::zeros((2, 16, 8), DType::F32, &Device::Cpu)?,
    );
    candle::safetensors::save(&t, &path)?;
    let err = checkpoint::load(dir.path(), lm.backbone_model())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tensor `fast_layer.W0` has shape [2, 16, 8], expected [2, 16, 16]"),
        "{err}"
    );
    t.remove("fast_layer.W0");
    candle::safetensors::save(&t, &path)?;
    let err = checkpoint::load(dir.path(), lm.backbone_model())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing tensor `fast_layer.W0`"), "{err}");
    Ok(())
}

#[test]
fn bad_chunks_are_errors() -> Result<()> {
    let lm = lm(DType::F32, true)?;
    let one = ids(1, 1)?;
    let err = lm
        .chunk(&one, &lm.initial_state(1)?, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("t >= 2"), "{err}");
    let empty = Tensor::zeros((1, 0, 32), DType::F32, &Device::Cpu)?;
    let no_ids = Tensor::zeros((1, 0), DType::U32, &Device::Cpu)?;
    let err = lm
        .update(&empty, &no_ids, &lm.initial_state(1)?, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty chunk"), "{err}");
    Ok(())
}

#[test]
fn ttt_mlp_checkpoints_round_trip() -> Result<()> {
    let cfg = ttt_config();
    let mut params = TttParams::init(
        &cfg,
        ponder_model::FastModelKind::Mlp,
        7,
        DType::F32,
        &Device::Cpu,
    )?;
    params.wo = randn(params.wo.dims(), 8, 0.2, DType::F32)?;
    let fast = FastLayer::Ttt {
        config: cfg,
        params,
    };
    let lm = PonderLm::new(
        &backbone(DType::F32)?,
        FastNorm::init(32, DType::F32, &Device::Cpu)?,
        fast,
    )?;
    let dir = tempfile::tempdir().map_err(candle::Error::wrap)?;
    checkpoint::save(&lm, dir.path())?;
    let text = std::fs::read_to_string(dir.path().join(checkpoint::CONFIG_FILE))
        .map_err(candle::Error::wrap)?;
    assert!(text.contains("\"kind\": \"ttt_mlp\""), "{text}");
    assert!(!text.contains("fast_model"), "{text}");
    let back = checkpoint::load(dir.path(), lm.backbone_model())?;
    let x = ids(1, 10)?;
    let (a, b) = (
        lm.chunk(&x, &lm.initial_state(1)?, 1)?,
        back.chunk(&x, &back.initial_state(1)?, 1)?,
    );
    assert_close(&a.update_loss, &b.update_loss, 0.0, 0.0)?;
    assert!(max_abs_diff(&a.update_loss, &a.skip_loss)? > 0.0);
    Ok(())
}

#[test]
fn update_zero_is_skip() -> Result<()> {
    let lm = lm(DType::F32, true)?;
    let x = ids(2, 12)?;
    let hidden = lm.backbone(&x)?;
    let state = lm.initial_state(2)?;
    let up = lm.update(&hidden, &x, &state, 0)?;
    assert_close(&up.features, &hidden, 0.0, 0.0)?;
    let (FastState::Ttt(before), FastState::Ttt(after)) = (&state, &up.state) else {
        panic!("expected TTT states")
    };
    assert_close(&after.w[0], &before.w[0], 0.0, 0.0)?;
    let (init, s0, s1) = up.stats.chunk_means()?;
    assert_eq!(s0, s1);
    let (_, s0_one, s1_one) = lm.update(&hidden, &x, &state, 1)?.stats.chunk_means()?;
    assert_eq!((init, s0), (init, s0_one));
    assert!(s1_one != s0_one);
    Ok(())
}

/// SKIP on a carried TTT state: the backbone's hidden states plus the layer's read under that
/// state ([`ponder_ttt::TttParams::read`]), the state returned as it was.
#[test]
fn a_ttt_read_adds_the_layers_read_to_the_hidden_states() -> Result<()> {
    let lm = lm(DType::F64, true)?;
    let x = ids(2, 12)?;
    let hidden = lm.backbone(&x)?;
    let carried = lm
        .update(&hidden, &x, &lm.initial_state(x.dim(0)?)?, 1)?
        .state;
    let read = lm.read(&hidden, &x, &carried)?;
    let (FastLayer::Ttt { config, params }, FastState::Ttt(s)) = (lm.fast_layer(), &carried) else {
        panic!("a TTT layer")
    };
    let y = params.read(config, &lm.fast_norm().forward(&hidden)?, s)?.y;
    assert_close(&read.features, &(&hidden + y)?, 0.0, 0.0)?;
    let FastState::Ttt(back) = &read.state else {
        panic!("a TTT state")
    };
    assert_close(&back.w[0], &s.w[0], 0.0, 0.0)?;
    Ok(())
}

/// The per-sequence signals average to the pooled statistics of the batch, under a carried
/// state, and a state split into rows and stacked again reads the same.
#[test]
fn sequence_signals_average_to_the_pooled_signal() -> Result<()> {
    let lm = lm(DType::F64, true)?;
    let x = ids(3, 12)?;
    let hidden = lm.backbone(&x)?;
    let carried = lm.update(&hidden, &x, &lm.initial_state(3)?, 1)?.state;
    let rows = lm.sequence_signals(&hidden, &x, &carried)?;
    let (init, step_0, _) = lm.signal(&hidden, &x, &carried, 1)?.chunk_means()?;
    let mean = |f: fn(&ponder_model::SequenceSignal) -> f64| rows.iter().map(f).sum::<f64>() / 3.0;
    assert!((mean(|s| s.recon) - step_0).abs() < 1e-12);
    assert!((mean(|s| s.recon_init) - init).abs() < 1e-12);
    let parts = (0..3).map(|i| carried.row(i)).collect::<Result<Vec<_>>>()?;
    let again = FastState::cat(&parts.iter().collect::<Vec<_>>())?;
    let a = lm.read(&hidden, &x, &again)?;
    let b = lm.read(&hidden, &x, &carried)?;
    assert_close(&a.features, &b.features, 0.0, 0.0)
}
