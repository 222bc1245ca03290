//! `[policy]`: the learned gate of stream mode (`docs/design/policy.md`): which training-split
//! streams its rollouts run over, how many iterations of PPO, the reward's scale, the budget the
//! PID Lagrangian holds, the network, PPO's and the controller's settings, and how many
//! validation streams choose the budget correction of deterministic inference. Every field that
//! moves a number is spelled out; unknown keys are errors.

use ponder_policy::{NetConfig, PidConfig, PpoConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[policy]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The mean cost per chunk allowed, in the original's units (SKIP 1, UPDATE_k 1 + 2k); must
    /// lie strictly between SKIP's 1 and UPDATE_4's 9, and equal the stream-mode comparison's
    /// budget where the learned gate is compared.
    pub budget: f64,
    /// Tokens per chunk; must equal `[eval] chunk_len` where the gate is compared.
    pub chunk_len: usize,
    /// Chunks of a file's stream at most.
    pub chunks_per_stream: usize,
    /// Training-split files (with a whole chunk) whose streams the rollouts draw from, at most;
    /// their backbone passes are computed once and kept in memory.
    pub train_streams: usize,
    /// Streams per iteration's rollout, drawn without replacement.
    pub streams_per_iteration: usize,
    /// PPO iterations (one rollout and one update each).
    pub iterations: usize,
    /// The loss reduction's factor in the reward, `scale · (loss(none) − loss(action)) − λ ·
    /// cost`: a chunk's loss moves by hundredths of a nat, its cost by units.
    pub reward_scale: f64,
    /// EMA rate of the history features (0.1 in the original).
    pub history_alpha: f64,
    /// The length the sequence features divide by (512 in the original).
    pub length_norm: usize,
    /// Normalize each feature by its running mean and variance over training (CleanRL's
    /// continuous-control PPO does; the original did not), frozen at inference.
    pub normalize_features: bool,
    /// How the trained gate acts at inference: its most probable action, or a draw from its
    /// distribution (both after the budget correction).
    pub inference: Inference,
    /// How the budget correction β enters the logits at inference.
    pub correction_form: CorrectionForm,
    /// The gains tried for the online part of the correction at inference, β = β₀ + gain ·
    /// debt, where the debt is the cost spent so far in the evaluation beyond the budget
    /// (Σ (cost − budget) over every decision made); 0 is a fixed β₀. The smallest that holds
    /// the budget on half the validation streams when β₀ is chosen on the other half is kept.
    pub correction_gains: Vec<f64>,
    /// Guard the budget of a whole evaluation at inference: an action is taken only if the
    /// decisions still to come can bring the evaluation's total cost back to the budget
    /// (`ponder_eval::learned::BudgetDebt::allowed`): the total never exceeds the budget and
    /// falls short of it by less than the widest gap between two actions' costs. The correction
    /// is chosen without the guard, which only catches what it misses.
    pub budget_guard: bool,
    /// Validation-split files whose streams choose the budget correction.
    pub calibration_streams: usize,
    /// Iterations between checkpoints.
    pub checkpoint_every: usize,
    /// The actor-critic's shape.
    pub net: NetConfig,
    /// PPO's settings.
    pub ppo: PpoConfig,
    /// The PID Lagrangian's gains.
    pub pid: PidConfig,
}

/// How the learned gate acts at inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inference {
    /// The most probable action (deterministic).
    Argmax,
    /// A draw from the action distribution, seeded per batch of streams from the comparison's
    /// seed, as in training.
    Sample,
}

/// How the budget correction β enters the learned gate's logits at inference; a larger β buys
/// cheaper actions either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionForm {
    /// Every logit charged with its action's cost, `ℓ_a − β c_a` (a Lagrangian's form): a
    /// negative β favours the dearest action.
    Cost,
    /// SKIP's logit raised, `ℓ_SKIP + β`: the updates keep their order among themselves.
    SkipLogit,
}

impl PolicyConfig {
    /// Checks every field against its range; each error names its key.
    pub fn validate(&self) -> Result<()> {
        let costs = ponder_gate::ACTIONS.map(|a| a.cost());
        let (least, most) = (costs[0], costs[costs.len() - 1]);
        if !(self.budget > least && self.budget < most) {
            return Err(Error::Config(format!(
                "policy.budget = {}: no mix of SKIP (cost {least}) and UPDATE_4 (cost {most}) \
                 leaves a choice at that mean cost; expected a value strictly between",
                self.budget
            )));
        }
        for (key, v) in [
            ("chunk_len", self.chunk_len),
            ("chunks_per_stream", self.chunks_per_stream),
            ("train_streams", self.train_streams),
            ("streams_per_iteration", self.streams_per_iteration),
            ("iterations", self.iterations),
            ("length_norm", self.length_norm),
            ("calibration_streams", self.calibration_streams),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("policy.{key} must be at least 1")));
            }
        }
        if self.chunk_len < 2 {
            return Err(Error::Config(format!(
                "policy.chunk_len = {}: a chunk needs at least 2 tokens",
                self.chunk_len
            )));
        }
        if self.streams_per_iteration > self.train_streams {
            return Err(Error::Config(format!(
                "policy.streams_per_iteration = {} exceeds policy.train_streams = {}",
                self.streams_per_iteration, self.train_streams
            )));
        }
        if !(self.reward_scale.is_finite() && self.reward_scale > 0.0) {
            return Err(Error::Config(format!(
                "policy.reward_scale must be finite and > 0, got {}",
                self.reward_scale
            )));
        }
        if self.correction_gains.is_empty()
            || self
                .correction_gains
                .iter()
                .any(|g| !(g.is_finite() && *g >= 0.0))
        {
            return Err(Error::Config(format!(
                "policy.correction_gains must list at least one finite gain >= 0, got {:?}",
                self.correction_gains
            )));
        }
        if !(self.history_alpha > 0.0 && self.history_alpha <= 1.0) {
            return Err(Error::Config(format!(
                "policy.history_alpha must be in (0, 1], got {}",
                self.history_alpha
            )));
        }
        if self.net.features != ponder_gate::features::WIDTH {
            return Err(Error::Config(format!(
                "policy.net.features = {}: the learned gate's feature vector has {} values",
                self.net.features,
                ponder_gate::features::WIDTH
            )));
        }
        if self.net.actions != ponder_gate::ACTIONS.len() {
            return Err(Error::Config(format!(
                "policy.net.actions = {}: stream mode has {} actions (SKIP, UPDATE_1, UPDATE_2, \
                 UPDATE_4)",
                self.net.actions,
                ponder_gate::ACTIONS.len()
            )));
        }
        let policy = |e: ponder_policy::Error| {
            Error::Config(format!(
                "policy.{}",
                e.to_string().trim_start_matches("policy: ")
            ))
        };
        self.net.validate().map_err(policy)?;
        self.ppo.validate().map_err(policy)?;
        self.pid.validate().map_err(policy)?;
        Ok(())
    }
}
