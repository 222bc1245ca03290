//! Training loops for ponder, on the experiment layer's configs and run folders
//! (`ponder-experiment`).
//!
//! - [`backbone`]: pretraining the embedded-default backbone from scratch;
//! - [`fast`]: training the fast layer on a frozen backbone (the original's Phase 1).

pub mod backbone;
pub mod error;
pub mod fast;

pub use backbone::{train_backbone, BackboneReport};
pub use error::{Error, Result};
pub use fast::{fast_step, train_fast, FastModel, FastReport, HiddenCache};
