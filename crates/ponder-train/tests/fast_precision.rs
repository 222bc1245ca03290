//! Fast-layer training in bf16 mixed precision against f32, on every device the build has: every
//! var of the TTT layer and `fast_norm` gets an f32 gradient through the bf16 cast, the first
//! objective agrees within bf16's precision, and a few steps end close to the f32 steps; the
//! hidden-state cache hands back exactly what the backbone computes.
//!
//! On the CPU, bf16 is emulated (weights rounded to bf16, maths in f32; see
//! `ponder_nn::precision`); on CUDA and Metal it is native.

mod common;

use candle::{DType, Device, Tensor};
use common::{assert_bf16_grads_follow_f32, named_grads, t};
use ponder_experiment::FastConfig;
use ponder_gpt2::{Gpt2, Gpt2Config, LoadOptions};
use ponder_model::{FastLayerKind, TttConfig};
use ponder_nn::Precision;
use ponder_train::fast::objective;
use ponder_train::{fast_step, FastModel, HiddenCache};

const VOCAB: usize = 64;
const LEN: usize = 32;

fn backbone(dev: &Device) -> candle::Result<Gpt2> {
    let config = Gpt2Config {
        vocab_size: VOCAB,
        n_positions: LEN,
        n_embd: 32,
        n_head: 2,
        ..Gpt2Config::tiny()
    };
    let options = LoadOptions {
        dtype: DType::F32,
        device: dev.clone(),
        pad_token: None,
    };
    ponder_gpt2::random(config, 5, &options)
}

fn fast_config(precision: Precision) -> FastConfig {
    FastConfig {
        backbone: "random".into(),
        layer: FastLayerKind::TttLinear,
        mode: Default::default(),
        chunks_per_window: None,
        chunk_len: LEN,
        k: 1,
        steps: 1,
        batch_size: 4,
        lr: 1e-2,
        grad_clip: 1.0,
        ssl_weight: 0.1,
        eval_every: 1,
        eval_chunks: 1,
        checkpoint_every: 1,
        ttt: Some(TttConfig {
            head_dim: 16,
            mini_batch_size: 8,
            ..TttConfig::for_gpt2(32, 2)
        }),
        lora: None,
        precision,
        hidden_cache_mb: 16,
    }
}

/// Chunks of a learnable stream: each token is `5 · previous + 3` (mod `VOCAB`), with a fixed
/// token in every seventh place.
fn stream() -> Vec<u32> {
    let mut cur = 1u32;
    (0..8 * LEN)
        .map(|i| {
            cur = if i % 7 == 0 {
                2
            } else {
                (5 * cur + 3) % VOCAB as u32
            };
            cur
        })
        .collect()
}

fn chunk_ids(dev: &Device, idx: &[usize]) -> candle::Result<Tensor> {
    t(ponder_train::backbone::windows_tensor(
        &stream(),
        idx,
        LEN,
        dev,
    ))
}

/// The objective's gradient for every var in `precision`, in var order, after one step: `wo`
/// starts at zero, which leaves the gate `wg` without a gradient at initialization.
fn grads(dev: &Device, precision: Precision) -> candle::Result<Vec<(String, Tensor)>> {
    let f = fast_config(precision);
    let model = t(FastModel::new(&backbone(dev)?, &f, 0))?;
    let mut opt = t(model.optimizer())?;
    let warm = chunk_ids(dev, &[4, 5, 6, 7])?;
    t(fast_step(
        &model,
        &mut opt,
        &[t(model.hidden(&warm))?],
        std::slice::from_ref(&warm),
        &f,
    ))?;
    let ids = chunk_ids(dev, &[0, 1, 2, 3])?;
    let hidden = t(model.hidden(&ids))?;
    let obj = t(objective(
        &t(model.compute_lm())?,
        std::slice::from_ref(&hidden),
        std::slice::from_ref(&ids),
        0.1,
    ))?;
    assert_eq!(obj.loss.dtype(), DType::F32);
    let g = obj.loss.backward()?;
    Ok(named_grads(&g, model.vars(), precision))
}

