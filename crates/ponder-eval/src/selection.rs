//! Choosing `ours_lh` on the validation split: every candidate of `[eval.select]` replayed on
//! the validation records, and the one with the lowest loss among those whose realized update
//! rate is within the tolerance of ρ. The test split is never read here; `selection.json`
//! records every candidate's figures and the choice, and the test comparison reads the choice
//! back.
//!
//! A paced candidate with a prior (`paced_prior = [true]`) starts its history from the
//! validation split's signal values. Replayed on those same values it would know their
//! quantiles with hindsight, so on validation it is cross-fitted: the first half of the records
//! is replayed with the second half's values as its prior, the second half with the first's,
//! and the candidate's figures are those of both halves together. Chosen, it carries the whole
//! validation split's values into `selection.json`, and every test comparison starts from them.

use std::path::Path;

use ponder_experiment::{Ablation, EvalConfig, ExperimentConfig, Layout};
use ponder_gate::{ControllerGrid, GateConfig, PacedParams, StreamRecord};
use serde::{Deserialize, Serialize};

use crate::compare::{chosen_losses, run_method};
use crate::error::{Error, Result};
use crate::records::ChunkRecord;

/// How far beyond the tolerance a rate may be from rounding alone: 51 updates of 100 are
/// within 0.01 of 0.5 although `0.51 − 0.5` is a little more than 0.01 in binary.
pub const RATE_SLACK: f64 = 1e-12;

/// One candidate's figures on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The candidate's name ([`GateConfig::name`]).
    pub name: String,
    /// Its settings.
    pub config: GateConfig,
    /// Mean loss of the paths it chose, nats/token.
    pub loss: f64,
    /// Its realized update rate (calibration included).
    pub update_rate: f64,
    /// Whether `|update_rate − ρ| ≤ tolerance` (up to rounding: within [`RATE_SLACK`] more).
    pub within_tolerance: bool,
}

/// What `selection.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// ρ.
    pub budget: f64,
    /// The validation chunk-batches the candidates ran on.
    pub chunks: usize,
    /// The grid tried.
    pub grid: ControllerGrid,
    /// Every candidate, in the grid's order.
    pub candidates: Vec<Candidate>,
    /// The chosen candidate's name.
    pub chosen: String,
    /// Its settings: the policy of `ours_lh`.
    pub config: GateConfig,
}

/// Runs every candidate of `grid` at budget `rho` on the validation `records` and chooses the
/// lowest loss within the rate tolerance (the earlier candidate on a tie). An error when no
/// candidate keeps its rate within the tolerance.
pub fn select(records: &[ChunkRecord], rho: f64, grid: &ControllerGrid) -> Result<Selection> {
    grid.validate()?;
    let gates: Vec<_> = records.iter().map(ChunkRecord::gate_record).collect();
    let all: Vec<usize> = (0..records.len()).collect();
    let candidates = grid
        .candidates()
        .into_iter()
        .map(|config| {
            let decisions = if has_prior(&config) {
                cross_fitted(&config, rho, &gates)?
            } else {
                run_method(&config, rho, &gates)?.decisions
            };
            let loss = ponder_metrics::mean_at(&chosen_losses(records, &decisions)?, &all)?;
            let updated: Vec<bool> = decisions.iter().map(|d| d.is_update()).collect();
            let update_rate = ponder_metrics::update_rate(&updated)?;
            Ok(Candidate {
                name: config.name(),
                config,
                loss,
                update_rate,
                within_tolerance: (update_rate - rho).abs() <= grid.tolerance + RATE_SLACK,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let best = candidates
        .iter()
        .filter(|c| c.within_tolerance)
        .min_by(|a, b| a.loss.total_cmp(&b.loss))
        .ok_or_else(|| {
            let closest = candidates
                .iter()
                .min_by(|a, b| {
                    (a.update_rate - rho)
                        .abs()
                        .total_cmp(&(b.update_rate - rho).abs())
                })
                .map(|c| format!("{} at {:.4}", c.name, c.update_rate))
                .unwrap_or_default();
            Error::Config(format!(
                "eval.select: no candidate keeps its update rate within {} of ρ = {rho} on the \
                 {} validation chunk-batches (closest: {closest}); widen the tolerance or add \
                 candidates",
                grid.tolerance,
                records.len()
            ))
        })?;
    Ok(Selection {
        budget: rho,
        chunks: records.len(),
        grid: grid.clone(),
        chosen: best.name.clone(),
        config: with_prior(&best.config, &gates),
        candidates,
    })
}

/// Whether `config` is a paced candidate that starts from the validation split's values.
fn has_prior(config: &GateConfig) -> bool {
    matches!(config, GateConfig::Paced(p) if p.prior.is_some())
}

/// `config` with its prior (where it has one) filled with its signal's values in `gates`, with
/// hindsight ([`ponder_gate::Signal::of_records`]; chunks without a value are left out).
fn with_prior(config: &GateConfig, gates: &[StreamRecord]) -> GateConfig {
    match config {
        GateConfig::Paced(p) if p.prior.is_some() => GateConfig::Paced(PacedParams {
            prior: Some(p.signal.of_records(gates).into_iter().flatten().collect()),
            ..p.clone()
        }),
        other => other.clone(),
    }
}

/// The decisions of a candidate with a prior on the validation records, cross-fitted: each
/// half replayed (as a stream of its own) with the other half's values as its prior.
fn cross_fitted(
    config: &GateConfig,
    rho: f64,
    gates: &[StreamRecord],
) -> Result<Vec<ponder_gate::Decision>> {
    let half = gates.len() / 2;
    if half == 0 {
        return Err(Error::Config(format!(
            "eval.select: {} needs at least 2 validation chunk-batches to cross-fit its prior, \
             got {}",
            config.name(),
            gates.len()
        )));
    }
    let (first, second) = gates.split_at(half);
    let run = |part: &[StreamRecord], prior: &[StreamRecord]| {
        run_method(&with_prior(config, prior), rho, part).map_err(|e| {
            Error::Config(format!(
                "eval.select: cross-fitting {} on the two halves of the {} validation \
                 chunk-batches: {e}",
                config.name(),
                gates.len()
            ))
        })
    };
    let mut decisions = run(first, second)?.decisions;
    decisions.extend(run(second, first)?.decisions);
    Ok(decisions)
}

impl Selection {
    /// The controller `config`'s experiment chose for `ours_lh` on the validation split of its
    /// own language, at `eval`'s budget from `grid` ([`Selection::read_for`]).
    pub fn of_experiment(
        config: &ExperimentConfig,
        eval: &EvalConfig,
        grid: &ControllerGrid,
    ) -> Result<Self> {
        let file = Layout::fast_of(config)?
            .validation_eval(&config.data.language, Ablation::default())
            .selection();
        Self::read_for(&file, eval.budget, grid)
    }

    /// Reads `selection.json` and checks that it was chosen at budget `rho` from `grid`; an error
    /// naming the file otherwise, or when it is missing.
    pub fn read_for(path: &Path, rho: f64, grid: &ControllerGrid) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Config(format!(
                "{}: not found; ours_lh is chosen on the validation split: run `ponder compare \
                 --split validation` (or `cargo xtask reproduce`) first",
                path.display()
            )));
        }
        let selection: Selection = ponder_experiment::run_dir::read_json(path)?;
        if selection.budget != rho || &selection.grid != grid {
            return Err(Error::Config(format!(
                "{}: chosen at budget {} from another [eval.select] than the config's (budget \
                 {rho}); rerun the validation comparison",
                path.display(),
                selection.budget
            )));
        }
        Ok(selection)
    }
}
