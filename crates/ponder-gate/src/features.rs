//! The learned gate's feature vector: per stream and chunk, the original PonderTTT's 32 features
//! in its order (`docs/design/policy.md`), plus the reconstruction signal under the current
//! fast-weight state.
//!
//! The model side computes the aggregates of its outputs on the chunk's SKIP path
//! ([`ModelStats`]); this module owns the vector: the order, the clips, the statistics of the
//! token ids, the stream's history ([`History`]) and the position features.

use crate::error::{Error, Result};

/// Width of the feature vector.
pub const WIDTH: usize = 33;

/// The features' names, in their order.
pub const NAMES: [&str; WIDTH] = [
    "entropy_mean",
    "entropy_max",
    "neg_log_max_p_mean",
    "neg_log_max_p_max",
    "hidden_mean",
    "hidden_std",
    "hidden_sparsity",
    "hidden_max",
    "hidden_min",
    "hidden_range",
    "attention_entropy_mean",
    "attention_entropy_max",
    "attention_range_mean",
    "attention_sparsity",
    "token_diversity",
    "adjacent_repeat_rate",
    "token_mean",
    "token_std",
    "top5_std",
    "max_p_mean",
    "top5_entropy",
    "adjacent_difference_rms",
    "difficulty_ema",
    "difficulty_ema_std",
    "cost_ema",
    "budget_remaining",
    "length_over_norm",
    "log_mean_token",
    "log_max_token",
    "position_mean",
    "position_std",
    "valid_fraction",
    "recon",
];

/// Aggregates of the model's outputs on one chunk of one stream, over its valid tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelStats {
    /// Entropy of the SKIP next-token distribution: mean and max over tokens.
    pub entropy: (f64, f64),
    /// `−log max_v p(v)` of the same: mean and max.
    pub neg_log_max_p: (f64, f64),
    /// The last hidden state (after the final LayerNorm) over tokens and channels: mean, std,
    /// fraction with `|h| < 0.01`, max, min.
    pub hidden: [f64; 5],
    /// The last attention layer's weights over heads and query rows: mean and max row entropy,
    /// mean row range (max − min), fraction below 0.01.
    pub attention: [f64; 4],
    /// The five largest probabilities renormalized to sum 1: the mean over tokens of their
    /// standard deviation and of their entropy; and the mean of the largest probability.
    pub top5_std: f64,
    /// The mean over tokens of the largest probability.
    pub max_p_mean: f64,
    /// See [`ModelStats::top5_std`].
    pub top5_entropy: f64,
    /// The reconstruction signal under the current fast-weight state (`recon`).
    pub recon: f64,
}

/// One stream's running history, updated after each of its chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    alpha: f64,
    budget: f64,
    difficulty: f64,
    difficulty_sq: f64,
    cost: f64,
    cost_sum: f64,
    chunks: usize,
}

impl History {
    /// A fresh history with EMA rate `alpha` (0.1 in the original) against a mean cost per
    /// chunk of `budget`; the EMAs start at 0.
    pub fn new(alpha: f64, budget: f64) -> Result<Self> {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(Error::Config(format!(
                "features: EMA rate alpha must be in (0, 1], got {alpha}"
            )));
        }
        if !(budget.is_finite() && budget > 0.0) {
            return Err(Error::Config(format!(
                "features: the cost budget must be > 0, got {budget}"
            )));
        }
        Ok(Self {
            alpha,
            budget,
            difficulty: 0.0,
            difficulty_sq: 0.0,
            cost: 0.0,
            cost_sum: 0.0,
            chunks: 0,
        })
    }

    /// After a chunk: its difficulty (the SKIP loss) and the cost of the action taken.
    pub fn observe(&mut self, difficulty: f64, cost: f64) {
        let ema = |old: f64, x: f64| (1.0 - self.alpha) * old + self.alpha * x;
        self.difficulty = ema(self.difficulty, difficulty);
        self.difficulty_sq = ema(self.difficulty_sq, difficulty * difficulty);
        self.cost = ema(self.cost, cost);
        self.cost_sum += cost;
        self.chunks += 1;
    }

    /// `[difficulty EMA, its EMA std √(E[x²] − E[x]² + 1e-8), cost EMA, budget remaining]`,
    /// the last `1 − (mean cost so far) / budget` (1 before the first chunk; negative once
    /// overspent).
    pub fn features(&self) -> [f64; 4] {
        let var = (self.difficulty_sq - self.difficulty * self.difficulty).max(0.0);
        let spent = if self.chunks == 0 {
            0.0
        } else {
            self.cost_sum / self.chunks as f64 / self.budget
        };
        [self.difficulty, (var + 1e-8).sqrt(), self.cost, 1.0 - spent]
    }
}

