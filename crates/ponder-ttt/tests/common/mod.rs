//! Random inputs and layers the TTT-layer tests share.

#![allow(dead_code)] // each test binary uses its own subset

use candle::{DType, Device, Result, Tensor};
use ponder_ttt::{FastModelKind, TttConfig, TttParams};

/// A seeded normal tensor on the CPU.
pub fn randn(shape: &[usize], seed: u64, std: f64, dtype: DType) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "layer-test");
    ponder_nn::init::normal(shape, std, &mut rng, dtype, &Device::Cpu)
}

/// Initial TTT-Linear parameters with a nonzero output projection and initial fast weights, so
/// that the output shows everything.
pub fn params(cfg: &TttConfig, seed: u64, dtype: DType) -> Result<TttParams> {
    let mut p = TttParams::init(cfg, FastModelKind::Linear, seed, dtype, &Device::Cpu)?;
    p.wo = randn(p.wo.dims(), seed + 100, 0.3, dtype)?;
    p.fast_init.w[0] = randn(p.fast_init.w[0].dims(), seed + 101, 0.3, dtype)?;
    Ok(p)
}
