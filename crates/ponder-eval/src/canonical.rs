//! The loss of a benchmark's reference solutions given their prompts, per method of stream mode:
//! a measure of code generation that separates methods even where a small model passes no test.
//!
//! Each problem is one stream: its prompt's tokens, then its solution's (each tokenized on its
//! own, as a prompt and the tokens a model generates after it are), cut into chunks of
//! `chunk_len`. The fast state starts from the learned initial weights at every problem; each
//! method runs as in stream mode's comparison ([`crate::carry`]): `none` the backbone alone,
//! a gate decides per chunk from the chunk's signal under the carried state and its action
//! (a read for SKIP, the update for UPDATE_k) gives the chunk's features and the state carried
//! on. One gate per method serves the whole benchmark, in problem order. The loss of a problem
//! is the mean next-token loss of its solution's tokens; as everywhere in stream mode, the
//! backbone sees each chunk on its own, so the first token of each chunk is not predicted, and
//! the tokens left out that way are counted.

use std::cell::RefCell;

use candle::Tensor;
use ponder_gate::{Budget, Decision, GateConfig, Method};
use ponder_metrics::{bootstrap_ci, mean, paired_difference, Interval, Resampling};
use ponder_model::decode::{Chunk, ChunkDecider, SignalDecider};
use ponder_model::PonderLm;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::learned::{LearnedDecider, LearnedGate};

/// A prompt and its reference solution, as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredText {
    /// The problem's id.
    pub id: String,
    /// The prompt's tokens, then the solution's.
    pub ids: Vec<u32>,
    /// The index of the solution's first token.
    pub solution_start: usize,
}

/// One method's loss over the problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalLoss {
    /// The method.
    pub method: String,
    /// The mean over problems of each problem's mean solution-token loss (nats/token), with its
    /// bootstrap interval over problems.
    pub loss: Interval,
    /// Problems scored (those with at least one predicted solution token).
    pub problems: usize,
    /// Solution tokens predicted.
    pub tokens: usize,
    /// Solution tokens at chunk starts, which no method predicts.
    pub unpredicted: usize,
    /// Chunks decided on, and how many of them the method updated on.
    pub chunks: usize,
    /// See [`CanonicalLoss::chunks`].
    pub updates: usize,
    /// Mean cost per decided chunk in the original's units (SKIP 1, UPDATE_k 1 + 2k); 1 for
    /// the backbone alone.
    pub cost: f64,
    /// Each scored problem's loss, in problem order.
    pub per_problem: Vec<f64>,
}

/// A paired difference of two methods' per-problem losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossDifference {
    /// `a − b`.
    pub a: String,
    /// See [`LossDifference::a`].
    pub b: String,
    /// The mean difference with its paired bootstrap interval.
    pub difference: Interval,
}

/// Every method's loss, and each method minus the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalTable {
    /// Tokens per chunk.
    pub chunk_len: usize,
    /// The gates' budget ρ.
    pub budget: f64,
    /// Per method, in the order asked.
    pub methods: Vec<CanonicalLoss>,
    /// Each later method minus the first, per problem.
    pub differences: Vec<LossDifference>,
}

/// What the methods that are not fixed gates run.
#[derive(Default)]
pub struct Choosers {
    /// The controller `ours_lh` runs: the one the experiment chose on its validation split.
    pub selected: Option<GateConfig>,
    /// The learned gate `ppo` runs (its budget correction carried over the whole benchmark,
    /// its history per problem).
    pub learned: Option<LearnedGate>,
}

/// How one method chooses each chunk's action.
enum Chooser {
    Backbone,
    Gate(SignalDecider),
    Learned(Box<RefCell<LearnedGate>>),
}

