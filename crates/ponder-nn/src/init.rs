//! Seeded parameter initialization, independent of Candle's unseedable CPU generator.

use candle::{DType, Device, Result, Shape, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A tensor of normal(0, std) samples drawn from `rng`, in f32 then cast to `dtype`.
pub fn normal(
    shape: impl Into<Shape>,
    std: f64,
    rng: &mut ChaCha8Rng,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let dist = Normal::new(0.0f32, std as f32)
        .map_err(|e| candle::Error::Msg(format!("init: bad std {std}: {e}")))?;
    let data: Vec<f32> = (0..shape.elem_count()).map(|_| dist.sample(rng)).collect();
    Tensor::from_vec(data, shape, device)?.to_dtype(dtype)
}

/// A tensor of truncated-normal samples as Flax's `lecun_normal` draws them: standard normal
/// values rejected outside `[−2, 2]`, scaled so that the result has standard deviation `std`.
pub fn truncated_normal(
    shape: impl Into<Shape>,
    std: f64,
    rng: &mut ChaCha8Rng,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    // Standard deviation of N(0, 1) truncated to [−2, 2].
    const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;
    let shape = shape.into();
    let unit = Normal::new(0.0f64, 1.0).expect("unit normal");
    let scale = std / TRUNCATED_STD;
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| loop {
            let z: f64 = unit.sample(rng);
            if z.abs() <= 2.0 {
                break (z * scale) as f32;
            }
        })
        .collect();
    Tensor::from_vec(data, shape, device)?.to_dtype(dtype)
}

/// A generator seeded from `seed` and a stream name ([`ponder_base::derive_seed`], index 0), so
/// that each parameter gets its own stream and adding a parameter does not shift the others.
pub fn rng_for(seed: u64, stream: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(ponder_base::derive_seed(seed, stream, 0))
}
