//! `[eval]`: how the evaluation stream is cut into chunk-batches (reset mode) or per-file
//! streams (stream mode), which methods are compared under which budget, and the statistics'
//! settings. Every field that moves a number is spelled out; unknown keys are errors.

use ponder_gpt2::Gpt2Config;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sections::StateMode;

/// The `[eval]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Reset mode (the default) or stream mode.
    #[serde(default)]
    pub mode: StateMode,
    /// Tokens per chunk (512 in the original).
    pub chunk_len: usize,
    /// Chunks per sequence window (the original cuts 1024-token sequences into 2 chunks); reset
    /// mode only, where it is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_per_window: Option<usize>,
    /// Chunks of a file's stream at most; stream mode only, where it is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_per_stream: Option<usize>,
    /// Reset mode: sequences per chunk-batch, one decision covering the whole chunk-batch (16).
    /// Stream mode: streams run side by side, each with its own state and decisions.
    pub batch_size: usize,
    /// Batches to evaluate at most: of windows in reset mode (1000 in distribution in the
    /// original), each giving `chunks_per_window` decisions; of streams in stream mode.
    pub max_batches: usize,
    /// The update budget ρ: the fraction of chunk-batches a method may update (0.5). Stream mode
    /// spends it as the mean cost per chunk `1 + 2ρ` in the original's units.
    pub budget: f64,
    /// Stream mode: the mean cost per chunk in the original's units (SKIP 1, UPDATE_k 1 + 2k)
    /// set directly, for mixes of UPDATE_k; `eval.budget` must then be the UPDATE_1 rate that
    /// spends as much of it as UPDATE_1 can, `min(1, (budget_cost − 1)/2)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cost: Option<f64>,
    /// Stream mode: the batches of streams (the first ones) the `greedy_oracle` runs on, since
    /// it tries every action at every chunk for each multiplier of its bisection; required when
    /// it is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greedy_oracle_batches: Option<usize>,
    /// Methods to compare, by short name (`skip`, `update_1`, `update_2`, `update_4`, `random`
    /// (seed 42, the original's) or `random_seedN`, `oracle`, `ours`, `pid`, `ttt_improvement`).
    pub methods: Vec<ponder_gate::Method>,
    /// Seed of the shuffled-input ablation's permutations and of the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples for the confidence intervals.
    pub bootstrap_resamples: usize,
    /// Level of the confidence intervals (0.95).
    pub ci_level: f64,
    /// Budgets of the loss-vs-budget sweep (replayed on the recorded chunks, no new model pass).
    pub budget_sweep: Vec<f64>,
    /// Seeds of Random whose spread is reported beside the one `random` row (seeds 42, 43, …).
    pub random_seeds: usize,
    /// The controllers tried on the validation split, of which the best is `ours_lh`; `None`
    /// when the experiment selects none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<ponder_gate::ControllerGrid>,
}

impl EvalConfig {
    /// The inner steps k > 1 of the UPDATE_k methods listed, sorted: the fast-layer passes the
    /// records need beside UPDATE_1.
    pub fn extra_update_steps(&self) -> Vec<u32> {
        let mut ks: Vec<u32> = self
            .methods
            .iter()
            .filter_map(ponder_gate::Method::steps_beyond_one)
            .collect();
        ks.sort_unstable();
        ks.dedup();
        ks
    }

    /// Chunks per window (reset mode; [`EvalConfig::check`] makes sure it is set there).
    pub fn window_chunks(&self) -> Result<usize> {
        self.chunks_per_window
            .ok_or_else(|| Error::Config("eval.chunks_per_window is required in reset mode".into()))
    }

    /// Tokens per window (reset mode).
    pub fn window_len(&self) -> Result<usize> {
        Ok(self.chunk_len * self.window_chunks()?)
    }

    /// The mean cost per chunk a stream-mode method may spend: `eval.budget_cost`, or `1 + 2ρ`
    /// ([`ponder_metrics::cost::expected_cost`] of UPDATE_1 at rate ρ); an error naming `eval.budget`
    /// when ρ is outside `[0, 1]`.
    pub fn cost_budget(&self) -> Result<f64> {
        match self.budget_cost {
            Some(c) => Ok(c),
            None => ponder_metrics::cost::expected_cost(self.budget, 1).map_err(|_| {
                Error::Config(format!("eval.budget = {} is outside [0, 1]", self.budget))
            }),
        }
    }

    /// Checks every value against the backbone's shape `model`; each error names the key.
    pub fn validate(&self, model: &Gpt2Config) -> Result<()> {
        if self.chunk_len > model.n_positions {
            return Err(Error::Config(format!(
                "eval.chunk_len = {}, expected at most model.n_positions = {}",
                self.chunk_len, model.n_positions
            )));
        }
        self.check()
    }

