//! Dropout with an explicit, seeded random source, so that training runs are deterministic.
//!
//! Candle's CPU random tensors draw from a generator that cannot be seeded; this one draws its
//! masks from a `ChaCha8Rng` owned by the caller.

use candle::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by `1/(1−p)`.
pub struct Dropout {
    p: f64,
    rng: ChaCha8Rng,
}

impl Dropout {
    /// A dropout source with probability `p` in `[0, 1)`, seeded with `seed`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            candle::bail!("dropout: probability must be in [0, 1), got {p}");
        }
        Ok(Self {
            p,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Applies dropout with probability `p` (which may differ from the default, e.g. 0 to skip).
    ///
    /// # Shapes
    /// - `x`: any shape; returns the same shape.
    pub fn apply_p(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.random::<f64>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }

    /// Applies dropout with this source's probability.
    ///
    /// # Shapes
    /// - `x`: any shape; returns the same shape.
    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        self.apply_p(x, self.p)
    }
}
