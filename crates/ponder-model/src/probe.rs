//! The learned gate's model features of a chunk ([`ModelStats`]): one backbone pass that keeps
//! the last block's attention weights, the head's fused probe of each next-token distribution,
//! and statistics of the last hidden state, per sequence.

use candle::{DType, Result, Tensor};
use ponder_gate::features::ModelStats;
use rayon::prelude::*;

use crate::lm::PonderLm;

/// Mean and max of a non-empty list.
fn mean_max(xs: &[f64]) -> (f64, f64) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    (mean, xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
}

/// Standard deviation and entropy of the five probabilities renormalized to sum 1.
fn top5(p: &[f64]) -> (f64, f64) {
    let total: f64 = p.iter().sum();
    let q: Vec<f64> = p.iter().map(|x| x / total).collect();
    let mean = 0.2;
    let std = (q.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
    let entropy = -q
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|x| x * x.ln())
        .sum::<f64>();
    (std, entropy)
}

/// The attention features of one sequence: over heads and query rows, the entropy of row `i`'s
/// weights on keys `0..=i` (mean, max), the row's range (max − min over those keys, mean), and
/// the fraction of those weights below 0.01. Heads run in parallel; each row is summed in f64
/// and the rows are combined in order, so the result does not depend on the thread count.
///
/// # Shapes
/// - `probs`: `(nh, t, t)` row-major, `t` given.
fn attention_stats(probs: &[f32], t: usize) -> [f64; 4] {
    // Per row: entropy, range, and the count of weights under 0.01.
    let per_head: Vec<Vec<(f64, f64, usize)>> = probs
        .par_chunks(t * t)
        .map(|head| {
            head.chunks(t)
                .enumerate()
                .map(|(i, row)| {
                    let row = &row[..=i];
                    let (mut entropy, mut lo, mut hi, mut small) =
                        (0.0, f64::INFINITY, f64::NEG_INFINITY, 0);
                    for &p in row {
                        let p = f64::from(p);
                        if p > 0.0 {
                            entropy -= p * p.ln();
                        }
                        (lo, hi) = (lo.min(p), hi.max(p));
                        small += usize::from(p < 0.01);
                    }
                    (entropy, hi - lo, small)
                })
                .collect()
        })
        .collect();
    let rows: Vec<&(f64, f64, usize)> = per_head.iter().flatten().collect();
    let entropies: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let range_sum = rows.iter().fold(0.0, |s, r| s + r.1);
    let small: usize = rows.iter().map(|r| r.2).sum();
    let count = (probs.len() / (t * t).max(1)) * t * (t + 1) / 2;
    let (mean, max) = mean_max(&entropies);
    [
        mean,
        max,
        range_sum / rows.len() as f64,
        small as f64 / count as f64,
    ]
}

/// Mean, std, fraction with `|h| < 0.01`, max and min of one sequence's hidden states.
fn hidden_stats(h: &[f64]) -> [f64; 5] {
    let n = h.len() as f64;
    let mean = h.iter().sum::<f64>() / n;
    let std = (h.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let small = h.iter().filter(|x| x.abs() < 0.01).count() as f64 / n;
    let max = h.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = h.iter().cloned().fold(f64::INFINITY, f64::min);
    [mean, std, small, max, min]
}

impl PonderLm {
    /// The backbone's hidden states of `ids` (as [`PonderLm::backbone`]), each sequence's
    /// [`ModelStats`] of the SKIP path (its `recon` from `recon`, the caller's signal under the
    /// current state), and each sequence's mean SKIP loss, from one backbone pass and one head
    /// pass. The distribution statistics cover the `t − 1` positions that predict a token.
    ///
    /// # Shapes
    /// - `ids`: `(b, t)` with `t >= 2`; `recon`: `b` values; returns `(b, t, d)`, `b` stats and
    ///   `b` losses.
    pub fn probe(
        &self,
        ids: &Tensor,
        recon: &[f64],
    ) -> Result<(Tensor, Vec<ModelStats>, Vec<f64>)> {
        let (b, t) = ids.dims2()?;
        if t < 2 || recon.len() != b {
            candle::bail!(
                "ponder-model: a probe needs ids (b, t) with t >= 2 and one recon per sequence, got {:?} and {} values",
                ids.dims(),
                recon.len()
            );
        }
        let gpt2 = self.backbone_model();
        let (hidden, attention) = gpt2.forward_with_attention(ids)?;
        let (hidden, attention) = (hidden.detach(), attention.detach());
        let d = hidden.dim(2)?;
        let rows = hidden
            .narrow(1, 0, t - 1)?
            .contiguous()?
            .reshape((b * (t - 1), d))?;
        let targets = ids.narrow(1, 1, t - 1)?.contiguous()?.flatten_all()?;
        let probe = gpt2
            .head_probe(&rows, &targets)?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?; // (b·(t−1), 8)
        let hidden_host = hidden
            .to_dtype(DType::F64)?
            .reshape((b, t * d))?
            .to_vec2::<f64>()?;
        let mut stats = Vec::with_capacity(b);
        let mut losses = Vec::with_capacity(b);
        for s in 0..b {
            let rows = &probe[s * (t - 1)..(s + 1) * (t - 1)];
            let col = |k: usize| rows.iter().map(|r| r[k]).collect::<Vec<f64>>();
            let (nll, _) = mean_max(&col(0));
            let tops: Vec<(f64, f64)> = rows.iter().map(|r| top5(&r[3..8])).collect();
            let n = tops.len() as f64;
            stats.push(ModelStats {
                entropy: mean_max(&col(1)),
                neg_log_max_p: mean_max(&col(2)),
                hidden: hidden_stats(&hidden_host[s]),
                attention: attention_stats(
                    &attention
                        .get(s)?
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1::<f32>()?,
                    t,
                ),
                top5_std: tops.iter().map(|x| x.0).sum::<f64>() / n,
                max_p_mean: mean_max(&col(3)).0,
                top5_entropy: tops.iter().map(|x| x.1).sum::<f64>() / n,
                recon: recon[s],
            });
            losses.push(nll);
        }
        Ok((hidden, stats, losses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_by_hand() {
        let (std, entropy) = top5(&[0.4, 0.2, 0.2, 0.1, 0.1]);
        // Renormalized: 0.4 0.2 0.2 0.1 0.1 (sum 1): deviations from 0.2: .2 0 0 −.1 −.1.
        assert!((std - (0.06f64 / 5.0).sqrt()).abs() < 1e-12);
        let want = -(0.4f64 * 0.4f64.ln() + 2.0 * 0.2 * 0.2f64.ln() + 2.0 * 0.1 * 0.1f64.ln());
        assert!((entropy - want).abs() < 1e-12);
        // One head, two rows: row 0 sees one key (weight 1), row 1 two (0.995, 0.005).
        let a = attention_stats(&[1.0, 0.0, 0.995, 0.005], 2);
        let (p, q) = (f64::from(0.995f32), f64::from(0.005f32));
        let h1 = -(p * p.ln() + q * q.ln());
        assert!((a[0] - h1 / 2.0).abs() < 1e-12 && (a[1] - h1).abs() < 1e-12);
        assert!((a[2] - (p - q) / 2.0).abs() < 1e-12, "{}", a[2]);
        assert!((a[3] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            hidden_stats(&[0.0, 2.0, -1.0, 3.0]),
            [1.0, 1.5811388300841898, 0.25, 3.0, -1.0]
        );
    }
}
