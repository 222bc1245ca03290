//! Replaying any policy over a recorded stream: [`decide_stream`] and [`Trace`].
//!
//! The evaluation records every chunk's signals and both paths' losses once, in one backbone pass
//! shared by all methods, where the original ran the model again for each method
//! (`docs/original.md` §7.2); it then asks each method for its decisions here.
//! Online gates see the chunks in stream order, `decide` then `observe` for each, and only what
//! [`Signals`] carries: the position, the reconstruction signal and the number of updates so far.
//! No listed policy may use the SKIP loss, so `skip_loss` is always `None`.
//! Offline policies get the whole stream at once (see `offline`).

use crate::budget::Budget;
use crate::config::{GateConfig, OracleScope};
use crate::error::{Error, Result};
use crate::offline;
use crate::{Decision, Gate, Signals, StreamRecord};

/// A policy's decisions over a stream, with the threshold it held after each chunk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// One decision per chunk, in stream order.
    pub decisions: Vec<Decision>,
    /// The gate's threshold after observing each chunk (the one the next chunk is compared
    /// with), for plots; `None` for policies without one and during calibration.
    pub thresholds: Vec<Option<f64>>,
}

impl Trace {
    /// The number of UPDATE decisions.
    pub fn n_updates(&self) -> usize {
        self.decisions.iter().filter(|d| d.is_update()).count()
    }

    /// The fraction of UPDATE decisions, calibration included (the paper's "actual update
    /// rate"); `None` for an empty stream.
    pub fn update_rate(&self) -> Option<f64> {
        (!self.decisions.is_empty()).then(|| self.n_updates() as f64 / self.decisions.len() as f64)
    }
}

/// The decisions of the policy `config` at budget ρ over `records`, in stream order (a paced
/// gate's horizon is the records' length).
///
/// Errors: a parameter out of range ([`Error::Config`]); a stream shorter than a reconstruction
/// gate's calibration window, or a non-finite input the policy reads ([`Error::Stream`]).
pub fn decide_stream(
    config: &GateConfig,
    budget: Budget,
    records: &[StreamRecord],
) -> Result<Trace> {
    config.validate()?;
    if let Some(n_cal) = config.calibration() {
        if records.len() < n_cal {
            return Err(Error::Stream(format!(
                "{}: the stream has {} chunks, fewer than the calibration window of {n_cal}",
                config.name(),
                records.len()
            )));
        }
    }
    if let Some(signal) = config.signal() {
        if let Some((i, value)) = signal
            .of_records(records)
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .find(|(_, v)| !v.is_finite())
        {
            return Err(Error::Stream(format!(
                "record {i}: {signal} is {value}, expected a finite number"
            )));
        }
    }
    if let Some(mut gate) = config.online_gate(budget, Some(records.len()))? {
        return Ok(replay(gate.as_mut(), records));
    }
    let decisions = match config {
        GateConfig::Oracle { scope, group } => match (scope, group) {
            (OracleScope::Global, _) => offline::oracle_global_top_k(records, budget)?,
            (OracleScope::PerBatch, Some(g)) => offline::oracle_per_batch(records, budget, *g)?,
            (OracleScope::PerBatch, None) => {
                return Err(Error::Config(
                    "oracle: scope = \"per_batch\" needs `group`".to_string(),
                ))
            }
            (OracleScope::Unconstrained, _) => offline::oracle_unconstrained(records)?,
        },
        GateConfig::TttImprovement => offline::ttt_improvement_top_k(records, budget)?,
        GateConfig::SignalTopK { signal } => offline::signal_top_k(records, budget, *signal)?,
        // `online_gate` returned a gate for every other policy.
        _ => {
            return Err(Error::Config(format!(
                "{}: not an offline policy",
                config.name()
            )))
        }
    };
    let thresholds = vec![None; decisions.len()];
    Ok(Trace {
        decisions,
        thresholds,
    })
}

