//! `[backbone]`: pretraining the backbone from scratch (the embedded default; the GPT-2 presets
//! load OpenAI's weights and have no such section).

use ponder_nn::Precision;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[backbone]` section: AdamW with warmup and cosine decay, global clipping, periodic
/// validation and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Windows per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup: u64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Validation every this many steps (and at the end).
    pub eval_every: u64,
    /// Validation windows per evaluation.
    pub eval_windows: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Compute precision: `"f32"`, or `"bf16"` (f32 master weights and AdamW state, bf16
    /// forward and backward, f32 loss; see [`ponder_nn::precision`]).
    pub precision: Precision,
}

impl BackboneConfig {
    /// Checks the values; each error names its key.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0
            || self.steps == 0
            || self.lr.is_nan()
            || self.lr <= 0.0
            || self.min_lr < 0.0
            || self.grad_clip <= 0.0
        {
            return Err(Error::Config(
                "backbone: steps, batch_size, lr and grad_clip must be positive".into(),
            ));
        }
        if self.eval_every == 0 || self.checkpoint_every == 0 || self.eval_windows == 0 {
            return Err(Error::Config(
                "backbone: eval_every, eval_windows and checkpoint_every must be positive".into(),
            ));
        }
        Ok(())
    }
}
