//! Offline policies: decisions that need the whole recorded stream, so they are not [`Gate`]s.
//!
//! These are the original's oracles and TTT-improvement baseline (`docs/original.md` §8.4, §8.5):
//!
//! * [`oracle_global_top_k`] (O2, the paper's Oracle): UPDATE the `k = max(1, ⌊N·ρ⌋)` chunks with
//!   the largest advantage `skip_loss − update_loss`.
//! * [`oracle_per_batch`] (O1): the same top-k inside each consecutive group of chunks.
//! * [`oracle_unconstrained`] (O3): UPDATE iff the update helps, with no budget.
//! * [`ttt_improvement_top_k`]: global top-k by `recon − recon_after` (needs the update, so it is
//!   not deployable).
//! * [`signal_top_k`]: global top-k by a training-free [`Signal`] with hindsight, the ceiling of
//!   any online threshold on that signal (it needs the whole stream, so it is not deployable).
//!
//! Every top-k is [`ponder_metrics::top_fraction_set`]: ties go to the earlier chunk, as Python's
//! stable `sorted(…, reverse=True)` does.
//! Every UPDATE is [`Decision::Update`]`(1)`.
//! Any NaN or infinite input a policy reads is an [`Error::Stream`] naming the chunk and field.
//!
//! [`Gate`]: crate::Gate

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::signal::Signal;
use crate::{Decision, StreamRecord};

/// UPDATE the `budget.top_k(n)` chunks with the largest advantage, SKIP the rest.
pub fn oracle_global_top_k(records: &[StreamRecord], budget: Budget) -> Result<Vec<Decision>> {
    let scores = advantages(records)?;
    top_k(&scores, budget)
}

/// Within each consecutive group of `group` chunks, UPDATE the `budget.top_k(len)` chunks with
/// the largest advantage, where `len` is the group's length: `max(1, ⌊group·ρ⌋)` (0 when ρ = 0).
///
/// The original's batches held 2 chunk positions (`group = 2`). A last, shorter group (when
/// `group` does not divide the stream's length) gets a top-k of its own length.
/// An error if `group` = 0.
pub fn oracle_per_batch(
    records: &[StreamRecord],
    budget: Budget,
    group: usize,
) -> Result<Vec<Decision>> {
    if group == 0 {
        return Err(Error::Config(
            "per-batch oracle: group = 0 chunks, expected at least 1".to_string(),
        ));
    }
    let scores = advantages(records)?;
    let mut out = Vec::with_capacity(scores.len());
    for g in scores.chunks(group) {
        out.extend(top_k(g, budget)?);
    }
    Ok(out)
}

/// UPDATE exactly the chunks whose advantage is positive (no budget).
pub fn oracle_unconstrained(records: &[StreamRecord]) -> Result<Vec<Decision>> {
    Ok(advantages(records)?
        .into_iter()
        .map(|a| {
            if a > 0.0 {
                Decision::Update(1)
            } else {
                Decision::Skip
            }
        })
        .collect())
}

/// UPDATE the `budget.top_k(n)` chunks with the largest reconstruction improvement
/// `recon − recon_after`, SKIP the rest.
pub fn ttt_improvement_top_k(records: &[StreamRecord], budget: Budget) -> Result<Vec<Decision>> {
    let scores = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            check(i, "recon", r.recon)?;
            check(i, "recon_after", r.recon_after)?;
            Ok(r.ttt_improvement())
        })
        .collect::<Result<Vec<_>>>()?;
    top_k(&scores, budget)
}

/// UPDATE the `budget.top_k(n)` chunks with the largest `signal`, SKIP the rest.
pub fn signal_top_k(
    records: &[StreamRecord],
    budget: Budget,
    signal: Signal,
) -> Result<Vec<Decision>> {
    // A chunk without a value (`neg_prev_loss` at the first) ranks below every other.
    let scores = signal
        .of_records(records)
        .into_iter()
        .enumerate()
        .map(|(i, value)| match value {
            Some(v) => {
                check(i, signal.name(), v)?;
                Ok(v)
            }
            None => Ok(f64::MIN),
        })
        .collect::<Result<Vec<_>>>()?;
    top_k(&scores, budget)
}

