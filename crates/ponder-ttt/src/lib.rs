//! TTT fast-weight layers for ponder.
//!
//! - [`TttConfig`]: hyper-parameters, with [`TttConfig::for_gpt2`] presets that reproduce the
//!   original PonderTTT layer;
//! - [`TttLinearParams::forward`]: TTT-Linear over a chunk with the dual-form inner loop and the
//!   `init`, `step_0`, `step_1` reconstruction statistics;
//! - [`inner::dual_form`]: the inner loop on its own, for tests and other layers.

pub mod config;
pub mod inner;
pub mod linear;

pub use config::{ConvWindow, TttConfig};
pub use inner::TttStats;
pub use linear::{TttLinearParams, TttOutput};
