//! `[eval]`: how the evaluation stream is cut into chunk-batches, which methods are compared
//! under which budget, and the statistics' settings. Every field that moves a number is spelled
//! out; unknown keys are errors.

use ponder_gpt2::Gpt2Config;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[eval]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Tokens per chunk (512 in the original).
    pub chunk_len: usize,
    /// Chunks per sequence window (the original cuts 1024-token sequences into 2 chunks).
    pub chunks_per_window: usize,
    /// Sequences per chunk-batch; one decision covers the whole chunk-batch (16).
    pub batch_size: usize,
    /// Batches of windows to evaluate at most (1000 in distribution in the original); each gives
    /// `chunks_per_window` decisions.
    pub max_batches: usize,
    /// The update budget ρ: the fraction of chunk-batches a method may update (0.5).
    pub budget: f64,
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

    /// Tokens per window.
    pub fn window_len(&self) -> usize {
        self.chunk_len * self.chunks_per_window
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
        if self.chunks_per_window == 0 || self.batch_size == 0 || self.max_batches == 0 {
            return bad(format!(
                "eval.chunks_per_window, eval.batch_size and eval.max_batches must be positive, got {}, {}, {}",
                self.chunks_per_window, self.batch_size, self.max_batches
            ));
        }
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
}