    /// Checks the values that do not depend on the model; each error names the key.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.chunk_len < 2 {
            return bad(format!(
                "eval.chunk_len = {} (need at least 2 tokens: one prediction)",
                self.chunk_len
            ));
        }
        if self.batch_size == 0 || self.max_batches == 0 {
            return bad(format!(
                "eval.batch_size and eval.max_batches must be positive, got {} and {}",
                self.batch_size, self.max_batches
            ));
        }
        self.check_mode()?;
        ponder_gate::Budget::new(self.budget).map_err(|_| {
            Error::Config(format!("eval.budget = {} is outside [0, 1]", self.budget))
        })?;
        for &b in &self.budget_sweep {
            ponder_gate::Budget::new(b)
                .map_err(|_| Error::Config(format!("eval.budget_sweep has {b}, outside [0, 1]")))?;
        }
        if self.methods.is_empty() {
            return bad("eval.methods is empty".into());
        }
        if self.random_seeds == 0 {
            return bad("eval.random_seeds must be positive".into());
        }
        if let Some(m) = self.methods.iter().find(|m| m.stream_only()) {
            if self.mode == StateMode::Reset {
                return bad(format!(
                    "eval.methods lists {m}, a method of stream mode (eval.mode = \"stream\"); \
                     in reset mode SKIP is the backbone alone"
                ));
            }
        }
        if let Some(grid) = &self.select {
            grid.validate().map_err(crate::config::gate_err)?;
        } else if self.methods.contains(&ponder_gate::Method::Selected) {
            return bad(format!(
                "eval.methods lists {}, the controller chosen on validation, but there is no \
                 [eval.select] to choose it from",
                ponder_gate::SELECTED
            ));
        }
        if self.bootstrap_resamples == 0 {
            return bad("eval.bootstrap_resamples must be positive".into());
        }
        if !(self.ci_level > 0.0 && self.ci_level < 1.0) {
            return bad(format!(
                "eval.ci_level = {} is outside (0, 1)",
                self.ci_level
            ));
        }
        Ok(())
    }

    /// The fields that belong to one mode only, and stream mode's budget and methods.
    fn check_mode(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        match self.mode {
            StateMode::Reset => {
                match self.chunks_per_window {
                    None => return bad("eval.chunks_per_window is required in reset mode".into()),
                    Some(0) => return bad("eval.chunks_per_window must be positive, got 0".into()),
                    Some(_) => {}
                }
                if self.chunks_per_stream.is_some()
                    || self.budget_cost.is_some()
                    || self.greedy_oracle_batches.is_some()
                {
                    return bad(
                        "eval.chunks_per_stream, eval.budget_cost and eval.greedy_oracle_batches \
                         belong to stream mode; set eval.mode = \"stream\" or remove them"
                            .into(),
                    );
                }
            }
            StateMode::Stream => {
                if let Some(c) = self.chunks_per_window {
                    return bad(format!(
                        "eval.chunks_per_window = {c} belongs to reset mode; stream mode cuts \
                         each file into chunks (eval.chunks_per_stream)"
                    ));
                }
                match self.chunks_per_stream {
                    None => return bad("eval.chunks_per_stream is required in stream mode".into()),
                    Some(0) => return bad("eval.chunks_per_stream must be positive, got 0".into()),
                    Some(_) => {}
                }
                if let Some(m) = self
                    .methods
                    .iter()
                    .find(|m| m.config().is_some_and(|c| !c.is_online()))
                {
                    return bad(format!(
                        "eval.methods lists {m}, which ranks every chunk of a recorded stream; in \
                         stream mode a decision changes every later chunk, so use greedy_oracle"
                    ));
                }
                self.check_cost_budget()?;
                let greedy = self.methods.contains(&ponder_gate::Method::GreedyOracle);
                match (greedy, self.greedy_oracle_batches) {
                    (true, None | Some(0)) => {
                        return bad(format!(
                            "eval.methods lists {}: set eval.greedy_oracle_batches to the \
                             (positive) number of stream batches it runs on",
                            ponder_gate::GREEDY_ORACLE
                        ))
                    }
                    (false, Some(_)) => {
                        return bad(format!(
                            "eval.greedy_oracle_batches is set but eval.methods does not list {}",
                            ponder_gate::GREEDY_ORACLE
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Stream mode's budget: a mean cost between the cheapest action's (SKIP, 1) and the dearest
    /// (UPDATE_4, 9), with `eval.budget` its UPDATE_1 rate.
    fn check_cost_budget(&self) -> Result<()> {
        let Some(c) = self.budget_cost else {
            return Ok(());
        };
        let (lo, hi) = (
            ponder_metrics::cost_units(0),
            ponder_metrics::cost_units(*ponder_gate::UPDATE_STEPS.last().expect("actions")),
        );
        if !(lo..=hi).contains(&c) {
            return Err(Error::Config(format!(
                "eval.budget_cost = {c} is outside [{lo}, {hi}], the costs of the cheapest \
                 action (SKIP) and the dearest (UPDATE_4)"
            )));
        }
        let rate = ponder_metrics::rate_spending(c).min(1.0);
        if (rate - self.budget).abs() > 1e-9 {
            return Err(Error::Config(format!(
                "eval.budget_cost = {c} spends an UPDATE_1 rate of {rate}; set eval.budget = \
                 {rate} (it is {}) so that both name the same budget",
                self.budget
            )));
        }
        Ok(())
    }
}