/// Runs an online gate over `records` in order, `decide` then `observe` for each chunk, with
/// `skip_loss = None` and `prev_loss` the previous record's loss under the decision taken
/// there. The gate is used as it is (pass a fresh one to start from scratch).
pub fn replay(gate: &mut dyn Gate, records: &[StreamRecord]) -> Trace {
    let mut trace = Trace {
        decisions: Vec::with_capacity(records.len()),
        thresholds: Vec::with_capacity(records.len()),
    };
    let mut updates_so_far = 0;
    let mut prev_loss = None;
    for (position, record) in records.iter().enumerate() {
        let signals = Signals {
            position,
            recon: record.recon,
            recon_init: record.recon_init,
            skip_loss: None,
            prev_loss,
            updates_so_far,
        };
        let decision = gate.step(&signals);
        updates_so_far += usize::from(decision.is_update());
        prev_loss = Some(if decision.is_update() {
            record.update_loss
        } else {
            record.skip_loss
        });
        trace.decisions.push(decision);
        trace.thresholds.push(gate.threshold());
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(recon: &[f64]) -> Vec<StreamRecord> {
        recon
            .iter()
            .enumerate()
            .map(|(i, &recon)| StreamRecord {
                recon,
                recon_init: recon,
                recon_after: recon / 2.0,
                skip_loss: 3.0,
                // Advantage grows with the position.
                update_loss: 3.0 - i as f64 * 0.01,
            })
            .collect()
    }

    /// Updates at odd positions and keeps the `prev_loss` it was shown.
    struct Seer(Vec<Option<f64>>);

    impl Gate for Seer {
        fn decide(&mut self, s: &Signals) -> Decision {
            self.0.push(s.prev_loss);
            if s.position % 2 == 1 {
                Decision::Update(1)
            } else {
                Decision::Skip
            }
        }
    }

    #[test]
    fn replay_shows_the_previous_loss_of_the_action_taken() {
        let mut seer = Seer(Vec::new());
        let r = records(&[1.0, 2.0, 3.0, 4.0]);
        replay(&mut seer, &r);
        // Position 0 was skipped (3.0), 1 updated (2.99), 2 skipped (3.0).
        assert_eq!(seer.0, [None, Some(3.0), Some(2.99), Some(3.0)]);
    }

    #[test]
    fn short_stream_names_both_numbers() {
        let err = decide_stream(
            &GateConfig::original_recon(),
            Budget::new(0.5).unwrap(),
            &records(&[1.0; 15]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::Stream(
                "ours: the stream has 15 chunks, fewer than the calibration window of 16".into()
            )
        );
        let ok = decide_stream(
            &GateConfig::original_recon(),
            Budget::new(0.5).unwrap(),
            &records(&[1.0; 16]),
        )
        .unwrap();
        assert_eq!(ok.decisions, [Decision::Update(1); 16]);
        assert!(ok.thresholds[15].is_some());
    }

    #[test]
    fn recon_replay_matches_the_gate_by_hand() {
        // The hand-worked sequence of `recon::tests`, through the replay.
        let config = GateConfig::Recon {
            alpha: 0.1,
            step: 0.1,
            calibration: 4,
        };
        let trace = decide_stream(
            &config,
            Budget::new(0.5).unwrap(),
            &records(&[1.0, 3.0, 2.0, 4.0, 2.5, 3.5, 3.02, 3.025, 3.0]),
        )
        .unwrap();
        let (u, s) = (Decision::Update(1), Decision::Skip);
        assert_eq!(trace.decisions, [u, u, u, u, s, u, s, u, s]);
        assert_eq!(trace.thresholds[..3], [None, None, None]);
        assert_eq!(trace.thresholds[3], Some(3.015));
        assert_eq!(trace.n_updates(), 6);
        assert_eq!(trace.update_rate(), Some(6.0 / 9.0));
    }

    #[test]
    fn offline_policies_dispatch() {
        let b = Budget::new(0.5).unwrap();
        let recs = records(&[4.0, 1.0, 3.0, 2.0]);
        let (u, s) = (Decision::Update(1), Decision::Skip);
        // Advantages 0, 0.01, 0.02, 0.03: the last two.
        let oracle = decide_stream(&GateConfig::oracle_global(), b, &recs).unwrap();
        assert_eq!(oracle.decisions, [s, s, u, u]);
        assert_eq!(oracle.thresholds, [None; 4]);
        // Per-batch groups of 2: the later chunk of each pair.
        let per_batch: GateConfig = "oracle_per_batch_2".parse().unwrap();
        let trace = decide_stream(&per_batch, b, &recs).unwrap();
        assert_eq!(trace.decisions, [s, u, s, u]);
        let unconstrained: GateConfig = "oracle_unconstrained".parse().unwrap();
        let trace = decide_stream(&unconstrained, b, &recs).unwrap();
        assert_eq!(trace.decisions, [s, u, u, u]);
        // Improvements recon / 2 = 2, 0.5, 1.5, 1: positions 0 and 2.
        let trace = decide_stream(&GateConfig::TttImprovement, b, &recs).unwrap();
        assert_eq!(trace.decisions, [u, s, u, s]);
    }

    #[test]
    fn non_finite_recon_is_rejected_for_recon_gates_only() {
        let b = Budget::new(0.5).unwrap();
        let mut recs = records(&[1.0; 20]);
        recs[17].recon = f64::NAN;
        for config in [GateConfig::original_recon(), GateConfig::pid_recommended()] {
            let err = decide_stream(&config, b, &recs).unwrap_err();
            assert_eq!(
                err,
                Error::Stream("record 17: recon is NaN, expected a finite number".into())
            );
        }
        assert!(decide_stream(&GateConfig::original_random(), b, &recs).is_ok());
        assert!(decide_stream(&GateConfig::oracle_global(), b, &recs).is_ok());
    }

    #[test]
    fn updates_so_far_counts_previous_updates() {
        struct Spy(Vec<usize>);
        impl Gate for Spy {
            fn decide(&mut self, signals: &Signals) -> Decision {
                self.0.push(signals.updates_so_far);
                assert_eq!(signals.skip_loss, None);
                if signals.position % 2 == 0 {
                    Decision::Update(1)
                } else {
                    Decision::Skip
                }
            }
        }
        let mut spy = Spy(Vec::new());
        replay(&mut spy, &records(&[1.0; 5]));
        assert_eq!(spy.0, [0, 1, 1, 2, 2]);
    }
}
