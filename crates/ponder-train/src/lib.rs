//! Training loops for ponder, on the experiment layer's configs and run folders
//! (`ponder-experiment`).
//!
//! - [`backbone`]: pretraining the embedded-default backbone from scratch;
//! - [`fast`]: training the fast layer on a frozen backbone (the original's Phase 1);
//! - [`policy`]: training the learned gate of stream mode (PPO with a PID Lagrangian) on a
//!   trained fast layer, and choosing its budget correction on validation.

pub mod backbone;
pub mod error;
pub mod fast;
pub mod policy;

pub use backbone::{train_backbone, BackboneReport};
pub use error::{Error, Result};
pub use fast::{fast_step, train_fast, FastModel, FastReport, HiddenCache};
pub use policy::{train_policy, PolicyReport};
