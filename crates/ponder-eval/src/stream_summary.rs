//! Stream mode's statistics: each method's mean loss and mean cost per chunk with intervals that
//! resample whole streams (a stream's chunks share its state, so they are not independent), its
//! FLOPs, its actions and its loss at each chunk index; the CSV of every decision; the table
//! `ponder compare` prints.

use std::collections::BTreeMap;

use ponder_metrics::{bootstrap_ci_paired, Interval};
use serde::{Deserialize, Serialize};

use crate::carry::StepRecord;
use crate::error::{Error, Result};
use crate::flops::ChunkFlops;
use crate::stream_compare::{mean_of, GreedySearch, MethodSteps, StreamRun};
use ponder_experiment::{EvalConfig, StateMode};
use ponder_gate::ACTIONS;

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
    /// plus the fast layer's UPDATE_k loop for UPDATE_k, and UPDATE_1's for a read (an upper
    /// bound: a read takes no gradient).
    pub flops: f64,
    /// How often each action was taken (`skip`, `update_1`, …; `none` for the backbone alone).
    pub actions: BTreeMap<String, usize>,
    /// Mean loss at each chunk index of a stream (index 0 first).
    pub loss_by_chunk: Vec<f64>,
    /// At each chunk index, how often each action (SKIP, UPDATE_1, UPDATE_2, UPDATE_4) was
    /// taken; empty for the backbone alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions_by_chunk: Vec<Vec<usize>>,
    /// Mean loss and cost on the greedy oracle's streams, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_greedy_streams: Option<(f64, f64)>,
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
    /// Paired differences of mean loss per chunk between the learned gate and the gates it is
    /// measured against, when it ran ([`PAIRED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<LossDifference>,
}

/// The pairs of methods whose loss difference is reported with a paired interval, where both
/// ran: the learned gate against the best training-free controller (`ours_lh`), the original's
/// (`ours`) and Random; and `ours_lh` against Random.
pub const PAIRED: [(&str, &str); 4] = [
    (ponder_gate::LEARNED, ponder_gate::SELECTED),
    (ponder_gate::LEARNED, "ours"),
    (ponder_gate::LEARNED, "random"),
    (ponder_gate::SELECTED, "random"),
];

/// `loss(a) − loss(b)`, the mean loss per chunk over the same streams, with an interval that
/// resamples whole streams for both at once; below zero, `a` is better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossDifference {
    /// The first method.
    pub a: String,
    /// The second method.
    pub b: String,
    /// The difference and its interval.
    pub difference: Interval,
    /// Mean cost per chunk of `a` minus that of `b`.
    pub cost_difference: f64,
}

/// [`LossDifference`] of `a` and `b`, which decided the same streams' chunks.
fn loss_difference(a: &MethodSteps, b: &MethodSteps, eval: &EvalConfig) -> Result<LossDifference> {
    // Per stream: chunk count, loss sum of a, loss sum of b.
    let mut per: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new();
    for s in &a.steps {
        let e = per.entry(s.stream).or_default();
        *e = (e.0 + 1.0, e.1 + s.loss, e.2);
    }
    for s in &b.steps {
        let e = per.get_mut(&s.stream).ok_or_else(|| {
            Error::Data(format!(
                "{} decided stream {}, which {} did not",
                b.method, s.stream, a.method
            ))
        })?;
        e.2 += s.loss;
    }
    let rows: Vec<(f64, f64, f64)> = per.into_values().collect();
    let stat = |idx: &[usize]| {
        let (n, d) = idx.iter().fold((0.0, 0.0), |(n, d), &i| {
            (n + rows[i].0, d + rows[i].1 - rows[i].2)
        });
        d / n
    };
    let difference = bootstrap_ci_paired(
        rows.len(),
        stat,
        eval.bootstrap_resamples,
        eval.ci_level,
        eval.seed,
    )?;
    Ok(LossDifference {
        a: a.method.clone(),
        b: b.method.clone(),
        difference,
        cost_difference: mean_of(&a.steps, StepRecord::cost) - mean_of(&b.steps, StepRecord::cost),
    })
}

/// What a stream-mode comparison's passes took in this process (`cost.json`; a resumed run counts
/// the batches it ran): wall-clock seconds, which do not repeat from run to run, kept apart from
/// the summary, which does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamCost {
    /// The backbone over every batch, shared by every method.
    pub backbone_seconds: f64,
    /// Each method's fast layer, heads and signals, by method.
    pub method_seconds: BTreeMap<String, f64>,
}

impl StreamCost {
    /// The seconds of `run`.
    pub fn of(run: &StreamRun) -> Self {
        Self {
            backbone_seconds: run.backbone_seconds,
            method_seconds: run
                .methods
                .iter()
                .chain(run.greedy.iter().map(|(g, _)| g))
                .map(|m| (m.method.clone(), m.seconds))
                .collect(),
        }
    }
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
    let actions_by_chunk = if m.steps.iter().any(|s| s.steps.is_some()) {
        (0..longest)
            .map(|c| {
                ACTIONS
                    .iter()
                    .map(|a| {
                        m.steps
                            .iter()
                            .filter(|s| s.chunk == c && s.steps == Some(a.steps()))
                            .count()
                    })
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
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
        actions_by_chunk,
        on_greedy_streams,
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
    let find = |name: &str| run.methods.iter().find(|m| m.method == name);
    let differences = if find(ponder_gate::LEARNED).is_some() {
        PAIRED
            .iter()
            .filter_map(|(a, b)| Some((find(a)?, find(b)?)))
            .map(|(a, b)| loss_difference(a, b, eval))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok(StreamSummary {
        trained_in,
        chunk_flops: flops.clone(),
        budget: eval.budget,
        cost_budget: eval.cost_budget()?,
        streams,
        methods,
        greedy: run.greedy.as_ref().map(|(_, s)| s.clone()),
        differences,
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
        for d in &self.differences {
            writeln!(
                f,
                "loss {} − {}: {:+.4} [{:+.4}, {:+.4}] (cost {:+.3})",
                d.a, d.b, d.difference.point, d.difference.lo, d.difference.hi, d.cost_difference
            )?;
        }
        Ok(())
    }
}