fn every_fast_var_gets_an_f32_gradient_in_bf16(dev: &Device) -> candle::Result<()> {
    let full = grads(dev, Precision::F32)?;
    let half = grads(dev, Precision::Bf16)?;
    assert!(full.len() >= 10, "{} vars", full.len());
    assert_bf16_grads_follow_f32(&full, &half)
}

/// The objective's CE before training and after `steps` fast steps, in `precision`.
fn trajectory(dev: &Device, precision: Precision, steps: usize) -> candle::Result<(f64, f64)> {
    let f = fast_config(precision);
    let model = t(FastModel::new(&backbone(dev)?, &f, 0))?;
    let mut opt = t(model.optimizer())?;
    let mut cache = HiddenCache::new(1 << 20);
    let idx = [0, 1, 2, 3];
    let ids = chunk_ids(dev, &idx)?;
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..steps {
        let hidden = t(cache.get(&model, &stream(), &idx, LEN))?;
        let s = t(fast_step(
            &model,
            &mut opt,
            std::slice::from_ref(&hidden),
            std::slice::from_ref(&ids),
            &f,
        ))?;
        first.get_or_insert(s.loss);
        last = s.loss;
    }
    assert_eq!(cache.hits(), 4 * (steps as u64 - 1));
    Ok((first.expect("at least one step"), last))
}

fn bf16_fast_steps_track_f32(dev: &Device) -> candle::Result<()> {
    let (first32, last32) = trajectory(dev, Precision::F32, 30)?;
    let (first16, last16) = trajectory(dev, Precision::Bf16, 30)?;
    // The first loss (before any update) within two bf16 roundings, 2⁻⁷ ≈ 0.8%; the CPU
    // emulation gives about 1e-4.
    assert!(
        (first16 - first32).abs() <= first32 / 128.0,
        "first loss: f32 {first32}, bf16 {first16}"
    );
    // 30 steps on one batch halve the loss at least; bf16 ends within 5% of the drop of f32.
    assert!(
        last32 < 0.5 * first32,
        "f32 did not learn: {first32} → {last32}"
    );
    assert!(
        (last16 - last32).abs() < 0.05 * (first32 - last32),
        "last loss: f32 {last32}, bf16 {last16} (from {first32})"
    );
    Ok(())
}

fn the_cache_returns_what_the_backbone_computes(dev: &Device) -> candle::Result<()> {
    let model = t(FastModel::new(
        &backbone(dev)?,
        &fast_config(Precision::F32),
        0,
    ))?;
    // Room for two of the three chunks: the third is recomputed on every call.
    let one = 32 * LEN * 4;
    let mut cache = HiddenCache::new(2 * one);
    let idx = [2, 0, 5];
    let direct = t(model.hidden(&chunk_ids(dev, &idx)?))?;
    for round in 0..3 {
        let cached = t(cache.get(&model, &stream(), &idx, LEN))?;
        let diff = ponder_nn::max_abs_diff(&cached, &direct)?;
        assert_eq!(diff, 0.0, "round {round}");
    }
    assert_eq!(cache.hits(), 2 * 2);
    Ok(())
}

ponder_nn::test_device!(
    every_fast_var_gets_an_f32_gradient_in_bf16,
    every_fast_var_gets_an_f32_gradient_in_bf16_cpu,
    every_fast_var_gets_an_f32_gradient_in_bf16_cuda,
    every_fast_var_gets_an_f32_gradient_in_bf16_metal
);
ponder_nn::test_device!(
    bf16_fast_steps_track_f32,
    bf16_fast_steps_track_f32_cpu,
    bf16_fast_steps_track_f32_cuda,
    bf16_fast_steps_track_f32_metal
);
ponder_nn::test_device!(
    the_cache_returns_what_the_backbone_computes,
    the_cache_returns_what_the_backbone_computes_cpu,
    the_cache_returns_what_the_backbone_computes_cuda,
    the_cache_returns_what_the_backbone_computes_metal
);
