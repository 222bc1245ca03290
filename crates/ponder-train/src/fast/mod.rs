//! Fast-layer training, the original's Phase 1 (`docs/original.md` §5): on a frozen backbone,
//! only the TTT layer and `fast_norm` learn, with the objective `CE(UPDATE) + w · mean(init,
//! step_0, step_1)`, Adam at `lr / k` for UPDATE_k (k Adam steps on each chunk-batch) and global
//! clipping.
//!
//! - [`model`]: the layer under training ([`FastModel`]), its [`objective`], one chunk-batch
//!   step ([`fast_step`]) and the cache of the backbone's hidden states per chunk ([`HiddenCache`]);
//! - [`train`]: the loop over a run's data with validation and checkpoints ([`train_fast`]).

pub mod model;
pub mod train;

pub use model::{fast_step, objective, FastModel, FastStepStats, HiddenCache, Objective};
pub use train::{train_fast, FastReport};
