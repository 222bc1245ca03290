//! Wall-clock cost of SKIP, UPDATE_1, the gating signal alone and the one-pass comparison per
//! chunk-batch, measured in one process on the same inputs (medians over repetitions after a
//! warm-up), so that their ratios are comparable. The report's latency table comes from here;
//! the criterion benches of `ponder-model` measure the same paths with statistics.

use std::time::Instant;

use candle::{Device, Tensor};
use ponder_model::PonderLm;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Medians of one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// What was measured (e.g. `tiny (trained)`, `gpt2 (random weights)`).
    pub label: String,
    /// Sequences per chunk-batch.
    pub rows: usize,
    /// Tokens per chunk.
    pub tokens: usize,
    /// Timed repetitions of each path (after one warm-up).
    pub reps: usize,
    /// SKIP: backbone, head and loss; seconds.
    pub skip_s: f64,
    /// UPDATE_1: backbone, fast layer, head and loss; seconds.
    pub update_s: f64,
    /// The gating signal alone (the statistics of the update, no readout); seconds.
    pub signal_s: f64,
    /// The comparison pass (both paths sharing backbone and fast layer); seconds.
    pub compare_s: f64,
}

impl Latency {
    /// UPDATE_1 over SKIP.
    pub fn update_over_skip(&self) -> f64 {
        self.update_s / self.skip_s
    }

    /// The signal as a fraction of SKIP.
    pub fn signal_over_skip(&self) -> f64 {
        self.signal_s / self.skip_s
    }

    /// The comparison pass over one UPDATE forward.
    pub fn compare_over_update(&self) -> f64 {
        self.compare_s / self.update_s
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// Median seconds of `f` over `reps` runs after one warm-up.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut xs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        xs.push(t.elapsed().as_secs_f64());
    }
    Ok(median(xs))
}

/// Measures the paths of `lm` on seeded random ids of shape `(rows, tokens)`.
pub fn measure(
    lm: &PonderLm,
    label: &str,
    rows: usize,
    tokens: usize,
    reps: usize,
    seed: u64,
    device: &Device,
) -> Result<Latency> {
    if reps == 0 || rows == 0 || tokens < 2 {
        return Err(Error::Config(format!(
            "latency: need reps, rows > 0 and tokens >= 2, got {reps}, {rows}, {tokens}"
        )));
    }
    let vocab = lm.backbone_model().config().vocab_size as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<u32> = (0..rows * tokens)
        .map(|_| rng.random_range(0..vocab))
        .collect();
    let ids = Tensor::from_vec(ids, (rows, tokens), device)?;
    let sync = |t: &Tensor| -> Result<()> {
        t.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    };
    let skip_s = time(reps, || {
        let h = lm.backbone(&ids)?;
        sync(&lm.next_token_loss(&h, &ids)?)
    })?;
    let update_s = time(reps, || {
        let h = lm.backbone(&ids)?;
        let up = lm.update(&h, &ids, &lm.initial_state(rows)?, 1)?;
        sync(&lm.next_token_loss(&up.features, &ids)?)
    })?;
    let hidden = lm.backbone(&ids)?;
    let signal_s = time(reps, || {
        let stats = lm.signal(&hidden, &ids, &lm.initial_state(rows)?, 1)?;
        sync(&stats.step_0)
    })?;
    let compare_s = time(reps, || {
        let r = lm.chunk(&ids, &lm.initial_state(rows)?, 1)?;
        sync(&r.skip_loss)?;
        sync(&r.update_loss)
    })?;
    Ok(Latency {
        label: label.to_string(),
        rows,
        tokens,
        reps,
        skip_s,
        update_s,
        signal_s,
        compare_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
