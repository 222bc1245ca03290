//! Wall-clock cost of SKIP, UPDATE_1, UPDATE_2, UPDATE_4, the gating signal alone, the
//! one-pass comparison and SKIP with the learned gate's features per chunk-batch, measured in one process on the same inputs, the paths taking turns (medians
//! over repetitions after a warm-up), so that their ratios are comparable. The report's latency
//! table comes from here; the criterion benches of `ponder-model` measure the same paths with
//! statistics.

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
    /// Timed rounds (after two warm-up rounds): at least the `reps` asked for, more for fast
    /// paths (about two seconds of rounds, at most 1,000).
    pub reps: usize,
    /// SKIP: backbone, head and loss; seconds.
    pub skip_s: f64,
    /// UPDATE_1: backbone, fast layer, head and loss; seconds.
    pub update_s: f64,
    /// UPDATE_2: the same with two inner steps; seconds.
    pub update_2_s: f64,
    /// UPDATE_4: the same with four inner steps; seconds.
    pub update_4_s: f64,
    /// UPDATE_1, UPDATE_2 and UPDATE_4 over SKIP: the median over rounds of each round's ratio
    /// (the paths of a round run back to back, so the machine's drift between rounds cancels).
    pub updates_over_skip: [f64; 3],
    /// FLOPs of UPDATE_1, UPDATE_2 and UPDATE_4 over SKIP's, counted from the shapes
    /// (`PonderLm::flops`; the loss left out).
    pub flops_over_skip: [f64; 3],
    /// The gating signal alone (the statistics of the update, no readout); seconds.
    pub signal_s: f64,
    /// The comparison pass (both paths sharing backbone and fast layer); seconds.
    pub compare_s: f64,
    /// SKIP with the learned gate's model features (`PonderLm::probe`: the last attention
    /// weights kept, the head's fused probe, hidden statistics); seconds.
    pub probe_s: f64,
    /// The same over SKIP, the median of each round's ratio.
    pub probe_over_skip: f64,
}

impl std::fmt::Display for Latency {
    /// One line: the shape, SKIP and UPDATE_k in ms, and the ratios (FLOP ratios beside).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} x {} tokens: SKIP {:.1} ms",
            self.label,
            self.rows,
            self.tokens,
            1e3 * self.skip_s
        )?;
        for (i, (k, s)) in self.updates().into_iter().enumerate() {
            write!(
                f,
                ", UPDATE_{k} {:.1} ms ({:.3}x; FLOPs {:.3}x)",
                1e3 * s,
                self.updates_over_skip[i],
                self.flops_over_skip[i]
            )?;
        }
        write!(
            f,
            ", signal {:.1}% of SKIP, comparison {:.3}x UPDATE_1, SKIP with the gate's features {:.3}x",
            100.0 * self.signal_over_skip(),
            self.compare_over_update(),
            self.probe_over_skip
        )
    }
}

impl Latency {
    /// `(k, seconds)` of UPDATE_1, UPDATE_2 and UPDATE_4.
    pub fn updates(&self) -> [(usize, f64); 3] {
        [
            (1, self.update_s),
            (2, self.update_2_s),
            (4, self.update_4_s),
        ]
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

/// Seconds of each of `paths` in each of at least `reps` rounds (one row per path), after
/// `warmup` untimed rounds. The paths take turns within a round, so drift in the machine's
/// speed (other load, frequency, allocator warm-up) reaches every path alike and their ratios
/// stay fair.
fn time_interleaved(
    warmup: usize,
    reps: usize,
    paths: &mut [&mut dyn FnMut() -> Result<()>],
) -> Result<Vec<Vec<f64>>> {
    let start = Instant::now();
    for _ in 0..warmup {
        for f in paths.iter_mut() {
            f()?;
        }
    }
    // Fast paths get more rounds: about two seconds of rounds at least, 1,000 at most.
    let round = start.elapsed().as_secs_f64() / warmup.max(1) as f64;
    let reps = reps.max(((2.0 / round.max(1e-6)) as usize).min(1000));
    let mut times = vec![Vec::with_capacity(reps); paths.len()];
    for _ in 0..reps {
        for (f, xs) in paths.iter_mut().zip(&mut times) {
            let t = Instant::now();
            f()?;
            xs.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times)
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
    let ids = &Tensor::from_vec(ids, (rows, tokens), device)?;
    let sync = |t: &Tensor| -> Result<()> {
        t.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    };
    let hidden = lm.backbone(ids)?;
    let mut skip = || -> Result<()> {
        let h = lm.backbone(ids)?;
        sync(&lm.next_token_loss(&h, ids)?)
    };
    let update_k = |k: usize| {
        move || -> Result<()> {
            let h = lm.backbone(ids)?;
            let up = lm.update(&h, ids, &lm.initial_state(rows)?, k)?;
            sync(&lm.next_token_loss(&up.features, ids)?)
        }
    };
    let (mut update, mut update_2, mut update_4) = (update_k(1), update_k(2), update_k(4));
    let mut signal = || -> Result<()> {
        let stats = lm.signal(&hidden, ids, &lm.initial_state(rows)?, 1)?;
        sync(&stats.step_0)
    };
    let recon = vec![0.0; rows];
    let mut probe = || -> Result<()> {
        let (_, _, losses) = lm.probe(ids, &recon)?;
        std::hint::black_box(losses);
        Ok(())
    };
    let mut compare = || -> Result<()> {
        let r = lm.chunk(ids, &lm.initial_state(rows)?, 1)?;
        sync(&r.skip_loss)?;
        sync(&r.update_loss)
    };
    let rounds = time_interleaved(
        2,
        reps,
        &mut [
            &mut skip,
            &mut update,
            &mut update_2,
            &mut update_4,
            &mut signal,
            &mut compare,
            &mut probe,
        ],
    )?;
    let reps = rounds[0].len();
    let t: Vec<f64> = rounds.iter().cloned().map(median).collect();
    let over_skip = |path: usize| {
        median(
            rounds[path]
                .iter()
                .zip(&rounds[0])
                .map(|(u, s)| u / s)
                .collect(),
        )
    };
    let updates_over_skip = [1, 2, 3].map(over_skip);
    let flops = lm.flops(tokens, &[1, 2, 4]);
    let skip_flops = flops.backbone + flops.head;
    let flops_over_skip = [0, 1, 2].map(|i| (skip_flops + flops.fast[i].1) / skip_flops);
    Ok(Latency {
        label: label.to_string(),
        rows,
        tokens,
        reps,
        skip_s: t[0],
        update_s: t[1],
        update_2_s: t[2],
        update_4_s: t[3],
        updates_over_skip,
        flops_over_skip,
        signal_s: t[4],
        compare_s: t[5],
        probe_s: t[6],
        probe_over_skip: over_skip(6),
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
