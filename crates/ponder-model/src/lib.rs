//! The PonderTTT language model on top of a frozen GPT-2.
//!
//! - [`PonderLm`]: backbone → `fast_norm` → fast layer → residual → tied head, with the SKIP and
//!   UPDATE_k paths sharing one backbone pass ([`PonderLm::chunk`]);
//! - [`FastLayer`], [`FastNorm`], [`FastState`]: the trainable part (TTT-Linear or LoRA) and its
//!   per-sequence state;
//! - [`lora`]: the LoRA fast layer's block statistics as reconstruction statistics (its
//!   UPDATE_k lives with the layer, in `ponder-lora`);
//! - [`checkpoint`]: saving and loading the fast layer and `fast_norm`;
//! - [`decode`]: generation, greedy or sampled, from the backbone with its kv cache or with the
//!   fast layer and a gate adapting over the prompt and the generated text;
//! - [`PonderLm::probe`] (`probe.rs`): the learned gate's model features of a chunk.

pub mod checkpoint;
pub mod decode;
pub mod fast;
pub mod lm;
pub mod lora;
mod probe;

pub use fast::{FastLayer, FastLayerKind, FastNorm, FastState};
pub use lm::{ChunkResult, PartFlops, PonderLm, SequenceSignal, UpdateOutput};
// The fast layers' own types appear in this crate's API (`FastLayer`), so they are re-exported
// for crates above that must not depend on `ponder-ttt` directly.
pub use ponder_lora::{LoraFastConfig, LoraState, LoraUpdate};
pub use ponder_ttt::{ConvWindow, EtaForm, FastModelKind, TttConfig, TttParams, TttStats};
