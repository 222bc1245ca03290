//! Stream mode's model pass (`docs/design/stream.md`): every method runs its own pass over the
//! streams, since its decisions change the fast weights every later chunk of a file reads.
//!
//! A batch's backbone hidden states are computed once ([`BatchHidden`]) and read by every
//! method. Each method ([`MethodPass`]) carries one fast state per stream, reset to the learned
//! initial weights at the stream's start, and decides per stream and chunk: its rows are grouped
//! by action, each group runs as one batch (a read for SKIP, the update for UPDATE_k), and each
//! row's resulting state is carried to its next chunk. A gate keeps one state over the whole
//! evaluation and decides in stream order: batch by batch, chunk by chunk, row by row. The
//! learned gate (`ppo`) decides all rows of a chunk position at once from their feature vectors,
//! each stream with its own history, and reads the batch's probe ([`ChunkProbe`]).

use std::time::Instant;

use candle::{Device, Tensor};
use ponder_gate::{Decision, Gate, Signals, ACTIONS};
use ponder_model::{FastState, PonderLm, SequenceSignal};
use serde::{Deserialize, Serialize};

use crate::act::{act, act_rows, gather, to_vec};
use crate::error::Result;
use crate::file_stream::StreamBatch;
use crate::learned::{chunk_features, ChunkProbe, FeatureShape, LearnedGate, Position};
use ponder_gate::features::History;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One decision of a method: a stream's chunk, the action taken and what it gave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The stream ([`crate::file_stream::FileStream::index`]).
    pub stream: usize,
    /// The chunk within the stream, from 0.
    pub chunk: usize,
    /// The inner steps taken (0 for SKIP); `None` for the backbone alone (`none`).
    pub steps: Option<u32>,
    /// The chunk's mean next-token loss.
    pub loss: f64,
    /// The gate's signal under the state before the decision, when the method computed it.
    pub recon: Option<f64>,
    /// See [`SequenceSignal::recon_init`].
    pub recon_init: Option<f64>,
}

impl StepRecord {
    /// The cost in the original's units: SKIP (and the backbone alone) 1, UPDATE_k 1 + 2k.
    pub fn cost(&self) -> f64 {
        ponder_metrics::cost_units(self.steps.unwrap_or(0))
    }
}

/// What chooses each chunk's action.
pub enum Actor {
    /// The backbone alone, no fast layer (`none`).
    Backbone,
    /// An online gate; `signal` says whether it reads the reconstruction signal, computed on
    /// the current state before it decides.
    Gate {
        /// The gate.
        gate: Box<dyn Gate + Send>,
        /// Whether the signal is computed.
        signal: bool,
    },
    /// The same action on every chunk, each from the learned initial weights, the update
    /// forgotten after it: reset mode's path on the streams' chunks, for reference.
    Reset(Decision),
    /// Every action tried from the current state; kept: the least `loss + lambda · cost`.
    Greedy {
        /// The cost multiplier.
        lambda: f64,
    },
    /// The learned gate (`ppo`), deterministic, its budget correction applied; each stream's
    /// history starts fresh with the stream.
    Learned {
        /// The trained gate.
        gate: Box<LearnedGate>,
        /// The vocabulary size its token features divide by.
        vocab: usize,
        /// The seed of its draws where it samples: each batch draws from
        /// `derive_seed(seed, "learned-inference", index of the batch's first stream)`.
        seed: u64,
    },
}

impl Actor {
    /// Whether the actor reads the learned gate's model statistics ([`ChunkProbe`]).
    fn needs_probe(&self) -> bool {
        matches!(self, Actor::Learned { .. })
    }
}

/// The backbone's view of one batch: per chunk position, the rows alive there, their ids and
/// their hidden states, and the learned gate's probe of them where asked.
pub struct BatchHidden {
    chunks: Vec<(Vec<usize>, Tensor, Tensor)>,
    probes: Option<Vec<ChunkProbe>>,
    /// Seconds the backbone took.
    pub seconds: f64,
}

