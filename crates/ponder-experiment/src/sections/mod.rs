//! The sections of an experiment that belong to no other crate: `[backbone]` (pretraining the
//! embedded default), `[fast]` (which fast layer, and how it trains), `[eval]` (how the
//! methods are compared) and `[policy]` (the learned gate's training), and [`StateMode`], which
//! both `[fast]` and `[eval]` set. The other sections are their crates' own types: `[data]` is
//! [`ponder_data::DataConfig`], `[model]` is [`ponder_gpt2::Gpt2Config`], `[fast.ttt]` is
//! [`ponder_model::TttConfig`], `[fast.lora]` is [`ponder_model::LoraFastConfig`], and
//! `[policy.net]`, `[policy.ppo]` and `[policy.pid]` are `ponder_policy`'s.

mod backbone;
mod eval;
mod fast;
mod policy;
mod state_mode;

pub use backbone::BackboneConfig;
pub use eval::EvalConfig;
pub use fast::FastConfig;
pub use policy::{CorrectionForm, Inference, PolicyConfig};
pub use state_mode::StateMode;
