//! Running normalization of the feature vectors ([`ObsNorm`]), as CleanRL's PPO for continuous
//! control wraps its environments (Gym's `NormalizeObservation`): each feature's running mean and
//! variance over every vector seen in training, merged batch by batch (Chan et al.'s parallel
//! update, the count starting at 1e-4 with mean 0 and variance 1), and each vector mapped to
//! `clip((x − mean) / √(var + 1e-8), ±10)`. The learned gate's 33 features range from
//! thousandths (token statistics over the vocabulary) to a hundred (the clipped hidden-state
//! extremes); without this the first `tanh` layer saturates on the large ones.
//!
//! Training updates the statistics before each batch is normalized; inference reads them frozen.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The count the statistics start from (Gym's `RunningMeanStd` epsilon).
const START_COUNT: f64 = 1e-4;

/// Added to the variance before its square root.
const VAR_EPS: f64 = 1e-8;

/// The bound of a normalized value.
const CLIP: f64 = 10.0;

/// Running per-feature mean and variance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsNorm {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature (population) variance.
    pub var: Vec<f64>,
    /// The vectors merged so far (plus the start count).
    pub count: f64,
}

impl ObsNorm {
    /// Statistics for `width` features before any vector.
    pub fn new(width: usize) -> Self {
        Self {
            mean: vec![0.0; width],
            var: vec![1.0; width],
            count: START_COUNT,
        }
    }

    fn check(&self, obs: &[f32]) -> Result<usize> {
        let w = self.mean.len();
        if w == 0 || obs.len() % w != 0 || self.var.len() != w {
            return Err(Error::Config(format!(
                "feature normalization of width {w} (variance of width {}) given {} values",
                self.var.len(),
                obs.len()
            )));
        }
        Ok(w)
    }

    /// Merges the rows of `obs` (`rows · width` values) into the statistics.
    pub fn update(&mut self, obs: &[f32]) -> Result<()> {
        let w = self.check(obs)?;
        let n = (obs.len() / w) as f64;
        if n == 0.0 {
            return Ok(());
        }
        let total = self.count + n;
        for j in 0..w {
            let col = obs.iter().skip(j).step_by(w).map(|&x| f64::from(x));
            let mean = col.clone().sum::<f64>() / n;
            let var = col.map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let delta = mean - self.mean[j];
            let m2 = self.var[j] * self.count + var * n + delta * delta * self.count * n / total;
            self.mean[j] += delta * n / total;
            self.var[j] = m2 / total;
        }
        self.count = total;
        Ok(())
    }

    /// The rows of `obs` normalized and clipped.
    pub fn apply(&self, obs: &[f32]) -> Result<Vec<f32>> {
        let w = self.check(obs)?;
        Ok(obs
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let j = i % w;
                ((f64::from(x) - self.mean[j]) / (self.var[j] + VAR_EPS).sqrt()).clamp(-CLIP, CLIP)
                    as f32
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_batches_give_the_statistics_of_all_rows() -> Result<()> {
        // Two features; rows (1, 10), (3, 10), (5, 40) in two batches.
        let mut n = ObsNorm::new(2);
        n.update(&[1.0, 10.0, 3.0, 10.0])?;
        n.update(&[5.0, 40.0])?;
        // With the start count c = 1e-4 at mean 0, variance 1: the pooled moments of the rows
        // and a pseudo-row of weight c.
        let c = START_COUNT;
        let total = 3.0 + c;
        let mean0 = 9.0 / total;
        let var0 = (c * (1.0 + mean0 * mean0)
            + [1.0f64, 3.0, 5.0]
                .iter()
                .map(|x| (x - mean0).powi(2))
                .sum::<f64>())
            / total;
        assert!((n.mean[0] - mean0).abs() < 1e-12, "{}", n.mean[0]);
        assert!((n.var[0] - var0).abs() < 1e-9, "{} vs {var0}", n.var[0]);
        assert!((n.count - total).abs() < 1e-12);
        let mean1 = 60.0 / total;
        assert!((n.mean[1] - mean1).abs() < 1e-12);
        // Normalized and clipped.
        let out = n.apply(&[3.0, 1e6])?;
        let want = (3.0 - mean0) / (var0 + VAR_EPS).sqrt();
        assert!((f64::from(out[0]) - want).abs() < 1e-6);
        assert_eq!(out[1], 10.0);
        let e = n.apply(&[1.0, 2.0, 3.0]).unwrap_err().to_string();
        assert!(e.contains("width 2") && e.contains("3 values"), "{e}");
        Ok(())
    }
}
