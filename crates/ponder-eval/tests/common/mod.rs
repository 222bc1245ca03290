//! The small random models the evaluation tests share.

#![allow(dead_code)] // each test binary uses its own subset

use candle::{DType, Device};
use ponder_gpt2::{Gpt2Config, LoadOptions};
use ponder_model::{FastLayer, FastNorm, PonderLm, TttConfig, TttParams};

/// A tiny random GPT-2 (vocabulary 300, width 64) with a TTT-Linear layer in f32.
pub fn lm() -> PonderLm {
    lm_in(DType::F32)
}

/// [`lm`] in `dtype`.
pub fn lm_in(dtype: DType) -> PonderLm {
    let config = Gpt2Config {
        vocab_size: 300,
        ..Gpt2Config::tiny()
    };
    let options = LoadOptions {
        dtype,
        device: Device::Cpu,
        pad_token: None,
    };
    let backbone = ponder_gpt2::random(config, 1, &options).unwrap();
    let ttt = TttConfig::for_gpt2(64, 4);
    let mut params = TttParams::init(
        &ttt,
        ponder_model::FastModelKind::Linear,
        2,
        dtype,
        &Device::Cpu,
    )
    .unwrap();
    // A nonzero output projection (it is zero at initialization), so UPDATE differs from SKIP.
    let mut rng = ponder_nn::init::rng_for(3, "eval-test");
    params.wo =
        ponder_nn::init::normal(params.wo.dims(), 0.2, &mut rng, dtype, &Device::Cpu).unwrap();
    let fast = FastLayer::Ttt {
        config: ttt,
        params,
    };
    PonderLm::new(
        &backbone,
        FastNorm::init(64, dtype, &Device::Cpu).unwrap(),
        fast,
    )
    .unwrap()
}

/// The same backbone in f64 with the LoRA fast layer (rank 4, blocks of 8, step 0.5); `B`
/// starts nonzero so that a read differs from the backbone.
pub fn lora_lm() -> PonderLm {
    let config = Gpt2Config {
        vocab_size: 300,
        ..Gpt2Config::tiny()
    };
    let options = LoadOptions {
        dtype: DType::F64,
        device: Device::Cpu,
        pad_token: None,
    };
    let backbone = ponder_gpt2::random(config, 1, &options).unwrap();
    let lora = ponder_model::LoraFastConfig {
        lora_dropout: 0.0,
        ..ponder_model::LoraFastConfig::original(
            64,
            4,
            ponder_model::LoraUpdate {
                lr: 0.5,
                block_size: 8,
                max_grad_norm: None,
            },
        )
    };
    let fast = FastLayer::init(
        ponder_model::FastLayerKind::Lora,
        None,
        Some(&lora),
        2,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let mut rng = ponder_nn::init::rng_for(4, "eval-test-lora");
    let fast = fast
        .with_tensors(|name| {
            let (_, t) = fast
                .named()
                .into_iter()
                .find(|(k, _)| k == name)
                .expect("a known name");
            if name.contains("lora_B") {
                ponder_nn::init::normal(t.dims(), 0.1, &mut rng, DType::F64, &Device::Cpu)
            } else {
                Ok(t)
            }
        })
        .unwrap();
    PonderLm::new(
        &backbone,
        FastNorm::init(64, DType::F64, &Device::Cpu).unwrap(),
        fast,
    )
    .unwrap()
}