/// Mean and population standard deviation.
fn mean_std(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count().max(1) as f64;
    let mean = xs.clone().sum::<f64>() / n;
    let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The feature vector of one chunk: `ids` its valid tokens (at most `chunk_len`), `vocab` the
/// vocabulary size, `length_norm` the length the original divides by (512).
pub fn vector(
    model: &ModelStats,
    ids: &[u32],
    chunk_len: usize,
    vocab: usize,
    length_norm: usize,
    history: &History,
) -> Result<[f32; WIDTH]> {
    if ids.is_empty() || ids.len() > chunk_len || vocab == 0 || length_norm == 0 {
        return Err(Error::Config(format!(
            "features: {} valid tokens in a chunk of {chunk_len}, vocabulary {vocab}, length norm {length_norm}",
            ids.len()
        )));
    }
    let v = vocab as f64;
    let n = ids.len();
    let (id_mean, id_std) = mean_std(ids.iter().map(|&i| f64::from(i)));
    let pairs = || ids.windows(2).map(|w| (f64::from(w[0]), f64::from(w[1])));
    let n_pairs = (n - 1).max(1) as f64;
    let repeat = pairs().filter(|(a, b)| a == b).count() as f64 / n_pairs;
    let diff_rms = (pairs().map(|(a, b)| (b - a).powi(2)).sum::<f64>() / n_pairs).sqrt();
    let max_id = ids.iter().copied().max().map_or(0.0, f64::from);
    let (pos_mean, pos_std) = mean_std((0..n).map(|i| i as f64 / chunk_len as f64));
    let clip = |x: f64, m: f64| x.clamp(-m, m);
    let h = &model.hidden;
    let [d_ema, d_std, c_ema, left] = history.features();
    let out: [f64; WIDTH] = [
        clip(model.entropy.0, 10.0),
        clip(model.entropy.1, 10.0),
        clip(model.neg_log_max_p.0, 10.0),
        clip(model.neg_log_max_p.1, 10.0),
        clip(h[0], 100.0),
        clip(h[1], 100.0),
        clip(h[2], 100.0),
        clip(h[3], 100.0),
        clip(h[4], 100.0),
        clip(h[3] - h[4], 100.0),
        model.attention[0],
        model.attention[1],
        model.attention[2],
        model.attention[3],
        id_std / v,
        repeat,
        id_mean / v,
        id_std / v,
        model.top5_std,
        model.max_p_mean,
        model.top5_entropy,
        diff_rms / v,
        d_ema,
        d_std,
        c_ema,
        left,
        n as f64 / length_norm as f64,
        (id_mean / v + 1.0).ln(),
        (max_id / v + 1.0).ln(),
        pos_mean,
        pos_std,
        n as f64 / chunk_len as f64,
        model.recon,
    ];
    if let Some(i) = out.iter().position(|x| !x.is_finite()) {
        return Err(Error::Config(format!(
            "features: {} is {} (not finite)",
            NAMES[i], out[i]
        )));
    }
    Ok(out.map(|x| x as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_statistics_by_hand() -> Result<()> {
        let history = History::new(0.1, 2.0)?;
        let model = ModelStats {
            entropy: (3.0, 25.0),
            hidden: [0.5, 2.0, 0.1, 150.0, -4.0],
            recon: 0.7,
            ..ModelStats::default()
        };
        // ids 2, 2, 6 of a vocabulary of 10 in a chunk of 4.
        let f = vector(&model, &[2, 2, 6], 4, 10, 8, &history)?;
        let at = |name: &str| f64::from(f[NAMES.iter().position(|n| *n == name).unwrap()]);
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        close(at("entropy_max"), 10.0); // clipped
        close(at("hidden_max"), 100.0); // clipped
        close(at("hidden_range"), 100.0); // 154, clipped
        close(at("token_mean"), 10.0 / 3.0 / 10.0);
        // std of (2, 2, 6): mean 10/3, deviations −4/3, −4/3, 8/3: var 32/9 · ... / 3.
        let std = ((16.0 / 9.0 + 16.0 / 9.0 + 64.0 / 9.0) / 3.0f64).sqrt();
        close(at("token_std"), std / 10.0);
        close(at("token_diversity"), std / 10.0);
        close(at("adjacent_repeat_rate"), 0.5);
        close(at("adjacent_difference_rms"), (16.0f64 / 2.0).sqrt() / 10.0);
        close(at("log_max_token"), 1.6f64.ln());
        close(at("length_over_norm"), 3.0 / 8.0);
        close(at("valid_fraction"), 0.75);
        close(at("position_mean"), 0.25); // 0, 1/4, 2/4
        close(at("budget_remaining"), 1.0);
        close(at("recon"), 0.7);
        Ok(())
    }

    #[test]
    fn history_by_hand() -> Result<()> {
        let mut h = History::new(0.5, 2.0)?;
        h.observe(4.0, 3.0);
        h.observe(2.0, 1.0);
        // difficulty EMA: 2, then 2; E[x²]: 8, then 6; std √(6 − 4).
        let [d, s, c, left] = h.features();
        assert_eq!((d, c), (2.0, 1.25));
        assert!((s - (2.0f64 + 1e-8).sqrt()).abs() < 1e-12);
        assert_eq!(left, 0.0); // mean cost 2 = the budget
        h.observe(0.0, 9.0);
        assert!(h.features()[3] < 0.0, "overspent");
        Ok(())
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(History::new(0.0, 2.0).is_err());
        assert!(History::new(0.1, 0.0).is_err());
        let h = History::new(0.1, 2.0).unwrap();
        let m = ModelStats::default();
        assert!(vector(&m, &[], 4, 10, 8, &h).is_err());
        assert!(vector(&m, &[1; 5], 4, 10, 8, &h).is_err());
        let nan = ModelStats {
            recon: f64::NAN,
            ..m
        };
        let err = vector(&nan, &[1], 4, 10, 8, &h).unwrap_err().to_string();
        assert!(err.contains("recon is NaN"), "{err}");
    }
}
