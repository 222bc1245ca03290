//! The small random model the evaluation tests share.

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
