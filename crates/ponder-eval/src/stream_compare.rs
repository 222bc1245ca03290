//! Stream mode's comparison: every method's own pass over the streams ([`crate::carry`]), the
//! greedy oracle's multiplier found by bisection on a subsample, and the statistics: each
//! method's mean loss and mean cost per chunk with intervals that resample whole streams (a
//! stream's chunks share its state, so they are not independent), its actions, and its loss at
//! each chunk index.

use std::collections::BTreeMap;

use candle::Device;
use ponder_gate::{Budget, GateConfig, Method};
use ponder_metrics::{bootstrap_ci_paired, Interval};
use ponder_model::PonderLm;
use serde::{Deserialize, Serialize};

use crate::carry::{Actor, BatchHidden, MethodPass, StepRecord, ACTIONS};
use crate::error::{Error, Result};
use crate::file_stream::StreamBatch;
use crate::flops::ChunkFlops;
use ponder_experiment::{EvalConfig, StateMode};

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

/// The actor of a listed method (not `greedy_oracle`); `selected` resolves `ours_lh`. Gates
/// that update spend the budget as an UPDATE_1 rate ρ = `eval.budget`.
fn actor(method: &Method, selected: Option<&GateConfig>, eval: &EvalConfig) -> Result<Actor> {
    if *method == Method::Backbone {
        return Ok(Actor::Backbone);
    }
    let config = method.resolve(selected)?;
    let budget = Budget::new(eval.budget)?;
    let gate = config.online_gate(budget)?.ok_or_else(|| {
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
/// listed); `on_batch(done, total)` reports progress.
pub fn run_streams(
    lm: &PonderLm,
    batches: &[StreamBatch],
    eval: &EvalConfig,
    selected: Option<&GateConfig>,
    device: &Device,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<StreamRun> {
    let listed: Vec<&Method> = eval
        .methods
        .iter()
        .filter(|m| **m != Method::GreedyOracle)
        .collect();
    let mut names: Vec<String> = listed.iter().map(|m| m.name()).collect();
    let mut passes = listed
        .iter()
        .map(|m| Ok(MethodPass::new(actor(m, selected, eval)?)))
        .collect::<Result<Vec<_>>>()?;
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
    let mut kept = Vec::new();
    let mut backbone_seconds = 0.0;
    for (b, batch) in batches.iter().enumerate() {
        let hidden = BatchHidden::new(lm, batch, device)?;
        backbone_seconds += hidden.seconds;
        for pass in &mut passes {
            pass.run_batch(lm, batch, &hidden)?;
        }
        if b < greedy_batches {
            kept.push(hidden);
        }
        on_batch(b + 1, batches.len());
    }
    let greedy = if greedy_batches > 0 {
        Some(greedy_oracle(
            lm,
            &batches[..greedy_batches],
            &kept,
            eval.cost_budget(),
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
fn mean_of(steps: &[StepRecord], f: impl Fn(&StepRecord) -> f64) -> f64 {
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

/// One method's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMethodSummary {
    /// The method.
    pub method: String,
    /// Chunks decided.
    pub chunks: usize,
    /// Mean next-token loss per chunk, with its interval over streams.
    pub loss: Interval,
    /// Mean cost per chunk in the original's units, with its interval over streams.
    pub cost: Interval,
    /// Mean floating-point operations per chunk, counted from the shapes: backbone and head,
    /// plus the fast layer's UPDATE_k loop for UPDATE_k and UPDATE_1's for a read.
    pub flops: f64,
    /// How often each action was taken (`skip`, `update_1`, …; `none` for the backbone alone).
    pub actions: BTreeMap<String, usize>,
    /// Mean loss at each chunk index of a stream (index 0 first).
    pub loss_by_chunk: Vec<f64>,
    /// Mean loss and cost on the greedy oracle's streams, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_greedy_streams: Option<(f64, f64)>,
    /// Seconds of its fast layer, heads and signals.
    pub seconds: f64,
}

/// The summary of a stream-mode comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// The mode the evaluated fast layer was trained in (`[fast] mode`).
    pub trained_in: StateMode,
    /// FLOPs of one chunk of one stream, by part.
    pub chunk_flops: ChunkFlops,
    /// The UPDATE_1 rate ρ of the gates.
    pub budget: f64,
    /// The mean cost per chunk allowed.
    pub cost_budget: f64,
    /// Streams evaluated.
    pub streams: usize,
    /// Every method, in the config's order, the greedy oracle last.
    pub methods: Vec<StreamMethodSummary>,
    /// The greedy oracle's search, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greedy: Option<GreedySearch>,
    /// Seconds of the backbone over all streams (shared by every method).
    pub backbone_seconds: f64,
}

/// The name of an action in tables.
pub fn action_name(steps: Option<u32>) -> String {
    match steps {
        None => ponder_gate::BACKBONE.to_string(),
        Some(0) => "skip".to_string(),
        Some(k) => format!("update_{k}"),
    }
}

/// Mean loss and cost per chunk with intervals that resample whole streams.
fn stream_intervals(steps: &[StepRecord], eval: &EvalConfig) -> Result<(Interval, Interval)> {
    // Per stream: chunk count, loss sum, cost sum.
    let mut per: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new();
    for s in steps {
        let e = per.entry(s.stream).or_default();
        *e = (e.0 + 1.0, e.1 + s.loss, e.2 + s.cost());
    }
    let rows: Vec<(f64, f64, f64)> = per.into_values().collect();
    let ratio = |col: fn(&(f64, f64, f64)) -> f64| {
        let rows = &rows;
        move |idx: &[usize]| {
            let (n, v) = idx
                .iter()
                .fold((0.0, 0.0), |(n, v), &i| (n + rows[i].0, v + col(&rows[i])));
            v / n
        }
    };
    let ci = |stat| {
        bootstrap_ci_paired(
            rows.len(),
            stat,
            eval.bootstrap_resamples,
            eval.ci_level,
            eval.seed,
        )
    };
    Ok((ci(ratio(|r| r.1))?, ci(ratio(|r| r.2))?))
}

/// The FLOPs of one chunk under `steps` (see [`StreamMethodSummary::flops`]).
fn step_flops(flops: &ChunkFlops, steps: Option<u32>) -> f64 {
    match steps {
        None => flops.skip(),
        Some(0) => flops.update(),
        Some(k) => flops
            .path(ponder_gate::Decision::Update(k))
            .unwrap_or(f64::NAN),
    }
}

/// The figures of one method.
fn method_summary(
    m: &MethodSteps,
    greedy_streams: Option<&[usize]>,
    eval: &EvalConfig,
    flops: &ChunkFlops,
) -> Result<StreamMethodSummary> {
    if m.steps.is_empty() {
        return Err(Error::Data(format!("{}: no chunk was decided", m.method)));
    }
    let (loss, cost) = stream_intervals(&m.steps, eval)?;
    let mut actions = BTreeMap::new();
    for s in &m.steps {
        *actions.entry(action_name(s.steps)).or_insert(0) += 1;
    }
    let longest = m.steps.iter().map(|s| s.chunk + 1).max().unwrap_or(0);
    let loss_by_chunk = (0..longest)
        .map(|c| {
            let at: Vec<&StepRecord> = m.steps.iter().filter(|s| s.chunk == c).collect();
            at.iter().map(|s| s.loss).sum::<f64>() / at.len() as f64
        })
        .collect();
    let on_greedy_streams = greedy_streams.map(|streams| {
        let sub: Vec<StepRecord> = m
            .steps
            .iter()
            .filter(|s| streams.binary_search(&s.stream).is_ok())
            .copied()
            .collect();
        (mean_of(&sub, |s| s.loss), mean_of(&sub, StepRecord::cost))
    });
    Ok(StreamMethodSummary {
        method: m.method.clone(),
        chunks: m.steps.len(),
        loss,
        cost,
        flops: mean_of(&m.steps, |s| step_flops(flops, s.steps)),
        actions,
        loss_by_chunk,
        on_greedy_streams,
        seconds: m.seconds,
    })
}

/// The summary of `run` under `eval`, of a fast layer trained in `trained_in` mode whose chunk
/// costs `flops`.
pub fn summarize(
    run: &StreamRun,
    eval: &EvalConfig,
    flops: &ChunkFlops,
    trained_in: StateMode,
) -> Result<StreamSummary> {
    let greedy_streams: Option<Vec<usize>> = run.greedy.as_ref().map(|(g, _)| {
        let mut s: Vec<usize> = g.steps.iter().map(|s| s.stream).collect();
        s.sort_unstable();
        s.dedup();
        s
    });
    let mut methods = run
        .methods
        .iter()
        .map(|m| method_summary(m, greedy_streams.as_deref(), eval, flops))
        .collect::<Result<Vec<_>>>()?;
    if let Some((g, _)) = &run.greedy {
        methods.push(method_summary(g, greedy_streams.as_deref(), eval, flops)?);
    }
    let streams = run
        .methods
        .first()
        .map(|m| {
            m.steps
                .iter()
                .map(|s| s.stream)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .unwrap_or(0);
    Ok(StreamSummary {
        trained_in,
        chunk_flops: flops.clone(),
        budget: eval.budget,
        cost_budget: eval.cost_budget(),
        streams,
        methods,
        greedy: run.greedy.as_ref().map(|(_, s)| s.clone()),
        backbone_seconds: run.backbone_seconds,
    })
}

/// Every method's decisions as CSV: `method,stream,chunk,action,loss,cost,recon,recon_init`
/// (the signal empty where the method did not compute it).
pub fn steps_csv(run: &StreamRun) -> String {
    let mut out = String::from("method,stream,chunk,action,loss,cost,recon,recon_init\n");
    let all = run.methods.iter().chain(run.greedy.iter().map(|(g, _)| g));
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for m in all {
        for s in &m.steps {
            out.push_str(&format!(
                "{},{},{},{},{:.6},{},{},{}\n",
                m.method,
                s.stream,
                s.chunk,
                action_name(s.steps),
                s.loss,
                s.cost(),
                opt(s.recon),
                opt(s.recon_init)
            ));
        }
    }
    out
}

impl std::fmt::Display for StreamSummary {
    /// The method table as `ponder compare` prints it in stream mode.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} streams; budget: mean cost {:.3} per chunk (UPDATE_1 rate {}); fast layer trained in {} mode",
            self.streams,
            self.cost_budget,
            self.budget,
            self.trained_in.name()
        )?;
        writeln!(
            f,
            "{:<16} {:>7} {:>24} {:>22} {:>8} {:>13}  actions",
            "method", "chunks", "loss [CI]", "cost [CI]", "MFLOP", "loss, cost*"
        )?;
        for m in &self.methods {
            let actions: Vec<String> = ACTIONS
                .iter()
                .map(|a| action_name(Some(a.steps())))
                .chain([ponder_gate::BACKBONE.to_string()])
                .filter_map(|a| m.actions.get(&a).map(|n| format!("{a} {n}")))
                .collect();
            let sub = m
                .on_greedy_streams
                .map(|(l, c)| format!("{l:.4}, {c:.2}"))
                .unwrap_or_default();
            writeln!(
                f,
                "{:<16} {:>7} {:>8.4} [{:.4}, {:.4}] {:>6.3} [{:.3}, {:.3}] {:>8.1} {sub:>13}  {}",
                m.method,
                m.chunks,
                m.loss.point,
                m.loss.lo,
                m.loss.hi,
                m.cost.point,
                m.cost.lo,
                m.cost.hi,
                m.flops / 1e6,
                actions.join(", ")
            )?;
        }
        if let Some(g) = &self.greedy {
            writeln!(
                f,
                "greedy_oracle: λ = {:.6} on {} streams ({} multipliers tried); * on those streams",
                g.lambda,
                g.streams,
                g.tried.len()
            )?;
        }
        Ok(())
    }
}
