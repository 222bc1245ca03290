//! The sections of an experiment that belong to no other crate: `[backbone]` (pretraining the
//! embedded default), `[fast]` (which fast layer, and how it trains) and `[eval]` (how the
//! methods are compared), and [`StateMode`], which both `[fast]` and `[eval]` set. The other sections are their crates' own types: `[data]` is
//! [`ponder_data::DataConfig`], `[model]` is [`ponder_gpt2::Gpt2Config`], `[fast.ttt]` is
//! [`ponder_model::TttConfig`] and `[fast.lora]` is [`ponder_model::LoraFastConfig`].

mod backbone;
mod eval;
mod fast;
mod state_mode;

pub use backbone::BackboneConfig;
pub use eval::EvalConfig;
pub use fast::FastConfig;
pub use state_mode::StateMode;