impl BatchHidden {
    /// Runs the backbone over every chunk position of `batch`, and the learned gate's probe
    /// where `probe`.
    pub fn new(lm: &PonderLm, batch: &StreamBatch, device: &Device, probe: bool) -> Result<Self> {
        let t0 = Instant::now();
        let len = batch.streams[0].chunks[0].len();
        let chunks = (0..batch.max_chunks())
            .map(|c| {
                let rows = batch.alive(c);
                let ids = Tensor::from_vec(batch.ids(c, &rows), (rows.len(), len), device)?;
                let hidden = lm.backbone(&ids)?.contiguous()?; // (rows, t, d)
                Ok((rows, ids, hidden))
            })
            .collect::<Result<Vec<_>>>()?;
        let probes = probe
            .then(|| {
                chunks
                    .iter()
                    .map(|(_, ids, _)| ChunkProbe::new(lm, ids))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Self {
            chunks,
            probes,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// One method's pass over the streams.
pub struct MethodPass {
    actor: Actor,
    decided: usize,
    updates: usize,
    /// Its decisions so far, in stream order.
    pub records: Vec<StepRecord>,
    /// Seconds spent on its fast layer, heads and signals.
    pub seconds: f64,
}

impl MethodPass {
    /// Whether its actor reads the learned gate's probe of each batch.
    pub fn needs_probe(&self) -> bool {
        self.actor.needs_probe()
    }

    /// A pass with no decision made yet.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            decided: 0,
            updates: 0,
            records: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Takes back the decisions `steps` that this method made over one batch in an earlier,
    /// interrupted run, as if it had just made them: a gate is stepped through them again on
    /// their recorded signals, which restores its state, and each of its decisions must come out
    /// as recorded; the learned gate's budget debt takes their costs.
    pub fn replay(&mut self, steps: &[StepRecord]) -> Result<()> {
        for step in steps {
            if let Actor::Gate { gate, .. } = &mut self.actor {
                let prev_loss = step.chunk.checked_sub(1).and_then(|c| {
                    self.records
                        .iter()
                        .rev()
                        .find(|r| r.stream == step.stream && r.chunk == c)
                        .map(|r| r.loss)
                });
                let d = gate.step(&Signals {
                    position: self.decided,
                    recon: step.recon.unwrap_or(f64::NAN),
                    recon_init: step.recon_init.unwrap_or(f64::NAN),
                    skip_loss: None,
                    prev_loss,
                    updates_so_far: self.updates,
                });
                if Some(d.steps()) != step.steps {
                    return Err(crate::error::Error::Data(format!(
                        "stream {} chunk {}: the gate replayed on the recorded signals decides {} \
                         where the record says {:?} (records of another config or code)",
                        step.stream,
                        step.chunk,
                        d.steps(),
                        step.steps
                    )));
                }
                self.decided += 1;
                self.updates += usize::from(d.is_update());
            }
            if let (Actor::Learned { gate, .. }, Some(k)) = (&mut self.actor, step.steps) {
                let decision = match k {
                    0 => Decision::Skip,
                    k => Decision::Update(k),
                };
                gate.debt.record(&[decision]);
            }
            self.records.push(*step);
        }
        Ok(())
    }

    /// Runs the method over `batch`, whose hidden states are `hidden`.
    pub fn run_batch(
        &mut self,
        lm: &PonderLm,
        batch: &StreamBatch,
        hidden: &BatchHidden,
    ) -> Result<()> {
        let t0 = Instant::now();
        let mut states = match self.actor {
            Actor::Backbone => Vec::new(),
            _ => (0..batch.streams.len())
                .map(|_| lm.initial_state(1))
                .collect::<candle::Result<Vec<_>>>()?,
        };
        let mut draws = ChaCha8Rng::seed_from_u64(match &self.actor {
            Actor::Learned { seed, .. } => {
                ponder_base::derive_seed(*seed, "learned-inference", batch.streams[0].index as u64)
            }
            _ => 0,
        });
        // Each stream's previous chunk's loss under the action taken, for `Signals::prev_loss`.
        let mut prev_loss: Vec<Option<f64>> = vec![None; batch.streams.len()];
        let mut histories = match &self.actor {
            Actor::Learned { gate, .. } => (0..batch.streams.len())
                .map(|_| History::new(gate.meta.history_alpha, gate.meta.budget))
                .collect::<std::result::Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        for (c, (rows, ids, h)) in hidden.chunks.iter().enumerate() {
            let mut record = |r: usize, steps, loss, sig: Option<SequenceSignal>| {
                self.records.push(StepRecord {
                    stream: batch.streams[rows[r]].index,
                    chunk: c,
                    steps,
                    loss,
                    recon: sig.map(|s| s.recon),
                    recon_init: sig.map(|s| s.recon_init),
                })
            };
            match &mut self.actor {
                Actor::Backbone => {
                    let losses = to_vec(&lm.next_token_loss(h, ids)?)?;
                    for (r, loss) in losses.into_iter().enumerate() {
                        record(r, None, loss, None);
                    }
                }
                Actor::Gate { gate, signal } => {
                    let row_states: Vec<&FastState> = rows.iter().map(|&r| &states[r]).collect();
                    let signals = if *signal {
                        Some(lm.sequence_signals(h, ids, &FastState::cat(&row_states)?)?)
                    } else {
                        None
                    };
                    let decisions: Vec<Decision> = (0..rows.len())
                        .map(|r| {
                            let s = signals.as_ref().map(|v| v[r]);
                            let d = gate.step(&Signals {
                                position: self.decided,
                                recon: s.map_or(f64::NAN, |s| s.recon),
                                recon_init: s.map_or(f64::NAN, |s| s.recon_init),
                                skip_loss: None,
                                prev_loss: prev_loss[rows[r]],
                                updates_so_far: self.updates,
                            });
                            self.decided += 1;
                            self.updates += usize::from(d.is_update());
                            d
                        })
                        .collect();
                    let (losses, next) = act_rows(lm, h, ids, &row_states, &decisions)?;
                    for (r, &row) in rows.iter().enumerate() {
                        let s = signals.as_ref().map(|v| v[r]);
                        record(r, Some(decisions[r].steps()), losses[r], s);
                        states[row] = next[r].clone();
                        prev_loss[row] = Some(losses[r]);
                    }
                }
                Actor::Reset(decision) => {
                    let fresh = lm.initial_state(rows.len())?;
                    let (losses, _) = act(lm, h, ids, &fresh, *decision)?;
                    for (r, loss) in losses.into_iter().enumerate() {
                        record(r, Some(decision.steps()), loss, None);
                    }
                }
                Actor::Greedy { lambda } => {
                    let state = gather(&states, rows)?;
                    let tried = ACTIONS
                        .iter()
                        .map(|&a| act(lm, h, ids, &state, a))
                        .collect::<Result<Vec<_>>>()?;
                    for (r, &row) in rows.iter().enumerate() {
                        let score = |i: usize| tried[i].0[r] + *lambda * ACTIONS[i].cost();
                        let best =
                            (1..ACTIONS.len()).fold(
                                0,
                                |b, i| {
                                    if score(i) < score(b) {
                                        i
                                    } else {
                                        b
                                    }
                                },
                            );
                        record(r, Some(ACTIONS[best].steps()), tried[best].0[r], None);
                        states[row] = tried[best].1.row(r)?;
                    }
                }
                Actor::Learned { gate, vocab, .. } => {
                    let probe = hidden.probes.as_ref().map(|p| &p[c]).ok_or_else(|| {
                        crate::error::Error::Config(
                            "the learned gate's pass needs the batch probed (BatchHidden::new \
                             with probe)"
                                .into(),
                        )
                    })?;
                    let at = Position {
                        hidden: h,
                        ids,
                        ids_rows: rows
                            .iter()
                            .map(|&r| batch.streams[r].chunks[c].as_slice())
                            .collect(),
                        probe,
                    };
                    let row_states: Vec<&FastState> = rows.iter().map(|&r| &states[r]).collect();
                    let row_histories: Vec<History> =
                        rows.iter().map(|&r| histories[r].clone()).collect();
                    let shape = FeatureShape {
                        chunk_len: gate.meta.chunk_len,
                        vocab: *vocab,
                        length_norm: gate.meta.length_norm,
                    };
                    let (obs, signals) =
                        chunk_features(lm, &at, &row_states, &row_histories, shape)?;
                    let decisions = gate.decide(&obs, &mut draws)?;
                    let (losses, next) = act_rows(lm, h, ids, &row_states, &decisions)?;
                    for (r, &row) in rows.iter().enumerate() {
                        histories[row].observe(probe.none_loss[r], decisions[r].cost());
                        record(r, Some(decisions[r].steps()), losses[r], Some(signals[r]));
                        states[row] = next[r].clone();
                    }
                }
            }
        }
        self.seconds += t0.elapsed().as_secs_f64();
        Ok(())
    }
}