/// The advantage of every record, or an error naming the first non-finite loss.
fn advantages(records: &[StreamRecord]) -> Result<Vec<f64>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            check(i, "skip_loss", r.skip_loss)?;
            check(i, "update_loss", r.update_loss)?;
            Ok(r.advantage())
        })
        .collect()
}

fn check(position: usize, field: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::Stream(format!(
            "record {position}: {field} is {value}, expected a finite number"
        )))
    }
}

/// UPDATE the top-ρ set of `scores` (finite), SKIP the rest.
fn top_k(scores: &[f64], budget: Budget) -> Result<Vec<Decision>> {
    Ok(ponder_metrics::top_fraction_set(scores, budget.rho())?
        .into_iter()
        .map(|up| {
            if up {
                Decision::Update(1)
            } else {
                Decision::Skip
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Decision = Decision::Update(1);
    const S: Decision = Decision::Skip;

    /// Records with the given advantages (skip_loss = 3 + a, update_loss = 3).
    fn with_advantages(adv: &[f64]) -> Vec<StreamRecord> {
        adv.iter()
            .map(|&a| StreamRecord {
                recon: 1.0,
                recon_init: 1.0,
                recon_after: 1.0,
                skip_loss: 3.0 + a,
                update_loss: 3.0,
            })
            .collect()
    }

    fn rho(r: f64) -> Budget {
        Budget::new(r).unwrap()
    }

    #[test]
    fn global_top_k_with_ties() {
        // Advantages [0.5, 0.25, 0.5, −0.25, 0.25, 0.5]; ρ = 0.5, N = 6 → k = 3.
        // Descending, stable: 0.5@0, 0.5@2, 0.5@5, 0.25@1, 0.25@4, −0.25@3 → update {0, 2, 5}.
        let recs = with_advantages(&[0.5, 0.25, 0.5, -0.25, 0.25, 0.5]);
        assert_eq!(
            oracle_global_top_k(&recs, rho(0.5)).unwrap(),
            [U, S, U, S, S, U]
        );
        // ρ = 0.7 → k = ⌊4.2⌋ = 4: the first 0.25 (position 1) wins the tie with position 4.
        // (Not ρ = 0.6: 6·0.6 = 3.5999999999999996 in f64, so k = 3, as in Python.)
        assert_eq!(
            oracle_global_top_k(&recs, rho(0.7)).unwrap(),
            [U, U, U, S, S, U]
        );
        // ρ = 0.1 → k = max(1, ⌊0.6⌋) = 1: the earliest of the three 0.5s.
        assert_eq!(
            oracle_global_top_k(&recs, rho(0.1)).unwrap(),
            [U, S, S, S, S, S]
        );
        // ρ = 0 → nothing; ρ = 1 → everything, the negative advantage included.
        assert_eq!(oracle_global_top_k(&recs, rho(0.0)).unwrap(), [S; 6]);
        assert_eq!(oracle_global_top_k(&recs, rho(1.0)).unwrap(), [U; 6]);
        assert!(oracle_global_top_k(&[], rho(0.5)).unwrap().is_empty());
    }

    #[test]
    fn all_equal_takes_the_first_k() {
        let recs = with_advantages(&[0.0, -0.0, 0.0, 0.0]);
        assert_eq!(oracle_global_top_k(&recs, rho(0.5)).unwrap(), [U, U, S, S]);
    }

    #[test]
    fn per_batch_top_k() {
        // Groups of 2, ρ = 0.5 → top max(1, ⌊1⌋) = 1 per group:
        // [0.1, 0.3] → second; [0.2, 0.2] → tie, first; [−0.5, −0.1] → −0.1 (budget forces one).
        let recs = with_advantages(&[0.1, 0.3, 0.2, 0.2, -0.5, -0.1]);
        assert_eq!(
            oracle_per_batch(&recs, rho(0.5), 2).unwrap(),
            [S, U, U, S, S, U]
        );
        // Groups of 4, ρ = 0.5 → 2 per group: [0.1, 0.3, 0.2, 0.2] → 0.3@1, then 0.2@2 (tie with
        // @3); the last group [−0.5, −0.1] has length 2 → top 1 → −0.1.
        assert_eq!(
            oracle_per_batch(&recs, rho(0.5), 4).unwrap(),
            [S, U, U, S, S, U]
        );
        // ρ = 0.2, groups of 2 → max(1, ⌊0.4⌋) = 1 per group, as above.
        assert_eq!(
            oracle_per_batch(&recs, rho(0.2), 2).unwrap(),
            [S, U, U, S, S, U]
        );
        let err = oracle_per_batch(&recs, rho(0.5), 0).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("group = 0")),
            "{err}"
        );
    }

    #[test]
    fn unconstrained_updates_iff_positive() {
        let recs = with_advantages(&[0.1, 0.0, -0.2, 1e-9, -0.0]);
        assert_eq!(oracle_unconstrained(&recs).unwrap(), [U, S, S, U, S]);
    }

    #[test]
    fn ttt_improvement_ranks_by_recon_drop() {
        // recon − recon_after = [0.5, 2.0, 0.5, 1.0]; ρ = 0.5 → k = 2 → positions 1 and 3.
        // ρ = 0.75 → k = 3 → then the earlier 0.5 (position 0).
        let pairs = [(1.0, 0.5), (3.0, 1.0), (2.0, 1.5), (1.5, 0.5)];
        let recs: Vec<StreamRecord> = pairs
            .iter()
            .map(|&(recon, recon_after)| StreamRecord {
                recon,
                recon_init: -recon,
                recon_after,
                skip_loss: 0.0,
                update_loss: 0.0,
            })
            .collect();
        assert_eq!(
            ttt_improvement_top_k(&recs, rho(0.5)).unwrap(),
            [S, U, S, U]
        );
        assert_eq!(
            ttt_improvement_top_k(&recs, rho(0.75)).unwrap(),
            [U, U, S, U]
        );
    }

    #[test]
    fn signal_top_k_ranks_by_the_signal_alone() {
        // recon = [1, 3, 2, 1.5] (recon_init = −recon); ρ = 0.5 → k = 2.
        let recs: Vec<StreamRecord> = [1.0, 3.0, 2.0, 1.5]
            .iter()
            .map(|&recon| StreamRecord {
                recon,
                recon_init: -recon,
                recon_after: 0.0,
                skip_loss: 0.0,
                update_loss: 0.0,
            })
            .collect();
        assert_eq!(
            signal_top_k(&recs, rho(0.5), Signal::Recon).unwrap(),
            [S, U, U, S]
        );
        assert_eq!(
            signal_top_k(&recs, rho(0.5), Signal::ReconInit).unwrap(),
            [U, S, S, U]
        );
        let mut bad = recs.clone();
        bad[3].recon_init = f64::INFINITY;
        let err = signal_top_k(&bad, rho(0.5), Signal::ReconInit).unwrap_err();
        assert!(matches!(err, Error::Stream(ref m) if m.contains("record 3: recon_init")));
    }

    #[test]
    fn nan_is_rejected_with_its_position() {
        let mut recs = with_advantages(&[0.1, 0.2, 0.3]);
        recs[2].update_loss = f64::NAN;
        for err in [
            oracle_global_top_k(&recs, rho(0.5)).unwrap_err(),
            oracle_per_batch(&recs, rho(0.5), 2).unwrap_err(),
            oracle_unconstrained(&recs).unwrap_err(),
        ] {
            assert_eq!(
                err,
                Error::Stream("record 2: update_loss is NaN, expected a finite number".into())
            );
        }
        recs[2].update_loss = 3.0;
        recs[1].recon_after = f64::NAN;
        let err = ttt_improvement_top_k(&recs, rho(0.5)).unwrap_err();
        assert!(matches!(err, Error::Stream(ref m) if m.contains("record 1: recon_after")));
        // The oracles do not read recon_after.
        assert!(oracle_global_top_k(&recs, rho(0.5)).is_ok());
    }
}
