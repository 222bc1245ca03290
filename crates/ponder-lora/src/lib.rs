//! LoRA for ponder: low-rank updates with PEFT's names and files, and the LoRA fast-weight layer
//! of PonderTTT.
//!
//! - [`LoraConfig`]: `r`, `lora_alpha`, `lora_dropout`, `target_modules` (PEFT's names), and
//!   [`Init`], the initialization of `A` (the original's normal(0, 0.02) or PEFT's
//!   kaiming-uniform);
//! - [`LoraFactors`]: the pair `A (r, in)`, `B (out, r)` of one module and its update
//!   `scale · (x Aᵀ) Bᵀ`;
//! - [`LoraLinear`]: a frozen `candle_nn::Linear` plus factors, with [`LoraLinear::merge`] and
//!   [`LoraLinear::unmerge`];
//! - [`LoraAdapter`]: a set of modules saved and loaded as PEFT's `adapter_model.safetensors` and
//!   `adapter_config.json`;
//! - [`LoraFastLayer`]: the fast-weight layer (two `d → d` adapters on the queries and values of
//!   a causal single-head attention readout), which sits where the TTT layer sits;
//! - [`update`]: its UPDATE_k, block by block along the chunk, and its per-sequence state
//!   ([`LoraState`]).
//!
//! Factors are plain tensors. To train them, wrap them in `candle::Var`s and rebuild the layer
//! from the vars' tensors ([`LoraFactors::new`], [`LoraFastLayer::from_trainable`]); the
//! optimizer's in-place updates are then seen by the layer.

pub mod adapter;
pub mod config;
pub mod factors;
pub mod fast_layer;
pub mod linear;
pub mod update;

pub use adapter::LoraAdapter;
pub use config::{Init, LoraConfig};
pub use factors::{LoraFactors, ModuleDims};
pub use fast_layer::{LoraFastConfig, LoraFastLayer};
pub use linear::LoraLinear;
pub use update::{update_flops, update_sequence, LoraState, LoraUpdate};
