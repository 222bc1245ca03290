//! Choosing the next token from its logits: greedy (the first of the largest), or sampled at a
//! temperature from the smallest set of tokens whose probability reaches `top_p` (nucleus
//! sampling), from a seeded ChaCha stream so that a seed gives the same text on every machine.

use candle::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The token with the largest logit (the lowest id among equals).
    Greedy,
    /// A draw from `softmax(logits / temperature)`, restricted to the smallest set of most
    /// probable tokens whose probability reaches `top_p` and renormalized.
    Sample {
        /// The temperature, > 0.
        temperature: f64,
        /// The nucleus mass, in (0, 1].
        top_p: f64,
        /// The seed of the draws.
        seed: u64,
    },
}

/// Picks tokens under a [`Sampling`], keeping its random stream.
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler; an error for a temperature that is not > 0 or a `top_p` outside (0, 1].
    pub fn new(sampling: Sampling) -> Result<Self> {
        let seed = match sampling {
            Sampling::Greedy => 0,
            Sampling::Sample {
                temperature,
                top_p,
                seed,
            } => {
                if !(temperature.is_finite() && temperature > 0.0) {
                    candle::bail!("decode: temperature {temperature} must be > 0 (greedy decoding is --greedy)");
                }
                if !(top_p > 0.0 && top_p <= 1.0) {
                    candle::bail!("decode: top_p {top_p} must lie in (0, 1]");
                }
                seed
            }
        };
        Ok(Self {
            sampling,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The next token from `logits`.
    ///
    /// # Shapes
    /// - `logits`: `(n_logits)`.
    pub fn pick(&mut self, logits: &Tensor) -> Result<u32> {
        let logits = ponder_nn::to_f64(logits)?.to_vec1::<f64>()?;
        if logits.iter().any(|v| v.is_nan()) {
            candle::bail!("decode: the logits hold NaN");
        }
        match self.sampling {
            Sampling::Greedy => Ok(argmax(&logits)),
            Sampling::Sample {
                temperature, top_p, ..
            } => {
                let u: f64 = self.rng.random();
                Ok(nucleus(&logits, temperature, top_p, u))
            }
        }
    }
}

/// The index of the first largest value.
fn argmax(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// The token that the uniform draw `u` ∈ [0, 1) picks from the nucleus of
/// `softmax(logits / temperature)` of mass `top_p`.
fn nucleus(logits: &[f64], temperature: f64, top_p: f64, u: f64) -> u32 {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Most probable first; equal probabilities by id, so the order is deterministic.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for p in &probs {
        mass += p.1 / total;
        kept += 1;
        if mass >= top_p {
            break;
        }
    }
    let nucleus = &probs[..kept];
    let nucleus_total: f64 = nucleus.iter().map(|p| p.1).sum();
    let target = u * nucleus_total;
    let mut acc = 0.0;
    for p in nucleus {
        acc += p.1;
        if target < acc {
            return p.0;
        }
    }
    nucleus[kept - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_largest() {
        assert_eq!(argmax(&[0.0, 3.0, 1.0, 3.0]), 1);
    }

    #[test]
    fn the_nucleus_keeps_the_smallest_set_reaching_top_p() {
        // Probabilities 0.5, 0.3, 0.2 at temperature 1.
        let logits = [0.5f64.ln(), 0.3f64.ln(), 0.2f64.ln()];
        // top_p 0.7: tokens 0 and 1, renormalized to 5/8 and 3/8.
        assert_eq!(nucleus(&logits, 1.0, 0.7, 0.0), 0);
        assert_eq!(nucleus(&logits, 1.0, 0.7, 0.62), 0);
        assert_eq!(nucleus(&logits, 1.0, 0.7, 0.63), 1);
        assert_eq!(nucleus(&logits, 1.0, 0.7, 0.999), 1);
        // top_p 1: all three.
        assert_eq!(nucleus(&logits, 1.0, 1.0, 0.81), 2);
        // A low temperature concentrates the mass on the largest.
        assert_eq!(nucleus(&logits, 0.01, 0.9, 0.999), 0);
    }

    #[test]
    fn draws_follow_the_distribution_and_the_seed() -> Result<()> {
        let logits = Tensor::new(
            &[0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()],
            &candle::Device::Cpu,
        )?;
        let sampling = Sampling::Sample {
            temperature: 1.0,
            top_p: 1.0,
            seed: 7,
        };
        let mut s = Sampler::new(sampling)?;
        let mut counts = [0usize; 3];
        let draws: Vec<u32> = (0..20_000).map(|_| s.pick(&logits).unwrap()).collect();
        for &d in &draws {
            counts[d as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.5, 0.3, 0.2]) {
            assert!((*c as f64 / 20_000.0 - p).abs() < 0.015, "{counts:?}");
        }
        let mut again = Sampler::new(sampling)?;
        let replay: Vec<u32> = (0..20_000).map(|_| again.pick(&logits).unwrap()).collect();
        assert_eq!(draws, replay);
        Ok(())
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |temperature, top_p| {
            Sampler::new(Sampling::Sample {
                temperature,
                top_p,
                seed: 0,
            })
            .err()
            .map(|e| e.to_string())
        };
        assert!(bad(0.0, 0.9).unwrap().contains("temperature"));
        assert!(bad(1.0, 0.0).unwrap().contains("top_p"));
        assert!(bad(1.0, 1.5).unwrap().contains("top_p"));
        assert!(bad(0.8, 0.95).is_none());
    }
}
