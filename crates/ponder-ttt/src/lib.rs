//! TTT fast-weight layers for ponder.
//!
//! - [`TttConfig`]: hyper-parameters, with [`TttConfig::for_gpt2`] presets that reproduce the
//!   original PonderTTT layer;
//! - [`TttParams::forward`]: TTT-Linear or TTT-MLP over a chunk (UPDATE_k, k >= 1) with the dual-form
//!   inner loop and the `init`, `step_0`, `step_1` reconstruction statistics;
//! - [`TttState`]: the fast weights, passed explicitly between chunks;
//! - [`inner::inner_loop`]: the inner loop on its own, for tests and other layers; for
//!   TTT-Linear at inference it runs fused on the CPU (`fused`), elsewhere as the composition
//!   of Candle ops [`inner::inner_loop_composed`].

pub mod config;
mod fused;
pub mod init;
pub mod inner;
pub mod layer;
mod multi_step;
mod prepare;
pub mod state;

pub use config::{ConvWindow, EtaForm, FastModelKind, TttConfig};
pub use inner::{FastModel, TttStats};
pub use layer::{TttOutput, TttParams};
pub use state::TttState;