/// Scores `texts` under every method; `ours_lh` and `ppo` run what `choosers` holds.
#[allow(clippy::too_many_arguments)]
pub fn canonical_losses(
    lm: &PonderLm,
    texts: &[ScoredText],
    chunk_len: usize,
    methods: &[Method],
    mut choosers: Choosers,
    budget: Budget,
    resampling: Resampling,
    mut progress: impl FnMut(),
) -> Result<CanonicalTable> {
    if chunk_len < 2 {
        return Err(Error::Config(format!(
            "chunk_len {chunk_len}: a chunk needs 2 tokens to predict one"
        )));
    }
    // Every chunk of at least 2 tokens is decided on: the gates' horizon (and the learned
    // gate's, for its budget guard).
    let decisions = texts
        .iter()
        .map(|t| t.ids.chunks(chunk_len).filter(|c| c.len() >= 2).count())
        .sum();
    let mut out = Vec::with_capacity(methods.len());
    for method in methods {
        let mut chooser = match method {
            Method::Backbone => Chooser::Backbone,
            Method::Learned => {
                let mut gate = choosers.learned.take().ok_or_else(|| {
                    Error::Config(
                        "method ppo: no learned gate was given (train it with `ponder train gate`)"
                            .into(),
                    )
                })?;
                gate.set_horizon(decisions);
                Chooser::Learned(Box::new(RefCell::new(gate)))
            }
            m => Chooser::Gate(SignalDecider(
                m.resolve(choosers.selected.as_ref())?
                    .online_gate(budget, Some(decisions))?
                    .ok_or_else(|| {
                        Error::Config(format!("method {}: not an online gate or `none`", m.name()))
                    })?,
            )),
        };
        let mut row = CanonicalLoss {
            method: method.name(),
            loss: Interval {
                point: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
            },
            problems: 0,
            tokens: 0,
            unpredicted: 0,
            chunks: 0,
            updates: 0,
            cost: 0.0,
            per_problem: Vec::new(),
        };
        // The gate's decisions so far, over every problem: one gate serves the benchmark.
        let mut past = Vec::new();
        for text in texts {
            let vocab = lm.backbone_model().config().vocab_size;
            // The learned gate's history is per problem; where it samples, its draws are
            // seeded per problem.
            let mut learned;
            let decider: Option<&mut dyn ChunkDecider> = match &mut chooser {
                Chooser::Backbone => None,
                Chooser::Gate(g) => Some(g),
                Chooser::Learned(gate) => {
                    learned =
                        LearnedDecider::new(gate, vocab, ponder_base::fnv1a(text.id.as_bytes()))?;
                    Some(&mut learned)
                }
            };
            let (sum, n) = score(lm, text, chunk_len, decider, &mut past, &mut row)?;
            if n > 0 {
                row.per_problem.push(sum / n as f64);
                row.problems += 1;
                row.tokens += n;
            }
            progress();
        }
        if row.per_problem.is_empty() {
            return Err(Error::Data(
                "no solution token is predicted in any problem".into(),
            ));
        }
        row.cost = if row.chunks == 0 {
            1.0
        } else {
            row.cost / row.chunks as f64
        };
        row.loss = bootstrap_ci(
            &row.per_problem,
            |v| mean(v).unwrap_or(f64::NAN),
            resampling.resamples,
            resampling.level,
            resampling.seed,
        )?;
        out.push(row);
    }
    let differences = out
        .iter()
        .skip(1)
        .filter(|m| m.per_problem.len() == out[0].per_problem.len())
        .map(|m| {
            Ok(LossDifference {
                a: m.method.clone(),
                b: out[0].method.clone(),
                difference: paired_difference(&m.per_problem, &out[0].per_problem, resampling)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CanonicalTable {
        chunk_len,
        budget: budget.rho(),
        methods: out,
        differences,
    })
}

/// One problem under one method: the sum and count of its predicted solution tokens' losses;
/// the method's decisions are appended to `past`, its decisions on the problems before.
fn score(
    lm: &PonderLm,
    text: &ScoredText,
    chunk_len: usize,
    mut decider: Option<&mut dyn ChunkDecider>,
    past: &mut Vec<Decision>,
    row: &mut CanonicalLoss,
) -> Result<(f64, usize)> {
    let device = lm.backbone_model().device();
    let mut state = lm.initial_state(1)?;
    let (mut sum, mut n) = (0.0, 0usize);
    // The previous chunk's mean loss under the action taken, for a gate's `prev_loss`.
    let mut prev_loss = None;
    for (c, chunk) in text.ids.chunks(chunk_len).enumerate() {
        let first = c * chunk_len;
        if first >= text.solution_start {
            row.unpredicted += 1;
        }
        if chunk.len() < 2 {
            continue;
        }
        let ids = Tensor::new(chunk, device)?.unsqueeze(0)?; // (1, t)
        let hidden = lm.backbone(&ids)?;
        let decision = match decider.as_deref_mut() {
            None => None,
            Some(d) => Some(d.decide(&Chunk {
                lm,
                hidden: &hidden,
                ids: &ids,
                tokens: chunk,
                state: &state,
                past,
                prev_loss,
            })?),
        };
        past.extend(decision);
        let features = match decision {
            None => hidden,
            Some(decision) => {
                row.chunks += 1;
                row.updates += usize::from(decision.is_update());
                row.cost += decision.cost();
                let out = match decision {
                    Decision::Skip => lm.read(&hidden, &ids, &state)?,
                    Decision::Update(k) => lm.update(&hidden, &ids, &state, k as usize)?,
                };
                state = out.state;
                out.features
            }
        };
        let nll =
            ponder_nn::to_f64(&lm.token_nll(&features, &ids)?.squeeze(0)?)?.to_vec1::<f64>()?;
        prev_loss = Some(nll.iter().sum::<f64>() / nll.len() as f64);
        // Loss j predicts token first + j + 1.
        for (j, v) in nll.into_iter().enumerate() {
            if first + j + 1 >= text.solution_start {
                if !v.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "{}: the loss of token {} is {v}",
                        text.id,
                        first + j + 1
                    )));
                }
                sum += v;
                n += 1;
            }
        }
    }
    Ok((sum, n))
}
