//! Stream mode's comparison: every method's own pass over the streams ([`crate::carry`]), and
//! the greedy oracle's multiplier found by bisection on a subsample. The statistics are in
//! [`crate::stream_summary`].

use std::path::Path;

use candle::Device;
use ponder_gate::{Budget, GateConfig, Method};
use ponder_model::PonderLm;
use serde::{Deserialize, Serialize};

use crate::carry::{Actor, BatchHidden, MethodPass, StepRecord};
use crate::error::{Error, Result};
use crate::file_stream::StreamBatch;
use crate::learned::LearnedGate;
use crate::stream_records::{append, read_batches, reopen, BatchRecord, MethodBatch};
use ponder_experiment::EvalConfig;

/// Bisection steps of the greedy oracle's multiplier, after the bracket is found.
pub const GREEDY_BISECTIONS: usize = 10;

/// The reference row beside a listed `update_1`: UPDATE_1 on every chunk of the streams from the
/// learned initial weights, as reset mode runs it.
pub const RESET_UPDATE_1: &str = "update_1_reset";

/// One method's decisions over the streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSteps {
    /// The method's name.
    pub method: String,
    /// Its decisions in stream order.
    pub steps: Vec<StepRecord>,
    /// Seconds spent on its fast layer, heads and signals.
    pub seconds: f64,
}

/// The greedy oracle's search for its multiplier: every multiplier tried, with the mean cost and
/// loss it gave on the subsample, and the one kept (the cheapest within the budget found).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreedySearch {
    /// The streams it ran on.
    pub streams: usize,
    /// `(lambda, mean cost, mean loss)` in the order tried.
    pub tried: Vec<(f64, f64, f64)>,
    /// The multiplier kept.
    pub lambda: f64,
}

/// Every method's passes over the streams.
pub struct StreamRun {
    /// One per method other than `greedy_oracle`, in the config's order, then
    /// [`RESET_UPDATE_1`] when `update_1` is listed.
    pub methods: Vec<MethodSteps>,
    /// The greedy oracle's kept pass (on its subsample), when listed.
    pub greedy: Option<(MethodSteps, GreedySearch)>,
    /// Seconds the backbone took over all batches.
    pub backbone_seconds: f64,
}

/// The actor of a listed method (not `greedy_oracle`); `selected` resolves `ours_lh`, and
/// `learned` is taken by `ppo`. Gates that update spend the budget as an UPDATE_1 rate
/// ρ = `eval.budget`; `decisions` is how many they will make (every chunk of every stream).
fn actor(
    method: &Method,
    selected: Option<&GateConfig>,
    learned: &mut Option<(LearnedGate, usize)>,
    eval: &EvalConfig,
    decisions: usize,
) -> Result<Actor> {
    match method {
        Method::Backbone => return Ok(Actor::Backbone),
        Method::Learned => {
            let (mut gate, vocab) = learned.take().ok_or_else(|| {
                Error::Config(format!(
                    "eval.methods lists {} once at most, and it needs the trained learned gate",
                    ponder_gate::LEARNED
                ))
            })?;
            gate.set_horizon(decisions);
            return Ok(Actor::Learned {
                gate: Box::new(gate),
                vocab,
                seed: eval.seed,
            });
        }
        _ => {}
    }
    let config = method.resolve(selected)?;
    let budget = Budget::new(eval.budget)?;
    let gate = config
        .online_gate(budget, Some(decisions))?
        .ok_or_else(|| {
            Error::Config(format!(
                "{method} needs the whole stream before deciding; stream mode runs online gates"
            ))
        })?;
    Ok(Actor::Gate {
        gate,
        signal: config.signal().is_some(),
    })
}

