//! `[fast]`: which fast layer sits on the frozen backbone (`layer`, with its own section
//! `[fast.ttt]` or `[fast.lora]`), and how it trains (the original's Phase 1).

use ponder_gpt2::Gpt2Config;
use ponder_model::{FastLayerKind, LoraFastConfig, TttConfig};
use ponder_nn::Precision;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sections::StateMode;

/// The `[fast]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastConfig {
    /// The frozen backbone: a local folder (e.g. the embedded default's `runs/tiny/model`) or a
    /// Hub id.
    pub backbone: String,
    /// The fast layer: `ttt_linear`, `ttt_mlp` (both read `[fast.ttt]`) or `lora` (reads
    /// `[fast.lora]`).
    pub layer: FastLayerKind,
    /// Reset mode (the default: every chunk starts from the learned initial weights) or stream
    /// mode (the state carried across the chunks of a training window).
    #[serde(default)]
    pub mode: StateMode,
    /// Stream mode: consecutive chunks per training window, the state carried across them and
    /// the gradient taken through the whole window (`docs/design/stream.md`); required there,
    /// refused in reset mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_per_window: Option<usize>,
    /// Tokens per chunk (512 in the original).
    pub chunk_len: usize,
    /// Adam steps per chunk-batch, each at learning rate `lr / k`: 1, 2 or 4 (the original's
    /// "UPDATE_k" of training).
    pub k: usize,
    /// Chunk-batches.
    pub steps: u64,
    /// Chunks per batch.
    pub batch_size: usize,
    /// Adam learning rate before the division by `k` (3e-4 in the original).
    pub lr: f64,
    /// Global gradient-norm clip (1.0).
    pub grad_clip: f64,
    /// Weight of the mean reconstruction loss in the objective (0.1).
    pub ssl_weight: f64,
    /// Validation every this many steps (and at the end).
    pub eval_every: u64,
    /// Validation chunks per evaluation.
    pub eval_chunks: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Compute precision: `"f32"`, or `"bf16"` (f32 master weights and Adam state, bf16 forward
    /// and backward, f32 loss; see [`ponder_nn::precision`]).
    pub precision: Precision,
    /// Memory budget (MB) for caching the frozen backbone's hidden states of chunks seen before;
    /// chunks beyond it are recomputed. Changes speed, never numbers. The cache is used only when
    /// the backbone runs without dropout.
    #[serde(default = "default_hidden_cache_mb")]
    pub hidden_cache_mb: usize,
    /// The TTT layer (`layer = "ttt_linear"` or `"ttt_mlp"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttt: Option<TttConfig>,
    /// The LoRA fast layer (`layer = "lora"`), with PEFT's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraFastConfig>,
}

fn default_hidden_cache_mb() -> usize {
    2048
}

impl FastConfig {
    /// Chunks per training window: 1 in reset mode, `chunks_per_window` in stream mode.
    pub fn window_chunks(&self) -> usize {
        match self.mode {
            StateMode::Reset => 1,
            StateMode::Stream => self.chunks_per_window.unwrap_or(1),
        }
    }

    /// Checks the values against the backbone's shape `model`; each error names its key.
    pub fn validate(&self, model: &Gpt2Config) -> Result<()> {
        match (self.mode, self.chunks_per_window) {
            (StateMode::Reset, Some(c)) => {
                return Err(Error::Config(format!(
                    "fast.chunks_per_window = {c} belongs to stream mode (fast.mode = \"stream\"); \
                     reset mode trains on single chunks"
                )))
            }
            (StateMode::Stream, None | Some(0)) => {
                return Err(Error::Config(
                    "fast.mode = \"stream\" needs fast.chunks_per_window, the (positive) number \
                     of chunks the state is carried across"
                        .into(),
                ))
            }
            _ => {}
        }
        ponder_gate::check_update_steps("fast.k", self.k as u64)
            .map_err(crate::config::gate_err)?;
        if self.batch_size == 0
            || self.steps == 0
            || self.eval_every == 0
            || self.checkpoint_every == 0
            || self.eval_chunks == 0
        {
            return Err(Error::Config(
                "fast: batch_size, steps, eval_every, eval_chunks and checkpoint_every must be positive".into(),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.grad_clip > 0.0) {
            return Err(Error::Config(format!(
                "fast.lr = {} and fast.grad_clip = {} must be positive",
                self.lr, self.grad_clip
            )));
        }
        if self.chunk_len < 2 || self.chunk_len > model.n_positions {
            return Err(Error::Config(format!(
                "fast.chunk_len = {}, expected 2..={} (model.n_positions)",
                self.chunk_len, model.n_positions
            )));
        }
        let d = model.n_embd;
        let layer = self.layer;
        let is_lora = layer == FastLayerKind::Lora;
        let (own, other) = if is_lora {
            ("[fast.lora]", "[fast.ttt]")
        } else {
            ("[fast.ttt]", "[fast.lora]")
        };
        let (has_own, has_other) = if is_lora {
            (self.lora.is_some(), self.ttt.is_some())
        } else {
            (self.ttt.is_some(), self.lora.is_some())
        };
        if !has_own {
            let hint = if is_lora {
                " (hidden_dim, r, lora_alpha, lora_dropout and [fast.lora.update]; configs/tiny-lora.toml has one)"
            } else {
                ""
            };
            return Err(Error::Config(format!(
                "fast.layer = \"{layer}\" needs a {own} section{hint}"
            )));
        }
        if has_other {
            return Err(Error::Config(format!(
                "fast.layer = \"{layer}\" takes a {own} section, and a {other} section beside it is not used: remove {other}"
            )));
        }
        if let Some(ttt) = &self.ttt {
            ttt.validate()
                .map_err(|e| Error::Config(format!("fast.ttt: {e}")))?;
            check_width("fast.ttt.hidden_dim", ttt.hidden_dim, d)?;
        }
        if let Some(lora) = &self.lora {
            lora.validate()
                .map_err(|e| Error::Config(format!("fast.lora: {e}")))?;
            check_width("fast.lora.hidden_dim", lora.hidden_dim, d)?;
        }
        Ok(())
    }
}

fn check_width(key: &str, got: usize, d: usize) -> Result<()> {
    if got == d {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{key} = {got}, expected the backbone width model.n_embd = {d}"
        )))
    }
}