/// Runs every method of `eval` over `batches` (and [`RESET_UPDATE_1`] when `update_1` is
/// listed); `on_batch(done, total)` reports progress. `learned` is the trained learned gate and
/// the vocabulary size, which `ppo` needs. With `records`, every batch's decisions are appended
/// there as it finishes, and the batches it already holds are replayed, not run again
/// ([`crate::stream_records`]).
#[allow(clippy::too_many_arguments)]
pub fn run_streams(
    lm: &PonderLm,
    batches: &[StreamBatch],
    eval: &EvalConfig,
    selected: Option<&GateConfig>,
    mut learned: Option<(LearnedGate, usize)>,
    device: &Device,
    records: Option<&Path>,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<StreamRun> {
    let listed: Vec<&Method> = eval
        .methods
        .iter()
        .filter(|m| **m != Method::GreedyOracle)
        .collect();
    let mut names: Vec<String> = listed.iter().map(|m| m.name()).collect();
    let decisions = batches
        .iter()
        .flat_map(|b| &b.streams)
        .map(|s| s.chunks.len())
        .sum();
    let mut passes = listed
        .iter()
        .map(|m| {
            Ok(MethodPass::new(actor(
                m,
                selected,
                &mut learned,
                eval,
                decisions,
            )?))
        })
        .collect::<Result<Vec<_>>>()?;
    let probe = passes.iter().any(|p| p.needs_probe());
    let update_1 = Method::Policy(GateConfig::Update { steps: 1 });
    if eval.methods.contains(&update_1) {
        names.push(RESET_UPDATE_1.to_string());
        passes.push(MethodPass::new(Actor::Reset(
            ponder_gate::Decision::Update(1),
        )));
    }
    let greedy_batches = if eval.methods.contains(&Method::GreedyOracle) {
        eval.greedy_oracle_batches.unwrap_or(0).min(batches.len())
    } else {
        0
    };
    let prior = match records {
        Some(path) => read_batches(path, batches, &names)?,
        None => Vec::new(),
    };
    let mut file = match records {
        Some(path) => Some((reopen(path, &prior)?, path)),
        None => None,
    };
    let mut kept = Vec::new();
    let mut backbone_seconds = 0.0;
    for (b, batch) in batches.iter().enumerate() {
        if let Some(done) = prior.get(b) {
            for (pass, m) in passes.iter_mut().zip(&done.methods) {
                pass.replay(&m.steps)?;
            }
            if b < greedy_batches {
                kept.push(BatchHidden::new(lm, batch, device, false)?);
            }
            on_batch(b + 1, batches.len());
            continue;
        }
        let hidden = BatchHidden::new(lm, batch, device, probe)?;
        backbone_seconds += hidden.seconds;
        let before: Vec<usize> = passes.iter().map(|p| p.records.len()).collect();
        for pass in &mut passes {
            pass.run_batch(lm, batch, &hidden)?;
        }
        if let Some((f, path)) = &mut file {
            let methods = names
                .iter()
                .zip(&passes)
                .zip(&before)
                .map(|((name, p), &start)| MethodBatch {
                    method: name.clone(),
                    steps: p.records[start..].to_vec(),
                })
                .collect();
            let record = BatchRecord {
                batch: b,
                digest: batch.digest(),
                methods,
            };
            append(f, path, &record)?;
        }
        if b < greedy_batches {
            kept.push(hidden);
        }
        on_batch(b + 1, batches.len());
    }
    if let Some((f, path)) = &file {
        f.sync_all().map_err(crate::error::io(path))?;
    }
    let greedy = if greedy_batches > 0 {
        Some(greedy_oracle(
            lm,
            &batches[..greedy_batches],
            &kept,
            eval.cost_budget()?,
        )?)
    } else {
        None
    };
    let methods = names
        .into_iter()
        .zip(passes)
        .map(|(method, p)| MethodSteps {
            method,
            steps: p.records,
            seconds: p.seconds,
        })
        .collect();
    Ok(StreamRun {
        methods,
        greedy,
        backbone_seconds,
    })
}

/// The greedy oracle at multiplier `lambda` over `batches`.
fn greedy_pass(
    lm: &PonderLm,
    batches: &[StreamBatch],
    hidden: &[BatchHidden],
    lambda: f64,
) -> Result<MethodPass> {
    let mut pass = MethodPass::new(Actor::Greedy { lambda });
    for (batch, h) in batches.iter().zip(hidden) {
        pass.run_batch(lm, batch, h)?;
    }
    Ok(pass)
}

/// The mean of `f` over `steps`.
pub(crate) fn mean_of(steps: &[StepRecord], f: impl Fn(&StepRecord) -> f64) -> f64 {
    steps.iter().map(f).sum::<f64>() / steps.len().max(1) as f64
}

/// The greedy oracle whose realized mean cost is within `budget`: λ = 0 when that already is,
/// else the multiplier doubled from 10⁻³ until it is, then [`GREEDY_BISECTIONS`] bisections
/// between the last multiplier over the budget and the first within it; the pass kept is the
/// within-budget one with the smallest multiplier tried.
fn greedy_oracle(
    lm: &PonderLm,
    batches: &[StreamBatch],
    hidden: &[BatchHidden],
    budget: f64,
) -> Result<(MethodSteps, GreedySearch)> {
    let mut tried = Vec::new();
    let mut run = |lambda: f64| -> Result<(MethodPass, f64)> {
        let pass = greedy_pass(lm, batches, hidden, lambda)?;
        let cost = mean_of(&pass.records, StepRecord::cost);
        tried.push((lambda, cost, mean_of(&pass.records, |s| s.loss)));
        Ok((pass, cost))
    };
    let (mut best, cost) = run(0.0)?;
    let mut best_lambda = 0.0;
    if cost > budget {
        let (mut lo, mut hi) = (0.0, 1e-3);
        loop {
            let (pass, cost) = run(hi)?;
            if cost <= budget {
                best = pass;
                break;
            }
            lo = hi;
            hi *= 2.0;
            if hi > 1e3 {
                return Err(Error::Config(format!(
                    "greedy_oracle: no multiplier up to 1000 brings the mean cost within {budget}"
                )));
            }
        }
        for _ in 0..GREEDY_BISECTIONS {
            let mid = 0.5 * (lo + hi);
            let (pass, cost) = run(mid)?;
            if cost <= budget {
                hi = mid;
                best = pass;
            } else {
                lo = mid;
            }
        }
        best_lambda = hi;
    }
    let streams = batches.iter().map(|b| b.streams.len()).sum();
    Ok((
        MethodSteps {
            method: ponder_gate::GREEDY_ORACLE.to_string(),
            steps: best.records,
            seconds: best.seconds,
        },
        GreedySearch {
            streams,
            tried,
            lambda: best_lambda,
        },
    ))
}
